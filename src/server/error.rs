//! The one place errors become HTTP responses. Each failed response carries a
//! [`Failure`], which the request middleware logs with the request's method and path.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::observe::Metrics;
use crate::push::PushError;
use crate::store::StoreError;

/// Why a request was not answered `success`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Authentication or decryption refused the push.
    #[error(transparent)]
    Push(#[from] PushError),
    /// The store could not write; the platform will retry.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No app with this name is configured, or the authorizer segment is not an app id.
    #[error("{0}")]
    NotFound(String),
    /// The announced body is larger than `body_limit_bytes`.
    #[error("the body ({announced} bytes) is larger than body_limit_bytes ({limit})")]
    TooLarge {
        /// `Content-Length` as announced.
        announced: u64,
        /// The configured limit.
        limit: usize,
    },
}

/// Why a request failed, as the log line says it: attached to the failed response and
/// logged by the request middleware, which knows the method and path. Requests that
/// succeed create no log context at all, which keeps the push path cheap.
#[derive(Debug, Clone)]
pub(super) struct Failure {
    /// `error` for the service's own trouble, otherwise `warn`.
    pub(super) is_error: bool,
    /// What happened, in words.
    pub(super) what: &'static str,
    /// The error's details (never a secret).
    pub(super) detail: String,
}

impl ApiError {
    /// The response for this error on a request to `app` (`-` when no app was resolved),
    /// counted in `metrics` under `wxpush_requests_total`.
    pub(super) fn respond(self, app: &str, metrics: &Metrics) -> Response {
        let detail = self.to_string();
        let (status, outcome, text, is_error, what) = match &self {
            ApiError::Push(
                e @ (PushError::MissingParam(_) | PushError::EmptyBody | PushError::NoEncrypt),
            ) => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("bad request: {e}"),
                false,
                "bad request",
            ),
            ApiError::Push(PushError::BadSignature { .. }) => (
                StatusCode::UNAUTHORIZED,
                "bad_signature",
                "signature mismatch".to_owned(),
                false,
                "signature check failed",
            ),
            ApiError::Push(PushError::EncryptionRequired) => (
                StatusCode::UNAUTHORIZED,
                "unencrypted",
                "encrypted pushes only".to_owned(),
                false,
                "plain-mode push refused: the app requires encryption",
            ),
            // The push route quarantines these; kept so the mapping is total.
            ApiError::Push(PushError::Undecryptable { .. }) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "quarantined",
                "cannot decrypt with this configuration".to_owned(),
                true,
                "a correctly signed push cannot be decrypted",
            ),
            ApiError::Store(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "store_error",
                "cannot store the event now, retry later".to_owned(),
                true,
                "cannot store the push; answering 503 so the platform retries",
            ),
            ApiError::NotFound(_) => (
                StatusCode::NOT_FOUND,
                "not_found",
                detail.clone(),
                false,
                "request for an unknown app or authorizer",
            ),
            ApiError::TooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                detail.clone(),
                false,
                "body too large",
            ),
        };
        metrics.request(app, outcome);
        let mut response = (status, text).into_response();
        response.extensions_mut().insert(Failure {
            is_error,
            what,
            detail,
        });
        response
    }
}
