//! A server with a handler of your own: it keeps the latest review status of every
//! category (per app and authorizer) and logs when one changes.
//!
//! Run it like the binary, with the same configuration (`WXPUSH_*` env or defaults):
//!
//! ```sh
//! cargo run --example custom_handler
//! ```

use std::collections::HashMap;
use std::sync::Mutex;

use wxpush::{AuditResult, BoxError, BoxHandler, Config, Event, Handler};

/// Which category of which Mini Program: (app, authorizer or ToUserName, first, second).
type CategoryKey = (String, String, String, String);

/// Remembers each category's latest result and the event that set it.
#[derive(Default)]
struct CategoryBoard {
    latest: Mutex<HashMap<CategoryKey, (AuditResult, String)>>,
}

impl Handler for CategoryBoard {
    async fn handle(&self, event: &Event) -> Result<(), BoxError> {
        let Some(audit) = event.category_audit() else {
            tracing::info!(event = event.name(), id = %event.id, "not a category audit; ignored");
            return Ok(());
        };
        let who = event
            .authorizer_appid
            .clone()
            .or_else(|| event.to_user_name.clone())
            .unwrap_or_default();
        let text =
            |v: &Option<wxpush::Scalar>| v.as_ref().map(ToString::to_string).unwrap_or_default();
        let key = (
            event.app.clone(),
            who,
            text(&audit.first),
            text(&audit.second),
        );
        let mut latest = self.latest.lock().map_err(|_| "state lock poisoned")?;
        // Deliveries are at least once: the same event id again changes nothing.
        if latest.get(&key).is_some_and(|(_, id)| *id == event.id) {
            return Ok(());
        }
        let before = latest.insert(key.clone(), (audit.result, event.id.clone()));
        let (app, who, first, second) = key;
        match before {
            Some((old, _)) if old != audit.result => tracing::info!(
                %app, %who, %first, %second,
                from = old.as_str(), to = audit.result.as_str(), reason = %audit.reason,
                "category status changed"
            ),
            Some(_) => {
                tracing::info!(%app, %who, %first, %second, status = audit.result.as_str(), "category status confirmed")
            }
            None => {
                tracing::info!(%app, %who, %first, %second, status = audit.result.as_str(), reason = %audit.reason, "category status")
            }
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::load(None)?;
    // The default filter shows wxpush's lines; this example's own lines need their target.
    wxpush::telemetry::init_with(
        config.log_format,
        &format!("{},custom_handler=info", wxpush::telemetry::DEFAULT_FILTER),
    );
    let store = wxpush::service::open_store(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!("listening on {}", listener.local_addr()?);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    wxpush::service::run(
        &config,
        store,
        BoxHandler::new(CategoryBoard::default()),
        listener,
        shutdown,
    )
    .await?;
    Ok(())
}
