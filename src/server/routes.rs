//! The platform-facing routes: one URL check (GET) and one push (POST) handler for every
//! `/wechat…` path; [`Target`] says which app and authorizer the path names.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};

use super::target::Target;
use super::{AppState, error::ApiError};
use crate::clock;
use crate::dispatch::{Alert, AlertKind};
use crate::event::Event;
use crate::observe::{self, Metrics};
use crate::push::app::App;
use crate::push::{self, Message, PushError, PushQuery};
use crate::store::{QuarantinedPush, Recorded, StoreError};

type RawQuery = Query<HashMap<String, String>>;

/// `GET`: the platform's URL check; answers the `echostr` when the signature checks out.
pub(super) async fn url_check(
    State(state): State<AppState>,
    target: Target,
    Query(query): RawQuery,
) -> Response {
    let app = &target.app;
    let query = PushQuery::from_map(query);
    match push::url_check(app, &query) {
        Ok(echostr) => {
            tracing::info!(app = %app.name, "URL check passed");
            state.metrics.request(&app.name, "url_check");
            echostr.to_owned().into_response()
        }
        Err(e) => ApiError::from(e).respond(&app.name, &state.metrics),
    }
}

/// `POST`: a push. Answered `success` only once the event (or the quarantined push) is
/// stored.
pub(super) async fn push(
    State(state): State<AppState>,
    target: Target,
    Query(query): RawQuery,
    body: Bytes,
) -> Response {
    let name = target.app.name.clone();
    match accept(&state, &target, PushQuery::from_map(query), body).await {
        Ok(outcome) => {
            state.readiness.push_stored();
            state.metrics.request(&name, outcome);
            "success".into_response()
        }
        Err(e) => {
            if let ApiError::Store(StoreError::Full(_)) = &e {
                state.readiness.push_refused_for_space();
            }
            e.respond(&name, &state.metrics)
        }
    }
}

/// Authenticate → decrypt → check the timestamp → parse → store; returns the outcome to
/// count.
async fn accept(
    state: &AppState,
    target: &Target,
    query: PushQuery,
    body: Bytes,
) -> Result<&'static str, ApiError> {
    let app = &target.app;
    let authorizer = target.authorizer.as_deref();
    let message = match push::receive(app, &query, &body) {
        Ok(message) => message,
        Err(PushError::Undecryptable { error, request_key }) => {
            let reason = format!(
                "{error}; check the app's encoding_aes_key and appid, then run `wxpush events retry-quarantined`"
            );
            return quarantine(state, app, query, body, authorizer, reason, request_key).await;
        }
        Err(e) => return Err(e.into()),
    };
    note_previous_credentials(app, &message, &state.metrics);
    let now_secs = clock::now_ms() / 1000;
    if let Err(reason) = push::check_timestamp(&message.timestamp, now_secs, state.max_clock_skew) {
        let key = message.request_key;
        return quarantine(state, app, query, body, authorizer, reason, key).await;
    }
    let event = Event::from_message(message.text, &app.name, authorizer);
    let (id, name) = (event.id.clone(), event.name().to_owned());
    let result = event
        .category_audit()
        .map_or("", |audit| audit.result.as_str());
    let routes = state.routing.routes_for(&event);
    match state
        .store
        .record_routed(event, Some(message.request_key), routes)
        .await?
    {
        Recorded::New => {
            tracing::debug!(%id, event = %name, mode = ?message.mode, "stored");
            state.metrics.record(|| {
                metrics::counter!(observe::EVENTS, "app" => app.name.clone(), "event" => name, "result" => result)
                    .increment(1);
            });
            state.wake.notify();
            Ok("ok")
        }
        Recorded::Duplicate => {
            tracing::info!(%id, event = %name, "duplicate of a stored event (a platform retry); answered without storing again");
            Ok("duplicate")
        }
        Recorded::Replay => Ok(replayed(app, authorizer)),
    }
}

/// Says (once per request) that a copy of an earlier request was answered without effect.
fn replayed(app: &App, authorizer: Option<&str>) -> &'static str {
    tracing::warn!(
        app = %app.name,
        authorizer_appid = authorizer.unwrap_or("-"),
        "replayed request (same signature, timestamp and nonce as an earlier one): answered success, nothing stored or re-attributed"
    );
    "replay"
}

/// Warns (and counts) when a push still uses an app's previous token or key.
fn note_previous_credentials(app: &App, message: &Message, metrics: &Metrics) {
    for (used, credential) in [
        (message.previous_token, "token"),
        (message.previous_key, "encoding_aes_key"),
    ] {
        if used {
            tracing::warn!(app = %app.name, credential, "a push still uses the previous {credential}; remove previous_{credential} once these warnings stop");
            metrics.record(|| {
                metrics::counter!(observe::PREVIOUS_CREDENTIALS, "app" => app.name.clone(), "credential" => credential)
                    .increment(1);
            });
        }
    }
}

/// Keeps a genuine push that cannot be processed now, with the reason, and says so loudly;
/// a replayed copy of one is not kept twice.
async fn quarantine(
    state: &AppState,
    app: &App,
    query: PushQuery,
    body: Bytes,
    authorizer_appid: Option<&str>,
    reason: String,
    request_key: String,
) -> Result<&'static str, ApiError> {
    let push = QuarantinedPush::new(&app.name, authorizer_appid, query, body.to_vec(), reason);
    let (id, reason) = (push.id.clone(), push.reason.clone());
    match state.store.quarantine(push, Some(request_key)).await? {
        Recorded::Replay => Ok(replayed(app, authorizer_appid)),
        _ => {
            tracing::error!(app = %app.name, %id, %reason, "push quarantined: signed correctly but not processable with this configuration");
            state.alerts.raise(Alert {
                kind: AlertKind::PushQuarantined,
                route: None,
                event_id: None,
                quarantine_id: Some(id),
            });
            Ok("quarantined")
        }
    }
}
