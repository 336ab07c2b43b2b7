//! Taking due deliveries from the store and starting their attempts: probes of paused
//! routes first, then the other routes' due deliveries, up to the concurrency limit; what
//! cannot be attempted now goes back to the store.

use super::outcomes::Unrecorded;
use super::{Dispatcher, Flight};
use crate::clock;
use crate::store::{DeliveryKey, DueQuery, Record, StoreError};

impl Dispatcher {
    /// Starts attempts up to the concurrency limit: a probe of each paused route whose
    /// probe is due, then due deliveries of the other routes; returns how many started.
    pub(super) async fn fill(
        &self,
        flight: &mut Flight,
        unrecorded: &Unrecorded,
        now: i64,
        patient: bool,
    ) -> Result<usize, StoreError> {
        let room = self
            .policy
            .concurrency
            .max(1)
            .saturating_sub(flight.running.len());
        if room == 0 {
            return Ok(0);
        }
        let mut started = 0;
        let probes = self.breakers().probes_due(now);
        for route in probes {
            let query = DueQuery {
                limit: 1,
                only_route: Some(route.clone()),
                ..DueQuery::default()
            };
            let taken = match self.store.due(now, query).await {
                Ok(taken) if started < room => taken,
                Ok(taken) => {
                    self.give_back_unattempted(taken.iter().map(Record::key).collect())
                        .await;
                    Vec::new()
                }
                Err(error) => {
                    self.breakers().no_probe(&route);
                    return Err(error);
                }
            };
            let before = started;
            started += self.start_all(taken, flight, unrecorded, true).await;
            if started == before {
                self.breakers().no_probe(&route);
            }
        }
        if started < room {
            let query = DueQuery {
                limit: room - started,
                only_route: None,
                skip_routes: self.skipped_routes(),
                patient,
            };
            let due = self.store.due(now, query).await?;
            started += self.start_all(due, flight, unrecorded, false).await;
        }
        Ok(started)
    }

    /// Starts an attempt (a `probe` of a paused route, or not) for each of `records` that
    /// can be attempted now; gives the others back. Returns how many started.
    async fn start_all(
        &self,
        records: Vec<Record>,
        flight: &mut Flight,
        unrecorded: &Unrecorded,
        probe: bool,
    ) -> usize {
        let attempting = self.attempting();
        let mut started = 0;
        let mut unattempted = Vec::new();
        for record in records {
            let key = record.key();
            // A delivery whose outcome is still waiting to be written is not attempted
            // again: it already happened.
            if unrecorded.holds(&key) {
                continue;
            }
            // Its last attempt has recorded a retry due at once, but has not been counted
            // as finished yet: it goes back, to be taken again after.
            if flight.keys.contains(&key) {
                unattempted.push(key);
                continue;
            }
            let Some(handler) = self.handlers.get(&record.route) else {
                self.report_unknown(&record.route);
                unattempted.push(key);
                continue;
            };
            if !self.lease_covers_attempt(&record) {
                unattempted.push(key);
                continue;
            }
            flight.start(&attempting, record, handler.clone(), probe);
            started += 1;
        }
        self.give_back_unattempted(unattempted).await;
        started
    }

    /// Routes whose deliveries are not to be handed out: paused ones, and unknown ones.
    pub(super) fn skipped_routes(&self) -> Vec<String> {
        let mut skip = self.breakers().paused();
        if let Ok(unknown) = self.unknown.lock() {
            skip.extend(unknown.iter().cloned());
        }
        skip
    }

    /// A stored delivery to a route this instance does not have: left pending, reported
    /// once per route.
    fn report_unknown(&self, route: &str) {
        let Ok(mut unknown) = self.unknown.lock() else {
            return;
        };
        if unknown.insert(route.to_owned()) {
            tracing::warn!(
                route = %crate::escape::printable(route),
                "pending deliveries to a route that is not configured are left as they are: add the route back, or discard them with `wxpush events discard --route NAME`"
            );
        }
    }

    /// Leased deliveries not attempted go back at once rather than waiting for their
    /// leases to expire.
    async fn give_back_unattempted(&self, keys: Vec<DeliveryKey>) {
        if keys.is_empty() {
            return;
        }
        if let Err(error) = self.store.release(keys).await {
            tracing::warn!(%error, "cannot release leased deliveries; they are taken again when the lease expires");
        }
    }

    /// Whether an attempt started now would end (at its timeout) before the delivery's
    /// lease does. After the lease another instance may take it, so an attempt that could
    /// outlive it is not started.
    fn lease_covers_attempt(&self, record: &Record) -> bool {
        let Some(lease) = &record.lease else {
            return true;
        };
        let attempt =
            i64::try_from(self.policy.attempt_timeout.as_millis()).unwrap_or(i64::MAX / 4);
        clock::now_ms().saturating_add(attempt) < lease.until
    }
}
