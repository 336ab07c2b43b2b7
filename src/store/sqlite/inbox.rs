//! The hot path on SQLite: storing pushes (group commit) and handing events to the
//! dispatcher, from memory where it can.

use futures_util::future::BoxFuture;
use rusqlite::params;

use super::*;

/// Whether a pending row `e` is the oldest pending delivery of its route and ordering key:
/// only such rows are handed out, so deliveries sharing a key go one at a time, in order.
pub(super) const FIRST_OF_KEY: &str = "NOT EXISTS (SELECT 1 FROM events p
     WHERE p.status = 'pending' AND p.route = e.route AND p.order_key = e.order_key AND p.seq < e.seq)";

/// Routes as one JSON array parameter, for `IN (SELECT value FROM json_each(?))`.
fn json_list<T: serde::Serialize>(items: &[T]) -> Result<String, StoreError> {
    serde_json::to_string(items).map_err(|e| StoreError::Database(e.to_string()))
}

impl Inbox for SqliteStore {
    fn record_routed(
        &self,
        event: Event,
        request_key: Option<String>,
        routes: Vec<String>,
    ) -> BoxFuture<'_, Result<Recorded, StoreError>> {
        let now = clock::now_ms();
        let hold = self.held.has_room();
        let held = Arc::clone(&self.held);
        self.write_then(
            move |conn| {
                insert_event(conn, &event, now, hold, request_key.as_deref(), &routes)
                    .map(|r| (r, event))
            },
            move |((recorded, held_routes), event)| {
                for route in held_routes {
                    held.push(event.clone(), route, now, HOLDER, now + HOLD_MS);
                }
                recorded
            },
        )
    }

    fn quarantine(
        &self,
        push: QuarantinedPush,
        request_key: Option<String>,
    ) -> BoxFuture<'_, Result<Recorded, StoreError>> {
        self.write(move |conn| {
            if let Some(key) = &request_key
                && !claim_request(conn, key, push.received_at)?
            {
                return Ok(Recorded::Replay);
            }
            let query = serde_json::to_string(&push.query)
                .map_err(|e| StoreError::Database(e.to_string()))?;
            exec(conn,
                "INSERT INTO quarantine (id, received_at, app, authorizer_appid, query, body, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    push.id,
                    push.received_at,
                    push.app,
                    push.authorizer_appid,
                    query,
                    push.body,
                    push.reason
                ],
            )?;
            Ok(Recorded::New)
        })
    }

    fn due(&self, now: i64, query: DueQuery) -> BoxFuture<'_, Result<Vec<Record>, StoreError>> {
        // New deliveries come from memory; the file is read for retries and replays falling
        // due, for deliveries waiting behind another of their key, and for events stored
        // while memory was full. A probe of one route reads only the file.
        let (mut records, refused, look) = if query.only_route.is_some() {
            (Vec::new(), Vec::new(), true)
        } else {
            self.held.take(query.limit, &query)
        };
        let wanted = query.limit.saturating_sub(records.len());
        let give_back = (!refused.is_empty()).then(|| self.release(refused));
        Box::pin(async move {
            if let Some(give_back) = give_back {
                give_back.await?;
            }
            if look && wanted > 0 {
                let claimed = self.claim_due(now, wanted, query).await?;
                self.held.looked(!claimed.is_empty());
                records.extend(claimed);
            }
            Ok(records)
        })
    }

    fn next_due_at(
        &self,
        skip_routes: Vec<String>,
    ) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        self.read(move |conn| {
            db(conn.query_row(
                &format!(
                    "SELECT min(e.next_attempt_at) FROM events e WHERE e.status = 'pending'
                     AND e.route NOT IN (SELECT value FROM json_each(?1)) AND {FIRST_OF_KEY}"
                ),
                params![json_list(&skip_routes)?],
                |row| row.get(0),
            ))
        })
    }

    fn mark_delivered(&self, key: DeliveryKey) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |conn| {
            exec(
                conn,
                "UPDATE events SET status = 'delivered', attempts = attempts + 1,
                 delivered_at = ?3, next_attempt_at = NULL, held = 0 WHERE id = ?1 AND route = ?2",
                params![key.id, key.route, clock::now_ms()],
            )?;
            Ok(())
        })
    }

    fn mark_failed(
        &self,
        key: DeliveryKey,
        error: String,
        retry_at: Option<i64>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |conn| {
            let status = if retry_at.is_some() {
                "pending"
            } else {
                "dead"
            };
            exec(
                conn,
                "UPDATE events SET status = ?3, attempts = attempts + 1, last_error = ?4,
                 next_attempt_at = ?5, held = 0 WHERE id = ?1 AND route = ?2",
                params![key.id, key.route, status, error, retry_at],
            )?;
            Ok(())
        })
    }

    fn mark_unavailable(
        &self,
        key: DeliveryKey,
        error: String,
        retry_at: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |conn| {
            exec(
                conn,
                "UPDATE events SET last_error = ?3, next_attempt_at = ?4, held = 0
                 WHERE id = ?1 AND route = ?2 AND status = 'pending'",
                params![key.id, key.route, error, retry_at],
            )?;
            Ok(())
        })
    }

    fn log_attempt(&self, log: AttemptLog) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |conn| {
            exec(
                conn,
                "INSERT INTO attempts (id, route, started_at, duration_ms, error, probe)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    log.id,
                    log.route,
                    log.started_at,
                    log.duration_ms,
                    log.error,
                    i64::from(log.probe)
                ],
            )?;
            Ok(())
        })
    }

    fn release(&self, keys: Vec<DeliveryKey>) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |tx| {
            let now = clock::now_ms();
            atomic(tx, || {
                for key in &keys {
                    exec(
                        tx,
                        "UPDATE events SET next_attempt_at = ?3, held = 0
                         WHERE id = ?1 AND route = ?2 AND status = 'pending' AND held = 1",
                        params![key.id, key.route, now],
                    )?;
                }
                Ok(())
            })
        })
    }

    fn expedite(&self, route: String) -> BoxFuture<'_, Result<usize, StoreError>> {
        self.write(move |conn| {
            exec(
                conn,
                "UPDATE events SET next_attempt_at = ?2
                 WHERE route = ?1 AND status = 'pending' AND held = 0 AND next_attempt_at > ?2",
                params![route, clock::now_ms()],
            )
        })
    }

    fn take_over(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        // Held by an earlier run of the server (stopped without giving them back): due now.
        self.release_all(Vec::new())
    }

    fn release_all(&self, keep: Vec<DeliveryKey>) -> BoxFuture<'_, Result<usize, StoreError>> {
        self.write(move |conn| {
            let keep: Vec<String> = keep
                .iter()
                .map(|k| format!("{}\u{1f}{}", k.id, k.route))
                .collect();
            exec(
                conn,
                "UPDATE events SET next_attempt_at = ?1, held = 0
                 WHERE status = 'pending' AND held = 1
                   AND id || char(31) || route NOT IN (SELECT value FROM json_each(?2))",
                params![clock::now_ms(), json_list(&keep)?],
            )
        })
    }

    fn check_writable(&self, grow_bytes: usize) -> BoxFuture<'_, Result<(), StoreError>> {
        let touch = self.write(|conn| {
            exec(
                conn,
                "INSERT INTO meta (key, value) VALUES ('last_write_check', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![clock::now_ms().to_string()],
            )?;
            Ok(())
        });
        if grow_bytes == 0 {
            return touch;
        }
        let size = i64::try_from(grow_bytes).unwrap_or(i64::MAX);
        // Committed on its own: random bytes that must reach the WAL (and so the disk).
        let grow = self.write(move |conn| {
            exec(
                conn,
                "INSERT INTO meta (key, value) VALUES ('growth_check', randomblob(?1))
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![size],
            )?;
            Ok(())
        });
        let shrink = self.write(|conn| {
            exec(conn, "DELETE FROM meta WHERE key = 'growth_check'", [])?;
            Ok(())
        });
        Box::pin(async move {
            touch.await?;
            let grown = grow.await;
            shrink.await?;
            grown
        })
    }
}

impl SqliteStore {
    /// Takes up to `wanted` due deliveries from the file, each the first pending one of its
    /// key, and holds them for this process (as new events are held), oldest first. The
    /// candidates are looked up on the reader; only when there are some does the writer
    /// claim them, so an empty look costs pushes nothing.
    fn claim_due(
        &self,
        now: i64,
        wanted: usize,
        query: DueQuery,
    ) -> BoxFuture<'_, Result<Vec<Record>, StoreError>> {
        Box::pin(async move {
            let candidates = self
                .read(move |conn| {
                    let mut stmt = db(conn.prepare_cached(&format!(
                        "SELECT e.seq FROM events e
                         WHERE e.status = 'pending' AND e.next_attempt_at <= ?1
                           AND (?2 IS NULL OR e.route = ?2)
                           AND e.route NOT IN (SELECT value FROM json_each(?3))
                           AND {FIRST_OF_KEY}
                         ORDER BY e.seq LIMIT ?4"
                    )))?;
                    let wanted = i64::try_from(wanted).unwrap_or(i64::MAX);
                    let skip = json_list(&query.skip_routes)?;
                    let rows = db(stmt
                        .query_map(params![now, query.only_route, skip, wanted], |row| {
                            row.get::<_, i64>(0)
                        }))?;
                    db(rows.collect::<Result<Vec<i64>, _>>())
                })
                .await?;
            if candidates.is_empty() {
                return Ok(Vec::new());
            }
            // Claimed only if still due and unheld: the reader's view may be a moment old.
            self.write(move |conn| {
                let mut stmt = db(conn.prepare_cached(&format!(
                    "UPDATE events SET held = 1, next_attempt_at = ?3
                     WHERE seq IN (SELECT value FROM json_each(?1))
                       AND status = 'pending' AND held = 0 AND next_attempt_at <= ?2
                     RETURNING {EVENT_COLUMNS}, seq"
                )))?;
                let seqs = json_list(&candidates)?;
                let rows = db(stmt.query_map(params![seqs, now, now + HOLD_MS], |row| {
                    Ok((row.get::<_, i64>(13)?, row_to_record(row)?))
                }))?;
                let mut claimed = db(rows.collect::<Result<Vec<_>, _>>())?;
                claimed.sort_by_key(|(seq, _)| *seq);
                Ok(claimed.into_iter().map(|(_, r)| r).collect())
            })
            .await
        })
    }
}
