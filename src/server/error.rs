//! The one place errors become HTTP responses. Each failed response carries a
//! [`Failure`], which the request middleware logs with the request's method and path.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::observe;
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
    /// No app with this name is configured.
    #[error("no app named '{0}' is configured")]
    UnknownApp(String),
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
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
            // The push route quarantines these; kept so the mapping is total.
            ApiError::Push(PushError::Undecryptable(_)) => (
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
            ApiError::UnknownApp(_) => (
                StatusCode::NOT_FOUND,
                "bad_request",
                detail.clone(),
                false,
                "request for an unknown app",
            ),
        };
        observe::request(outcome);
        let mut response = (status, text).into_response();
        response.extensions_mut().insert(Failure {
            is_error,
            what,
            detail,
        });
        response
    }
}
