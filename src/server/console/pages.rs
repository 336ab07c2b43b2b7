//! The console's pages: overview, quarantine, categories (the events are in `events.rs`).
//! Everything from a push is escaped ([`esc`]).

use std::fmt::Write as _;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};

use super::events::table;
use super::html::{Flash, csrf_field, esc, failed, notice, page, time, url_encode};
use super::{Console, Signed};
use crate::store::{ListFilter, Status};

/// `GET /console/`.
pub(crate) async fn overview(
    State(console): State<Console>,
    Extension(signed): Extension<Signed>,
    Query(flash): Query<Flash>,
) -> Response {
    let mut body = notice(flash.notice.as_deref());
    match console.store.stats().await {
        Ok(s) => {
            let _ = write!(
                body,
                r#"<h2>Inbox</h2><dl><dt>pending</dt><dd><a href="/console/events?status=pending">{}</a></dd><dt>dead</dt><dd><a href="/console/events?status=dead">{}</a></dd><dt>quarantined</dt><dd><a href="/console/quarantine">{}</a></dd><dt>delivered</dt><dd>{}</dd><dt>discarded</dt><dd>{}</dd><dt>duplicates answered</dt><dd>{}</dd><dt>oldest pending</dt><dd>{}</dd></dl>"#,
                s.pending,
                s.dead,
                s.quarantined,
                s.delivered,
                s.discarded,
                s.duplicates,
                time(s.oldest_pending_at)
            );
        }
        Err(e) => body.push_str(&failed("cannot read the inbox", e)),
    }
    body.push_str(
        "<h2>Routes</h2><table><tr><th>route</th><th>state</th><th>events</th><th>apps</th></tr>",
    );
    for r in &console.routing.0 {
        let list = |v: &[String]| {
            if v.is_empty() {
                "any".to_owned()
            } else {
                esc(&v.join(", "))
            }
        };
        let state = if console.states.is_paused(&r.name) {
            r#"<span class="dead">paused (probing)</span>"#
        } else {
            "running"
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{state}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.name),
            list(&r.events),
            list(&r.apps)
        );
    }
    body.push_str("</table>");
    if let Some(tokens) = &console.tokens {
        body.push_str("<h2>Tokens</h2><table><tr><th>app id</th><th>kind</th><th>expires</th><th>age</th><th>last error</th></tr>");
        for m in tokens.list().await.unwrap_or_default() {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"wrap\">{}</td></tr>",
                esc(&m.appid),
                m.kind.as_str(),
                esc(m.expires_at.as_deref().unwrap_or("-")),
                m.age_secs.map_or_else(|| "-".into(), |a| format!("{a} s")),
                esc(m.last_error.as_deref().unwrap_or("-"))
            );
        }
        body.push_str("</table>");
        for t in tokens.tickets().await.unwrap_or_default() {
            let age = t.age_secs.map_or_else(
                || "none pushed yet".to_owned(),
                |a| format!("pushed {a} s ago"),
            );
            let _ = write!(
                body,
                "<p>Ticket of {}: {}</p>",
                esc(&t.component_appid),
                esc(&age)
            );
        }
    }
    body.push_str("<h2>Recent errors</h2>");
    body.push_str(&recent_errors(&console).await);
    Html(page("Overview", Some(&signed.csrf), &body)).into_response()
}

async fn recent_errors(console: &Console) -> String {
    let mut rows = Vec::new();
    for status in [Status::Dead, Status::Pending] {
        let filter = ListFilter {
            status: Some(status),
            limit: 200,
            ..ListFilter::default()
        };
        if let Ok(found) = console.store.list(filter).await {
            rows.extend(found.into_iter().filter(|r| r.last_error.is_some()));
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.event.received_at));
    rows.truncate(10);
    if rows.is_empty() {
        return "<p>none</p>".into();
    }
    table(&rows)
}

/// `GET /console/quarantine`.
pub(crate) async fn quarantine(
    State(console): State<Console>,
    Extension(signed): Extension<Signed>,
    Query(flash): Query<Flash>,
) -> Response {
    let mut body = notice(flash.notice.as_deref());
    let _ = write!(
        body,
        r#"<form method="post" action="/console/quarantine/retry">{}<button type="submit">Retry all with the current configuration</button></form>"#,
        csrf_field(&signed.csrf)
    );
    match console.store.quarantined(500).await {
        Err(e) => body.push_str(&failed("cannot read the quarantine", e)),
        Ok(pushes) if pushes.is_empty() => body.push_str("<p>Nothing in quarantine.</p>"),
        Ok(pushes) => {
            for q in pushes {
                let _ = write!(
                    body,
                    r#"<h2>{}</h2><dl><dt>received</dt><dd>{}</dd><dt>app</dt><dd>{}</dd><dt>authorizer</dt><dd>{}</dd><dt>reason</dt><dd>{}</dd><dt>query</dt><dd class="wrap">{}</dd></dl><pre>{}</pre><form method="post" action="/console/quarantine/{}/discard">{}<button type="submit">Discard</button></form>"#,
                    esc(&q.id),
                    time(Some(q.received_at)),
                    esc(&q.app),
                    esc(q.authorizer_appid.as_deref().unwrap_or("-")),
                    esc(&q.reason),
                    esc(&query_text(&q.query)),
                    esc(&String::from_utf8_lossy(&q.body)),
                    esc(&url_encode(&q.id)),
                    csrf_field(&signed.csrf)
                );
            }
        }
    }
    Html(page("Quarantine", Some(&signed.csrf), &body)).into_response()
}

/// A push's query as it arrived: `signature=…&timestamp=…` (the parameters kept).
fn query_text(q: &crate::push::PushQuery) -> String {
    [
        ("signature", &q.signature),
        ("timestamp", &q.timestamp),
        ("nonce", &q.nonce),
        ("encrypt_type", &q.encrypt_type),
        ("msg_signature", &q.msg_signature),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
    .collect::<Vec<_>>()
    .join("&")
}

/// `GET /console/categories`.
pub(crate) async fn categories(
    State(console): State<Console>,
    Extension(signed): Extension<Signed>,
) -> Response {
    let mut body = String::from("<h2>Submissions</h2>");
    match console.store.submissions().await {
        Err(e) => body.push_str(&failed("cannot read the submissions", e)),
        Ok(rows) => {
            body.push_str("<table><tr><th>id</th><th>status</th><th>resolved by</th><th>app</th><th>authorizer</th><th>category</th><th>submitted</th><th>resolved</th><th>reason</th></tr>");
            for s in rows {
                let _ = write!(
                    body,
                    r#"<tr><td>{}</td><td class="{}">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td><td>{}</td><td class="wrap">{}</td></tr>"#,
                    esc(&s.id),
                    esc(&s.status),
                    esc(&s.status),
                    esc(s.source.as_deref().unwrap_or("-")),
                    esc(&s.app),
                    esc(s.authorizer_appid.as_deref().unwrap_or("-")),
                    esc(&s.first),
                    esc(&s.second),
                    time(Some(s.submitted_at)),
                    time(s.resolved_at),
                    esc(&s.reason)
                );
            }
            body.push_str("</table>");
        }
    }
    if let (Some(service), Some(tokens)) = (&console.categories, &console.tokens) {
        body.push_str(&current_by_authorizer(service, tokens).await);
    }
    Html(page("Categories", Some(&signed.csrf), &body)).into_response()
}

/// What each authorizer has set, as the platform says now (at most 20 accounts).
async fn current_by_authorizer(
    service: &crate::categories::CategoryService,
    tokens: &crate::tokens::TokenService,
) -> String {
    let mut out = String::new();
    let accounts: Vec<String> = tokens
        .list()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            m.status.as_deref() == Some("authorized") || m.kind == crate::tokens::Kind::MiniProgram
        })
        .map(|m| m.appid)
        .take(20)
        .collect();
    for appid in accounts {
        let _ = write!(out, "<h2>Set on {}</h2>", esc(&appid));
        match service.current(&appid).await {
            Err(e) => out.push_str(&failed("cannot read its categories", e)),
            Ok(current) => {
                out.push_str(
                    "<table><tr><th>category</th><th>name</th><th>status</th><th>reason</th></tr>",
                );
                for c in current.categories {
                    let status = match c.audit_status {
                        1 => "in review",
                        2 => "rejected",
                        3 => "passed",
                        _ => "unknown",
                    };
                    let _ = write!(
                        out,
                        r#"<tr><td>{}/{}</td><td>{} / {}</td><td>{status}</td><td class="wrap">{}</td></tr>"#,
                        c.first,
                        c.second,
                        esc(&c.first_name),
                        esc(&c.second_name),
                        esc(&c.audit_reason)
                    );
                }
                out.push_str("</table>");
            }
        }
    }
    out
}
