//! The operations endpoints: `/healthz` (the process answers), `/readyz` (pushes can be
//! stored and delivered) and `/metrics` (Prometheus). Served on `admin_listen` when it is
//! set, else on `listen`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use crate::observe;

/// How much new data `/readyz` writes once a push was refused for lack of space: as much as
/// the largest push accepted by default (`body_limit_bytes`), so "ready" again means that
/// pushes fit again.
const GROWTH_CHECK_BYTES: usize = 64 * 1024;

/// What readiness knows from the push path itself.
#[derive(Debug, Default)]
pub(super) struct Readiness {
    /// The last push commit failed because the disk (or store) was full.
    space_refused: AtomicBool,
}

impl Readiness {
    /// A push was stored: the write path works.
    pub(super) fn push_stored(&self) {
        if self.space_refused.load(Ordering::Relaxed) {
            self.space_refused.store(false, Ordering::Relaxed);
            tracing::info!("pushes are stored again");
        }
    }

    /// A push could not be stored for lack of space.
    pub(super) fn push_refused_for_space(&self) {
        self.space_refused.store(true, Ordering::Relaxed);
    }
}

/// The operations routes.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// 200 when the store accepts a write and the dispatcher runs; 503 with the reason otherwise.
/// After a push was refused for lack of space, the check is a write that needs new space,
/// as pushes do, and stays 503 until one succeeds (or a push is stored again).
async fn readyz(State(state): State<AppState>) -> Response {
    if !state.dispatcher_alive.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the dispatcher is not running",
        )
            .into_response();
    }
    let refused = state.readiness.space_refused.load(Ordering::Relaxed);
    let grow = if refused { GROWTH_CHECK_BYTES } else { 0 };
    match tokio::time::timeout(Duration::from_secs(2), state.store.check_writable(grow)).await {
        Ok(Ok(())) => {
            if refused {
                state.readiness.push_stored();
            }
            (StatusCode::OK, "ready").into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the store cannot write");
            let after = if refused {
                "a push could not be stored for lack of space, and a 64 KiB test write fails too: "
            } else {
                ""
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {after}{e}"),
            )
                .into_response()
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
    if let Ok(stats) = state.store.stats().await {
        state.metrics.record(|| {
            metrics::gauge!(observe::PENDING).set(stats.pending as f64);
            metrics::gauge!(observe::DEAD).set(stats.dead as f64);
            metrics::gauge!(observe::QUARANTINED).set(stats.quarantined as f64);
            metrics::gauge!(observe::DISCARDED).set(stats.discarded as f64);
        });
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
