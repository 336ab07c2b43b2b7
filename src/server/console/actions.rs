//! The console's state changes, each a POST carrying the session's CSRF token (403
//! without it): replay or discard a delivery, bulk replay or discard of what a filter shows
//! (the count confirmed first), retry quarantined pushes with the current configuration,
//! discard a quarantined push. Each ends in a redirect that says what happened.

use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

use super::auth::{forbidden, same};
use super::events::{EventsQuery, matching};
use super::html::{csrf_field, page, url_encode};
use super::{Console, Signed};
use crate::store::{DeliveryKey, StoreError};

/// A delivery's form.
#[derive(Deserialize)]
pub(crate) struct DeliveryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    route: String,
}

fn back(path: &str, notice: &str) -> Response {
    Redirect::to(&format!("{path}?notice={}", url_encode(notice))).into_response()
}

fn event_path(id: &str) -> String {
    format!("/console/events/{}", url_encode(id))
}

/// What a button does to deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Replay,
    Discard,
}

impl Action {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "replay" => Some(Self::Replay),
            "discard" => Some(Self::Discard),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Replay => "replay",
            Self::Discard => "discard",
        }
    }

    /// Replays or discards `keys`; how many it changed.
    async fn apply(self, console: &Console, keys: Vec<DeliveryKey>) -> Result<usize, StoreError> {
        match self {
            Self::Replay => console.store.replay_deliveries(keys).await,
            Self::Discard => console.store.discard(keys).await,
        }
    }
}

/// `POST /console/events/{id}/replay` and `…/discard`: one delivery (the form's route).
pub(crate) async fn delivery(
    State(console): State<Console>,
    Extension(signed): Extension<Signed>,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<DeliveryForm>,
) -> Response {
    if !same(&signed.csrf, &form.csrf) {
        return forbidden();
    }
    let Some(action) = Action::parse(&action) else {
        return back(&event_path(&id), "unknown action");
    };
    let key = DeliveryKey {
        id: id.clone(),
        route: form.route.clone(),
    };
    let route = crate::escape::printable(&form.route);
    let notice = match (action, action.apply(&console, vec![key]).await) {
        (Action::Replay, Ok(0)) => "nothing to replay".to_owned(),
        (Action::Replay, Ok(_)) => format!("replayed to route {route}: due now"),
        (Action::Discard, Ok(0)) => {
            "nothing discarded: only dead or pending deliveries, not while attempted".to_owned()
        }
        (Action::Discard, Ok(_)) => format!("discarded the delivery to route {route}"),
        (_, Err(e)) => format!("cannot {}: {e}", action.name()),
    };
    tracing::info!(id = %crate::escape::printable(&id), "console: {notice}");
    back(&event_path(&id), &notice)
}

/// The bulk form: the action, the filters, and (once confirmed) the count.
#[derive(Deserialize)]
pub(crate) struct BulkForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    confirm: Option<usize>,
    #[serde(flatten)]
    query: EventsQuery,
}

/// `POST /console/bulk`: the first time, a page with the count to confirm; confirmed with
/// the same count, the replay or discard.
pub(crate) async fn bulk(
    State(console): State<Console>,
    Extension(signed): Extension<Signed>,
    Form(form): Form<BulkForm>,
) -> Response {
    if !same(&signed.csrf, &form.csrf) {
        return forbidden();
    }
    let Some(action) = Action::parse(&form.action) else {
        return back("/console/events", "unknown action");
    };
    let rows = match matching(&console, &form.query).await {
        Ok(rows) => rows,
        Err(e) => return back("/console/events", &e),
    };
    let keys: Vec<DeliveryKey> = rows.iter().map(crate::store::Record::key).collect();
    if form.confirm != Some(keys.len()) {
        let action = action.name();
        let changed = if form.confirm.is_some() {
            "<p class=\"notice\">The count changed since: confirm again.</p>"
        } else {
            ""
        };
        let mut body = String::from(changed);
        let _ = write!(
            body,
            // `action` is one of two fixed words: no escaping needed.
            r#"<p>This will {action} <strong>{}</strong> deliveries.</p><form method="post" action="/console/bulk">{}{}<input type="hidden" name="action" value="{action}"><input type="hidden" name="confirm" value="{}"><button type="submit">Yes, {action} {}</button></form> <a href="/console/events">Cancel</a>"#,
            keys.len(),
            csrf_field(&signed.csrf),
            form.query.hidden_fields(),
            keys.len(),
            keys.len()
        );
        return Html(page("Confirm", Some(&signed.csrf), &body)).into_response();
    }
    let notice = match action.apply(&console, keys).await {
        Ok(n) => format!("{}: {n} deliveries", action.name()),
        Err(e) => format!("cannot {}: {e}", action.name()),
    };
    tracing::info!("console: bulk {notice}");
    back("/console/events", &notice)
}

/// A form with only the CSRF token.
#[derive(Deserialize)]
pub(crate) struct Plain {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/quarantine/retry`.
pub(crate) async fn retry_quarantined(
    State(console): State<Console>,
    Extension(signed): Extension<Signed>,
    Form(form): Form<Plain>,
) -> Response {
    if !same(&signed.csrf, &form.csrf) {
        return forbidden();
    }
    let notice = match crate::quarantine::retry_all(
        &*console.store,
        &console.apps,
        &console.routing,
    )
    .await
    {
        Ok(r) => format!(
            "{} released as new events, {} were duplicates, {} still failing",
            r.released,
            r.duplicates,
            r.still_failing.len()
        ),
        Err(e) => format!("cannot retry: {e}"),
    };
    tracing::info!("console: quarantine retry: {notice}");
    back("/console/quarantine", &notice)
}

/// `POST /console/quarantine/{id}/discard`.
pub(crate) async fn discard_quarantined(
    State(console): State<Console>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
    Form(form): Form<Plain>,
) -> Response {
    if !same(&signed.csrf, &form.csrf) {
        return forbidden();
    }
    let notice = match console.store.discard_quarantined(vec![id.clone()]).await {
        Ok(0) => "nothing discarded".to_owned(),
        Ok(_) => format!("discarded {}", crate::escape::printable(&id)),
        Err(e) => format!("cannot discard: {e}"),
    };
    back("/console/quarantine", &notice)
}
