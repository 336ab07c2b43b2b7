//! The hot path on SQLite: storing pushes (group commit) and handing events to the
//! dispatcher, from memory where it can.

use futures_util::future::BoxFuture;
use rusqlite::params;

use super::*;

impl Inbox for SqliteStore {
    fn record(
        &self,
        event: Event,
        request_key: Option<String>,
    ) -> BoxFuture<'_, Result<Recorded, StoreError>> {
        let now = clock::now_ms();
        let hold = self.held.has_room();
        let due_at = if hold { now + HOLD_MS } else { now };
        let held = Arc::clone(&self.held);
        self.write_then(
            move |conn| {
                insert_event(conn, &event, now, hold, request_key.as_deref()).map(|r| (r, event))
            },
            move |(recorded, event)| {
                if hold && recorded == Recorded::New {
                    held.push(event, now, HOLDER, due_at);
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

    fn due(&self, now: i64, limit: usize) -> BoxFuture<'_, Result<Vec<Record>, StoreError>> {
        // New events come from memory; the file is read for retries and replays falling
        // due, and for events stored while memory was full.
        let (mut records, look) = self.held.take(limit);
        let wanted = limit.saturating_sub(records.len());
        Box::pin(async move {
            if look && wanted > 0 {
                let stored = self
                    .read(move |conn| {
                        let mut stmt = db(conn.prepare_cached(&format!(
                            "SELECT {EVENT_COLUMNS} FROM events
                             WHERE status = 'pending' AND next_attempt_at <= ?1 ORDER BY seq LIMIT ?2"
                        )))?;
                        let wanted = i64::try_from(wanted).unwrap_or(i64::MAX);
                        let rows = db(stmt.query_map(params![now, wanted], row_to_record))?;
                        db(rows.collect::<Result<Vec<_>, _>>())
                    })
                    .await?;
                records.extend(stored);
            }
            Ok(records)
        })
    }

    fn next_due_at(&self) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        self.read(|conn| {
            db(conn.query_row(
                "SELECT min(next_attempt_at) FROM events WHERE status = 'pending'",
                [],
                |row| row.get(0),
            ))
        })
    }

    fn mark_delivered(&self, id: String) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |conn| {
            exec(
                conn,
                "UPDATE events SET status = 'delivered', attempts = attempts + 1,
                 delivered_at = ?2, next_attempt_at = NULL, held = 0 WHERE id = ?1",
                params![id, clock::now_ms()],
            )?;
            Ok(())
        })
    }

    fn mark_failed(
        &self,
        id: String,
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
                "UPDATE events SET status = ?2, attempts = attempts + 1, last_error = ?3,
                 next_attempt_at = ?4, held = 0 WHERE id = ?1",
                params![id, status, error, retry_at],
            )?;
            Ok(())
        })
    }

    fn release(&self, ids: Vec<String>) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |tx| {
            let now = clock::now_ms();
            atomic(tx, || {
                for id in &ids {
                    exec(
                        tx,
                        "UPDATE events SET next_attempt_at = ?2, held = 0
                         WHERE id = ?1 AND status = 'pending' AND held = 1",
                        params![id, now],
                    )?;
                }
                Ok(())
            })
        })
    }

    fn take_over(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        // Held by an earlier run of the server (stopped without giving them back): due now.
        self.release_all(Vec::new())
    }

    fn release_all(&self, keep: Vec<String>) -> BoxFuture<'_, Result<usize, StoreError>> {
        self.write(move |conn| {
            let keep =
                serde_json::to_string(&keep).map_err(|e| StoreError::Database(e.to_string()))?;
            exec(
                conn,
                "UPDATE events SET next_attempt_at = ?1, held = 0
                 WHERE status = 'pending' AND held = 1
                   AND id NOT IN (SELECT value FROM json_each(?2))",
                params![clock::now_ms(), keep],
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
