//! The handler: what integrators implement to receive events, its type-erased form, and the
//! ready handlers the binary can run without Rust code: [`LogHandler`], [`WebhookHandler`]
//! (POST as JSON) and [`CommandHandler`] (run a program).

mod command;
mod log;
pub mod webhook;

pub use command::{CommandConfig, CommandHandler};
pub use log::LogHandler;
pub use webhook::{WebhookConfig, WebhookHandler};

use std::sync::Arc;

pub use futures_util::future::BoxFuture;

use crate::event::Event;

/// The error a handler returns: anything, so handler code can use `?` freely.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
    /// Handles one event. `Ok` marks it delivered; `Err` (or running past the attempt
    /// timeout) schedules a retry. The same event can arrive again (after a crash, or a
    /// replay): use `event.id` as an idempotency key.
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

/// The built-in handlers the binary can run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerKind {
    /// One log line per event.
    Log,
    /// POST each event as JSON to a URL.
    Webhook(WebhookConfig),
    /// Run a program per event, the event JSON on its stdin.
    Command(CommandConfig),
}

impl HandlerKind {
    /// The name used in configuration.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Webhook(_) => "webhook",
            Self::Command(_) => "command",
        }
    }
}

/// Builds the built-in handler the configuration names.
///
/// # Errors
/// When the webhook's HTTP client cannot be built.
pub fn from_config(kind: &HandlerKind) -> Result<BoxHandler, BoxError> {
    Ok(match kind {
        HandlerKind::Log => BoxHandler::new(LogHandler),
        HandlerKind::Webhook(config) => BoxHandler::new(WebhookHandler::new(config)?),
        HandlerKind::Command(config) => BoxHandler::new(CommandHandler::new(config)),
    })
}
