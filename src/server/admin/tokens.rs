//! `GET /v1/tokens/{appid}` (a valid token for the integrator's other services) and
//! `POST /v1/tokens/{appid}/invalidate` (the caller's token failed: refreshed only if it is
//! still the current one). Tokens are in answers only, never in a log line.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::OperatorApi;
use crate::clock;
use crate::escape::printable;
use crate::tokens::{Token, TokenError};

pub(super) fn routes() -> Router<OperatorApi> {
    Router::new()
        .route("/v1/tokens/{appid}", get(current))
        .route("/v1/tokens/{appid}/invalidate", post(invalidate))
}

async fn current(State(api): State<OperatorApi>, Path(appid): Path<String>) -> Response {
    let Some(service) = &api.tokens else {
        return not_managed();
    };
    answer(&appid, service.token(&appid).await)
}

/// The body of an invalidation: the token that failed.
#[derive(Deserialize)]
struct Failed {
    access_token: String,
}

async fn invalidate(
    State(api): State<OperatorApi>,
    Path(appid): Path<String>,
    body: Result<Json<Failed>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(service) = &api.tokens else {
        return not_managed();
    };
    let Ok(Json(failed)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected a JSON body {\"access_token\": \"the token that failed\"}".into(),
        );
    };
    answer(
        &appid,
        service.invalidate(&appid, &failed.access_token).await,
    )
}

fn answer(appid: &str, result: Result<Token, TokenError>) -> Response {
    match result {
        Ok(token) => Json(json!({
            "appid": token.appid,
            "kind": token.kind.as_str(),
            "access_token": token.access_token.expose(),
            "expires_at": clock::rfc3339(token.expires_at),
        }))
        .into_response(),
        Err(e @ TokenError::UnknownApp(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ TokenError::Unavailable { .. }) => {
            tracing::warn!(appid = %printable(appid), "token API: {e}");
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        Err(TokenError::Store(e)) => {
            tracing::error!(appid = %printable(appid), "token API: {e}");
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
    }
}

fn not_managed() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no app's tokens are managed: set component_appsecret (a third-party platform) or appsecret (a Mini Program) for the app".into(),
    )
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}
