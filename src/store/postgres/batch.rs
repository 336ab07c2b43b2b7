//! Group commit for the two writes on the hot path: storing a push and marking a delivery.
//!
//! One task takes everything queued since its last commit and writes it in one transaction
//! with a few set-based statements (a multi-row insert from arrays, one update for the
//! duplicates, one for the deliveries), so under load many pushes share one round trip
//! and one WAL flush. A deadlock or serialization failure (two replicas inserting the same
//! retries in another order) retries the transaction; any other failure fails every write
//! in the batch, and the pushes are answered 503 so the platform sends them again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use deadpool_postgres::{Pool, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::errors::{classify, is_transient, pool_error};
use super::insert::{Owner, Stored, record_events};
use super::new_rows::Incoming;
use super::{pair, text};
use crate::event::Event;
use crate::store::{DeliveryKey, Recorded, StoreError};

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 1024;

/// Attempts of one batch when the database reports a deadlock or serialization failure.
const TRANSIENT_ATTEMPTS: usize = 3;

/// A write waiting for the next group commit.
pub(super) enum Write {
    /// Store a new event (or count a duplicate).
    Record {
        event: Box<Event>,
        request_key: Option<String>,
        routes: Vec<String>,
        now: i64,
        reply: oneshot::Sender<Result<Recorded, StoreError>>,
    },
    /// Mark an event's delivery to a route done.
    Delivered {
        key: DeliveryKey,
        at: i64,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// Transactions committed and the writes they carried.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) commits: AtomicU64,
    pub(super) writes: AtomicU64,
}

/// Starts the group-commit task; it ends when every sender is dropped.
pub(super) fn spawn(
    pool: Pool,
    counters: Arc<Counters>,
    owner: Owner,
) -> mpsc::UnboundedSender<Write> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Write>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(write) => batch.push(write),
                    Err(_) => break,
                }
            }
            let lease_to_self = owner.held.has_room();
            let result = commit_with_retries(&pool, &batch, &owner, lease_to_self).await;
            if result.is_ok() {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                counters
                    .writes
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            } else if let Err(error) = &result {
                tracing::error!(%error, writes = batch.len(), "store: batch not committed; nothing in it is acknowledged");
            }
            reply(batch, result, lease_to_self.then_some(&owner));
        }
    });
    tx
}

/// Answers every write; new events leased to this instance go to its dispatcher first.
fn reply(batch: Vec<Write>, result: Result<Vec<Stored>, StoreError>, owner: Option<&Owner>) {
    let (mut recorded, failure) = match result {
        Ok(outcomes) => (outcomes.into_iter(), None),
        Err(e) => (Vec::new().into_iter(), Some(e)),
    };
    let outcome_of_batch = || failure.clone().map_or(Ok(()), Err);
    for write in batch {
        match write {
            Write::Record {
                event, now, reply, ..
            } => {
                let outcome =
                    outcome_of_batch().and_then(|()| recorded.next().ok_or(StoreError::Closed));
                if let (Ok(stored), Some(owner)) = (&outcome, owner) {
                    let until = now.saturating_add(owner.lease_ms);
                    for route in &stored.held {
                        owner
                            .held
                            .push((*event).clone(), route.clone(), now, &owner.name, until);
                    }
                }
                let _ = reply.send(outcome.map(|stored| stored.recorded));
            }
            Write::Delivered { reply, .. } => {
                let _ = reply.send(outcome_of_batch());
            }
        }
    }
}

async fn commit_with_retries(
    pool: &Pool,
    batch: &[Write],
    owner: &Owner,
    lease_to_self: bool,
) -> Result<Vec<Stored>, StoreError> {
    let mut attempt = 1;
    loop {
        let mut client = pool.get().await.map_err(pool_error)?;
        let outcome = async {
            let tx = client.transaction().await?;
            let recorded = write_batch(&tx, batch, owner, lease_to_self).await?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(recorded)
        }
        .await;
        match outcome {
            Ok(recorded) => return Ok(recorded),
            Err(e) if is_transient(&e) && attempt < TRANSIENT_ATTEMPTS => {
                tracing::debug!(error = %classify(&e), attempt, "store: batch conflicted with another instance; retrying");
                attempt += 1;
            }
            Err(e) => return Err(classify(&e)),
        }
    }
}

/// Runs the batch's statements; returns the outcome of each `Record`, in batch order.
async fn write_batch(
    tx: &Transaction<'_>,
    batch: &[Write],
    owner: &Owner,
    lease_to_self: bool,
) -> Result<Vec<Stored>, tokio_postgres::Error> {
    let mut records: Vec<Incoming<'_>> = Vec::new();
    let mut keys: Vec<Option<&str>> = Vec::new();
    let mut delivered: Vec<&DeliveryKey> = Vec::new();
    let mut delivered_at = 0;
    for write in batch {
        match write {
            Write::Record {
                event,
                now,
                request_key,
                routes,
                ..
            } => {
                records.push(Incoming {
                    event,
                    now: *now,
                    routes,
                    order_key: text(&event.order_key()),
                });
                keys.push(request_key.as_deref());
            }
            Write::Delivered { key, at, .. } => {
                delivered.push(key);
                delivered_at = delivered_at.max(*at);
            }
        }
    }
    let outcomes = if records.is_empty() {
        Vec::new()
    } else {
        record_events(tx, &records, &keys, owner, lease_to_self).await?
    };
    if !delivered.is_empty() {
        delivered.sort_unstable();
        let ids: Vec<&str> = delivered.iter().map(|k| k.id.as_str()).collect();
        let pairs: Vec<String> = delivered.iter().map(|k| pair(k)).collect();
        let update = tx
            .prepare_cached(
                "UPDATE events SET status = 'delivered', attempts = attempts + 1, delivered_at = $3,
                 next_attempt_at = NULL, lease_owner = NULL
                 WHERE id = ANY($1) AND id || chr(31) || route = ANY($2)",
            )
            .await?;
        tx.execute(&update, &[&ids, &pairs, &delivered_at]).await?;
    }
    Ok(outcomes)
}
