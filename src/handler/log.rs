//! The `log` handler: one `info` line per event with its key fields.

use super::{BoxError, Handler};
use crate::event::{Event, EventKind};

/// Logs one `info` line per event with its key fields; never fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogHandler;

impl Handler for LogHandler {
    async fn handle(&self, event: &Event) -> Result<(), BoxError> {
        match &event.kind {
            EventKind::CategoryAudit(audit) => tracing::info!(
                app = %event.app,
                authorizer_appid = event.authorizer_appid.as_deref().unwrap_or("-"),
                to_user_name = event.to_user_name.as_deref().unwrap_or("-"),
                create_time = event.create_time.unwrap_or_default(),
                first = %audit.first.as_ref().map(ToString::to_string).unwrap_or_default(),
                second = %audit.second.as_ref().map(ToString::to_string).unwrap_or_default(),
                result = audit.result.as_str(),
                reason = audit.reason.as_str(),
                "category audit"
            ),
            EventKind::ComponentVerifyTicket { .. } => tracing::info!(
                app = %event.app,
                create_time = event.create_time.unwrap_or_default(),
                "component verify ticket received"
            ),
            EventKind::Other => tracing::info!(
                app = %event.app,
                authorizer_appid = event.authorizer_appid.as_deref().unwrap_or("-"),
                to_user_name = event.to_user_name.as_deref().unwrap_or("-"),
                create_time = event.create_time.unwrap_or_default(),
                event = event.name(),
                fields = event.fields.len(),
                "event"
            ),
        }
        Ok(())
    }
}
