//! The category API for the integrator's backend: `GET /v1/authorizers/{appid}/categories`
//! (what is set, with review states), `POST /v1/authorizers/{appid}/categories` (the
//! `addcategory` body, checked as the CLI checks it; answers the submissions) and
//! `GET /v1/submissions/{id}`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::OperatorApi;
use crate::categories::{CategoryError, CategoryService, Target};
use crate::escape::printable;
use crate::platform::category::AddCategoryRequest;
use crate::tokens::TokenError;

pub(super) fn routes() -> Router<OperatorApi> {
    Router::new()
        .route(
            "/v1/authorizers/{appid}/categories",
            get(current).post(submit),
        )
        .route("/v1/submissions/{id}", get(submission))
}

fn service(api: &OperatorApi) -> Result<&CategoryService, Box<Response>> {
    api.categories.as_ref().ok_or_else(|| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            "no app's tokens are managed: set component_appsecret (a third-party platform) or appsecret (a Mini Program)".into(),
        ))
    })
}

async fn current(State(api): State<OperatorApi>, Path(appid): Path<String>) -> Response {
    let service = match service(&api) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match service.current(&appid).await {
        Ok(current) => Json(current).into_response(),
        Err(e) => failure(&appid, e),
    }
}

async fn submit(
    State(api): State<OperatorApi>,
    Path(appid): Path<String>,
    body: Result<Json<AddCategoryRequest>, JsonRejection>,
) -> Response {
    let service = match service(&api) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let request = match body {
        Ok(Json(request)) if !request.categories.is_empty() => request,
        Ok(_) => return error(StatusCode::BAD_REQUEST, "no categories".into()),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "expected the addcategory body {{\"categories\":[{{\"first\":8,\"second\":39,\"certicates\":[{{\"key\":\"…\",\"value\":\"MEDIA_ID\"}}]}}]}}: {}",
                    e.body_text()
                ),
            );
        }
    };
    let Some(target) = target(&api, &appid).await else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "{} is not an authorizer or Mini Program whose tokens wxpush manages",
                printable(&appid)
            ),
        );
    };
    // The warnings are known before the call, and belong in its error too.
    let warnings = match service.preflight(&target.appid, &request.categories).await {
        Ok(warnings) => warnings,
        Err(e) => return failure(&appid, e),
    };
    match service.add(&target, &request).await {
        Ok((submissions, _)) => (
            StatusCode::CREATED,
            Json(json!({"submissions": submissions, "warnings": warnings})),
        )
            .into_response(),
        Err(e) => {
            let (status, message) = failure_parts(&appid, e);
            (
                status,
                Json(json!({"error": message, "warnings": warnings})),
            )
                .into_response()
        }
    }
}

/// Who a submission for `appid` is made as: an authorizer of a managed platform, or a
/// managed Mini Program.
async fn target(api: &OperatorApi, appid: &str) -> Option<Target> {
    let tokens = api.tokens.as_ref()?;
    let config = tokens.config();
    if let Some(app) = config.app(appid) {
        return (app.kind == crate::tokens::AppKind::MiniProgram).then(|| Target {
            app: app.name.clone(),
            appid: appid.to_owned(),
            authorizer: None,
        });
    }
    let component = tokens.component_of(appid).await?;
    let app = config.app(&component)?;
    Some(Target {
        app: app.name.clone(),
        appid: appid.to_owned(),
        authorizer: Some(appid.to_owned()),
    })
}

async fn submission(State(api): State<OperatorApi>, Path(id): Path<String>) -> Response {
    let service = match service(&api) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match service.submission(&id).await {
        Ok(Some(s)) => Json(s).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no submission {}", printable(&id)),
        ),
        Err(e) => failure(&id, e),
    }
}

fn failure(what: &str, e: CategoryError) -> Response {
    let (status, message) = failure_parts(what, e);
    error(status, message)
}

/// The status for `e`, and its message (logged).
fn failure_parts(what: &str, e: CategoryError) -> (StatusCode, String) {
    let status = match &e {
        CategoryError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        CategoryError::Token(TokenError::UnknownApp(_)) => StatusCode::NOT_FOUND,
        CategoryError::Token(_) | CategoryError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        CategoryError::Api(_) => StatusCode::BAD_GATEWAY,
    };
    tracing::warn!(target_id = %printable(what), "category API: {e}");
    (status, e.to_string())
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}
