//! Inserting a batch's new events: a row per route, in arrival order, the first pending
//! delivery of each route and ordering key leased to this instance.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::Transaction;

use std::sync::Arc;

use super::new_rows::{Incoming, Rows};
use super::resolve_submission;
use crate::event::Event;
use crate::store::held::Held;
use crate::store::{NO_ROUTE, Recorded};

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

/// What storing one event did, and the routes whose new deliveries are leased to this
/// instance (to go to its dispatcher from memory).
pub(super) struct Stored {
    pub(super) recorded: Recorded,
    pub(super) held: Vec<String>,
}

/// Stores the batch's events: serializes with other instances storing events of the same
/// routes and ordering keys, claims the request keys, inserts the new events (a row per
/// route), counts the duplicates and resolves submissions; returns each record's outcome,
/// in batch order.
pub(super) async fn record_events(
    tx: &Transaction<'_>,
    records: &[Incoming<'_>],
    keys: &[Option<&str>],
    owner: &Owner,
    lease_to_self: bool,
) -> Result<Vec<Stored>, tokio_postgres::Error> {
    lock_order_keys(tx, records).await?;
    let seen = claim_requests(tx, records, keys).await?;
    let stored = stored_ids(tx, records, &seen).await?;
    // An event already stored is found by the insert itself: its first route's row
    // conflicts.
    let fresh: Vec<&Incoming<'_>> = records
        .iter()
        .zip(&seen)
        .filter(|(_, seen)| !**seen)
        .map(|(record, _)| record)
        .collect();
    let mut inserted = insert_new(tx, fresh, owner, lease_to_self).await?;
    let new_ids: HashSet<String> = inserted.keys().cloned().collect();
    let mut outcomes = Vec::with_capacity(records.len());
    let mut duplicates: HashMap<&str, i32> = HashMap::new();
    let mut latest = 0;
    let mut audits = Vec::new();
    for (record, seen) in records.iter().zip(&seen) {
        let event = record.event;
        if let Some(held) = inserted.remove(&event.id) {
            outcomes.push(Stored {
                recorded: Recorded::New,
                held,
            });
            if event.category_audit().is_some() {
                audits.push((event, record.now));
            }
        } else if *seen && !stored.contains(&event.id) && !new_ids.contains(&event.id) {
            outcomes.push(Stored {
                recorded: Recorded::Replay,
                held: Vec::new(),
            });
        } else {
            outcomes.push(Stored {
                recorded: Recorded::Duplicate,
                held: Vec::new(),
            });
            *duplicates.entry(event.id.as_str()).or_default() += 1;
            latest = latest.max(record.now);
        }
    }
    resolve_audits(tx, audits).await?;
    count_duplicates(tx, duplicates, latest).await?;
    Ok(outcomes)
}

/// Takes a transaction lock per route and ordering key of the batch's events, in sorted
/// order: instances storing events of one key do it one after the other, so the first
/// stored is the first delivered (and two instances inserting the same retried event
/// never wait on each other's rows in opposite orders). The locks are per schema, so
/// deployments sharing a database do not wait for each other.
async fn lock_order_keys(
    tx: &Transaction<'_>,
    records: &[Incoming<'_>],
) -> Result<(), tokio_postgres::Error> {
    let mut locks: Vec<String> = records
        .iter()
        .flat_map(|r| {
            r.routes
                .iter()
                .map(|route| format!("{route}\u{1f}{}", r.order_key))
        })
        .collect();
    if locks.is_empty() {
        return Ok(());
    }
    locks.sort_unstable();
    locks.dedup();
    let lock = tx
        .prepare_cached(
            "SELECT count(pg_advisory_xact_lock(hashtextextended('wxpush:' || current_schema() || ':' || k, 0)))
             FROM unnest($1::text[]) WITH ORDINALITY AS t(k, ord)",
        )
        .await?;
    tx.query_one(&lock, &[&locks]).await?;
    Ok(())
}

/// Claims the batch's request keys (in key order); returns, per record, whether its key
/// was already seen: by an earlier request, or by an earlier record of this batch. Such a
/// record is not inserted: it is a duplicate if its event exists, else a replay.
async fn claim_requests(
    tx: &Transaction<'_>,
    records: &[Incoming<'_>],
    keys: &[Option<&str>],
) -> Result<Vec<bool>, tokio_postgres::Error> {
    let mut wanted: Vec<(&str, i64)> = keys
        .iter()
        .zip(records)
        .filter_map(|(key, r)| key.map(|k| (k, r.now)))
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
    records: &[Incoming<'_>],
    seen: &[bool],
) -> Result<HashSet<String>, tokio_postgres::Error> {
    let ids: Vec<&str> = records
        .iter()
        .zip(seen)
        .filter(|(_, seen)| **seen)
        .map(|(r, _)| r.event.id.as_str())
        .collect();
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let find = tx
        .prepare_cached("SELECT DISTINCT id FROM events WHERE id = ANY($1)")
        .await?;
    tx.query(&find, &[&ids])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect()
}

/// The routes and ordering keys, among `fresh`'s, that already have a pending delivery:
/// one probe of `events_order` per pair.
async fn busy_keys(
    tx: &Transaction<'_>,
    fresh: &[&Incoming<'_>],
) -> Result<HashSet<(String, String)>, tokio_postgres::Error> {
    let wanted: HashSet<(&str, &str)> = fresh
        .iter()
        .flat_map(|r| {
            r.routes
                .iter()
                .map(|route| (route.as_str(), r.order_key.as_str()))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(HashSet::new());
    }
    let (routes, keys): (Vec<&str>, Vec<&str>) = wanted.into_iter().unzip();
    let find = tx
        .prepare_cached(
            "SELECT k.route, k.order_key FROM unnest($1::text[], $2::text[]) AS k(route, order_key)
             CROSS JOIN LATERAL (SELECT 1 FROM events e WHERE e.status = 'pending'
                                 AND e.route = k.route AND e.order_key = k.order_key
                                 LIMIT 1) AS hit",
        )
        .await?;
    tx.query(&find, &[&routes, &keys])
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Inserts the new events, a row per route (one delivered [`NO_ROUTE`] row for an event
/// no route takes), in arrival order; returns, per new event id, the routes whose rows are
/// leased to this instance from the start (`next_attempt_at` is the lease's end while
/// `lease_owner` is set): when leasing to self is allowed and the row is the only pending
/// delivery of its route and key. Other rows are due now.
async fn insert_new(
    tx: &Transaction<'_>,
    fresh: Vec<&Incoming<'_>>,
    owner: &Owner,
    lease_to_self: bool,
) -> Result<HashMap<String, Vec<String>>, tokio_postgres::Error> {
    let mut busy = busy_keys(tx, &fresh).await?;
    let mut rows = Rows::default();
    let mut held: HashMap<String, Vec<String>> = HashMap::new();
    for record in &fresh {
        let event = record.event;
        if held.contains_key(&event.id) {
            // A second copy in the same batch: the first one's rows are the event's.
            continue;
        }
        held.entry(event.id.clone()).or_default();
        if record.routes.is_empty() {
            rows.push(record, NO_ROUTE, "delivered", None, None, Some(record.now));
        }
        for route in record.routes {
            let first = busy.insert((route.clone(), record.order_key.clone()));
            let lease = lease_to_self && first;
            let (due, lease_owner) = if lease {
                (
                    record.now.saturating_add(owner.lease_ms),
                    Some(owner.name.as_str()),
                )
            } else {
                (record.now, None)
            };
            rows.push(record, route, "pending", Some(due), lease_owner, None);
            if lease {
                held.entry(event.id.clone())
                    .or_default()
                    .push(route.clone());
            }
        }
    }
    let inserted = rows.insert(tx).await?;
    // New when the event's first row (its first route's, or its no-route row) was
    // inserted; held are only the rows inserted.
    let firsts: HashMap<&str, &str> = fresh
        .iter()
        .map(|r| {
            let first = r.routes.first().map_or(NO_ROUTE, String::as_str);
            (r.event.id.as_str(), first)
        })
        .collect();
    held.retain(|id, routes| {
        let is_new = firsts
            .get(id.as_str())
            .is_some_and(|first| inserted.contains(&(id.clone(), (*first).to_owned())));
        routes.retain(|route| inserted.contains(&(id.clone(), route.clone())));
        is_new
    });
    Ok(held)
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
