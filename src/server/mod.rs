//! The HTTP edge: routes, health and metrics endpoints, serving with connection limits and
//! graceful shutdown.
//!
//! The push route (`routes.rs`) learns its app and authorizer from the path (`target.rs`),
//! authenticates and decrypts ([`crate::push`]), parses ([`crate::Event::parse`]), stores
//! durably ([`crate::store`]) and only then answers `success`; delivery to the handler
//! happens in the dispatcher ([`crate::dispatch`]), never in the request. Errors become
//! responses in one place ([`ApiError`]). Connections are accepted within the limits of
//! `connections.rs`; the operations endpoints (`health.rs`) are served on `admin_listen`
//! when it is set.

mod admin;
mod connections;
pub mod console;
mod error;
mod health;
mod routes;
mod target;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use admin::OperatorApi;
pub use connections::HttpLimits;
pub use error::ApiError;
use error::Failure;
use health::Readiness;

use crate::dispatch::{Alerts, Routing, Wake};
use crate::observe::{self, Metrics};
use crate::push::app::App;
use crate::store::Store;

/// Requests still running after this long are answered 503; the platform gives up at 5 s.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);

/// What every request sees.
#[derive(Clone)]
pub struct AppState {
    /// Every app; the first is the default one.
    apps: Arc<Vec<Arc<App>>>,
    store: Arc<dyn Store>,
    wake: Wake,
    max_clock_skew: Option<Duration>,
    dispatcher_alive: Arc<AtomicBool>,
    readiness: Arc<Readiness>,
    metrics: Metrics,
    /// Which routes take which events: each new event is stored with a delivery per route.
    routing: Arc<Routing>,
    /// Where a quarantined push is reported.
    alerts: Alerts,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field(
                "apps",
                &self.apps.iter().map(|a| &a.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State for receiving with `default_app` (at `/wechat`) and `more_apps` (at
    /// `/wechat/{name}`), storing into `store`; `wake` signals the dispatcher,
    /// `dispatcher_alive` tells readiness whether it runs, and pushes further than
    /// `max_clock_skew` from the clock are quarantined; `metrics` is this server's registry.
    pub fn new(
        default_app: App,
        more_apps: Vec<App>,
        store: Arc<dyn Store>,
        wake: Wake,
        dispatcher_alive: Arc<AtomicBool>,
        max_clock_skew: Option<Duration>,
        metrics: Metrics,
    ) -> Self {
        let apps = std::iter::once(default_app).chain(more_apps).map(Arc::new);
        Self {
            apps: Arc::new(apps.collect()),
            store,
            wake,
            max_clock_skew,
            dispatcher_alive,
            readiness: Arc::default(),
            metrics,
            routing: Arc::new(Routing::default()),
            alerts: Alerts::off(),
        }
    }

    /// Raises an alert for each push quarantined.
    pub fn with_alerts(mut self, alerts: Alerts) -> Self {
        self.alerts = alerts;
        self
    }

    /// Stores new events with a delivery per route of `routing` that takes them (without
    /// it: one route, `default`, taking every event).
    pub fn with_routing(mut self, routing: Routing) -> Self {
        self.routing = Arc::new(routing);
        self
    }

    fn default_app(&self) -> &Arc<App> {
        // `new` puts the default app first, and there always is one.
        &self.apps[0]
    }

    fn app(&self, name: &str) -> Option<&Arc<App>> {
        self.apps.iter().find(|a| a.name == name)
    }
}

/// Builds the router for `listen`, and, unless `admin_separate`, the operations endpoints
/// `/healthz`, `/readyz` and `/metrics`. Each push path answers `GET` (URL check) and
/// `POST` (push):
///
/// | path | app |
/// |---|---|
/// | `/wechat` | the default app |
/// | `/wechat/{authorizer_appid}/callback` | the default app, for a third-party authorizer |
/// | `/wechat/{name}` | the app named `name` |
/// | `/wechat/{name}/{authorizer_appid}/callback` | the app named `name`, for an authorizer |
///
/// An authorizer segment must be an app id (`wx` and 16 letters or digits), else 404.
pub fn router(state: AppState, body_limit_bytes: usize, admin_separate: bool) -> Router {
    let wechat = Router::new()
        .route("/wechat", get(routes::url_check).post(routes::push))
        .route("/wechat/{seg}", get(routes::url_check).post(routes::push))
        .route(
            "/wechat/{seg}/callback",
            get(routes::url_check).post(routes::push),
        )
        .route(
            "/wechat/{seg}/{authorizer}/callback",
            get(routes::url_check).post(routes::push),
        )
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            observe_request,
        ))
        .layer(middleware::from_fn_with_state(
            (body_limit_bytes, state.metrics.clone()),
            refuse_announced_oversize,
        ));
    let app = if admin_separate {
        wechat
    } else {
        wechat.merge(health::routes())
    };
    layered(app.with_state(state), body_limit_bytes, REQUEST_TIMEOUT)
}

/// The router for `admin_listen`: the operations endpoints, the operator API (`/v1/`) when
/// it is configured, and the console (`/console/`; a page saying it is off without one).
pub fn admin_router(
    state: AppState,
    api: Option<OperatorApi>,
    console: Option<console::Console>,
) -> Router {
    let mut router = health::routes().with_state(state);
    if let Some(api) = api {
        router = router.merge(admin::routes(api));
    }
    router = router.merge(console::routes(console));
    // A token request may wait for a refresh (the platform answers within 15 s).
    layered(router, 64 * 1024, Duration::from_secs(30))
}

fn layered(router: Router, body_limit_bytes: usize, timeout: Duration) -> Router {
    router
        .layer(DefaultBodyLimit::max(body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(CatchPanicLayer::new())
        .layer(
            // The query holds signatures and nonces: spans record the path only. At debug
            // level: creating a span for every push costs more than the push's decryption,
            // and failures are logged with their method and path anyway.
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
            }),
        )
}

/// Answers 413 at once when `Content-Length` announces more than the limit, without waiting
/// for a body that is not going to be read, and closes the connection.
async fn refuse_announced_oversize(
    State((limit, metrics)): State<(usize, Metrics)>,
    req: Request,
    next: Next,
) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match announced {
        Some(announced) if announced > limit as u64 => {
            let mut response = ApiError::TooLarge { announced, limit }.respond("-", &metrics);
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            let path = req.uri().path().to_owned();
            if let Some(Failure { what, detail, .. }) = response.extensions().get::<Failure>() {
                tracing::warn!(method = %req.method(), %path, error = %detail, "{what}");
            }
            response
        }
        _ => next.run(req).await,
    }
}

/// Times each push and URL check, and logs a failed one with its method and path (the
/// query holds signatures and nonces, so it is never logged).
async fn observe_request(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let kind = if req.method() == axum::http::Method::GET {
        "url_check"
    } else {
        "push"
    };
    let method = req.method().clone();
    // The path alone: a failed request is logged after the handler has consumed `req`.
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    metrics.record(|| {
        metrics::histogram!(observe::REQUEST_DURATION, "kind" => kind)
            .record(started.elapsed().as_secs_f64());
    });
    if let Some(failure) = response.extensions().get::<Failure>() {
        let Failure {
            is_error,
            what,
            detail,
        } = failure;
        if *is_error {
            tracing::error!(%method, %path, error = %detail, "{what}");
        } else {
            tracing::warn!(%method, %path, error = %detail, "{what}");
        }
    }
    response
}

/// The sockets a server answers on: `public` for the platform, `admin` for the operations
/// endpoints (when `None` and the configuration sets `admin_listen`, [`crate::service::run`] binds it).
#[derive(Debug)]
pub struct Listeners {
    /// The address the platform pushes to (`listen`).
    pub public: TcpListener,
    /// The address of `/healthz`, `/readyz` and `/metrics` (`admin_listen`).
    pub admin: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    fn from(public: TcpListener) -> Self {
        Self {
            public,
            admin: None,
        }
    }
}

/// Serves `router` on an already-bound `listener` within `limits` until `shutdown`
/// completes, then finishes in-flight requests.
///
/// # Errors
/// I/O errors from the listener.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    connections::serve(listener, router, limits, shutdown).await
}
