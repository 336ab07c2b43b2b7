//! The operator API on `admin_listen`: every request needs `Authorization: Bearer` with
//! `admin.api_token`, compared in constant time; without it, 401. Served only on
//! `admin_listen`, never on `listen`: the token API (`tokens.rs`) and the category API
//! (`categories.rs`).

mod categories;
mod tokens;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::categories::CategoryService;
use crate::secret::Secret;
use crate::tokens::TokenService;

/// What the operator API needs.
#[derive(Clone)]
pub struct OperatorApi {
    /// The bearer token.
    api_token: Secret<String>,
    /// The token service, when any app's tokens are managed.
    tokens: Option<TokenService>,
    /// The category workflow, on the same tokens.
    categories: Option<CategoryService>,
}

impl OperatorApi {
    /// The API behind `api_token`, serving `tokens`' tokens and `categories`.
    pub fn new(
        api_token: Secret<String>,
        tokens: Option<TokenService>,
        categories: Option<CategoryService>,
    ) -> Self {
        Self {
            api_token,
            tokens,
            categories,
        }
    }
}

/// The `/v1/` routes, behind the bearer token.
pub(super) fn routes(api: OperatorApi) -> Router {
    tokens::routes()
        .merge(categories::routes())
        .layer(middleware::from_fn_with_state(api.clone(), require_bearer))
        .with_state(api)
}

/// Refuses a request without the right bearer token.
async fn require_bearer(State(api): State<OperatorApi>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(given) = given else {
        return unauthorized("missing Authorization: Bearer <admin.api_token>");
    };
    // Digests of equal length, compared in constant time: neither the value nor its
    // length shows in the timing.
    let expected = Sha256::digest(api.api_token.expose().as_bytes());
    let given = Sha256::digest(given.as_bytes());
    if bool::from(expected.ct_eq(&given)) {
        next.run(req).await
    } else {
        unauthorized("wrong bearer token")
    }
}

fn unauthorized(why: &'static str) -> Response {
    tracing::warn!("operator API: {why}");
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(serde_json::json!({"error": why})),
    )
        .into_response()
}
