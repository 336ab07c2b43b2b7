//! What the token service takes from pushes: the built-in route `tokens` receives every
//! ticket and authorization push of a managed third-party platform (they also reach the
//! configured routes, as any event). A ticket is saved when newer than the stored one;
//! an authorization is exchanged for the authorizer's tokens; a failure is retried on the
//! delivery schedule, like any handler's.

use super::{AppKind, TokenService, TokensConfig};
use crate::clock;
use crate::dispatch::RouteFilter;
use crate::event::{COMPONENT_VERIFY_TICKET, Event};
use crate::handler::{BoxError, Handler};
use crate::secret::Secret;
use crate::store::StoredTicket;

/// The built-in route's name (not available to `[[routes]]`).
pub const TOKENS_ROUTE: &str = "tokens";

/// The notices the token service acts on.
const NOTICES: &[&str] = &[
    COMPONENT_VERIFY_TICKET,
    "authorized",
    "updateauthorized",
    "unauthorized",
];

/// The built-in route's filter: the notices above, from the managed third-party platforms;
/// `None` when no third-party platform is managed.
pub fn token_events(config: &TokensConfig) -> Option<RouteFilter> {
    let apps: Vec<String> = config
        .apps
        .iter()
        .filter(|a| a.kind == AppKind::Component)
        .map(|a| a.name.clone())
        .collect();
    (!apps.is_empty()).then(|| RouteFilter {
        name: TOKENS_ROUTE.to_owned(),
        events: NOTICES.iter().map(|n| (*n).to_owned()).collect(),
        apps,
    })
}

/// The built-in route's handler.
#[derive(Debug, Clone)]
pub struct TokenEvents(pub TokenService);

impl Handler for TokenEvents {
    async fn handle(&self, event: &Event) -> Result<(), BoxError> {
        self.0.observe(event).await.map_err(BoxError::from)
    }
}

impl TokenService {
    /// Acts on a ticket or authorization push of a managed third-party platform.
    ///
    /// # Errors
    /// Why it could not (retried by the dispatcher).
    pub async fn observe(&self, event: &Event) -> Result<(), String> {
        let Some(app) = self.config().app_named(&event.app).cloned() else {
            return Ok(());
        };
        if app.kind != AppKind::Component {
            return Ok(());
        }
        let field = |name: &str| {
            event
                .fields
                .get(name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        // CreateTime is seconds; without one, the time of receipt.
        let at_ms = event
            .create_time
            .map(|t| t.saturating_mul(1000))
            .or(event.received_at)
            .unwrap_or_else(clock::now_ms);
        let name = event.name();
        if name.eq_ignore_ascii_case(COMPONENT_VERIFY_TICKET) {
            let ticket = field("ComponentVerifyTicket")
                .ok_or("a ticket push without ComponentVerifyTicket")?;
            if let Some(pushed_for) = field("AppId")
                && pushed_for != app.appid
            {
                tracing::warn!(app = %app.name, "a ticket push names AppId {} but the app's appid is {}: kept for the configured appid", crate::escape::printable(pushed_for), app.appid);
            }
            return self.save_ticket(&app.appid, ticket, at_ms / 1000).await;
        }
        let authorizer =
            field("AuthorizerAppid").ok_or("an authorization push without AuthorizerAppid")?;
        if name.eq_ignore_ascii_case("unauthorized") {
            return self.unauthorized(&app.appid, authorizer, at_ms).await;
        }
        let code =
            field("AuthorizationCode").ok_or("an authorization push without AuthorizationCode")?;
        self.authorized(&app.appid, authorizer, code, at_ms).await
    }

    /// Saves a pushed ticket (unless a newer one is stored), then makes sure the component
    /// token can be had: a failure there is logged, the ticket stays saved.
    async fn save_ticket(
        &self,
        component: &str,
        ticket: &str,
        create_time: i64,
    ) -> Result<(), String> {
        let stored = StoredTicket {
            component_appid: component.to_owned(),
            ticket: self.seal(
                &format!("ticket:{component}"),
                &Secret::new(ticket.to_owned()),
            ),
            create_time,
            received_at: clock::now_ms(),
        };
        let saved = self
            .inner
            .store
            .save_ticket(stored)
            .await
            .map_err(|e| e.to_string())?;
        if !saved {
            tracing::info!(component = %component, "a ticket older than the stored one: kept the stored one");
            return Ok(());
        }
        tracing::info!(component = %component, "component_verify_ticket saved");
        if let Err(error) = self.token(component).await {
            tracing::warn!(component = %component, "{error}");
        }
        // The gauges once per push, not once per refresh: a round of refreshes reports
        // at its end too.
        self.report().await;
        Ok(())
    }
}
