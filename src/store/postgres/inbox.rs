//! The hot path on PostgreSQL: storing pushes (group commit, shared request keys) and
//! leasing events to this instance's dispatcher.

use futures_util::future::BoxFuture;

use super::*;

impl Inbox for PostgresStore {
    fn record(
        &self,
        event: Event,
        request_key: Option<String>,
    ) -> BoxFuture<'_, Result<Recorded, StoreError>> {
        let (reply, rx) = oneshot::channel();
        let sent = self.writes.send(Write::Record {
            event: Box::new(event),
            request_key,
            now: clock::now_ms(),
            reply,
        });
        Box::pin(async move {
            sent.map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn quarantine(
        &self,
        push: QuarantinedPush,
        request_key: Option<String>,
    ) -> BoxFuture<'_, Result<Recorded, StoreError>> {
        Box::pin(async move {
            let query = serde_json::to_string(&push.query)
                .map_err(|e| StoreError::Database(e.to_string()))?;
            let mut client = self.client().await?;
            let outcome = async {
                let tx = client.transaction().await?;
                if let Some(key) = &request_key {
                    let claimed = tx
                        .execute(
                            "INSERT INTO requests (key, received_at) VALUES ($1, $2)
                             ON CONFLICT (key) DO NOTHING",
                            &[key, &push.received_at],
                        )
                        .await?;
                    if claimed == 0 {
                        return Ok(Recorded::Replay);
                    }
                }
                tx.execute(
                    "INSERT INTO quarantine (id, received_at, app, authorizer_appid, query, body, reason)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &push.id,
                        &push.received_at,
                        &text(&push.app),
                        &push.authorizer_appid.as_deref().map(text),
                        &text(&query),
                        &push.body,
                        &text(&push.reason),
                    ],
                )
                .await?;
                tx.commit().await?;
                Ok::<_, tokio_postgres::Error>(Recorded::New)
            }
            .await;
            outcome.map_err(|e| classify(&e))
        })
    }

    fn due(&self, now: i64, limit_n: usize) -> BoxFuture<'_, Result<Vec<Record>, StoreError>> {
        Box::pin(async move {
            // Events this instance stored are leased to it from the start and wait in
            // memory: no read needed. The database is asked for due events nobody holds
            // (retries, replays, a dead instance's expired leases) when memory is empty, and
            // at least once a second under load, with SKIP LOCKED so that concurrent
            // instances never take the same event.
            let (held, look) = self.held.take(limit_n);
            let mut records: Vec<(i64, Record)> = held.into_iter().map(|r| (0, r)).collect();
            let wanted = limit_n.saturating_sub(records.len());
            if look && wanted > 0 {
                let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX / 4);
                let until = now.saturating_add(lease_ms);
                let claimed = self
                    .query(
                        &format!(
                            "WITH due AS (
                                 SELECT id AS due_id FROM events
                                 WHERE status = 'pending' AND next_attempt_at <= $1
                                 ORDER BY seq LIMIT $2
                                 FOR UPDATE SKIP LOCKED)
                             UPDATE events SET next_attempt_at = $3, lease_owner = $4
                             FROM due WHERE id = due.due_id
                             RETURNING seq, {EVENT_COLUMNS}"
                        ),
                        &[&now, &limit(wanted), &until, &self.owner],
                    )
                    .await?;
                for row in &claimed {
                    records.push((seq_of(row)?, row_to_record_at(row, 1)?));
                }
            }
            // Memory first (seq 0), then the database's in arrival order.
            records.sort_by_key(|(seq, _)| *seq);
            Ok(records.into_iter().map(|(_, r)| r).collect())
        })
    }

    fn next_due_at(&self) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT min(next_attempt_at) FROM events WHERE status = 'pending'",
                    &[],
                )
                .await?;
            Ok(rows.first().and_then(|r| r.get::<_, Option<i64>>(0)))
        })
    }

    fn mark_delivered(&self, id: String) -> BoxFuture<'_, Result<(), StoreError>> {
        let (reply, rx) = oneshot::channel();
        let sent = self.writes.send(Write::Delivered {
            id,
            at: clock::now_ms(),
            reply,
        });
        Box::pin(async move {
            sent.map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn mark_failed(
        &self,
        id: String,
        error: String,
        retry_at: Option<i64>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let status = if retry_at.is_some() {
                "pending"
            } else {
                "dead"
            };
            // Only while this instance still holds the lease: after it expired, another
            // instance owns the event and its outcome counts.
            self.execute(
                "UPDATE events SET status = $2, attempts = attempts + 1, last_error = $3,
                 next_attempt_at = $4, lease_owner = NULL
                 WHERE id = $1 AND (lease_owner IS NULL OR lease_owner = $5)",
                &[&id, &status, &text(&error), &retry_at, &self.owner],
            )
            .await?;
            Ok(())
        })
    }

    fn release(&self, ids: Vec<String>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(());
            }
            self.execute(
                "UPDATE events SET next_attempt_at = $2, lease_owner = NULL
                 WHERE id = ANY($1) AND status = 'pending' AND lease_owner = $3",
                &[&ids, &clock::now_ms(), &self.owner],
            )
            .await?;
            Ok(())
        })
    }

    fn take_over(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        // Every instance has a name of its own (host/pid/random): what an earlier run
        // leased falls due when its leases expire, like any other instance's.
        Box::pin(async { Ok(0) })
    }

    fn release_all(&self, keep: Vec<String>) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let n = self
                .execute(
                    "UPDATE events SET next_attempt_at = $2, lease_owner = NULL
                     WHERE status = 'pending' AND lease_owner = $1 AND NOT (id = ANY($3))",
                    &[&self.owner, &clock::now_ms(), &keep],
                )
                .await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    fn check_writable(&self, grow_bytes: usize) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.execute(
                "INSERT INTO meta (key, value) VALUES ('last_write_check', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&clock::now_ms().to_string()],
            )
            .await?;
            if grow_bytes > 0 {
                // Random hex: it compresses poorly, so the row and its WAL record take space.
                let filler: String = (0..grow_bytes / 16)
                    .map(|_| format!("{:016x}", rand::random::<u64>()))
                    .collect();
                self.execute(
                    "INSERT INTO meta (key, value) VALUES ('growth_check', $1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[&filler],
                )
                .await?;
                self.execute("DELETE FROM meta WHERE key = 'growth_check'", &[])
                    .await?;
            }
            Ok(())
        })
    }
}
