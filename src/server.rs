//! The HTTP edge: routes, the URL check, the push endpoint, the one place errors become
//! responses, and serving with graceful shutdown.
//!
//! The push route authenticates and decrypts ([`crate::push`]), parses ([`Event::parse`]),
//! stores durably ([`crate::store`]) and only then answers `success`; delivery to the handler
//! happens in the dispatcher ([`crate::dispatch`]), never in the request.

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

use tokio::sync::watch;

use crate::app::App;
use crate::clock;
use crate::config::Config;
use crate::dispatch::{self, Dispatcher, Wake};
use crate::event::Event;
use crate::handler::BoxHandler;
use crate::push::{self, PushError, PushQuery};
use crate::store::{QuarantinedPush, Recorded, Store, StoreError};

/// Requests still running after this long are answered 503; the platform gives up at 5 s.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);

/// What every request sees.
#[derive(Clone)]
pub struct AppState {
    app: Arc<App>,
    store: Arc<dyn Store>,
    wake: Wake,
    max_clock_skew: Option<Duration>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("app", &self.app.name)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State for one app whose events go to `store`; `wake` signals the dispatcher.
    pub fn new(
        app: App,
        store: Arc<dyn Store>,
        wake: Wake,
        max_clock_skew: Option<Duration>,
    ) -> Self {
        Self {
            app: Arc::new(app),
            store,
            wake,
            max_clock_skew,
        }
    }
}

/// Why a request was not answered `success`; the one place errors become responses.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Authentication or decryption refused the push.
    #[error(transparent)]
    Push(#[from] PushError),
    /// The store could not write; the platform will retry.
    #[error(transparent)]
    Store(#[from] StoreError),
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
                // The push route quarantines these; kept so the mapping is total.
                tracing::error!(error = %e, "a correctly signed push cannot be decrypted");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot decrypt with this configuration".to_owned(),
                )
            }
            ApiError::Store(e) => {
                tracing::error!(error = %e, "cannot store the push; answering 503 so the platform retries");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cannot store the event now, retry later".to_owned(),
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
    accept(&state, query, body, None).await
}

async fn push_authorizer(
    State(state): State<AppState>,
    Path(authorizer_appid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<&'static str, ApiError> {
    accept(&state, query, body, Some(&authorizer_appid)).await
}

/// Authenticate → decrypt → check the timestamp → parse → store; `success` only once the
/// event (or the quarantined push) is on disk.
async fn accept(
    state: &AppState,
    query: HashMap<String, String>,
    body: Bytes,
    authorizer_appid: Option<&str>,
) -> Result<&'static str, ApiError> {
    let query = PushQuery::from_map(query);
    let message = match push::receive(&state.app, &query, &body) {
        Ok(message) => message,
        Err(PushError::Undecryptable(e)) => {
            let reason = format!(
                "{e}; check app.encoding_aes_key and app.appid, then run `wxpush events retry-quarantined`"
            );
            quarantine(state, query, body, authorizer_appid, reason).await?;
            return Ok("success");
        }
        Err(e) => return Err(e.into()),
    };
    let now_secs = clock::now_ms() / 1000;
    if let Err(reason) = push::check_timestamp(&message.timestamp, now_secs, state.max_clock_skew) {
        quarantine(state, query, body, authorizer_appid, reason).await?;
        return Ok("success");
    }
    let event = Event::parse(&message.text, &state.app.name, authorizer_appid);
    let (id, name) = (event.id.clone(), event.name().to_owned());
    match state.store.record(event).await? {
        Recorded::New => {
            tracing::debug!(%id, event = %name, mode = ?message.mode, "stored");
            state.wake.notify();
        }
        Recorded::Duplicate => {
            tracing::info!(%id, event = %name, "duplicate of a stored event (a platform retry); answered without storing again");
        }
    }
    Ok("success")
}

/// Keeps a genuine push that cannot be processed now, with the reason, and says so loudly.
async fn quarantine(
    state: &AppState,
    query: PushQuery,
    body: Bytes,
    authorizer_appid: Option<&str>,
    reason: String,
) -> Result<(), ApiError> {
    let push = QuarantinedPush::new(
        &state.app.name,
        authorizer_appid,
        query,
        body.to_vec(),
        reason,
    );
    tracing::error!(id = %push.id, reason = %push.reason, "push quarantined: signed correctly but not processable with this configuration");
    state.store.quarantine(push).await?;
    Ok(())
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
    let (stop_tx, stop_rx) = watch::channel(false);
    let dispatcher = Dispatcher::new(Arc::clone(&store), handler, config.delivery, wake.clone());
    let dispatcher = tokio::spawn(dispatcher.run(stop_rx.clone()));
    let pruner = tokio::spawn(dispatch::prune_periodically(
        Arc::clone(&store),
        config.retention,
        stop_rx,
    ));
    let state = AppState::new(config.app.clone(), store, wake, config.max_clock_skew);
    let result = serve(listener, router(state, config.body_limit_bytes), shutdown).await;
    let _ = stop_tx.send(true);
    if dispatcher.await.is_err() || pruner.await.is_err() {
        tracing::error!("a background task stopped abnormally");
    }
    result
}
