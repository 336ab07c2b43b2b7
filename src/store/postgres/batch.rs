//! Group commit for the two writes on the hot path: storing a push and marking a delivery.
//!
//! One task takes everything queued since its last commit and writes it in one transaction
//! with a few set-based statements (a multi-row insert from arrays, one update for the
//! duplicates, one for the deliveries), so under load many pushes share one round trip
//! and one WAL flush. A deadlock or serialization failure (two replicas inserting the same
//! retries in another order) retries the transaction; any other failure fails every write
//! in the batch, and the pushes are answered 503 so the platform sends them again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use deadpool_postgres::{Pool, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::errors::{classify, is_transient, pool_error};
use super::{resolve_submission, text};
use crate::event::Event;
use crate::store::held::Held;
use crate::store::{Recorded, StoreError};

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
        now: i64,
        reply: oneshot::Sender<Result<Recorded, StoreError>>,
    },
    /// Mark an event delivered.
    Delivered {
        id: String,
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

/// Who new events are leased to: the instance that stored them delivers them first, from
/// memory, so the common case needs neither a claim nor a read.
#[derive(Debug, Clone)]
pub(super) struct Owner {
    /// The instance's name.
    pub(super) name: String,
    /// Lease length in milliseconds.
    pub(super) lease_ms: i64,
    /// The events handed to this instance's dispatcher.
    pub(super) held: Arc<Held>,
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
fn reply(batch: Vec<Write>, result: Result<Vec<Recorded>, StoreError>, owner: Option<&Owner>) {
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
                if let (Ok(Recorded::New), Some(owner)) = (&outcome, owner) {
                    let until = now.saturating_add(owner.lease_ms);
                    owner.held.push(*event, now, &owner.name, until);
                }
                let _ = reply.send(outcome);
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
) -> Result<Vec<Recorded>, StoreError> {
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

/// Claims the batch's request keys (in key order, as the ids below); returns, per record,
/// whether its key was already seen: by an earlier request, or by an earlier record of this
/// batch. Such a record is not inserted: it is a duplicate if its event exists, else a
/// replay.
async fn claim_requests(
    tx: &Transaction<'_>,
    records: &[(&Event, i64)],
    keys: &[Option<&str>],
) -> Result<Vec<bool>, tokio_postgres::Error> {
    let mut wanted: Vec<(&str, i64)> = keys
        .iter()
        .zip(records)
        .filter_map(|(key, (_, now))| key.map(|k| (k, *now)))
        .collect();
    if wanted.is_empty() {
        return Ok(vec![false; records.len()]);
    }
    wanted.sort_unstable();
    wanted.dedup_by(|a, b| a.0 == b.0);
    let (claim_keys, times): (Vec<&str>, Vec<i64>) = wanted.into_iter().unzip();
    let claim = tx
        .prepare_cached(
            "INSERT INTO requests (key, received_at)
             SELECT * FROM unnest($1::text[], $2::int8[])
             ON CONFLICT (key) DO NOTHING
             RETURNING key",
        )
        .await?;
    let mut claimed: HashSet<String> = tx
        .query(&claim, &[&claim_keys, &times])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    Ok(keys
        .iter()
        .map(|key| key.is_some_and(|k| !claimed.remove(k)))
        .collect())
}

/// The ids, among the records whose request was already seen, of events already stored.
async fn stored_ids(
    tx: &Transaction<'_>,
    records: &[(&Event, i64)],
    seen: &[bool],
) -> Result<HashSet<String>, tokio_postgres::Error> {
    let ids: Vec<&str> = records
        .iter()
        .zip(seen)
        .filter(|(_, seen)| **seen)
        .map(|((event, _), _)| event.id.as_str())
        .collect();
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let find = tx
        .prepare_cached("SELECT id FROM events WHERE id = ANY($1)")
        .await?;
    tx.query(&find, &[&ids])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect()
}

/// Runs the batch's statements; returns the outcome of each `Record`, in batch order.
async fn write_batch(
    tx: &Transaction<'_>,
    batch: &[Write],
    owner: &Owner,
    lease_to_self: bool,
) -> Result<Vec<Recorded>, tokio_postgres::Error> {
    let mut records: Vec<(&Event, i64)> = Vec::new();
    let mut keys: Vec<Option<&str>> = Vec::new();
    let mut delivered: Vec<&str> = Vec::new();
    let mut delivered_at = 0;
    for write in batch {
        match write {
            Write::Record {
                event,
                now,
                request_key,
                ..
            } => {
                records.push((&**event, *now));
                keys.push(request_key.as_deref());
            }
            Write::Delivered { id, at, .. } => {
                delivered.push(id);
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
        let update = tx
            .prepare_cached(
                "UPDATE events SET status = 'delivered', attempts = attempts + 1, delivered_at = $2,
                 next_attempt_at = NULL, lease_owner = NULL WHERE id = ANY($1)",
            )
            .await?;
        tx.execute(&update, &[&delivered, &delivered_at]).await?;
    }
    Ok(outcomes)
}

/// Stores the batch's events: claims their request keys, inserts the new ones, counts the
/// duplicates and resolves submissions; returns each record's outcome, in batch order.
async fn record_events(
    tx: &Transaction<'_>,
    records: &[(&Event, i64)],
    keys: &[Option<&str>],
    owner: &Owner,
    lease_to_self: bool,
) -> Result<Vec<Recorded>, tokio_postgres::Error> {
    let seen = claim_requests(tx, records, keys).await?;
    let fresh: Vec<&(&Event, i64)> = records
        .iter()
        .zip(&seen)
        .filter(|(_, seen)| !**seen)
        .map(|(record, _)| record)
        .collect();
    let mut inserted = insert_new(tx, fresh, owner, lease_to_self).await?;
    let stored = stored_ids(tx, records, &seen).await?;
    let new_ids = inserted.clone();
    let mut outcomes = Vec::with_capacity(records.len());
    let mut duplicates: HashMap<&str, i32> = HashMap::new();
    let mut latest = 0;
    let mut audits = Vec::new();
    for ((event, now), seen) in records.iter().zip(&seen) {
        if *seen && !stored.contains(&event.id) && !new_ids.contains(&event.id) {
            outcomes.push(Recorded::Replay);
        } else if !*seen && inserted.remove(&event.id) {
            outcomes.push(Recorded::New);
            if event.category_audit().is_some() {
                audits.push((*event, *now));
            }
        } else {
            outcomes.push(Recorded::Duplicate);
            *duplicates.entry(event.id.as_str()).or_default() += 1;
            latest = latest.max(*now);
        }
    }
    resolve_audits(tx, audits).await?;
    count_duplicates(tx, duplicates, latest).await?;
    Ok(outcomes)
}

/// Inserts the events, in id order so that two instances inserting overlapping batches take
/// their locks in the same order; returns the ids that were new. Each new event starts
/// leased to this instance (`next_attempt_at` is the lease's end while `lease_owner` is set).
async fn insert_new(
    tx: &Transaction<'_>,
    mut sorted: Vec<&(&Event, i64)>,
    owner: &Owner,
    lease_to_self: bool,
) -> Result<HashSet<String>, tokio_postgres::Error> {
    sorted.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    let ids: Vec<&str> = sorted.iter().map(|(e, _)| e.id.as_str()).collect();
    let times: Vec<i64> = sorted.iter().map(|(_, now)| *now).collect();
    let apps: Vec<String> = sorted.iter().map(|(e, _)| text(&e.app)).collect();
    let authorizers: Vec<Option<String>> = sorted
        .iter()
        .map(|(e, _)| e.authorizer_appid.as_deref().map(text))
        .collect();
    let names: Vec<String> = sorted.iter().map(|(e, _)| text(e.name())).collect();
    let messages: Vec<&[u8]> = sorted.iter().map(|(e, _)| e.raw.as_bytes()).collect();
    let insert = tx
        .prepare_cached(
            "INSERT INTO events (id, received_at, status, app, authorizer_appid, event_name, message, next_attempt_at, lease_owner)
             SELECT id, ts, 'pending', app, auth, name, msg, ts + $7, $8
             FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::bytea[])
                  WITH ORDINALITY AS t(id, ts, app, auth, name, msg, ord)
             ORDER BY ord
             ON CONFLICT (id) DO NOTHING
             RETURNING id",
        )
        .await?;
    let rows = tx
        .query(
            &insert,
            &[
                &ids,
                &times,
                &apps,
                &authorizers,
                &names,
                &messages,
                &if lease_to_self { owner.lease_ms } else { 0 },
                &lease_to_self.then_some(owner.name.as_str()),
            ],
        )
        .await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}

/// New category audits resolve their submissions; one look first, since usually nothing
/// awaits a result.
async fn resolve_audits(
    tx: &Transaction<'_>,
    audits: Vec<(&Event, i64)>,
) -> Result<(), tokio_postgres::Error> {
    if audits.is_empty() {
        return Ok(());
    }
    let open = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM submissions WHERE status = 'pending')")
        .await?;
    let any_open: bool = tx.query_one(&open, &[]).await?.try_get(0)?;
    if any_open {
        for (event, now) in audits {
            resolve_submission(tx, event, now).await?;
        }
    }
    Ok(())
}

/// Counts platform retries on the events they repeat.
async fn count_duplicates(
    tx: &Transaction<'_>,
    duplicates: HashMap<&str, i32>,
    latest: i64,
) -> Result<(), tokio_postgres::Error> {
    if duplicates.is_empty() {
        return Ok(());
    }
    let mut counted: Vec<(&str, i32)> = duplicates.into_iter().collect();
    counted.sort_unstable();
    let (ids, counts): (Vec<&str>, Vec<i32>) = counted.into_iter().unzip();
    let update = tx
        .prepare_cached(
            "UPDATE events e SET duplicates = e.duplicates + d.n, last_duplicate_at = $3
             FROM unnest($1::text[], $2::int4[]) AS d(id, n) WHERE e.id = d.id",
        )
        .await?;
    tx.execute(&update, &[&ids, &counts, &latest]).await?;
    Ok(())
}
