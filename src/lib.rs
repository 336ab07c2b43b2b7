//! wxpush receives the platform's message pushes for WeChat Mini Programs and third-party
//! platforms, and hands each event to a handler.
//!
//! # The pipeline
//! A push arrives over HTTP ([`server`]), which learns the app and authorizer from the path.
//! The request path ([`push`]) decides the mode once, checks the signature with the app's
//! token ([`push::signature`]) and, when encrypted, decrypts the `Encrypt` field and checks
//! the app id ([`push::cipher`]). The message is read leniently into an [`Event`]
//! ([`event::fields`], [`event`]) that is never refused for its shape, stored durably with a
//! delivery per route that takes it, deduplicated and checked for replays ([`store`]), and
//! only then answered `success`. The dispatcher ([`dispatch`]) hands each delivery to its
//! route's [`Handler`] ([`handler`]), concurrently but in order per ordering key, retrying
//! along a schedule until it succeeds. Genuine pushes that cannot be decrypted are kept aside
//! ([`quarantine`]) until the configuration is fixed. Ticket and authorization pushes also
//! feed the token service ([`tokens`]), which keeps the platform's tokens for wxpush's own
//! calls ([`platform`]) and for the integrator's services. [`service`] puts it together.
//!
//! # Layout
//! In data-flow order, bottom up: leaves, then each stage, then what composes them. A
//! module imports only from the rows above it in this table's order of dependence (leaves
//! first); none imports its way back up.
//!
//! | module | holds |
//! |---|---|
//! | [`clock`], [`secret`], [`escape`], [`observe`] | leaves: unix time and RFC 3339; secrets that never print; untrusted text made safe for logs and terminals; metric names and the Prometheus recorder |
//! | [`event`] | the typed event (`mod.rs`), its id (`id.rs`) and JSON shape (`json.rs`); [`event::fields`]: the lenient XML/JSON reader (a fast path, and `lenient.rs` for the rest) |
//! | [`push`] | the request path without HTTP: the mode decision, signature checks, decryption, the request key for replay detection; [`push::app`] (one receiver identity), [`push::signature`], [`push::cipher`] |
//! | [`platform`] | the platform's HTTP APIs: one client ([`platform::client`]: errcodes with their fixes, -1 retried, no token in errors), the token APIs ([`platform::tokens`]), the category group ([`platform::category`]), temporary media ([`platform::media`]) |
//! | [`handler`] | the `Handler` trait, its erased form, and the `log`, `webhook` and `command` handlers with their settings |
//! | [`store`] | the durable inbox, a row per event and route: interfaces by caller ([`store::Inbox`], [`store::Admin`], [`store::Submissions`]: submissions, the settable cache, media; [`store::Credentials`]), records; `sqlite/` (one instance: writer, rows, schema and migrations, inbox, admin) and `postgres/` (replicas: batch writer, inserts under per-key locks, leases, migrations, rows, inbox, admin) |
//! | [`dispatch`] | delivery: routes and their filters (`routes.rs`), the retry schedule (`policy.rs`), taking due deliveries (`take.rs`), one attempt per task (`attempt.rs`), a breaker per route (`breaker.rs`), alerts (`alerts.rs`), outcomes kept while the store refuses them (`outcomes.rs`), pruning (`prune.rs`) |
//! | [`categories`] | the category workflow: the settable list (cached), checks before any call (`check.rs`), media, submitting, and [`categories::reconcile`]: no missed review result |
//! | [`tokens`] | the central token service: tickets and authorizations from pushes (the built-in route `tokens`), single-flight refresh of component, authorizer and Mini Program tokens, their state and the proactive refresh, AES-256-GCM at rest ([`tokens::sealed`]) |
//! | [`quarantine`] | re-processing quarantined pushes |
//! | [`tools`] | beside the request path: [`tools::simulate`] (pushes built as the platform builds them), [`tools::diagnose`] (step-by-step checks of a captured push) |
//! | [`config`] | embedded defaults, layering (`layers.rs`), the raw file format (`raw.rs`), validation by section (`validate.rs`; delivery, routes and alerts in `delivery.rs`), the masked view (`masked.rs`) |
//! | [`telemetry`] | tracing setup, with escaped text fields |
//! | [`server`] | the HTTP edge: app and authorizer from the path, the URL-check and push routes, error → HTTP mapping, health and metrics, the operator API behind a bearer token (`admin/`: `/v1/tokens`, `/v1/authorizers/…/categories`, `/v1/submissions`), the console (`console/`: sign-in, pages, actions), the accept loop with its connection limits |
//! | [`service`] | the composition root: opens the store, runs server, dispatcher, pruner, token refresher and category reconciler until shutdown |
//!
//! The binary (`src/main.rs`, `src/cli/`) is a thin layer of subcommands over this library.
//!
//! # A server with your own handler
//! The README's "Writing a handler" is the example: it is compiled with the doctests, and
//! `examples/custom_handler.rs` is a complete program.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod categories;
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
pub mod tokens;
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
