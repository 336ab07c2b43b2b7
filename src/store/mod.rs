//! The durable inbox: events are stored (and fsync'ed) before the push is acknowledged,
//! deduplicated by event id, and handed out for delivery until the handler accepts them.
//!
//! [`Store`] is the interface the request path, the dispatcher and the CLI use; [`sqlite`]
//! is the embedded implementation. A shared server store can implement the same trait.

mod categories;
mod credentials;
mod held;
pub mod postgres;
pub mod sqlite;

use crate::event::Event;
use futures_util::future::BoxFuture;

mod record;

pub(crate) use categories::categories_sql;
pub(crate) use categories::scalar_text;
pub use categories::{MediaRecord, Submission};
pub(crate) use credentials::credentials_sql;
pub use credentials::{
    CredentialWrite, Credentials, RefreshLock, StoredAuthorizer, StoredTicket, StoredToken,
};
pub use postgres::{PostgresConfig, PostgresStore};
pub(crate) use record::StoredEvent;
pub use record::{
    AttemptLog, DEFAULT_ROUTE, DeliveryKey, DueQuery, Lease, ListFilter, NO_ROUTE, QuarantinedPush,
    Record, Recorded, Stats, Status,
};
pub use sqlite::SqliteStore;

/// Which inbox the server and the CLI use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded SQLite file in `data_dir` (the default; one instance).
    Sqlite,
    /// A PostgreSQL database shared by any number of replicas.
    Postgres(PostgresConfig),
}

impl StoreKind {
    /// The name used in configuration.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// A store failure. The request path answers 503 on any of them, so the platform retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store could not be opened.
    #[error("cannot open the store at {path}: {reason}")]
    Open {
        /// The database path.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The disk (or the store's size limit) is full.
    #[error("the store is full (disk full?): {0}")]
    Full(String),
    /// The store's files are not writable.
    #[error("the store is read-only: {0}")]
    ReadOnly(String),
    /// Any other database error.
    #[error("store error: {0}")]
    Database(String),
    /// The store has shut down.
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// A stored status this build does not know: a newer wxpush wrote it, or the row was
    /// edited. Reading it as any known status would misstate the event, so it is an error.
    pub(crate) fn unknown_status(status: &str) -> Self {
        Self::Database(format!(
            "an event has the unknown status '{}' (written by a newer wxpush, or edited by hand)",
            crate::escape::printable(&status.chars().take(32).collect::<String>())
        ))
    }

    /// What went wrong, without the kind's prefix (for messages that already say it).
    pub fn detail(&self) -> String {
        match self {
            Self::Full(text) | Self::ReadOnly(text) | Self::Database(text) => text.clone(),
            Self::Open { reason, .. } => reason.clone(),
            Self::Closed => self.to_string(),
        }
    }
}

/// What the request path and the dispatcher use: storing pushes and handing events out
/// for delivery. Every write is durable when its future completes.
pub trait Inbox: Send + Sync + 'static {
    /// Stores `event` (received now) for delivery to the route `default` unless an event
    /// with its id exists; as [`Inbox::record_routed`].
    fn record(
        &self,
        event: Event,
        request_key: Option<String>,
    ) -> BoxFuture<'_, Result<Recorded, StoreError>> {
        self.record_routed(event, request_key, vec![DEFAULT_ROUTE.to_owned()])
    }

    /// Stores `event` (received now), one delivery per route in `routes` (none: kept as
    /// [`NO_ROUTE`], delivered), unless an event with its id exists, in which case the
    /// duplicate is counted. With a `request_key` ([`crate::push::Message::request_key`]),
    /// a request already seen that would make a new event is a [`Recorded::Replay`] and
    /// stores nothing, on every instance sharing the store.
    fn record_routed(
        &self,
        event: Event,
        request_key: Option<String>,
        routes: Vec<String>,
    ) -> BoxFuture<'_, Result<Recorded, StoreError>>;

    /// Stores a push that could not be processed: [`Recorded::New`], or
    /// [`Recorded::Replay`] when its `request_key` was already seen (nothing stored).
    fn quarantine(
        &self,
        push: QuarantinedPush,
        request_key: Option<String>,
    ) -> BoxFuture<'_, Result<Recorded, StoreError>>;

    /// Pending deliveries due at `now` (unix ms), oldest arrival first, each the oldest
    /// pending one of its route and ordering key (so deliveries sharing a key are handed
    /// out one at a time, in arrival order). They are leased to this instance: no other
    /// caller gets them until they are marked, released, or the lease expires.
    fn due(&self, now: i64, query: DueQuery) -> BoxFuture<'_, Result<Vec<Record>, StoreError>>;

    /// When the earliest pending delivery that [`Inbox::due`] could hand out falls due,
    /// if any, leaving out the routes in `skip_routes`.
    fn next_due_at(
        &self,
        skip_routes: Vec<String>,
    ) -> BoxFuture<'_, Result<Option<i64>, StoreError>>;

    /// Marks an attempt successful.
    fn mark_delivered(&self, key: DeliveryKey) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Marks an attempt failed: retried at `retry_at` (unix ms), or dead when `None`.
    fn mark_failed(
        &self,
        key: DeliveryKey,
        error: String,
        retry_at: Option<i64>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Records a failed probe of a paused route: the error, and the next attempt at
    /// `retry_at` (unix ms), without counting an attempt (the route was down, the
    /// delivery's schedule waits).
    fn mark_unavailable(
        &self,
        key: DeliveryKey,
        error: String,
        retry_at: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Keeps the record of one attempt (its time, duration and error) for the console;
    /// pruned with the deliveries.
    fn log_attempt(&self, log: AttemptLog) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Gives back deliveries handed to this instance that it did not attempt, so they
    /// are due at once.
    fn release(&self, keys: Vec<DeliveryKey>) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Makes every pending delivery of `route` that nobody holds due now (a paused route
    /// resumed: what it held back goes at once); returns how many.
    fn expedite(&self, route: String) -> BoxFuture<'_, Result<usize, StoreError>>;

    /// When this instance's dispatcher starts: deliveries an earlier run of it held (and
    /// did not give back) become due now; returns how many.
    fn take_over(&self) -> BoxFuture<'_, Result<usize, StoreError>>;

    /// On shutdown: gives back every delivery handed to this instance except `keep` (an
    /// attempt abandoned mid-way, left to its lease); returns how many.
    fn release_all(&self, keep: Vec<DeliveryKey>) -> BoxFuture<'_, Result<usize, StoreError>>;

    /// Checks that the store can still write. With `grow_bytes` above 0, the check writes
    /// (and then removes) that much new data, so it needs new space as pushes do: a one-row
    /// update can still fit in pages the store already has when a push no longer does.
    fn check_writable(&self, grow_bytes: usize) -> BoxFuture<'_, Result<(), StoreError>>;
}

/// What operators use: looking at the inbox and repairing it (the CLI, `/metrics`).
pub trait Admin: Send + Sync + 'static {
    /// One event by id: a record per route, in route order (empty when unknown).
    fn get(&self, id: String) -> BoxFuture<'_, Result<Vec<Record>, StoreError>>;

    /// The attempts made to deliver event `id`, by route, oldest first.
    fn attempts(&self, id: String) -> BoxFuture<'_, Result<Vec<AttemptLog>, StoreError>>;

    /// Events matching `filter`, newest first.
    fn list(&self, filter: ListFilter) -> BoxFuture<'_, Result<Vec<Record>, StoreError>>;

    /// Makes every route's delivery of these events pending again, due now (as
    /// [`Admin::replay_deliveries`]); returns how many.
    fn replay(&self, ids: Vec<String>) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let mut keys = Vec::new();
            for id in ids {
                keys.extend(self.get(id).await?.iter().map(Record::key));
            }
            self.replay_deliveries(keys).await
        })
    }

    /// Makes every dead delivery pending again; returns how many.
    fn replay_dead(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let filter = ListFilter {
                status: Some(Status::Dead),
                ..ListFilter::default()
            };
            let keys = self.deliveries_matching(filter).await?;
            self.replay_deliveries(keys.into_iter().map(|(key, _)| key).collect())
                .await
        })
    }

    /// The deliveries `filter` selects (not its `limit`), oldest first, with their status:
    /// what a bulk replay or discard would touch.
    fn deliveries_matching(
        &self,
        filter: ListFilter,
    ) -> BoxFuture<'_, Result<Vec<(DeliveryKey, Status)>, StoreError>>;

    /// Makes these deliveries pending again, due now, with a fresh schedule (one being
    /// attempted right now is left to finish); returns how many exist.
    fn replay_deliveries(&self, keys: Vec<DeliveryKey>)
    -> BoxFuture<'_, Result<usize, StoreError>>;

    /// Discards these deliveries, when dead or pending (not while being attempted): not
    /// delivered, kept as `discarded` until retention; returns how many.
    fn discard(&self, keys: Vec<DeliveryKey>) -> BoxFuture<'_, Result<usize, StoreError>>;

    /// Discards these quarantined pushes: kept until retention, no longer listed, counted
    /// or re-processed; returns how many.
    fn discard_quarantined(&self, ids: Vec<String>) -> BoxFuture<'_, Result<usize, StoreError>>;

    /// Quarantined pushes (not discarded), oldest first.
    fn quarantined(&self, limit: usize) -> BoxFuture<'_, Result<Vec<QuarantinedPush>, StoreError>>;

    /// Replaces a quarantined push by the event it turned out to be (for delivery to
    /// `routes`, as [`Inbox::record_routed`]), atomically.
    fn release_quarantined(
        &self,
        quarantine_id: String,
        event: Event,
        routes: Vec<String>,
    ) -> BoxFuture<'_, Result<Recorded, StoreError>>;

    /// Records a new reason for a push that still cannot be processed.
    fn requarantine(
        &self,
        quarantine_id: String,
        reason: String,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Counts.
    fn stats(&self) -> BoxFuture<'_, Result<Stats, StoreError>>;

    /// Deletes deliveries delivered or discarded before `before` (unix ms), quarantined
    /// pushes discarded before it, and the memory of requests received before it; returns
    /// how many deliveries.
    fn prune(&self, before: i64) -> BoxFuture<'_, Result<usize, StoreError>>;
}

/// The category submissions `add-category` records and audit results resolve.
pub trait Submissions: Send + Sync + 'static {
    /// Records a category submission as pending.
    fn record_submission(&self, submission: Submission) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Submissions (newest first), then audit results that matched no submission.
    fn submissions(&self) -> BoxFuture<'_, Result<Vec<Submission>, StoreError>>;

    /// The submission `id`.
    fn submission(&self, id: String) -> BoxFuture<'_, Result<Option<Submission>, StoreError>>;

    /// Submissions still waiting for their result, oldest first.
    fn pending_submissions(&self) -> BoxFuture<'_, Result<Vec<Submission>, StoreError>>;

    /// A pushed audit result (`event_id`, for `app`/`authorizer` and `first`/`second`)
    /// that a reconciling pull already reported, with the same result: the push is noted on
    /// that submission, and the id of the event the pull delivered is returned. `None`:
    /// the push is news.
    fn already_known(&self, audit: KnownAudit)
    -> BoxFuture<'_, Result<Option<String>, StoreError>>;

    /// Keeps `appid`'s settable-category list (the platform's JSON) as fetched at `at`.
    fn cache_settable(
        &self,
        appid: String,
        body: String,
        at: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// `appid`'s cached settable-category list and when it was fetched.
    fn settable(&self, appid: String) -> BoxFuture<'_, Result<Option<(String, i64)>, StoreError>>;

    /// Remembers an uploaded media id.
    fn record_media(&self, media: MediaRecord) -> BoxFuture<'_, Result<(), StoreError>>;

    /// An uploaded media id wxpush remembers.
    fn media(&self, media_id: String) -> BoxFuture<'_, Result<Option<MediaRecord>, StoreError>>;
}

/// A pushed category-audit result, to compare with what a reconciling pull reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownAudit {
    /// The push's event id.
    pub event_id: String,
    /// The configured app.
    pub app: String,
    /// The authorizer, when known.
    pub authorizer_appid: Option<String>,
    /// First-level category id, as text.
    pub first: String,
    /// Second-level category id, as text.
    pub second: String,
    /// `passed` or `rejected`.
    pub result: String,
}

/// A whole store: every store implements all four, and callers that need more than one
/// (the composition root, the CLI) hold it as `dyn Store`.
pub trait Store: Inbox + Admin + Submissions + Credentials {}

impl<T: Inbox + Admin + Submissions + Credentials> Store for T {}
