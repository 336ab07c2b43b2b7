//! What the stores hold and hand out: records of events with their delivery state,
//! quarantined pushes, category submissions, and the filters and counts over them.

use serde::Serialize;

use crate::clock;
use crate::event::Event;
use crate::push::PushQuery;

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
    /// Dismissed by an operator (`wxpush events discard`): not delivered, kept visible until
    /// retention, no longer counted as dead or quarantined.
    Discarded,
}

impl Status {
    /// The lowercase name, as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
            Self::Quarantined => "quarantined",
            Self::Discarded => "discarded",
        }
    }

    /// Parses a lowercase name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "dead" => Some(Self::Dead),
            "quarantined" => Some(Self::Quarantined),
            "discarded" => Some(Self::Discarded),
            _ => None,
        }
    }
}

/// The route events go to when no `[[routes]]` are configured.
pub const DEFAULT_ROUTE: &str = "default";

/// The route recorded for an event that no configured route takes: stored (deduplicated,
/// kept until retention) and delivered to nobody.
pub const NO_ROUTE: &str = "";

/// One event's delivery to one route: what the dispatcher marks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryKey {
    /// The event id.
    pub id: String,
    /// The route's name.
    pub route: String,
}

impl DeliveryKey {
    /// The delivery of event `id` to `route`.
    pub fn new(id: impl Into<String>, route: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            route: route.into(),
        }
    }
}

/// Which due deliveries [`super::Inbox::due`] hands out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DueQuery {
    /// At most this many.
    pub limit: usize,
    /// Only this route's (a paused route's probe).
    pub only_route: Option<String>,
    /// None of these routes' (paused ones).
    pub skip_routes: Vec<String>,
    /// May skip reading the database when a read moments ago found nothing and new events
    /// wait in memory or none do (the running dispatcher, asking after every attempt);
    /// otherwise the database is read whenever memory has fewer than `limit`.
    pub patient: bool,
}

impl DueQuery {
    /// Up to `limit` due deliveries of any route.
    pub fn any(limit: usize) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// Whether a delivery to `route` belongs in the answer.
    pub fn admits(&self, route: &str) -> bool {
        self.only_route.as_deref().is_none_or(|only| only == route)
            && !self.skip_routes.iter().any(|r| r == route)
    }
}

/// A stored event with the state of its delivery to one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The event (its `id` and `received_at` set).
    pub event: Event,
    /// The route this delivery state is for ([`NO_ROUTE`] when no route takes the event).
    pub route: String,
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
    pub(crate) route: String,
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
            route: row.route,
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

impl Record {
    /// Which delivery this is.
    pub fn key(&self) -> DeliveryKey {
        DeliveryKey::new(self.event.id.clone(), self.route.clone())
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
struct StatusJson<'a> {
    status: Status,
    route: &'a str,
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
                    route: &self.route,
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

/// One attempt to deliver, as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptLog {
    /// The event id.
    pub id: String,
    /// The route.
    pub route: String,
    /// When the handler was called (unix ms).
    pub started_at: i64,
    /// How long it took (ms).
    pub duration_ms: i64,
    /// Why it failed; `None` when it succeeded.
    pub error: Option<String>,
    /// Whether it probed a paused route.
    pub probe: bool,
}

/// Which events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this status (not `Quarantined`: see [`super::Admin::quarantined`]).
    pub status: Option<Status>,
    /// Only this event name (`Event`, `InfoType` or `MsgType`).
    pub event: Option<String>,
    /// Only events of this app (its configured name).
    pub app: Option<String>,
    /// Only deliveries to this route.
    pub route: Option<String>,
    /// Only events received at or after this time (unix ms).
    pub since: Option<i64>,
    /// Only events received before this time (unix ms).
    pub until: Option<i64>,
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
    /// Pushes in quarantine (not discarded).
    pub quarantined: u64,
    /// Deliveries and quarantined pushes discarded by an operator, until retention.
    pub discarded: u64,
    /// Platform retries answered without storing again.
    pub duplicates: u64,
    /// Arrival time of the oldest pending event (unix ms).
    pub oldest_pending_at: Option<i64>,
}
