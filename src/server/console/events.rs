//! The events pages: the list, filtered (status, event, app, authorizer, route, time range,
//! text in any field) and paged, with bulk replay or discard of what a filter shows; and one
//! event with every field, the raw message and each route's delivery state.

use std::fmt::Write as _;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::html::{Flash, csrf_field, esc, failed, notice, page, time, url_encode};
use super::{Console, Signed};
use crate::store::{AttemptLog, ListFilter, Record, Status};

/// Events per page.
const PAGE: usize = 50;
/// The newest events a search looks through.
const SEARCHED: usize = 5000;

/// The events page's filters.
#[derive(Deserialize, Default)]
pub(crate) struct EventsQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    app: String,
    #[serde(default)]
    authorizer: String,
    #[serde(default)]
    route: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: usize,
    #[serde(default)]
    notice: Option<String>,
}

fn some(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

impl EventsQuery {
    /// The store's filter, or why a field is wrong.
    pub(crate) fn filter(&self) -> Result<ListFilter, String> {
        let time = |name: &str, text: &str| match some(text) {
            None => Ok(None),
            Some(t) => crate::clock::parse_rfc3339(&t).map(Some).map_err(|_| {
                format!("{name}: expected a time like 2026-12-01T00:00:00Z, got '{t}'")
            }),
        };
        let status = match some(&self.status) {
            None => None,
            Some(s) => Some(Status::parse(&s).ok_or_else(|| format!("status: unknown '{s}'"))?),
        };
        Ok(ListFilter {
            status,
            event: some(&self.event),
            app: some(&self.app),
            route: some(&self.route),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            limit: SEARCHED,
        })
    }

    /// Whether `r` passes the filters the store does not apply (authorizer, text).
    pub(crate) fn keeps(&self, r: &Record) -> bool {
        let authorizer = some(&self.authorizer);
        if authorizer.is_some() && r.event.authorizer_appid != authorizer {
            return false;
        }
        match some(&self.q) {
            None => true,
            Some(q) => {
                let q = q.to_lowercase();
                r.event.raw.to_lowercase().contains(&q)
                    || r.event.id.contains(&q)
                    || r.last_error
                        .as_deref()
                        .is_some_and(|e| e.to_lowercase().contains(&q))
            }
        }
    }

    /// The filters as a query string (for links and the bulk form).
    pub(crate) fn hidden_fields(&self) -> String {
        let mut out = String::new();
        for (k, v) in self.pairs() {
            let _ = write!(
                out,
                r#"<input type="hidden" name="{k}" value="{}">"#,
                esc(v)
            );
        }
        out
    }

    fn pairs(&self) -> [(&'static str, &str); 8] {
        [
            ("status", &self.status),
            ("event", &self.event),
            ("app", &self.app),
            ("authorizer", &self.authorizer),
            ("route", &self.route),
            ("since", &self.since),
            ("until", &self.until),
            ("q", &self.q),
        ]
    }

    fn link(&self, page: usize) -> String {
        let mut link = format!("/console/events?page={page}");
        for (k, v) in self.pairs() {
            if !v.is_empty() {
                let encoded: String = url_encode(v);
                let _ = write!(link, "&{k}={encoded}");
            }
        }
        link
    }
}

/// The records matching `query`, newest first.
pub(crate) async fn matching(
    console: &Console,
    query: &EventsQuery,
) -> Result<Vec<Record>, String> {
    let filter = query.filter()?;
    let found = console
        .store
        .list(filter)
        .await
        .map_err(|e| e.to_string())?;
    Ok(found.into_iter().filter(|r| query.keeps(r)).collect())
}

/// `GET /console/events`.
pub(crate) async fn events(
    State(console): State<Console>,
    Extension(signed): Extension<Signed>,
    Query(query): Query<EventsQuery>,
) -> Response {
    let mut body = notice(query.notice.as_deref());
    let field = |name: &str, label: &str, value: &str| {
        format!(
            r#"<label>{label} <input name="{name}" value="{}"></label>"#,
            esc(value)
        )
    };
    let _ = write!(
        body,
        r#"<form class="filters" method="get" action="/console/events">{}{}{}{}{}{}{}{}<button type="submit">Filter</button></form>"#,
        field("status", "status", &query.status),
        field("event", "event", &query.event),
        field("app", "app", &query.app),
        field("authorizer", "authorizer", &query.authorizer),
        field("route", "route", &query.route),
        field("since", "since", &query.since),
        field("until", "until", &query.until),
        field("q", "text", &query.q),
    );
    match matching(&console, &query).await {
        Err(e) => body.push_str(&failed("cannot list", e)),
        Ok(rows) => {
            let total = rows.len();
            let shown: Vec<Record> = rows
                .into_iter()
                .skip(query.page * PAGE)
                .take(PAGE)
                .collect();
            let _ = write!(
                body,
                "<p>{total} matching{}</p>",
                if total >= SEARCHED {
                    " (of the newest 5000)"
                } else {
                    ""
                }
            );
            body.push_str(&table(&shown));
            if query.page > 0 {
                let _ = write!(
                    body,
                    r#"<a href="{}">newer</a> "#,
                    esc(&query.link(query.page - 1))
                );
            }
            if (query.page + 1) * PAGE < total {
                let _ = write!(
                    body,
                    r#"<a href="{}">older</a>"#,
                    esc(&query.link(query.page + 1))
                );
            }
            if total > 0 {
                let _ = write!(
                    body,
                    r#"<h2>All {total} matching</h2><form method="post" action="/console/bulk">{}{}<button name="action" value="replay">Replay…</button> <button name="action" value="discard">Discard…</button></form>"#,
                    csrf_field(&signed.csrf),
                    query.hidden_fields()
                );
            }
        }
    }
    Html(page("Events", Some(&signed.csrf), &body)).into_response()
}

/// A table of deliveries, each linking to its event.
pub(crate) fn table(rows: &[Record]) -> String {
    let mut out = String::from(
        "<table><tr><th>received</th><th>id</th><th>route</th><th>status</th><th>app</th><th>authorizer</th><th>event</th><th>attempts</th><th>detail</th></tr>",
    );
    for r in rows {
        let detail = match (r.event.category_audit(), &r.last_error) {
            (_, Some(e)) => e.clone(),
            (Some(a), None) => format!("{} {}", a.result.as_str(), a.reason),
            (None, None) => String::new(),
        };
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td><a href="/console/events/{}">{}</a></td><td>{}</td><td class="{}">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="wrap">{}</td></tr>"#,
            time(r.event.received_at),
            esc(&url_encode(&r.event.id)),
            esc(&r.event.id),
            esc(route_name(&r.route)),
            r.status.as_str(),
            r.status.as_str(),
            esc(&r.event.app),
            esc(r.event.authorizer_appid.as_deref().unwrap_or("-")),
            esc(r.event.name()),
            r.attempts,
            esc(&detail)
        );
    }
    out.push_str("</table>");
    out
}

/// `GET /console/events/{id}`.
pub(crate) async fn event(
    State(console): State<Console>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> Response {
    let records = match console.store.get(id.clone()).await {
        Ok(r) if !r.is_empty() => r,
        Ok(_) => {
            return (
                axum::http::StatusCode::NOT_FOUND,
                Html(page(
                    "No such event",
                    Some(&signed.csrf),
                    &format!("<p>No event {}.</p>", esc(&id)),
                )),
            )
                .into_response();
        }
        Err(e) => {
            return Html(page(
                "Event",
                Some(&signed.csrf),
                &failed("cannot read the event", e),
            ))
            .into_response();
        }
    };
    let event = &records[0].event;
    let mut body = notice(flash.notice.as_deref());
    let _ = write!(
        body,
        "<dl><dt>id</dt><dd>{}</dd><dt>received</dt><dd>{}</dd><dt>source</dt><dd>{}</dd><dt>app</dt><dd>{}</dd><dt>authorizer</dt><dd>{}</dd><dt>event</dt><dd>{}</dd></dl>",
        esc(&event.id),
        time(event.received_at),
        event.source().as_str(),
        esc(&event.app),
        esc(event.authorizer_appid.as_deref().unwrap_or("-")),
        esc(event.name())
    );
    body.push_str(&deliveries(&records, &signed.csrf));
    body.push_str("<h2>Attempts</h2>");
    match console.store.attempts(event.id.clone()).await {
        Ok(attempts) => body.push_str(&attempts_table(&attempts)),
        Err(e) => body.push_str(&failed("cannot read the attempts", e)),
    }
    body.push_str("<h2>Fields</h2><table><tr><th>name</th><th>value</th></tr>");
    for (name, value) in event.fields.iter() {
        let _ = write!(
            body,
            r#"<tr><td>{}</td><td class="wrap">{}</td></tr>"#,
            esc(name),
            esc(value)
        );
    }
    let _ = write!(
        body,
        "</table><h2>Raw message</h2><pre>{}</pre>",
        esc(&event.raw)
    );
    Html(page("Event", Some(&signed.csrf), &body)).into_response()
}

/// Each route's delivery state, with its buttons.
fn deliveries(records: &[Record], csrf: &str) -> String {
    let mut body = String::from(
        "<h2>Deliveries</h2><table><tr><th>route</th><th>status</th><th>attempts</th><th>last error</th><th>next attempt</th><th>delivered</th><th></th></tr>",
    );
    for r in records {
        let action = |what: &str, label: &str| {
            format!(
                r#"<form class="inline" method="post" action="/console/events/{}/{what}">{}<input type="hidden" name="route" value="{}"><button type="submit">{label}</button></form>"#,
                esc(&url_encode(&r.event.id)),
                csrf_field(csrf),
                esc(&r.route)
            )
        };
        let mut buttons = action("replay", "Replay");
        if matches!(r.status, Status::Dead | Status::Pending) {
            buttons.push_str(&action("discard", "Discard"));
        }
        let _ = write!(
            body,
            r#"<tr><td>{}</td><td class="{}">{}</td><td>{}</td><td class="wrap">{}</td><td>{}</td><td>{}</td><td>{buttons}</td></tr>"#,
            esc(route_name(&r.route)),
            r.status.as_str(),
            r.status.as_str(),
            r.attempts,
            esc(r.last_error.as_deref().unwrap_or("-")),
            time(r.next_attempt_at),
            time(r.delivered_at)
        );
    }
    body.push_str("</table>");
    body
}

/// Every attempt: when, how long, and its result.
fn attempts_table(attempts: &[AttemptLog]) -> String {
    if attempts.is_empty() {
        return "<p>none yet</p>".into();
    }
    let mut body =
        String::from("<table><tr><th>route</th><th>at</th><th>took</th><th>result</th></tr>");
    for a in attempts {
        let result = match (&a.error, a.probe) {
            (None, _) => "delivered".to_owned(),
            (Some(e), true) => format!("probe failed: {e}"),
            (Some(e), false) => e.clone(),
        };
        let _ = write!(
            body,
            r#"<tr><td>{}</td><td>{}</td><td>{} ms</td><td class="wrap">{}</td></tr>"#,
            esc(route_name(&a.route)),
            time(Some(a.started_at)),
            a.duration_ms,
            esc(&result)
        );
    }
    body.push_str("</table>");
    body
}

/// A route's name as shown: `(no route)` for the event no route takes.
fn route_name(route: &str) -> &str {
    if route.is_empty() {
        "(no route)"
    } else {
        route
    }
}
