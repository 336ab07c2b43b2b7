//! Looking at and repairing the shared inbox, and its category submissions.

use futures_util::future::BoxFuture;

use super::*;

/// The rows a [`ListFilter`] selects, its fields bound as $1 to $6.
pub(super) const MATCHES: &str =
    "($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR event_name = $2)
     AND ($3::text IS NULL OR app = $3) AND ($4::text IS NULL OR route = $4)
     AND ($5::int8 IS NULL OR received_at >= $5) AND ($6::int8 IS NULL OR received_at < $6)";

impl Admin for PostgresStore {
    fn attempts(&self, id: String) -> BoxFuture<'_, Result<Vec<AttemptLog>, StoreError>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT id, route, started_at, duration_ms, error, probe FROM attempts
                     WHERE id = $1 ORDER BY route, started_at",
                    &[&id],
                )
                .await?;
            let get = read("an attempt");
            rows.iter()
                .map(|r| {
                    Ok(AttemptLog {
                        id: r.try_get(0).map_err(get)?,
                        route: r.try_get(1).map_err(get)?,
                        started_at: r.try_get(2).map_err(get)?,
                        duration_ms: r.try_get(3).map_err(get)?,
                        error: r.try_get(4).map_err(get)?,
                        probe: r.try_get::<_, i64>(5).map_err(get)? != 0,
                    })
                })
                .collect()
        })
    }

    fn get(&self, id: String) -> BoxFuture<'_, Result<Vec<Record>, StoreError>> {
        Box::pin(async move {
            let rows = self
                .query(
                    &format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1 ORDER BY route"),
                    &[&id],
                )
                .await?;
            rows.iter().map(row_to_record).collect()
        })
    }

    fn list(&self, filter: ListFilter) -> BoxFuture<'_, Result<Vec<Record>, StoreError>> {
        Box::pin(async move {
            let status = filter.status.map(Status::as_str);
            let rows = self
                .query(
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM events WHERE {MATCHES} ORDER BY seq DESC LIMIT $7"
                    ),
                    &[
                        &status,
                        &filter.event,
                        &filter.app,
                        &filter.route,
                        &filter.since,
                        &filter.until,
                        &limit(filter.limit),
                    ],
                )
                .await?;
            rows.iter().map(row_to_record).collect()
        })
    }

    fn deliveries_matching(
        &self,
        filter: ListFilter,
    ) -> BoxFuture<'_, Result<Vec<(DeliveryKey, Status)>, StoreError>> {
        Box::pin(async move {
            let status = filter.status.map(Status::as_str);
            let rows = self
                .query(
                    &format!(
                        "SELECT id, route, status FROM events WHERE {MATCHES} AND route <> '' ORDER BY seq"
                    ),
                    &[
                        &status,
                        &filter.event,
                        &filter.app,
                        &filter.route,
                        &filter.since,
                        &filter.until,
                    ],
                )
                .await?;
            let get = read("deliveries");
            rows.iter()
                .map(|r| {
                    let status: String = r.try_get(2).map_err(get)?;
                    let status = Status::parse(&status)
                        .ok_or_else(|| StoreError::unknown_status(&status))?;
                    Ok((
                        DeliveryKey::new(
                            r.try_get::<_, String>(0).map_err(get)?,
                            r.try_get::<_, String>(1).map_err(get)?,
                        ),
                        status,
                    ))
                })
                .collect()
        })
    }

    fn replay_deliveries(
        &self,
        keys: Vec<DeliveryKey>,
    ) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let pairs: Vec<String> = keys.iter().map(pair).collect();
            let ids: Vec<String> = keys.into_iter().map(|k| k.id).collect();
            let n = self
                .execute(
                    // One leased to an instance right now keeps its lease: it is being
                    // delivered, and freeing it would let another instance deliver it at the
                    // same time.
                    "UPDATE events e SET status = 'pending', delivered_at = NULL, discarded_at = NULL,
                     attempts = CASE WHEN e.status = 'pending' AND e.lease_owner IS NOT NULL
                                      AND e.next_attempt_at > $3 THEN e.attempts ELSE 0 END,
                     next_attempt_at = CASE WHEN e.status = 'pending' AND e.lease_owner IS NOT NULL
                                      AND e.next_attempt_at > $3 THEN e.next_attempt_at ELSE $3 END,
                     lease_owner = CASE WHEN e.status = 'pending' AND e.lease_owner IS NOT NULL
                                      AND e.next_attempt_at > $3 THEN e.lease_owner ELSE NULL END
                     WHERE e.id = ANY($1) AND e.id || chr(31) || e.route = ANY($2) AND e.route <> ''",
                    &[&ids, &pairs, &clock::now_ms()],
                )
                .await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    fn discard(&self, keys: Vec<DeliveryKey>) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let pairs: Vec<String> = keys.iter().map(pair).collect();
            let ids: Vec<String> = keys.into_iter().map(|k| k.id).collect();
            let now = clock::now_ms();
            let n = self
                .execute(
                    "UPDATE events e SET status = 'discarded', discarded_at = $3,
                     next_attempt_at = NULL, lease_owner = NULL
                     WHERE e.id = ANY($1) AND e.id || chr(31) || e.route = ANY($2)
                       AND (e.status = 'dead' OR (e.status = 'pending'
                            AND (e.lease_owner IS NULL OR e.next_attempt_at <= $3)))",
                    &[&ids, &pairs, &now],
                )
                .await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    fn discard_quarantined(&self, ids: Vec<String>) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let n = self
                .execute(
                    "UPDATE quarantine SET discarded_at = $2
                     WHERE id = ANY($1) AND discarded_at IS NULL",
                    &[&ids, &clock::now_ms()],
                )
                .await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    fn quarantined(&self, n: usize) -> BoxFuture<'_, Result<Vec<QuarantinedPush>, StoreError>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT id, received_at, app, authorizer_appid, query, body, reason
                     FROM quarantine WHERE discarded_at IS NULL ORDER BY seq LIMIT $1",
                    &[&limit(n)],
                )
                .await?;
            rows.iter().map(row_to_quarantined).collect()
        })
    }

    fn release_quarantined(
        &self,
        quarantine_id: String,
        event: Event,
        routes: Vec<String>,
    ) -> BoxFuture<'_, Result<Recorded, StoreError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let outcome = async {
                let tx = client.transaction().await?;
                let recorded = insert_one(&tx, &event, clock::now_ms(), &routes).await?;
                tx.execute("DELETE FROM quarantine WHERE id = $1", &[&quarantine_id])
                    .await?;
                tx.commit().await?;
                Ok::<_, tokio_postgres::Error>(recorded)
            }
            .await;
            outcome.map_err(|e| classify(&e))
        })
    }

    fn requarantine(
        &self,
        quarantine_id: String,
        reason: String,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.execute(
                "UPDATE quarantine SET reason = $2, attempts = attempts + 1 WHERE id = $1",
                &[&quarantine_id, &text(&reason)],
            )
            .await?;
            Ok(())
        })
    }

    fn stats(&self) -> BoxFuture<'_, Result<Stats, StoreError>> {
        Box::pin(async move {
            let mut stats = Stats::default();
            let rows = self
                .query(
                    "SELECT status, count(*) FROM events WHERE route <> '' GROUP BY status",
                    &[],
                )
                .await?;
            for row in &rows {
                let status: String = row.try_get(0).map_err(read("counts"))?;
                let count =
                    u64::try_from(row.try_get::<_, i64>(1).map_err(read("counts"))?).unwrap_or(0);
                match Status::parse(&status) {
                    Some(Status::Pending) => stats.pending = count,
                    Some(Status::Delivered) => stats.delivered = count,
                    Some(Status::Dead) => stats.dead = count,
                    Some(Status::Discarded) => stats.discarded += count,
                    _ => return Err(StoreError::unknown_status(&status)),
                }
            }
            let rows = self
                .query(
                    "SELECT (SELECT count(*) FROM quarantine WHERE discarded_at IS NULL),
                            (SELECT min(received_at) FROM events WHERE status = 'pending'),
                            (SELECT coalesce(sum(d), 0)::int8 FROM (SELECT max(duplicates) AS d
                             FROM events WHERE duplicates > 0 GROUP BY id) AS per_event),
                            (SELECT count(*) FROM quarantine WHERE discarded_at IS NOT NULL)",
                    &[],
                )
                .await?;
            if let Some(row) = rows.first() {
                stats.quarantined =
                    u64::try_from(row.try_get::<_, i64>(0).map_err(read("counts"))?).unwrap_or(0);
                stats.oldest_pending_at = row.try_get(1).map_err(read("counts"))?;
                // Every route's row of an event counts its duplicates: counted once.
                stats.duplicates =
                    u64::try_from(row.try_get::<_, i64>(2).map_err(read("counts"))?).unwrap_or(0);
                stats.discarded +=
                    u64::try_from(row.try_get::<_, i64>(3).map_err(read("counts"))?).unwrap_or(0);
            }
            Ok(stats)
        })
    }

    fn prune(&self, before: i64) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            self.execute("DELETE FROM requests WHERE received_at < $1", &[&before])
                .await?;
            self.execute("DELETE FROM quarantine WHERE discarded_at < $1", &[&before])
                .await?;
            self.execute("DELETE FROM attempts WHERE started_at < $1", &[&before])
                .await?;
            let mut total = 0usize;
            loop {
                let n = self
                    .execute(
                        "DELETE FROM events WHERE (id, route) IN (
                             (SELECT id, route FROM events WHERE status = 'delivered' AND delivered_at < $1
                              LIMIT $2)
                             UNION ALL
                             (SELECT id, route FROM events WHERE status = 'discarded' AND discarded_at < $1
                              LIMIT $2))",
                        &[&before, &PRUNE_CHUNK],
                    )
                    .await?;
                total += usize::try_from(n).unwrap_or(usize::MAX);
                if n < u64::try_from(PRUNE_CHUNK).unwrap_or(u64::MAX) {
                    return Ok(total);
                }
            }
        })
    }
}
