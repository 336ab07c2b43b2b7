//! The platform-facing routes: URL check (GET) and push (POST), for the default app and for
//! named apps, with or without a third-party authorizer segment.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};

use super::{AppState, error::ApiError};
use crate::app::App;
use crate::clock;
use crate::event::Event;
use crate::observe;
use crate::push::{self, Message, PushError, PushQuery};
use crate::store::{QuarantinedPush, Recorded};

type RawQuery = Query<HashMap<String, String>>;

pub(super) async fn url_check_default(
    State(state): State<AppState>,
    Query(query): RawQuery,
) -> Result<String, ApiError> {
    url_check(&state.apps[0], query)
}

pub(super) async fn url_check_named(
    State(state): State<AppState>,
    Path(seg): Path<String>,
    Query(query): RawQuery,
) -> Result<String, ApiError> {
    url_check(state.app(&seg)?, query)
}

pub(super) async fn url_check_default_authorizer(
    State(state): State<AppState>,
    Path(_authorizer): Path<String>,
    Query(query): RawQuery,
) -> Result<String, ApiError> {
    url_check(&state.apps[0], query)
}

pub(super) async fn url_check_named_authorizer(
    State(state): State<AppState>,
    Path((seg, _authorizer)): Path<(String, String)>,
    Query(query): RawQuery,
) -> Result<String, ApiError> {
    url_check(state.app(&seg)?, query)
}

fn url_check(app: &App, query: HashMap<String, String>) -> Result<String, ApiError> {
    let query = PushQuery::from_map(query);
    let echostr = push::url_check(app, &query)?;
    tracing::info!(app = %app.name, "URL check passed");
    observe::request("url_check");
    Ok(echostr.to_owned())
}

pub(super) async fn push_default(
    State(state): State<AppState>,
    Query(query): RawQuery,
    body: Bytes,
) -> Result<&'static str, ApiError> {
    let app = Arc::clone(&state.apps[0]);
    accept(&state, &app, query, body, None).await
}

pub(super) async fn push_named(
    State(state): State<AppState>,
    Path(seg): Path<String>,
    Query(query): RawQuery,
    body: Bytes,
) -> Result<&'static str, ApiError> {
    let app = Arc::clone(state.app(&seg)?);
    accept(&state, &app, query, body, None).await
}

pub(super) async fn push_default_authorizer(
    State(state): State<AppState>,
    Path(authorizer): Path<String>,
    Query(query): RawQuery,
    body: Bytes,
) -> Result<&'static str, ApiError> {
    let app = Arc::clone(&state.apps[0]);
    accept(&state, &app, query, body, Some(&authorizer)).await
}

pub(super) async fn push_named_authorizer(
    State(state): State<AppState>,
    Path((seg, authorizer)): Path<(String, String)>,
    Query(query): RawQuery,
    body: Bytes,
) -> Result<&'static str, ApiError> {
    let app = Arc::clone(state.app(&seg)?);
    accept(&state, &app, query, body, Some(&authorizer)).await
}

/// Authenticate → decrypt → check the timestamp → parse → store; `success` only once the
/// event (or the quarantined push) is on disk.
async fn accept(
    state: &AppState,
    app: &App,
    query: HashMap<String, String>,
    body: Bytes,
    authorizer_appid: Option<&str>,
) -> Result<&'static str, ApiError> {
    let query = PushQuery::from_map(query);
    let message = match push::receive(app, &query, &body) {
        Ok(message) => message,
        Err(PushError::Undecryptable(e)) => {
            let reason = format!(
                "{e}; check the app's encoding_aes_key and appid, then run `wxpush events retry-quarantined`"
            );
            quarantine(state, app, query, body, authorizer_appid, reason).await?;
            return Ok("success");
        }
        Err(e) => return Err(e.into()),
    };
    note_previous_credentials(app, &message);
    let now_secs = clock::now_ms() / 1000;
    if let Err(reason) = push::check_timestamp(&message.timestamp, now_secs, state.max_clock_skew) {
        quarantine(state, app, query, body, authorizer_appid, reason).await?;
        return Ok("success");
    }
    let event = Event::from_message(message.text, &app.name, authorizer_appid);
    let (id, name) = (event.id.clone(), event.name().to_owned());
    let result = event
        .category_audit()
        .map_or("", |audit| audit.result.as_str());
    match state.store.record(event).await? {
        Recorded::New => {
            tracing::debug!(%id, event = %name, mode = ?message.mode, "stored");
            metrics::counter!(observe::EVENTS, "event" => name, "result" => result).increment(1);
            observe::request("ok");
            state.wake.notify();
        }
        Recorded::Duplicate => {
            tracing::info!(%id, event = %name, "duplicate of a stored event (a platform retry); answered without storing again");
            observe::request("duplicate");
        }
    }
    Ok("success")
}

/// Warns (and counts) when a push still uses an app's previous token or key.
fn note_previous_credentials(app: &App, message: &Message) {
    for (used, credential) in [
        (message.previous_token, "token"),
        (message.previous_key, "encoding_aes_key"),
    ] {
        if used {
            tracing::warn!(app = %app.name, credential, "a push still uses the previous {credential}; remove previous_{credential} once these warnings stop");
            metrics::counter!(observe::PREVIOUS_CREDENTIALS, "app" => app.name.clone(), "credential" => credential)
                .increment(1);
        }
    }
}

/// Keeps a genuine push that cannot be processed now, with the reason, and says so loudly.
async fn quarantine(
    state: &AppState,
    app: &App,
    query: PushQuery,
    body: Bytes,
    authorizer_appid: Option<&str>,
    reason: String,
) -> Result<(), ApiError> {
    let push = QuarantinedPush::new(&app.name, authorizer_appid, query, body.to_vec(), reason);
    tracing::error!(app = %app.name, id = %push.id, reason = %push.reason, "push quarantined: signed correctly but not processable with this configuration");
    state.store.quarantine(push).await?;
    observe::request("quarantined");
    Ok(())
}
