//! New events handed from the write path straight to this instance's dispatcher.
//!
//! A new event is stored "held": leased to the instance that stored it (its
//! `next_attempt_at` set to the lease's end), so database reads for due events skip it.
//! After the commit, its record goes into this queue, and the dispatcher takes it from
//! memory without reading it back. The queue is bounded: when the dispatcher falls behind,
//! new events are stored due at once and reach it (or, on a shared store, any instance)
//! through the database.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{DeliveryKey, DueQuery, Lease, Record, Status};
use crate::event::Event;

/// Most events waiting in memory.
const CAP: usize = 4096;

/// After a read of the database that found nothing, how long a patient dispatcher waits
/// before the next (a new event reaches it from memory meanwhile).
const QUIET: Duration = Duration::from_millis(50);

/// The queue, when the dispatcher last looked in the database, and until when a patient one
/// need not look again.
#[derive(Debug, Default)]
pub(crate) struct Held {
    queue: Mutex<VecDeque<Record>>,
    last_look: Mutex<Option<Instant>>,
    quiet_until: Mutex<Option<Instant>>,
}

impl Held {
    /// Whether new events may be held (the queue is not full).
    pub(crate) fn has_room(&self) -> bool {
        self.queue.lock().map(|q| q.len() < CAP).unwrap_or(false)
    }

    /// Queues the committed new `event`'s delivery to `route`, held by `owner` until
    /// `until` (unix ms).
    pub(crate) fn push(
        &self,
        mut event: Event,
        route: String,
        received_at: i64,
        owner: &str,
        until: i64,
    ) {
        event.received_at = Some(received_at);
        let record = Record {
            event,
            route,
            status: Status::Pending,
            attempts: 0,
            last_error: None,
            next_attempt_at: Some(until),
            delivered_at: None,
            duplicates: 0,
            lease: Some(Lease {
                owner: owner.to_owned(),
                until,
            }),
        };
        if let Ok(mut queue) = self.queue.lock() {
            queue.push_back(record);
        }
    }

    /// Takes up to `n` deliveries, oldest first, that `query` admits, and every one it
    /// refuses on the way (a paused route's: to be given back to the store); says whether
    /// the database should be read as well: when memory had none, and at least once a
    /// second under load, so that retries and replays falling due are not starved by a
    /// steady stream of new events.
    pub(crate) fn take(&self, n: usize, query: &DueQuery) -> (Vec<Record>, Vec<DeliveryKey>, bool) {
        let (mut taken, mut refused) = (Vec::new(), Vec::new());
        if let Ok(mut queue) = self.queue.lock() {
            while taken.len() < n {
                let Some(record) = queue.pop_front() else {
                    break;
                };
                if query.admits(&record.route) {
                    taken.push(record);
                } else {
                    refused.push(record.key());
                }
            }
        }
        let quiet = query.patient
            && self
                .quiet_until
                .lock()
                .map(|until| until.is_some_and(|t| Instant::now() < t))
                .unwrap_or(false);
        let look = match self.last_look.lock() {
            Ok(mut last) => {
                let look = (taken.is_empty() && !quiet)
                    || last.is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
                if look {
                    *last = Some(Instant::now());
                }
                look
            }
            Err(_) => true,
        };
        (taken, refused, look)
    }

    /// What a read of the database found: after nothing, a patient dispatcher skips reads
    /// for [`QUIET`].
    pub(crate) fn looked(&self, found: bool) {
        if let Ok(mut until) = self.quiet_until.lock() {
            *until = (!found).then(|| Instant::now() + QUIET);
        }
    }
}
