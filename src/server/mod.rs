//! The HTTP edge: routes, health and metrics endpoints, serving with graceful shutdown.
//!
//! The push routes (`routes.rs`) authenticate and decrypt ([`crate::push`]), parse
//! ([`crate::Event::parse`]), store durably ([`crate::store`]) and only then answer `success`;
//! delivery to the handler happens in the dispatcher ([`crate::dispatch`]), never in the
//! request. Errors become responses in one place ([`ApiError`]).

mod error;
mod routes;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
use error::Failure;

use crate::app::App;
use crate::config::Config;
use crate::dispatch::{self, Dispatcher, Wake};
use crate::handler::BoxHandler;
use crate::observe;
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
    metrics: Option<PrometheusHandle>,
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
    /// State for `config`'s apps, storing into `store`; `wake` signals the dispatcher and
    /// `dispatcher_alive` tells readiness whether it runs.
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        wake: Wake,
        dispatcher_alive: Arc<AtomicBool>,
    ) -> Self {
        Self {
            apps: Arc::new(config.apps().cloned().map(Arc::new).collect()),
            store,
            wake,
            max_clock_skew: config.max_clock_skew,
            dispatcher_alive,
            metrics: observe::install(),
        }
    }

    fn app(&self, name: &str) -> Result<&Arc<App>, ApiError> {
        self.apps
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| ApiError::UnknownApp(name.chars().take(64).collect()))
    }
}

/// Builds the router.
///
/// | path | app |
/// |---|---|
/// | `/wechat` | the default app |
/// | `/wechat/{authorizer_appid}/callback` | the default app, for a third-party authorizer |
/// | `/wechat/{name}` | the app named `name` |
/// | `/wechat/{name}/{authorizer_appid}/callback` | the app named `name`, for an authorizer |
///
/// Each answers `GET` (URL check) and `POST` (push). Also `/healthz`, `/readyz`, `/metrics`.
pub fn router(state: AppState, body_limit_bytes: usize) -> Router {
    let wechat = Router::new()
        .route(
            "/wechat",
            get(routes::url_check_default).post(routes::push_default),
        )
        .route(
            "/wechat/{seg}",
            get(routes::url_check_named).post(routes::push_named),
        )
        .route(
            "/wechat/{seg}/callback",
            get(routes::url_check_default_authorizer).post(routes::push_default_authorizer),
        )
        .route(
            "/wechat/{seg}/{authorizer}/callback",
            get(routes::url_check_named_authorizer).post(routes::push_named_authorizer),
        )
        .layer(middleware::from_fn(observe_request));
    Router::new()
        .merge(wechat)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
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

/// Times each push and URL check, and logs a failed one with its method and path (the
/// query holds signatures and nonces, so it is never logged).
async fn observe_request(req: Request, next: Next) -> Response {
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
    metrics::histogram!(observe::REQUEST_DURATION, "kind" => kind)
        .record(started.elapsed().as_secs_f64());
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

/// 200 when the store accepts a write and the dispatcher runs; 503 with the reason otherwise.
async fn readyz(State(state): State<AppState>) -> Response {
    if !state.dispatcher_alive.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the dispatcher is not running",
        )
            .into_response();
    }
    match tokio::time::timeout(Duration::from_secs(2), state.store.check_writable()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the store cannot write");
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}")).into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the store did not answer within 2 s",
        )
            .into_response(),
    }
}

/// Prometheus text format; queue depths are read from the store at scrape time.
async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = &state.metrics else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are not enabled in this process",
        )
            .into_response();
    };
    if let Ok(stats) = state.store.stats().await {
        metrics::gauge!(observe::PENDING).set(stats.pending as f64);
        metrics::gauge!(observe::DEAD).set(stats.dead as f64);
        metrics::gauge!(observe::QUARANTINED).set(stats.quarantined as f64);
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// Clears the flag it holds when dropped.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Serves `router` on an already-bound `listener` until `shutdown` completes, then finishes
/// in-flight requests.
///
/// # Errors
/// I/O errors from the listener.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Runs the whole service for `config` on `listener`, storing into `store` and delivering to
/// `handler`: starts the dispatcher and the pruner, serves until `shutdown`, finishes the
/// requests in flight, then stops the dispatcher (an attempt in flight gets a short grace).
///
/// # Errors
/// I/O errors from the listener.
pub async fn run(
    config: &Config,
    store: Arc<dyn Store>,
    handler: BoxHandler,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let wake = Wake::default();
    let alive = Arc::new(AtomicBool::new(true));
    let (stop_tx, stop_rx) = watch::channel(false);
    let dispatcher = Dispatcher::new(Arc::clone(&store), handler, config.delivery, wake.clone());
    let dispatcher_alive = Arc::clone(&alive);
    let dispatcher = tokio::spawn(async move {
        // Cleared however the dispatcher ends, a panic included: readiness reports it.
        let _alive = AliveGuard(dispatcher_alive);
        dispatcher.run(stop_rx).await;
    });
    let pruner = tokio::spawn(dispatch::prune_periodically(
        Arc::clone(&store),
        config.retention,
        stop_tx.subscribe(),
    ));
    let state = AppState::new(config, store, wake, alive);
    let result = serve(listener, router(state, config.body_limit_bytes), shutdown).await;
    let _ = stop_tx.send(true);
    if dispatcher.await.is_err() || pruner.await.is_err() {
        tracing::error!("a background task stopped abnormally");
    }
    result
}
