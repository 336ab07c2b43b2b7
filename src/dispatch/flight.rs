//! The attempts in flight: a task each, the deliveries they are, and their ends as they
//! come (a task that panicked counts as a failed attempt).

use std::collections::{HashMap, HashSet};

use tokio::task::JoinSet;

use super::attempt::{Attempting, Finished};
use crate::handler::BoxHandler;
use crate::store::{DeliveryKey, Record};

/// The attempts in flight (a task each), and which deliveries they are.
pub(super) struct Flight {
    pub(super) running: JoinSet<Finished>,
    pub(super) keys: HashSet<DeliveryKey>,
    /// Each task's delivery and its earlier attempts, for a task that panics.
    tasks: HashMap<tokio::task::Id, (DeliveryKey, u32)>,
}

impl Flight {
    pub(super) fn new() -> Self {
        Self {
            running: JoinSet::new(),
            keys: HashSet::new(),
            tasks: HashMap::new(),
        }
    }

    /// Starts an attempt of `record`.
    pub(super) fn start(
        &mut self,
        attempting: &Attempting,
        record: Record,
        handler: BoxHandler,
        probe: bool,
    ) {
        let key = record.key();
        let attempts = record.attempts;
        let task = self
            .running
            .spawn(attempting.clone().attempt(record, handler, probe));
        self.keys.insert(key.clone());
        self.tasks.insert(task.id(), (key, attempts));
    }

    /// The next attempt to end; `None` when none is running.
    pub(super) async fn next(&mut self, attempting: &Attempting) -> Option<Finished> {
        loop {
            let joined = self.running.join_next_with_id().await?;
            if let Some(finished) = self.finished(joined, attempting).await {
                return Some(finished);
            }
        }
    }

    /// An attempt that has already ended, if any: what ends together is handled together.
    pub(super) async fn ready(&mut self, attempting: &Attempting) -> Option<Finished> {
        loop {
            let joined = self.running.try_join_next_with_id()?;
            if let Some(finished) = self.finished(joined, attempting).await {
                return Some(finished);
            }
        }
    }

    /// What an ended task means: its outcome, or for a task that panicked a failed attempt.
    async fn finished(
        &mut self,
        joined: Result<(tokio::task::Id, Finished), tokio::task::JoinError>,
        attempting: &Attempting,
    ) -> Option<Finished> {
        match joined {
            Ok((id, finished)) => {
                self.tasks.remove(&id);
                Some(finished)
            }
            Err(error) => {
                let (key, attempts) = self.tasks.remove(&error.id())?;
                if error.is_panic() {
                    Some(attempting.panicked(key, attempts).await)
                } else {
                    self.keys.remove(&key);
                    None
                }
            }
        }
    }
}
