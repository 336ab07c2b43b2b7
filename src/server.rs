//! The HTTP edge: routes, the URL check, the push endpoint, the one place errors become
//! responses, and serving with graceful shutdown.
//!
//! The push route authenticates and decrypts ([`crate::push`]), parses ([`Event::parse`]),
//! enqueues ([`crate::dispatch`]) and answers `success`; it never waits on the handler.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::app::App;
use crate::config::Config;
use crate::dispatch::{self, Queue, QueueFull};
use crate::event::Event;
use crate::handler::BoxHandler;
use crate::push::{self, PushError, PushQuery};

/// Requests still running after this long are answered 503; the platform gives up at 5 s.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);

/// What every request sees.
#[derive(Debug, Clone)]
pub struct AppState {
    app: Arc<App>,
    queue: Queue,
}

impl AppState {
    /// State for one app whose events go to `queue`.
    pub fn new(app: App, queue: Queue) -> Self {
        Self {
            app: Arc::new(app),
            queue,
        }
    }
}

/// Why a request was not answered `success`; the one place errors become responses.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Authentication or decryption refused the push.
    #[error(transparent)]
    Push(#[from] PushError),
    /// The queue had no room; the platform will retry.
    #[error(transparent)]
    Busy(#[from] QueueFull),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, text) = match &self {
            ApiError::Push(
                e @ (PushError::MissingParam(_) | PushError::EmptyBody | PushError::NoEncrypt),
            ) => {
                tracing::warn!(error = %e, "bad request");
                (StatusCode::BAD_REQUEST, format!("bad request: {e}"))
            }
            ApiError::Push(e @ PushError::BadSignature { .. }) => {
                tracing::warn!(error = %e, "signature check failed");
                (StatusCode::UNAUTHORIZED, "signature mismatch".to_owned())
            }
            ApiError::Push(PushError::Undecryptable(e)) => {
                tracing::error!(
                    error = %e,
                    "a correctly signed push cannot be decrypted with this configuration; check app.encoding_aes_key and app.appid (the platform will retry)"
                );
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot decrypt with this configuration".to_owned(),
                )
            }
            ApiError::Busy(e) => {
                tracing::error!(error = %e, "cannot accept the event now (the platform will retry)");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy, retry later".to_owned(),
                )
            }
        };
        (status, text).into_response()
    }
}

/// Builds the router: `GET` (URL check) and `POST` (push) on `/wechat` and on
/// `/wechat/{authorizer_appid}/callback`.
pub fn router(state: AppState, body_limit_bytes: usize) -> Router {
    Router::new()
        .route("/wechat", get(url_check).post(push_default))
        .route(
            "/wechat/{authorizer_appid}/callback",
            get(url_check).post(push_authorizer),
        )
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(CatchPanicLayer::new())
        .layer(
            // The query holds signatures and nonces: spans record the path only.
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
            }),
        )
}

async fn url_check(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<String, ApiError> {
    let query = PushQuery::from_map(query);
    let echostr = push::url_check(&state.app, &query)?;
    tracing::info!(app = %state.app.name, "URL check passed");
    Ok(echostr.to_owned())
}

async fn push_default(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<&'static str, ApiError> {
    accept(&state, query, &body, None)
}

async fn push_authorizer(
    State(state): State<AppState>,
    Path(authorizer_appid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<&'static str, ApiError> {
    accept(&state, query, &body, Some(&authorizer_appid))
}

fn accept(
    state: &AppState,
    query: HashMap<String, String>,
    body: &[u8],
    authorizer_appid: Option<&str>,
) -> Result<&'static str, ApiError> {
    let query = PushQuery::from_map(query);
    let message = push::receive(&state.app, &query, body)?;
    let event = Event::parse(&message.text, &state.app.name, authorizer_appid);
    tracing::debug!(event = event.name(), mode = ?message.mode, "push accepted");
    state.queue.try_enqueue(event)?;
    Ok("success")
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

/// Runs the whole service for `config` with `handler` on `listener`: starts the dispatcher,
/// serves until `shutdown`, then drains the queue before returning.
///
/// # Errors
/// I/O errors from the listener.
pub async fn run(
    config: &Config,
    handler: BoxHandler,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (queue, worker) = dispatch::spawn(handler, config.queue_capacity);
    let state = AppState::new(config.app.clone(), queue);
    let result = serve(listener, router(state, config.body_limit_bytes), shutdown).await;
    // The router (and with it every queue sender) is gone: the worker drains and stops.
    if worker.await.is_err() {
        tracing::error!("the dispatcher stopped abnormally");
    }
    result
}
