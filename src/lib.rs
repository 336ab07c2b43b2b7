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
//! | [`server`] | the HTTP edge: app and authorizer from the path, the URL-check and push routes, error → HTTP mapping, health and metrics, the accept loop with its connection limits, serve and shutdown |
//! | [`push`] | the mode decision, signature checks, decryption, the request key for replay detection |
//! | [`signature`] | `sha1(sort(parts))` and constant-time compare |
//! | [`cipher`] | AES-256-CBC, PKCS#7/32, the frame, the key type |
//! | [`fields`] | lenient XML/JSON reading into text fields |
//! | [`event`] | typed events: common fields, category audit, generic |
//! | [`store`] | the durable inbox: trait; SQLite (one instance, numbered migrations) and PostgreSQL (replicas, leases, migrations), both with group commit and replay detection |
//! | [`dispatch`] | delivery with timeout, backoff and dead events; outcomes kept while the store refuses them; pruning |
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
//! The README's "Writing a handler" is the example: it is compiled with the doctests, and
//! `examples/custom_handler.rs` is a complete program.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod clock;
pub mod config;
pub mod dispatch;
pub mod escape;
pub mod event;
pub mod handler;
mod hex;
pub mod observe;
pub mod platform;
pub mod push;
pub mod quarantine;
pub mod secret;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod tools;

pub use config::{Config, ConfigError};
pub use event::{AuditResult, CategoryAudit, Event, EventKind, Scalar};
pub use handler::{BoxError, BoxHandler, CommandHandler, Handler, LogHandler, WebhookHandler};
pub use push::app::App;
pub use secret::Secret;

/// The README's code, compiled with the doctests so that its handler example cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
