//! Re-processing quarantined pushes with the current configuration.
//!
//! A push is quarantined when its signature is genuine but it could not be turned into an
//! event (a wrong key or app id, a bad frame, a timestamp outside the replay window). After
//! the operator fixes the configuration, [`retry_all`] runs each one through the request
//! path's steps again; those that now decrypt become ordinary pending events (deduplicated
//! like any push) and leave the quarantine.

use crate::dispatch::Routing;
use crate::event::Event;
use crate::push;
use crate::push::app::App;
use crate::store::{Recorded, Store, StoreError};

/// What [`retry_all`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryReport {
    /// Became new pending events.
    pub released: usize,
    /// Turned out to be duplicates of stored events (removed from quarantine).
    pub duplicates: usize,
    /// Still not processable: `(quarantine id, reason)`.
    pub still_failing: Vec<(String, String)>,
}

/// Re-processes every quarantined push for the apps in `apps` (matched by name), storing
/// the events with a delivery per route of `routing` that takes them. The
/// timestamp window is not applied: re-processing is the operator's deliberate choice.
///
/// # Errors
/// [`StoreError`] when the store cannot be read or written.
pub async fn retry_all(
    store: &dyn Store,
    apps: &[App],
    routing: &Routing,
) -> Result<RetryReport, StoreError> {
    let mut report = RetryReport::default();
    for push in store.quarantined(usize::MAX).await? {
        let Some(app) = apps.iter().find(|a| a.name == push.app) else {
            let reason = format!("no configured app is named '{}'", push.app);
            store.requarantine(push.id.clone(), reason.clone()).await?;
            report.still_failing.push((push.id, reason));
            continue;
        };
        match push::receive(app, &push.query, &push.body) {
            Ok(message) => {
                let event =
                    Event::parse(&message.text, &app.name, push.authorizer_appid.as_deref());
                let routes = routing.routes_for(&event);
                match store.release_quarantined(push.id, event, routes).await? {
                    Recorded::New => report.released += 1,
                    Recorded::Duplicate | Recorded::Replay => report.duplicates += 1,
                }
            }
            Err(e) => {
                let reason = e.to_string();
                store.requarantine(push.id.clone(), reason.clone()).await?;
                report.still_failing.push((push.id, reason));
            }
        }
    }
    Ok(report)
}
