//! The one place errors become HTTP responses.

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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, outcome, text) = match &self {
            ApiError::Push(
                e @ (PushError::MissingParam(_) | PushError::EmptyBody | PushError::NoEncrypt),
            ) => {
                tracing::warn!(error = %e, "bad request");
                (
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("bad request: {e}"),
                )
            }
            ApiError::Push(e @ PushError::BadSignature { .. }) => {
                tracing::warn!(error = %e, "signature check failed");
                (
                    StatusCode::UNAUTHORIZED,
                    "bad_signature",
                    "signature mismatch".to_owned(),
                )
            }
            ApiError::Push(PushError::Undecryptable(e)) => {
                // The push route quarantines these; kept so the mapping is total.
                tracing::error!(error = %e, "a correctly signed push cannot be decrypted");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "quarantined",
                    "cannot decrypt with this configuration".to_owned(),
                )
            }
            ApiError::Store(e) => {
                tracing::error!(error = %e, "cannot store the push; answering 503 so the platform retries");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_error",
                    "cannot store the event now, retry later".to_owned(),
                )
            }
            ApiError::UnknownApp(name) => {
                tracing::warn!(app = %name, "request for an unknown app");
                (StatusCode::NOT_FOUND, "bad_request", self.to_string())
            }
        };
        observe::request(outcome);
        (status, text).into_response()
    }
}
