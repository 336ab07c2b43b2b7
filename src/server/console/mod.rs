//! The operator console under `/console/` on `admin_listen`: server-rendered pages to see,
//! search and repair the inbox (overview, events, one event, quarantine, categories, bulk
//! replay and discard). Sign-in and sessions are in `auth.rs`; every page is escaped
//! (`html.rs`) and sent with a strict Content-Security-Policy; every state change is a POST
//! carrying the session's CSRF token.

mod actions;
mod auth;
mod events;
pub(crate) mod html;
mod pages;

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::categories::CategoryService;
use crate::dispatch::{RouteStates, Routing};
use crate::observe::Metrics;
use crate::push::app::App;
use crate::secret::Secret;
use crate::store::Store;
use crate::tokens::TokenService;

/// The console's settings: who may sign in, and the cookie's attributes.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Accepted at the login form: `admin.console_password`, else `admin.api_token`.
    pub secrets: Vec<Secret<String>>,
    /// Mark cookies `Secure` (the console is reached over HTTPS).
    pub secure_cookies: bool,
    /// How long a session lasts.
    pub session_ttl: Duration,
}

/// What the console's pages read and change.
pub struct ConsoleParts {
    /// The settings.
    pub config: ConsoleConfig,
    /// The inbox.
    pub store: Arc<dyn Store>,
    /// The configured apps (for retrying quarantined pushes).
    pub apps: Vec<App>,
    /// Which routes take which events.
    pub routing: Routing,
    /// Which routes are paused by their breaker.
    pub states: RouteStates,
    /// The token service, when tokens are managed.
    pub tokens: Option<TokenService>,
    /// The category workflow, when tokens are managed.
    pub categories: Option<CategoryService>,
    /// The metrics registry (failed logins are counted).
    pub metrics: Metrics,
}

/// The console's state. Cheap to clone.
#[derive(Clone)]
pub struct Console(Arc<Inner>);

#[doc(hidden)]
pub struct Inner {
    parts: ConsoleParts,
    sessions: auth::Sessions,
    failures: tokio::sync::Mutex<()>,
}

impl Deref for Console {
    type Target = ConsoleParts;

    fn deref(&self) -> &ConsoleParts {
        &self.0.parts
    }
}

impl Console {
    /// The console over `parts`.
    pub fn new(parts: ConsoleParts) -> Self {
        Self(Arc::new(Inner {
            parts,
            sessions: auth::Sessions::default(),
            failures: tokio::sync::Mutex::new(()),
        }))
    }

    pub(crate) fn sessions(&self) -> &auth::Sessions {
        &self.0.sessions
    }
}

/// A signed-in request's session.
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    pub(crate) id: String,
    pub(crate) csrf: String,
}

/// The console's routes: `console` when it is configured, else a page saying it is off.
pub(super) fn routes(console: Option<Console>) -> Router {
    let Some(console) = console else {
        let off = || async {
            (
                StatusCode::NOT_FOUND,
                Html(html::page(
                    "Console off",
                    None,
                    "<p>The console is off: set <code>admin.console_password</code> (WXPUSH_ADMIN_CONSOLE_PASSWORD) or <code>admin.api_token</code>.</p>",
                )),
            )
        };
        return Router::new()
            .route("/console", get(off))
            .route("/console/", get(off))
            .route("/console/{*rest}", get(off))
            .layer(middleware::from_fn(headers));
    };
    let signed_in = Router::new()
        .route("/console/", get(pages::overview))
        .route("/console/events", get(events::events))
        .route("/console/events/{id}", get(events::event))
        .route("/console/events/{id}/{action}", post(actions::delivery))
        .route("/console/bulk", post(actions::bulk))
        .route("/console/quarantine", get(pages::quarantine))
        .route(
            "/console/quarantine/retry",
            post(actions::retry_quarantined),
        )
        .route(
            "/console/quarantine/{id}/discard",
            post(actions::discard_quarantined),
        )
        .route("/console/categories", get(pages::categories))
        .route("/console/logout", post(auth::logout))
        .layer(middleware::from_fn_with_state(
            console.clone(),
            auth::require_session,
        ));
    Router::new()
        .route(
            "/console",
            get(|| async { axum::response::Redirect::to("/console/") }),
        )
        .route("/console/login", get(auth::login_form).post(auth::login))
        .route("/console/static/console.css", get(stylesheet))
        .merge(signed_in)
        .layer(middleware::from_fn(headers))
        .with_state(console)
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        html::STYLESHEET,
    )
        .into_response()
}

/// The security headers of every console response.
async fn headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
