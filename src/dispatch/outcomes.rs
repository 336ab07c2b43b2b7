//! Delivery outcomes as the store records them, and the ones it refused, kept until it
//! accepts writes again.

use crate::store::{DeliveryKey, Store, StoreError};

/// The outcome of an attempt, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The handler accepted the event.
    Delivered(DeliveryKey),
    /// The handler failed: retry at `retry_at` (unix ms), or dead when `None`.
    Failed {
        key: DeliveryKey,
        error: String,
        retry_at: Option<i64>,
    },
    /// A probe of a paused route failed: tried again at `retry_at` (unix ms), the attempt
    /// not counted.
    Unavailable {
        key: DeliveryKey,
        error: String,
        retry_at: i64,
    },
}

impl Outcome {
    pub(super) fn key(&self) -> &DeliveryKey {
        match self {
            Self::Delivered(key) | Self::Failed { key, .. } | Self::Unavailable { key, .. } => key,
        }
    }

    pub(super) async fn write(&self, store: &dyn Store) -> Result<(), StoreError> {
        match self {
            Self::Delivered(key) => store.mark_delivered(key.clone()).await,
            Self::Failed {
                key,
                error,
                retry_at,
            } => {
                store
                    .mark_failed(key.clone(), error.clone(), *retry_at)
                    .await
            }
            Self::Unavailable {
                key,
                error,
                retry_at,
            } => {
                store
                    .mark_unavailable(key.clone(), error.clone(), *retry_at)
                    .await
            }
        }
    }
}

/// Outcomes the store refused to write (a full disk, a lost database), kept in memory and
/// written again before every look at the store, so they are recorded as soon as the store
/// accepts writes again: no restart, and no hour-long wait for a delivered event to be
/// delivered again. Only a crash before then loses them, and then the events are delivered
/// again (at least once).
#[derive(Debug, Default)]
pub(super) struct Unrecorded {
    outcomes: Vec<Outcome>,
}

impl Unrecorded {
    pub(super) fn holds(&self, key: &DeliveryKey) -> bool {
        self.outcomes.iter().any(|o| o.key() == key)
    }

    pub(super) fn keep(&mut self, outcome: Outcome, error: &StoreError) {
        if self.outcomes.is_empty() {
            tracing::error!(id = %outcome.key().id, route = %outcome.key().route, %error, "cannot record a delivery outcome; it is kept in memory and written as soon as the store accepts writes");
        } else {
            tracing::debug!(id = %outcome.key().id, route = %outcome.key().route, %error, "cannot record a delivery outcome; kept with the others");
        }
        if !self.holds(outcome.key()) {
            self.outcomes.push(outcome);
        }
    }

    /// Writes the kept outcomes, oldest first, stopping at the first the store refuses.
    pub(super) async fn apply(&mut self, store: &dyn Store) {
        let mut written = 0;
        for outcome in &self.outcomes {
            if outcome.write(store).await.is_err() {
                break;
            }
            written += 1;
        }
        if written > 0 {
            self.outcomes.drain(..written);
            tracing::info!(
                written,
                left = self.outcomes.len(),
                "recorded delivery outcomes the store had refused"
            );
        }
    }

    pub(super) fn report_left(&self) {
        if !self.outcomes.is_empty() {
            tracing::warn!(
                events = self.outcomes.len(),
                "shutdown: delivery outcomes still unrecorded; these events will be delivered again after the restart"
            );
        }
    }
}
