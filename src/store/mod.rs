//! The durable inbox: events are stored (and fsync'ed) before the push is acknowledged,
//! deduplicated by event id, and handed out for delivery until the handler accepts them.
//!
//! [`Store`] is the interface the request path, the dispatcher and the CLI use; [`sqlite`]
//! is the embedded implementation. A shared server store can implement the same trait.

mod held;
pub mod postgres;
pub mod sqlite;

use serde::Serialize;

use crate::clock;
use crate::event::Event;
use crate::push::PushQuery;
use futures_util::future::BoxFuture;

pub use postgres::{PostgresConfig, PostgresStore};
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

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for (another) delivery attempt.
    Pending,
    /// The handler returned `Ok`.
    Delivered,
    /// Every attempt failed; kept until replayed.
    Dead,
    /// Genuine but not decryptable or out of the replay window; kept raw until re-processed.
    Quarantined,
}

impl Status {
    /// The lowercase name, as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
            Self::Quarantined => "quarantined",
        }
    }

    /// Parses a lowercase name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "dead" => Some(Self::Dead),
            "quarantined" => Some(Self::Quarantined),
            _ => None,
        }
    }
}

/// A stored event with its delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The event (its `id` and `received_at` set).
    pub event: Event,
    /// Delivery state.
    pub status: Status,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When the next attempt is due (unix ms), while pending.
    pub next_attempt_at: Option<i64>,
    /// When the handler accepted it (unix ms).
    pub delivered_at: Option<i64>,
    /// How many platform retries of it were answered without storing it again.
    pub duplicates: u32,
    /// Which instance holds it for delivery, until when (shared stores only).
    pub lease: Option<Lease>,
}

/// An event's columns as a store reads them back.
pub(crate) struct StoredEvent {
    pub(crate) id: String,
    pub(crate) received_at: i64,
    pub(crate) status: Status,
    pub(crate) app: String,
    pub(crate) authorizer_appid: Option<String>,
    pub(crate) message: String,
    pub(crate) attempts: u32,
    pub(crate) last_error: Option<String>,
    pub(crate) next_attempt_at: Option<i64>,
    pub(crate) delivered_at: Option<i64>,
    pub(crate) duplicates: u32,
    pub(crate) lease: Option<Lease>,
}

impl From<StoredEvent> for Record {
    /// Parses the stored message again; the handler sees the delivery state the inbox
    /// records.
    fn from(row: StoredEvent) -> Self {
        let mut event = Event::from_message(row.message, &row.app, row.authorizer_appid.as_deref());
        event.id = row.id;
        event.received_at = Some(row.received_at);
        event.attempts = row.attempts;
        event.last_error.clone_from(&row.last_error);
        Self {
            event,
            status: row.status,
            attempts: row.attempts,
            last_error: row.last_error,
            next_attempt_at: row.next_attempt_at,
            delivered_at: row.delivered_at,
            duplicates: row.duplicates,
            lease: row.lease,
        }
    }
}

/// An instance's claim on a pending event while it attempts delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The instance (`host/pid/random`).
    pub owner: String,
    /// When the claim expires and other instances may take the event (unix ms).
    pub until: i64,
}

#[derive(Serialize)]
struct StatusJson {
    status: Status,
}

#[derive(Serialize)]
struct DeliveryJson<'a> {
    attempts: u32,
    last_error: Option<&'a str>,
}

impl Serialize for Record {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.event
            .json_with(
                StatusJson {
                    status: self.status,
                },
                DeliveryJson {
                    attempts: self.attempts,
                    last_error: self.last_error.as_deref(),
                },
            )
            .serialize(serializer)
    }
}

/// A genuine push that could not be turned into an event with the configuration at the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedPush {
    /// `q_…` id.
    pub id: String,
    /// When it arrived (unix ms).
    pub received_at: i64,
    /// The app whose route received it.
    pub app: String,
    /// The authorizer app id from the route, if any.
    pub authorizer_appid: Option<String>,
    /// The request's query.
    pub query: PushQuery,
    /// The request's body, as received.
    pub body: Vec<u8>,
    /// Why it could not be processed.
    pub reason: String,
}

impl QuarantinedPush {
    /// A new quarantine entry with a fresh id, received now.
    pub fn new(
        app: &str,
        authorizer_appid: Option<&str>,
        query: PushQuery,
        body: Vec<u8>,
        reason: String,
    ) -> Self {
        let received_at = clock::now_ms();
        Self {
            id: format!("q_{received_at:x}{:08x}", rand::random::<u32>()),
            received_at,
            app: app.to_owned(),
            authorizer_appid: authorizer_appid.map(str::to_owned),
            query,
            body,
            reason,
        }
    }
}

impl Serialize for QuarantinedPush {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json<'a> {
            id: &'a str,
            received_at: String,
            status: Status,
            app: &'a str,
            authorizer_appid: Option<&'a str>,
            reason: &'a str,
            body_bytes: usize,
        }
        Json {
            id: &self.id,
            received_at: clock::rfc3339(self.received_at),
            status: Status::Quarantined,
            app: &self.app,
            authorizer_appid: self.authorizer_appid.as_deref(),
            reason: &self.reason,
            body_bytes: self.body.len(),
        }
        .serialize(serializer)
    }
}

/// What storing an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First time: stored, pending delivery.
    New,
    /// Already stored (a platform retry): counted, not stored again.
    Duplicate,
    /// The same signed request (signature, timestamp and nonce) was already received, on
    /// another path or with another body: a replayed copy. Nothing is stored or changed.
    Replay,
}

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
}

impl Submission {
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

/// Which events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this status (not `Quarantined`: see [`Store::quarantined`]).
    pub status: Option<Status>,
    /// Only this event name (`Event`, `InfoType` or `MsgType`).
    pub event: Option<String>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// Counts over the inbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Events waiting for delivery.
    pub pending: u64,
    /// Events delivered (and not yet pruned).
    pub delivered: u64,
    /// Events whose attempts are exhausted.
    pub dead: u64,
    /// Pushes in quarantine.
    pub quarantined: u64,
    /// Platform retries answered without storing again.
    pub duplicates: u64,
    /// Arrival time of the oldest pending event (unix ms).
    pub oldest_pending_at: Option<i64>,
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

/// The inbox's operations. Every write is durable when its future completes.
pub trait Store: Send + Sync + 'static {
    /// Stores `event` (received now) unless an event with its id exists, in which case the
    /// duplicate is counted. With a `request_key` ([`crate::push::Message::request_key`]),
    /// a request already seen that would make a new event is a [`Recorded::Replay`] and
    /// stores nothing, on every instance sharing the store.
    fn record(
        &self,
        event: Event,
        request_key: Option<String>,
    ) -> BoxFuture<'_, Result<Recorded, StoreError>>;

    /// Stores a push that could not be processed: [`Recorded::New`], or
    /// [`Recorded::Replay`] when its `request_key` was already seen (nothing stored).
    fn quarantine(
        &self,
        push: QuarantinedPush,
        request_key: Option<String>,
    ) -> BoxFuture<'_, Result<Recorded, StoreError>>;

    /// Pending events due at `now` (unix ms), oldest arrival first. A shared store leases
    /// them to this instance so no other instance takes them.
    fn due(&self, now: i64, limit: usize) -> BoxFuture<'_, Result<Vec<Record>, StoreError>>;

    /// When the earliest pending event is due, if any.
    fn next_due_at(&self) -> BoxFuture<'_, Result<Option<i64>, StoreError>>;

    /// Marks an attempt successful.
    fn mark_delivered(&self, id: String) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Marks an attempt failed: retried at `retry_at` (unix ms), or dead when `None`.
    fn mark_failed(
        &self,
        id: String,
        error: String,
        retry_at: Option<i64>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// One event by id.
    fn get(&self, id: String) -> BoxFuture<'_, Result<Option<Record>, StoreError>>;

    /// Events matching `filter`, newest first.
    fn list(&self, filter: ListFilter) -> BoxFuture<'_, Result<Vec<Record>, StoreError>>;

    /// Makes these events pending again, due now; returns how many exist.
    fn replay(&self, ids: Vec<String>) -> BoxFuture<'_, Result<usize, StoreError>>;

    /// Makes every dead event pending again; returns how many.
    fn replay_dead(&self) -> BoxFuture<'_, Result<usize, StoreError>>;

    /// Quarantined pushes, oldest first.
    fn quarantined(&self, limit: usize) -> BoxFuture<'_, Result<Vec<QuarantinedPush>, StoreError>>;

    /// Replaces a quarantined push by the event it turned out to be, atomically.
    fn release_quarantined(
        &self,
        quarantine_id: String,
        event: Event,
    ) -> BoxFuture<'_, Result<Recorded, StoreError>>;

    /// Records a new reason for a push that still cannot be processed.
    fn requarantine(
        &self,
        quarantine_id: String,
        reason: String,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Counts.
    fn stats(&self) -> BoxFuture<'_, Result<Stats, StoreError>>;

    /// Deletes delivered events delivered before `before` (unix ms), and the memory of
    /// requests received before it; returns how many events.
    fn prune(&self, before: i64) -> BoxFuture<'_, Result<usize, StoreError>>;

    /// Records a category submission as pending.
    fn record_submission(&self, submission: Submission) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Submissions (newest first), then audit results that matched no submission.
    fn submissions(&self) -> BoxFuture<'_, Result<Vec<Submission>, StoreError>>;

    /// Checks that the store can still write. With `grow_bytes` above 0, the check writes
    /// (and then removes) that much new data, so it needs new space as pushes do: a one-row
    /// update can still fit in pages the store already has when a push no longer does.
    fn check_writable(&self, grow_bytes: usize) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Gives back events handed to this instance that it did not attempt, so they are due
    /// at once.
    fn release(&self, ids: Vec<String>) -> BoxFuture<'_, Result<(), StoreError>>;

    /// When this instance's dispatcher starts: events an earlier run of it held (and did
    /// not give back) become due now; returns how many.
    fn take_over(&self) -> BoxFuture<'_, Result<usize, StoreError>>;

    /// On shutdown: gives back every event handed to this instance except `keep` (an
    /// attempt abandoned mid-way, left to its lease); returns how many.
    fn release_all(&self, keep: Vec<String>) -> BoxFuture<'_, Result<usize, StoreError>>;
}
