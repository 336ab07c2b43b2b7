//! wxpush receives the platform's message pushes for WeChat Mini Programs and third-party
//! platforms, and hands each event to a handler.
//!
//! # The pipeline
//! A push arrives over HTTP ([`server`]); its query and body are authenticated with the
//! app's token ([`signature`]) and, in safe mode, the `Encrypt` field of the envelope is
//! decrypted with the app's EncodingAESKey and checked for the app id ([`cipher`]), all
//! orchestrated by [`push`]. The message is read leniently into an [`Event`] ([`fields`],
//! [`event`]) that is never refused for its shape, stored durably and deduplicated
//! ([`store`]), and only then answered `success`. The dispatcher ([`dispatch`]) hands stored
//! events to the [`Handler`] ([`handler`]), retrying until it succeeds. Genuine pushes that
//! cannot be decrypted are kept aside ([`quarantine`]) until the configuration is fixed.
//!
//! # Layout
//! | module | holds |
//! |---|---|
//! | [`config`] | embedded defaults, file and env layering, validation |
//! | [`app`], [`secret`] | one receiver identity; secrets that never print |
//! | [`server`] | routes, error → HTTP mapping, serve and shutdown |
//! | [`push`] | mode detection, signature checks, decryption |
//! | [`signature`] | `sha1(sort(parts))` and constant-time compare |
//! | [`cipher`] | AES-256-CBC, PKCS#7/32, the frame, the key type |
//! | [`fields`] | lenient XML/JSON reading into text fields |
//! | [`event`] | typed events: common fields, category audit, generic |
//! | [`store`] | the durable inbox: trait; SQLite (one instance) and PostgreSQL (replicas, leases), both with group commit |
//! | [`dispatch`] | delivery with timeout, backoff and dead events; pruning |
//! | [`quarantine`] | re-processing quarantined pushes |
//! | [`clock`] | unix time and RFC 3339 |
//! | [`observe`] | metric names and the Prometheus recorder |
//! | [`simulate`] | pushes built as the platform builds them |
//! | [`diagnose`] | step-by-step checks of a captured push |
//! | [`category_api`] | the `addcategory` client |
//! | [`handler`] | the `Handler` trait, its erased form, the `log`, `webhook` and `command` handlers |
//! | [`telemetry`] | tracing setup |
//! | [`escape`] | untrusted text made safe for logs and terminals |
//!
//! # A server with your own handler
//! ```no_run
//! use wxpush::{BoxError, BoxHandler, Config, Event, Handler};
//!
//! struct MyHandler;
//!
//! impl Handler for MyHandler {
//!     async fn handle(&self, event: &Event) -> Result<(), BoxError> {
//!         if let Some(audit) = event.category_audit() {
//!             println!("category {:?}/{:?}: {}", audit.first, audit.second, audit.result.as_str());
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # async fn start() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::load(None)?;
//! let store = wxpush::store::open(&config).await?;
//! let listener = tokio::net::TcpListener::bind(config.listen).await?;
//! let shutdown = async { let _ = tokio::signal::ctrl_c().await; };
//! wxpush::server::run(&config, store, BoxHandler::new(MyHandler), listener, shutdown).await?;
//! # Ok(())
//! # }
//! ```
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod app;
pub mod category_api;
pub mod cipher;
pub mod clock;
pub mod config;
pub mod diagnose;
pub mod dispatch;
pub mod escape;
pub mod event;
pub mod fields;
pub mod handler;
pub mod observe;
pub mod push;
pub mod quarantine;
pub mod secret;
pub mod server;
pub mod signature;
pub mod simulate;
pub mod store;
pub mod telemetry;

pub use app::App;
pub use config::{Config, ConfigError};
pub use event::{AuditResult, CategoryAudit, Event, EventKind, Scalar};
pub use handler::{BoxError, BoxHandler, CommandHandler, Handler, LogHandler, WebhookHandler};
pub use secret::Secret;
