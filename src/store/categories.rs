//! What the category workflow keeps: submissions and how each was resolved (`source`: the
//! push, or the reconciling pull; and which push arrived after a reconciled result), the
//! settable-category list per account (a 24-hour cache of `getallcategories`), and the media
//! ids uploaded for qualifications, with when each expires (migration 5 of both stores).
//! Also the attempts table of migration 6, which the console lists.

use serde::Serialize;

use crate::clock;
use crate::event::Event;

/// A category submitted with `addcategory`, and what the review said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Submission {
    /// `sub_…` id, or the audit event's id for an audit with no matching submission.
    pub id: String,
    /// The app it was submitted for.
    pub app: String,
    /// The authorizer (Mini Program) a third-party platform submitted for.
    pub authorizer_appid: Option<String>,
    /// First-level category id, as text.
    pub first: String,
    /// Second-level category id, as text.
    pub second: String,
    /// `pending`, `passed`, `rejected` or `unknown`; `unmatched` for an audit result that
    /// matches no submission.
    pub status: String,
    /// The rejection reason.
    pub reason: String,
    /// When it was submitted (unix ms); for unmatched audits, when the result arrived.
    #[serde(serialize_with = "ser_time")]
    pub submitted_at: i64,
    /// When the result arrived (unix ms).
    #[serde(serialize_with = "ser_opt_time")]
    pub resolved_at: Option<i64>,
    /// The audit event that resolved it.
    pub event_id: Option<String>,
    /// How it was resolved: `push` (the platform's push) or `reconciled` (a pull of the
    /// current categories found the result first).
    pub source: Option<String>,
}

impl Submission {
    /// A new pending submission of `first`/`second` for `app` (and `authorizer`), its id
    /// `{prefix}_` and a unique suffix: `sub` for one wxpush submitted, `seen` for one a
    /// pull found in review.
    pub fn pending(
        prefix: &str,
        app: &str,
        authorizer: Option<&str>,
        first: impl ToString,
        second: impl ToString,
    ) -> Self {
        let now = clock::now_ms();
        Self {
            id: format!("{prefix}_{now:x}{:06x}", rand::random::<u32>() & 0xff_ffff),
            app: app.to_owned(),
            authorizer_appid: authorizer.map(str::to_owned),
            first: first.to_string(),
            second: second.to_string(),
            status: "pending".into(),
            reason: String::new(),
            submitted_at: now,
            resolved_at: None,
            event_id: None,
            source: None,
        }
    }

    /// The row for a category-audit event that matched no submission (`None` for any other
    /// event).
    pub(crate) fn unmatched(event: &Event) -> Option<Self> {
        let audit = event.category_audit()?;
        Some(Self {
            id: event.id.clone(),
            app: event.app.clone(),
            authorizer_appid: event.authorizer_appid.clone(),
            first: scalar_text(&audit.first),
            second: scalar_text(&audit.second),
            status: "unmatched".into(),
            reason: audit.reason.clone(),
            submitted_at: event.received_at.unwrap_or_default(),
            resolved_at: event.received_at,
            event_id: Some(event.id.clone()),
            source: Some(event.source().as_str().to_owned()),
        })
    }
}

/// A category id as the text submissions store (empty when absent).
pub(crate) fn scalar_text(value: &Option<crate::event::Scalar>) -> String {
    value.as_ref().map(ToString::to_string).unwrap_or_default()
}

fn ser_time<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&clock::rfc3339(*ms))
}

fn ser_opt_time<S: serde::Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&clock::rfc3339(*ms)),
        None => s.serialize_none(),
    }
}

/// One uploaded media id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MediaRecord {
    /// The platform's media id.
    pub media_id: String,
    /// The configured app it was uploaded through.
    pub app: String,
    /// The account (authorizer or Mini Program app id) it was uploaded for.
    pub appid: String,
    /// The file's name, as given.
    pub file: String,
    /// When the platform created it (unix ms).
    pub created_at: i64,
    /// When it expires (unix ms): temporary media last 3 days.
    pub expires_at: i64,
}

/// The tables and columns of migration 5, the same in both stores.
pub(crate) mod categories_sql {
    /// Settable categories per account, media ids, and how submissions were resolved.
    pub(crate) const TABLES: &str = "
CREATE TABLE IF NOT EXISTS settable_categories (
    appid      text PRIMARY KEY,
    body       text NOT NULL,
    fetched_at bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS media (
    media_id   text PRIMARY KEY,
    app        text NOT NULL,
    appid      text NOT NULL,
    file       text NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL
);
ALTER TABLE submissions ADD COLUMN source text;
ALTER TABLE submissions ADD COLUMN push_event_id text;
";
    /// Migration 6: every attempt's time, duration and error, for the console.
    pub(crate) const ATTEMPTS: &str = "
CREATE TABLE IF NOT EXISTS attempts (
    id          text NOT NULL,
    route       text NOT NULL,
    started_at  bigint NOT NULL,
    duration_ms bigint NOT NULL,
    error       text,
    probe       bigint NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts (id, route, started_at);
CREATE INDEX IF NOT EXISTS attempts_started ON attempts (started_at);
";
    /// A submission row's columns, in [`crate::store::Submission`]'s order.
    pub(crate) const SUBMISSION_COLUMNS: &str = "id, app, authorizer_appid, first, second, status, reason, submitted_at, resolved_at, event_id, source";
}
