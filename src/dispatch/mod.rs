//! Delivery out of the request path: the dispatcher takes due events from the store in
//! arrival order, calls the handler with a per-attempt timeout, and records the outcome:
//! delivered after `Ok`, else retried with exponential backoff and jitter, and `dead` after
//! the last attempt.
//!
//! It wakes when the request path stores a new event, when a retry falls due, and once a
//! second (to pick up replays made by the events CLI, or events stored by other replicas
//! on a shared store). On a shared store the events it takes are leased to it; it starts an
//! attempt only while the lease outlasts the attempt's timeout, and gives back the events
//! it did not attempt. On shutdown it
//! lets the attempt in flight finish for a short grace period; an unfinished event stays
//! pending and is delivered after the restart.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::clock;
use futures_util::future::BoxFuture;

use crate::handler::BoxHandler;
use crate::observe::{self, Metrics};
use crate::store::{Record, Store, StoreError};

mod outcomes;
mod prune;

use outcomes::{Outcome, Unrecorded};
pub use prune::prune_periodically;

/// How often the dispatcher looks at the store when nothing wakes it.
const POLL: Duration = Duration::from_secs(1);

/// How long an attempt in flight may continue after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Events fetched per look at the store.
const BATCH: usize = 64;

/// Retry policy for handler calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Longest a single handler call may take; longer counts as a failure.
    pub attempt_timeout: Duration,
    /// Attempts before an event is `dead` (at least 1).
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles after each failure.
    pub backoff_initial: Duration,
    /// Upper bound of the delay.
    pub backoff_max: Duration,
}

impl DeliveryPolicy {
    /// The delay after `failures` failed attempts: `initial * 2^(failures-1)`, capped, then
    /// scaled by a random factor in [0.5, 1] so that retries do not move in lockstep.
    pub fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        let base = self
            .backoff_initial
            .saturating_mul(1u32 << exp)
            .min(self.backoff_max);
        base.mul_f64(0.5 + rand::random::<f64>() * 0.5)
    }
}

/// Wakes the dispatcher when a new event is stored.
#[derive(Debug, Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    /// Signals that an event is waiting.
    pub fn notify(&self) {
        self.0.notify_one();
    }
}

/// Delivers stored events to the handler.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    handler: BoxHandler,
    policy: DeliveryPolicy,
    wake: Wake,
    metrics: Metrics,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A dispatcher over `store`; `wake` is the signal the request path uses.
    pub fn new(
        store: Arc<dyn Store>,
        handler: BoxHandler,
        policy: DeliveryPolicy,
        wake: Wake,
    ) -> Self {
        Self {
            store,
            handler,
            policy,
            wake,
            metrics: Metrics::new(),
        }
    }

    /// Counts into `metrics` (the server's registry) instead of a registry of its own.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        self.resume().await;
        let mut state = Round::default();
        while !*shutdown.borrow() {
            state.unrecorded.apply(&*self.store).await;
            let now = clock::now_ms();
            match self.step(now, &mut state, &mut shutdown).await {
                Ok(Step::Attempted { .. }) => {}
                Ok(Step::Empty) => {
                    let next = self.store.next_due_at().await.ok().flatten();
                    let wait = next.map_or(POLL, |at| {
                        Duration::from_millis(u64::try_from(at - now).unwrap_or(0)).min(POLL)
                    });
                    self.idle(wait, &mut shutdown).await;
                }
                Err(error) => {
                    tracing::error!(%error, "dispatcher: cannot read pending events");
                    self.idle(POLL, &mut shutdown).await;
                }
            }
        }
        state.unrecorded.apply(&*self.store).await;
        state.unrecorded.report_left();
        self.give_back(state.abandoned).await;
        tracing::debug!("dispatcher stopped");
    }

    /// One step, for tests: attempts every event due now, records the outcomes, and says
    /// how it went; [`Step::Empty`] means nothing was due, so nothing more will happen
    /// until something is stored, replayed or falls due.
    ///
    /// # Errors
    /// The store's, when it cannot say what is due.
    pub async fn deliver_due(&self) -> Result<Step, StoreError> {
        let (_keep_open, mut never) = watch::channel(false);
        let mut state = Round::default();
        let step = self.step(clock::now_ms(), &mut state, &mut never).await;
        state.unrecorded.apply(&*self.store).await;
        step
    }

    /// Takes what is due at `now` and attempts it, in arrival order.
    async fn step(
        &self,
        now: i64,
        state: &mut Round,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Step, StoreError> {
        // An event whose outcome is still waiting to be written is not attempted again:
        // its delivery already happened.
        let due: Vec<Record> = self
            .store
            .due(now, BATCH)
            .await?
            .into_iter()
            .filter(|r| !state.unrecorded.holds(&r.event.id))
            .collect();
        if due.is_empty() {
            return Ok(Step::Empty);
        }
        // Marks of successful deliveries are queued as they happen and awaited together
        // after the batch, so they share the store's group commit instead of one fsync per
        // event. Until then a crash only means those events are delivered again.
        let (mut marks, mut failed) = (Vec::new(), 0);
        let mut due = due.into_iter();
        while let Some(record) = due.next() {
            if *shutdown.borrow() || !self.lease_covers_attempt(&record) {
                // Leased events not attempted go back at once rather than waiting for
                // their lease to expire.
                let unattempted = std::iter::once(record)
                    .chain(due.by_ref())
                    .map(|r| r.event.id)
                    .collect();
                if let Err(error) = self.store.release(unattempted).await {
                    tracing::warn!(%error, "cannot release leased events; they are taken again when the lease expires");
                }
                break;
            }
            match self.attempt(record, shutdown).await {
                Attempt::Delivered(id, mark) => marks.push((id, mark)),
                Attempt::Failed(outcome, written) => {
                    failed += 1;
                    if let Err(error) = written {
                        state.unrecorded.keep(outcome, &error);
                    }
                }
                Attempt::Abandoned(id) => state.abandoned.push(id),
            }
        }
        let delivered = marks.len();
        for (id, mark) in marks {
            if let Err(error) = mark.await {
                state.unrecorded.keep(Outcome::Delivered(id), &error);
            }
        }
        Ok(Step::Attempted { delivered, failed })
    }

    /// On start: events an earlier run of this instance held become due now.
    async fn resume(&self) {
        match self.store.take_over().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                events = n,
                "resuming delivery of events held by the previous run"
            ),
            Err(error) => {
                tracing::warn!(%error, "cannot resume events held by the previous run; they fall due within the hour")
            }
        }
    }

    /// On shutdown: on a shared store, events leased to this instance go back to the others
    /// now rather than when their leases expire; an abandoned attempt keeps its lease, as it
    /// may still be running in the handler's world.
    async fn give_back(&self, abandoned: Vec<String>) {
        match self.store.release_all(abandoned).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                released = n,
                "shutdown: gave back leased events to the other instances"
            ),
            Err(error) => {
                tracing::warn!(%error, "shutdown: cannot give back leased events; other instances take them when the leases expire")
            }
        }
    }

    /// Whether an attempt started now would end (at its timeout) before the event's lease
    /// does. After the lease another instance may take the event, so an attempt that could
    /// outlive it is not started.
    fn lease_covers_attempt(&self, record: &Record) -> bool {
        let Some(lease) = &record.lease else {
            return true;
        };
        let attempt =
            i64::try_from(self.policy.attempt_timeout.as_millis()).unwrap_or(i64::MAX / 4);
        clock::now_ms().saturating_add(attempt) < lease.until
    }

    async fn idle(&self, wait: Duration, shutdown: &mut watch::Receiver<bool>) {
        tokio::select! {
            () = self.wake.0.notified() => {}
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }

    /// One handler call. After a success, returns the queued (not yet awaited) write that
    /// marks the event delivered.
    async fn attempt(&self, record: Record, shutdown: &mut watch::Receiver<bool>) -> Attempt<'_> {
        let event = &record.event;
        self.metrics
            .record(|| metrics::counter!(observe::DELIVERY_ATTEMPTS).increment(1));
        let started = std::time::Instant::now();
        let call = tokio::time::timeout(self.policy.attempt_timeout, self.handler.handle(event));
        tokio::pin!(call);
        let outcome = tokio::select! {
            outcome = &mut call => outcome,
            _ = shutdown.changed() => match tokio::time::timeout(SHUTDOWN_GRACE, &mut call).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    tracing::warn!(id = %event.id, "shutdown: delivery still running; the event stays pending and is delivered after restart");
                    return Attempt::Abandoned(event.id.clone());
                }
            },
        };
        self.metrics.record(|| {
            metrics::histogram!(observe::DELIVERY_DURATION).record(started.elapsed().as_secs_f64());
        });
        let error = match outcome {
            Ok(Ok(())) => {
                if record.attempts > 0 {
                    tracing::info!(id = %event.id, event = event.name(), attempt = record.attempts + 1, "delivered after earlier failures");
                } else {
                    tracing::debug!(id = %event.id, event = event.name(), "delivered");
                }
                return Attempt::Delivered(
                    event.id.clone(),
                    self.store.mark_delivered(event.id.clone()),
                );
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!(
                "handler timed out after {} s",
                self.policy.attempt_timeout.as_secs_f64()
            ),
        };
        let failures = record.attempts.saturating_add(1);
        let outcome = if failures < self.policy.max_attempts {
            "retry"
        } else {
            "dead"
        };
        self.metrics.record(|| {
            metrics::counter!(observe::DELIVERY_FAILURES, "outcome" => outcome).increment(1);
        });
        let retry_at = (failures < self.policy.max_attempts).then(|| {
            let delay = self.policy.backoff(failures);
            clock::now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2)
        });
        match retry_at {
            Some(at) => tracing::warn!(
                id = %event.id, event = event.name(), attempt = failures, %error,
                retry_in_ms = at - clock::now_ms(), "handler failed; will retry"
            ),
            None => tracing::error!(
                id = %event.id, event = event.name(), attempts = failures, %error,
                "handler failed on the last attempt; the event is dead (replay it with `wxpush events replay {}`)",
                event.id
            ),
        }
        let outcome = Outcome::Failed {
            id: event.id.clone(),
            error,
            retry_at,
        };
        let written = outcome.write(&*self.store).await;
        Attempt::Failed(outcome, written)
    }
}

/// What one step of the dispatcher did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Events were due: this many were delivered, this many failed (and were rescheduled or
    /// are dead).
    Attempted {
        /// Accepted by the handler.
        delivered: usize,
        /// Refused by the handler, or timed out.
        failed: usize,
    },
    /// Nothing was due.
    Empty,
}

/// What the dispatcher carries from one step to the next.
#[derive(Debug, Default)]
struct Round {
    /// Outcomes the store refused, written again before every step.
    unrecorded: Unrecorded,
    /// Attempts still running when shutdown's grace ended: left to their leases.
    abandoned: Vec<String>,
}

/// How one handler call ended.
enum Attempt<'a> {
    /// Accepted; the write marking it delivered is queued.
    Delivered(String, BoxFuture<'a, Result<(), StoreError>>),
    /// Failed, with whether recording the failure succeeded.
    Failed(Outcome, Result<(), StoreError>),
    /// Still running when shutdown's grace period ended.
    Abandoned(String),
}

#[cfg(test)]
mod tests;
