//! How the managed credentials stand — for `wxpush tokens list`, the metrics and the
//! console, never with a value — and the proactive refresh: every managed token is
//! refreshed when its refresh time comes, before it expires.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use super::{AppKind, Kind, TokenService};
use crate::clock;
use crate::observe;

/// How often the proactive refresh looks at every token (with jitter).
const LOOK_EVERY: Duration = Duration::from_secs(30);

/// One managed app id's state.
#[derive(Debug, Clone, Serialize)]
pub struct ManagedStatus {
    /// The app id.
    pub appid: String,
    /// Its kind.
    pub kind: Kind,
    /// The component app id, for an authorizer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component_appid: Option<String>,
    /// When the token expires (RFC 3339), if there is one.
    pub expires_at: Option<String>,
    /// Seconds until then (negative: expired).
    #[serde(skip)]
    pub expires_in_secs: Option<i64>,
    /// Seconds since the token was fetched.
    pub age_secs: Option<i64>,
    /// Why the last refresh failed, until one succeeds.
    pub last_error: Option<String>,
    /// For an authorizer: `authorized` or `unauthorized`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// A component's latest ticket.
#[derive(Debug, Clone, Serialize)]
pub struct TicketStatus {
    /// The component app id.
    pub component_appid: String,
    /// When it was pushed (RFC 3339), if one was.
    pub pushed_at: Option<String>,
    /// Seconds since.
    pub age_secs: Option<i64>,
}

impl TokenService {
    /// Every managed app id — configured apps, then authorizers — also those without a
    /// token yet.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn list(&self) -> Result<Vec<ManagedStatus>, crate::store::StoreError> {
        let store = &self.inner.store;
        let rows = store.tokens().await?;
        let now = clock::now_ms();
        let row_of = |appid: &str| rows.iter().find(|r| r.appid == appid);
        let status = |appid: &str, kind: Kind, component: Option<String>, state: Option<String>| {
            let row = row_of(appid);
            let expires = row.and_then(|r| r.access_token.as_ref().and(r.expires_at));
            ManagedStatus {
                appid: appid.to_owned(),
                kind,
                component_appid: component,
                expires_at: expires.map(clock::rfc3339),
                expires_in_secs: expires.map(|e| (e - now) / 1000),
                age_secs: row.and_then(|r| r.refreshed_at).map(|at| (now - at) / 1000),
                last_error: row.and_then(|r| r.last_error.clone()),
                status: state,
            }
        };
        let mut out = Vec::new();
        for app in &self.config().apps {
            let kind = match app.kind {
                AppKind::Component => Kind::Component,
                AppKind::MiniProgram => Kind::MiniProgram,
            };
            out.push(status(&app.appid, kind, None, None));
        }
        for a in store.authorizers().await? {
            if self.config().app(&a.component_appid).is_some() {
                out.push(status(
                    &a.authorizer_appid,
                    Kind::Authorizer,
                    Some(a.component_appid.clone()),
                    Some(a.status.clone()),
                ));
            }
        }
        Ok(out)
    }

    /// The latest ticket of each managed third-party platform.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn tickets(&self) -> Result<Vec<TicketStatus>, crate::store::StoreError> {
        let now = clock::now_ms();
        let mut out = Vec::new();
        for app in self
            .config()
            .apps
            .iter()
            .filter(|a| a.kind == AppKind::Component)
        {
            let ticket = self.inner.store.ticket(app.appid.clone()).await?;
            let pushed = ticket.map(|t| t.create_time.saturating_mul(1000));
            out.push(TicketStatus {
                component_appid: app.appid.clone(),
                pushed_at: pushed.map(clock::rfc3339),
                age_secs: pushed.map(|p| (now - p) / 1000),
            });
        }
        Ok(out)
    }

    /// Refreshes every token that is due, and sets the gauges; until `stop` turns true.
    pub async fn refresh_periodically(self, mut stop: watch::Receiver<bool>) {
        loop {
            self.refresh_due().await;
            let jitter = Duration::from_millis(rand::random_range(0..5_000));
            tokio::select! {
                () = tokio::time::sleep(LOOK_EVERY + jitter) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// One round of the proactive refresh: each managed token whose refresh time has come
    /// is refreshed (by one replica; the others find it fresh). Authorizers that
    /// unauthorized are skipped.
    pub async fn refresh_due(&self) {
        let list = match self.list().await {
            Ok(list) => list,
            Err(error) => {
                tracing::warn!(%error, "cannot read the managed tokens");
                return;
            }
        };
        for managed in &list {
            if managed.status.as_deref().is_some_and(|s| s != "authorized") {
                continue;
            }
            if let Err(error) = self.fresh(&managed.appid, managed.kind, None).await {
                tracing::debug!(appid = %managed.appid, "{error}");
            }
        }
        self.report().await;
    }

    /// Sets the token and ticket gauges.
    pub(super) async fn report(&self) {
        let Some(metrics) = &self.inner.metrics else {
            return;
        };
        let (Ok(list), Ok(tickets)) = (self.list().await, self.tickets().await) else {
            return;
        };
        metrics.record(|| {
            for m in &list {
                if let Some(secs) = m.expires_in_secs {
                    metrics::gauge!(observe::TOKEN_EXPIRES_IN, "appid" => m.appid.clone(), "kind" => m.kind.as_str())
                        .set(secs as f64);
                }
            }
            for t in &tickets {
                if let Some(age) = t.age_secs {
                    metrics::gauge!(observe::TICKET_AGE, "component" => t.component_appid.clone())
                        .set(age as f64);
                }
            }
        });
    }
}
