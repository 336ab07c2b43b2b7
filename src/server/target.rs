//! Which app, and which third-party authorizer, a request to `/wechat…` is for, resolved
//! from its path once, before anything else looks at the request.
//!
//! | path | app | authorizer |
//! |---|---|---|
//! | `/wechat` | the default app | none |
//! | `/wechat/{authorizer_appid}/callback` | the default app | the segment |
//! | `/wechat/{name}` | the app named `name` | none |
//! | `/wechat/{name}/{authorizer_appid}/callback` | the app named `name` | the segment |
//!
//! An authorizer segment must be an app id (`wx` and 16 letters or digits); anything else
//! is answered 404 and never becomes an event's `authorizer_appid`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;

use super::{AppState, error::ApiError};
use crate::escape::printable;
use crate::push::app::{self, App};

/// The app and authorizer a request is for.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// The configured app whose credentials check the request.
    pub(super) app: Arc<App>,
    /// The third-party authorizer's app id, from the path.
    pub(super) authorizer: Option<String>,
}

impl FromRequestParts<AppState> for Target {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        resolve(state, parts.uri.path()).map_err(|e| e.respond("-", &state.metrics))
    }
}

/// Resolves `path` (as received, not decoded) against the configured apps.
fn resolve(state: &AppState, path: &str) -> Result<Target, ApiError> {
    let rest = path.strip_prefix("/wechat").unwrap_or(path);
    let segments: Vec<&str> = rest.split('/').skip(1).collect();
    let (name, authorizer) = match segments.as_slice() {
        [] => (None, None),
        [name] => (Some(*name), None),
        [authorizer, "callback"] => (None, Some(*authorizer)),
        [name, authorizer, "callback"] => (Some(*name), Some(*authorizer)),
        _ => return Err(ApiError::NotFound("no such route".to_owned())),
    };
    let app = match name {
        None => state.default_app(),
        Some(name) => state.app(name).ok_or_else(|| {
            ApiError::NotFound(format!(
                "no app named '{}' is configured",
                printable(&name.chars().take(64).collect::<String>())
            ))
        })?,
    };
    if let Some(authorizer) = authorizer
        && !app::is_appid(authorizer)
    {
        return Err(ApiError::NotFound(format!(
            "'{}' is not an authorizer app id (wx and 16 letters or digits)",
            printable(&authorizer.chars().take(64).collect::<String>())
        )));
    }
    Ok(Target {
        app: Arc::clone(app),
        authorizer: authorizer.map(str::to_owned),
    })
}
