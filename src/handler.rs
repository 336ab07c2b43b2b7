//! The handler: what integrators implement to receive events, its type-erased form, and the
//! built-in `log` handler.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::event::{Event, EventKind};

/// The error a handler returns: anything, so handler code can use `?` freely.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed future, as the erased handler returns it.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Receives every accepted event, outside the request path.
///
/// Implement it with an `async fn`:
///
/// ```
/// use wxpush::{BoxError, Event, Handler};
///
/// struct Print;
///
/// impl Handler for Print {
///     async fn handle(&self, event: &Event) -> Result<(), BoxError> {
///         println!("{} from {:?}", event.name(), event.to_user_name);
///         Ok(())
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Handles one event. `Err` reports a failure; it is logged with the event.
    fn handle(&self, event: &Event) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// The object-safe twin of [`Handler`], implemented for every handler.
trait DynHandler: Send + Sync {
    fn handle_boxed<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), BoxError>>;
}

impl<H: Handler> DynHandler for H {
    fn handle_boxed<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(self.handle(event))
    }
}

/// Any [`Handler`], erased once so that the handler can be chosen at run time.
#[derive(Clone)]
pub struct BoxHandler(Arc<dyn DynHandler>);

impl BoxHandler {
    /// Erases `handler`.
    pub fn new(handler: impl Handler) -> Self {
        Self(Arc::new(handler))
    }

    /// Calls the handler.
    ///
    /// # Errors
    /// Whatever the handler returns.
    pub async fn handle(&self, event: &Event) -> Result<(), BoxError> {
        self.0.handle_boxed(event).await
    }
}

impl std::fmt::Debug for BoxHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoxHandler")
    }
}

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
                reason = %audit.reason,
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
