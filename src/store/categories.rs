//! What the category workflow keeps besides submissions: the settable-category list per
//! account (a 24-hour cache of `getallcategories`), and the media ids uploaded for
//! qualifications, with when each expires. Migration 5 of both stores also records how each
//! submission was resolved (`source`: the push, or the reconciling pull) and which push
//! arrived after a reconciled result.

use serde::Serialize;

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
