//! One handler call: the attempt, its timeout, its metrics and logs, and the write that
//! records its outcome.

use std::sync::Arc;
use std::time::Instant;

use super::outcomes::Outcome;
use super::{Alert, AlertKind, Alerts, DeliveryPolicy};
use crate::clock;
use crate::handler::BoxHandler;
use crate::observe::{self, Metrics};
use crate::store::{AttemptLog, DeliveryKey, KnownAudit, Record, Store, StoreError, scalar_text};

/// What an attempt needs, owned: each attempt runs as a task of its own, so that attempts
/// waiting on the store (or the handler) never wait for the dispatcher to poll them.
#[derive(Clone)]
pub(super) struct Attempting {
    pub(super) store: Arc<dyn Store>,
    pub(super) policy: Arc<DeliveryPolicy>,
    pub(super) metrics: Metrics,
    pub(super) alerts: Alerts,
}

/// How an attempt ended.
pub(super) struct Finished {
    /// Whether the handler accepted the event.
    pub(super) success: bool,
    /// What was recorded.
    pub(super) outcome: Outcome,
    /// Whether the store took the record.
    pub(super) written: Result<(), StoreError>,
}

impl Attempting {
    /// Calls `handler` with the delivery's event and records the outcome: delivered, or
    /// failed with its next attempt along the schedule, or dead after the schedule's end.
    /// A failed `probe` of a paused route does not count: the delivery waits for the next
    /// probe with its schedule untouched.
    pub(super) async fn attempt(
        self,
        record: Record,
        handler: BoxHandler,
        probe: bool,
    ) -> Finished {
        let event = &record.event;
        let route = record.route.clone();
        if let Some(reconciled) = self.already_known(&record).await {
            tracing::info!(id = %event.id, route = %route, reconciled = %reconciled, "category audit push not delivered: its result was already delivered as the reconciled event");
            let outcome = Outcome::Delivered(record.key());
            let written = outcome.write(&*self.store).await;
            return Finished {
                success: true,
                outcome,
                written,
            };
        }
        self.metrics.record(|| {
            metrics::counter!(observe::DELIVERY_ATTEMPTS, "route" => route.clone()).increment(1);
        });
        let started = Instant::now();
        let started_at = clock::now_ms();
        let outcome =
            tokio::time::timeout(self.policy.attempt_timeout, handler.handle(event)).await;
        let took = started.elapsed();
        self.metrics.record(|| {
            metrics::histogram!(observe::DELIVERY_DURATION, "route" => route.clone())
                .record(took.as_secs_f64());
        });
        let error = match &outcome {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(format!(
                "handler timed out after {} s",
                self.policy.attempt_timeout.as_secs_f64()
            )),
        };
        self.log(&record, started_at, took, error.clone(), probe);
        let error = match outcome {
            Ok(Ok(())) => {
                if record.attempts > 0 {
                    tracing::info!(id = %event.id, route = %route, event = event.name(), attempt = record.attempts + 1, "delivered after earlier failures");
                } else {
                    tracing::debug!(id = %event.id, route = %route, event = event.name(), "delivered");
                }
                let outcome = Outcome::Delivered(record.key());
                let written = outcome.write(&*self.store).await;
                return Finished {
                    success: true,
                    outcome,
                    written,
                };
            }
            _ => error.unwrap_or_default(),
        };
        if probe {
            return self.probe_failed(&record, error).await;
        }
        self.failed(record.key(), record.attempts, error).await
    }

    /// Keeps the attempt's record for the console, in the background: it never holds up
    /// the delivery, and a lost record loses only history.
    fn log(
        &self,
        record: &Record,
        started_at: i64,
        took: std::time::Duration,
        error: Option<String>,
        probe: bool,
    ) {
        let log = AttemptLog {
            id: record.event.id.clone(),
            route: record.route.clone(),
            started_at,
            duration_ms: i64::try_from(took.as_millis()).unwrap_or(i64::MAX),
            error,
            probe,
        };
        let store = Arc::clone(&self.store);
        tokio::spawn(async move {
            if let Err(error) = store.log_attempt(log).await {
                tracing::debug!(%error, "cannot keep an attempt's record");
            }
        });
    }

    /// For a pushed category audit whose result a reconciling pull already delivered (as
    /// its own event): that event's id. The push is then kept, and not delivered again.
    /// When the store cannot tell, the push is delivered (at least once).
    async fn already_known(&self, record: &Record) -> Option<String> {
        let event = &record.event;
        let audit = event.category_audit()?;
        if event.source() != crate::event::Source::Push {
            return None;
        }
        let known = KnownAudit {
            event_id: event.id.clone(),
            app: event.app.clone(),
            authorizer_appid: event.authorizer_appid.clone(),
            first: scalar_text(&audit.first).trim().to_owned(),
            second: scalar_text(&audit.second).trim().to_owned(),
            result: audit.result.as_str().to_owned(),
        };
        match self.store.already_known(known).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, "cannot tell whether a category audit was already reconciled: delivering it");
                None
            }
        }
    }

    /// An attempt's task panicked (in the handler): a failed attempt like any other.
    pub(super) async fn panicked(&self, key: DeliveryKey, attempts: u32) -> Finished {
        tracing::error!(id = %key.id, route = %key.route, "the handler panicked; counted as a failed attempt");
        self.failed(key, attempts, "the handler panicked".to_owned())
            .await
    }

    /// Records a failed attempt (after `attempts` earlier ones): retried along the
    /// schedule, or dead after its end.
    async fn failed(&self, key: DeliveryKey, attempts: u32, error: String) -> Finished {
        let route = key.route.clone();
        let failures = attempts.saturating_add(1);
        let retry_in = self.policy.retry_after(failures);
        let kind = if retry_in.is_some() { "retry" } else { "dead" };
        self.metrics.record(|| {
            metrics::counter!(observe::DELIVERY_FAILURES, "route" => route.clone(), "outcome" => kind)
                .increment(1);
        });
        let retry_at = retry_in.map(|delay| {
            clock::now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2)
        });
        match retry_in {
            Some(delay) => tracing::warn!(
                id = %key.id, route = %route, attempt = failures, %error,
                retry_in_secs = delay.as_secs(), "handler failed; will retry"
            ),
            None => {
                tracing::error!(
                    id = %key.id, route = %route, attempts = failures, %error,
                    "handler failed on the last attempt; the delivery is dead (replay it with `wxpush events replay {}`)",
                    key.id
                );
                self.alerts.raise(Alert {
                    event_id: Some(key.id.clone()),
                    ..Alert::route(AlertKind::EventDead, &route)
                });
            }
        }
        let outcome = Outcome::Failed {
            key,
            error,
            retry_at,
        };
        let written = outcome.write(&*self.store).await;
        Finished {
            success: false,
            outcome,
            written,
        }
    }

    /// A probe of a paused route failed: counted in the metrics, not in the delivery's
    /// schedule; it is due again at the next probe time.
    async fn probe_failed(&self, record: &Record, error: String) -> Finished {
        let route = record.route.clone();
        self.metrics.record(|| {
            metrics::counter!(observe::DELIVERY_FAILURES, "route" => route.clone(), "outcome" => "probe")
                .increment(1);
        });
        tracing::debug!(id = %record.event.id, route = %route, %error, "probe of a paused route failed; it stays paused");
        let retry_at = clock::now_ms()
            + i64::try_from(self.policy.breaker_probe.as_millis()).unwrap_or(i64::MAX / 4);
        let outcome = Outcome::Unavailable {
            key: record.key(),
            error,
            retry_at,
        };
        let written = outcome.write(&*self.store).await;
        Finished {
            success: false,
            outcome,
            written,
        }
    }
}
