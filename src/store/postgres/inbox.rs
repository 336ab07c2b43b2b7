//! The hot path on PostgreSQL: storing pushes (group commit, shared request keys) and
//! leasing events to this instance's dispatcher.

use futures_util::future::BoxFuture;

use super::*;

/// Whether a pending row `e` is the oldest pending delivery of its route and ordering key:
/// only such rows are handed out, so deliveries sharing a key go one at a time, in order,
/// whichever instance takes them.
const FIRST_OF_KEY: &str = "NOT EXISTS (SELECT 1 FROM events p
     WHERE p.status = 'pending' AND p.route = e.route AND p.order_key = e.order_key AND p.seq < e.seq)";

impl Inbox for PostgresStore {
    fn record_routed(
        &self,
        event: Event,
        request_key: Option<String>,
        routes: Vec<String>,
    ) -> BoxFuture<'_, Result<Recorded, StoreError>> {
        let (reply, rx) = oneshot::channel();
        let sent = self.writes.send(Write::Record {
            event: Box::new(event),
            request_key,
            routes,
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

    fn due(&self, now: i64, query: DueQuery) -> BoxFuture<'_, Result<Vec<Record>, StoreError>> {
        Box::pin(async move {
            // Deliveries this instance stored are leased to it from the start and wait in
            // memory: no read needed. The database is asked for due deliveries nobody holds
            // (retries, replays, ones waiting behind another of their key, a dead
            // instance's expired leases) when memory is empty, and at least once a second
            // under load, with SKIP LOCKED so that concurrent instances never take the same
            // one. A probe of one route reads only the database.
            let (held, refused, look) = if query.only_route.is_some() {
                (Vec::new(), Vec::new(), true)
            } else {
                self.held.take(query.limit, &query)
            };
            self.release(refused).await?;
            let mut records: Vec<(i64, Record)> = held.into_iter().map(|r| (0, r)).collect();
            let wanted = query.limit.saturating_sub(records.len());
            if look && wanted > 0 {
                let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX / 4);
                let until = now.saturating_add(lease_ms);
                let claimed = self
                    .query(
                        &format!(
                            "WITH due AS (
                                 SELECT e.id AS due_id, e.route AS due_route FROM events e
                                 WHERE e.status = 'pending' AND e.next_attempt_at <= $1
                                   AND ($5::text IS NULL OR e.route = $5)
                                   AND NOT (e.route = ANY($6)) AND {FIRST_OF_KEY}
                                 ORDER BY e.seq LIMIT $2
                                 FOR UPDATE OF e SKIP LOCKED)
                             UPDATE events SET next_attempt_at = $3, lease_owner = $4
                             FROM due WHERE id = due.due_id AND route = due.due_route
                             RETURNING seq, {EVENT_COLUMNS}"
                        ),
                        &[
                            &now,
                            &limit(wanted),
                            &until,
                            &self.owner,
                            &query.only_route,
                            &query.skip_routes,
                        ],
                    )
                    .await?;
                self.held.looked(!claimed.is_empty());
                for row in &claimed {
                    records.push((seq_of(row)?, row_to_record_at(row, 1)?));
                }
            }
            // Memory first (seq 0), then the database's in arrival order.
            records.sort_by_key(|(seq, _)| *seq);
            Ok(records.into_iter().map(|(_, r)| r).collect())
        })
    }

    fn next_due_at(
        &self,
        skip_routes: Vec<String>,
    ) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        Box::pin(async move {
            let rows = self
                .query(
                    &format!(
                        "SELECT min(e.next_attempt_at) FROM events e WHERE e.status = 'pending'
                         AND NOT (e.route = ANY($1)) AND {FIRST_OF_KEY}"
                    ),
                    &[&skip_routes],
                )
                .await?;
            Ok(rows.first().and_then(|r| r.get::<_, Option<i64>>(0)))
        })
    }

    fn mark_delivered(&self, key: DeliveryKey) -> BoxFuture<'_, Result<(), StoreError>> {
        let (reply, rx) = oneshot::channel();
        let sent = self.writes.send(Write::Delivered {
            key,
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
        key: DeliveryKey,
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
            // instance owns the delivery and its outcome counts.
            self.execute(
                "UPDATE events SET status = $3, attempts = attempts + 1, last_error = $4,
                 next_attempt_at = $5, lease_owner = NULL
                 WHERE id = $1 AND route = $2 AND (lease_owner IS NULL OR lease_owner = $6)",
                &[
                    &key.id,
                    &key.route,
                    &status,
                    &text(&error),
                    &retry_at,
                    &self.owner,
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn mark_unavailable(
        &self,
        key: DeliveryKey,
        error: String,
        retry_at: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.execute(
                "UPDATE events SET last_error = $3, next_attempt_at = $4, lease_owner = NULL
                 WHERE id = $1 AND route = $2 AND status = 'pending'
                   AND (lease_owner IS NULL OR lease_owner = $5)",
                &[&key.id, &key.route, &text(&error), &retry_at, &self.owner],
            )
            .await?;
            Ok(())
        })
    }

    fn log_attempt(&self, log: AttemptLog) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.execute(
                "INSERT INTO attempts (id, route, started_at, duration_ms, error, probe)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &log.id,
                    &log.route,
                    &log.started_at,
                    &log.duration_ms,
                    &log.error.as_deref().map(text),
                    &i64::from(log.probe),
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn release(&self, keys: Vec<DeliveryKey>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(());
            }
            let pairs: Vec<String> = keys.iter().map(pair).collect();
            let ids: Vec<String> = keys.into_iter().map(|k| k.id).collect();
            self.execute(
                "UPDATE events e SET next_attempt_at = $3, lease_owner = NULL
                 WHERE e.id = ANY($1) AND e.id || chr(31) || e.route = ANY($2) AND e.status = 'pending'
                   AND e.lease_owner = $4",
                &[&ids, &pairs, &clock::now_ms(), &self.owner],
            )
            .await?;
            Ok(())
        })
    }

    fn expedite(&self, route: String) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let n = self
                .execute(
                    "UPDATE events SET next_attempt_at = $2
                     WHERE route = $1 AND status = 'pending' AND lease_owner IS NULL
                       AND next_attempt_at > $2",
                    &[&route, &clock::now_ms()],
                )
                .await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    fn take_over(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        // Every instance has a name of its own (host/pid/random): what an earlier run
        // leased falls due when its leases expire, like any other instance's.
        Box::pin(async { Ok(0) })
    }

    fn release_all(&self, keep: Vec<DeliveryKey>) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let keep: Vec<String> = keep
                .iter()
                .map(|k| format!("{}\u{1f}{}", k.id, k.route))
                .collect();
            let n = self
                .execute(
                    "UPDATE events SET next_attempt_at = $2, lease_owner = NULL
                     WHERE status = 'pending' AND lease_owner = $1
                       AND NOT (id || chr(31) || route = ANY($3))",
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
