//! Looking at and repairing the SQLite inbox.

use futures_util::future::BoxFuture;
use rusqlite::params;

use super::*;

/// The rows a [`ListFilter`] selects, its fields bound as ?1 to ?6.
pub(super) const MATCHES: &str = "(?1 IS NULL OR status = ?1) AND (?2 IS NULL OR event_name = ?2)
     AND (?3 IS NULL OR app = ?3) AND (?4 IS NULL OR route = ?4)
     AND (?5 IS NULL OR received_at >= ?5) AND (?6 IS NULL OR received_at < ?6)";

impl Admin for SqliteStore {
    fn attempts(&self, id: String) -> BoxFuture<'_, Result<Vec<AttemptLog>, StoreError>> {
        self.read(move |conn| {
            let mut stmt = db(conn.prepare_cached(
                "SELECT id, route, started_at, duration_ms, error, probe FROM attempts
                 WHERE id = ?1 ORDER BY route, started_at",
            ))?;
            let rows = db(stmt.query_map(params![id], |r| {
                Ok(AttemptLog {
                    id: r.get(0)?,
                    route: r.get(1)?,
                    started_at: r.get(2)?,
                    duration_ms: r.get(3)?,
                    error: r.get(4)?,
                    probe: r.get::<_, i64>(5)? != 0,
                })
            }))?;
            rows.map(db).collect()
        })
    }

    fn get(&self, id: String) -> BoxFuture<'_, Result<Vec<Record>, StoreError>> {
        self.read(move |conn| {
            let mut stmt = db(conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1 ORDER BY route"
            )))?;
            let rows = db(stmt.query_map(params![id], row_to_record))?;
            db(rows.collect())
        })
    }

    fn list(&self, filter: ListFilter) -> BoxFuture<'_, Result<Vec<Record>, StoreError>> {
        self.read(move |conn| {
            let limit = i64::try_from(filter.limit.max(1)).unwrap_or(i64::MAX);
            let mut stmt = db(conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE {MATCHES} ORDER BY seq DESC LIMIT ?7"
            )))?;
            let status = filter.status.map(Status::as_str);
            let rows = db(stmt.query_map(
                params![
                    status,
                    filter.event,
                    filter.app,
                    filter.route,
                    filter.since,
                    filter.until,
                    limit
                ],
                row_to_record,
            ))?;
            db(rows.collect())
        })
    }

    fn deliveries_matching(
        &self,
        filter: ListFilter,
    ) -> BoxFuture<'_, Result<Vec<(DeliveryKey, Status)>, StoreError>> {
        self.read(move |conn| {
            let mut stmt = db(conn.prepare_cached(&format!(
                "SELECT id, route, status FROM events WHERE {MATCHES} AND route <> '' ORDER BY seq"
            )))?;
            let status = filter.status.map(Status::as_str);
            let rows = db(stmt.query_map(
                params![
                    status,
                    filter.event,
                    filter.app,
                    filter.route,
                    filter.since,
                    filter.until
                ],
                |row| {
                    let status: String = row.get(2)?;
                    Ok((
                        DeliveryKey::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
                        status,
                    ))
                },
            ))?;
            let mut out = Vec::new();
            for row in rows {
                let (key, status) = db(row)?;
                let status =
                    Status::parse(&status).ok_or_else(|| StoreError::unknown_status(&status))?;
                out.push((key, status));
            }
            Ok(out)
        })
    }

    fn replay_deliveries(
        &self,
        keys: Vec<DeliveryKey>,
    ) -> BoxFuture<'_, Result<usize, StoreError>> {
        // One held for delivery right now is left as it is: it is about to be delivered,
        // and making it due would deliver it twice.
        self.update_deliveries(
            keys,
            "UPDATE events SET status = 'pending', attempts = 0, delivered_at = NULL,
             discarded_at = NULL,
             next_attempt_at = CASE
                 WHEN status = 'pending' AND held = 1 THEN next_attempt_at
                 ELSE ?3 END
             WHERE id = ?1 AND route = ?2 AND route <> ''",
        )
    }

    fn discard(&self, keys: Vec<DeliveryKey>) -> BoxFuture<'_, Result<usize, StoreError>> {
        self.update_deliveries(
            keys,
            "UPDATE events SET status = 'discarded', discarded_at = ?3, next_attempt_at = NULL
             WHERE id = ?1 AND route = ?2
               AND (status = 'dead' OR (status = 'pending' AND held = 0))",
        )
    }

    fn discard_quarantined(&self, ids: Vec<String>) -> BoxFuture<'_, Result<usize, StoreError>> {
        self.write(move |tx| {
            let ids =
                serde_json::to_string(&ids).map_err(|e| StoreError::Database(e.to_string()))?;
            exec(
                tx,
                "UPDATE quarantine SET discarded_at = ?2
                 WHERE id IN (SELECT value FROM json_each(?1)) AND discarded_at IS NULL",
                params![ids, clock::now_ms()],
            )
        })
    }

    fn quarantined(&self, limit: usize) -> BoxFuture<'_, Result<Vec<QuarantinedPush>, StoreError>> {
        self.read(move |conn| {
            let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
            let mut stmt = db(conn.prepare_cached(
                "SELECT id, received_at, app, authorizer_appid, query, body, reason
                 FROM quarantine WHERE discarded_at IS NULL ORDER BY seq LIMIT ?1",
            ))?;
            let rows = db(stmt.query_map(params![limit], row_to_quarantined))?;
            db(rows.collect())
        })
    }

    fn release_quarantined(
        &self,
        quarantine_id: String,
        event: Event,
        routes: Vec<String>,
    ) -> BoxFuture<'_, Result<Recorded, StoreError>> {
        self.write(move |tx| {
            let now = clock::now_ms();
            atomic(tx, || {
                // Its request was claimed when it was quarantined.
                let (recorded, _) = insert_event(tx, &event, now, false, None, &routes)?;
                exec(
                    tx,
                    "DELETE FROM quarantine WHERE id = ?1",
                    params![quarantine_id],
                )?;
                Ok(recorded)
            })
        })
    }

    fn requarantine(
        &self,
        quarantine_id: String,
        reason: String,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |conn| {
            exec(
                conn,
                "UPDATE quarantine SET reason = ?2, attempts = attempts + 1 WHERE id = ?1",
                params![quarantine_id, reason],
            )?;
            Ok(())
        })
    }

    fn stats(&self) -> BoxFuture<'_, Result<Stats, StoreError>> {
        self.read(|conn| {
            let mut stats = Stats::default();
            let mut stmt = db(conn.prepare_cached(
                "SELECT status, count(*) FROM events WHERE route <> '' GROUP BY status",
            ))?;
            let rows = db(stmt.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, u64>(1)?))
            }))?;
            // Every route's row of an event counts its duplicates: count them once.
            stats.duplicates = db(conn.query_row(
                "SELECT coalesce(sum(d), 0) FROM (SELECT max(duplicates) AS d FROM events
                 WHERE duplicates > 0 GROUP BY id)",
                [],
                |r| r.get(0),
            ))?;
            for row in rows {
                let (status, count) = db(row)?;
                match Status::parse(&status) {
                    Some(Status::Pending) => stats.pending = count,
                    Some(Status::Delivered) => stats.delivered = count,
                    Some(Status::Dead) => stats.dead = count,
                    Some(Status::Discarded) => stats.discarded += count,
                    _ => return Err(StoreError::unknown_status(&status)),
                }
            }
            let (quarantined, discarded): (u64, u64) = db(conn.query_row(
                "SELECT count(*) FILTER (WHERE discarded_at IS NULL),
                        count(*) FILTER (WHERE discarded_at IS NOT NULL) FROM quarantine",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            ))?;
            stats.quarantined = quarantined;
            stats.discarded += discarded;
            stats.oldest_pending_at = db(conn.query_row(
                "SELECT min(received_at) FROM events WHERE status = 'pending'",
                [],
                |r| r.get(0),
            ))?;
            Ok(stats)
        })
    }

    fn prune(&self, before: i64) -> BoxFuture<'_, Result<usize, StoreError>> {
        self.write(move |conn| {
            exec(
                conn,
                "DELETE FROM requests WHERE received_at < ?1",
                params![before],
            )?;
            exec(
                conn,
                "DELETE FROM quarantine WHERE discarded_at < ?1",
                params![before],
            )?;
            exec(
                conn,
                "DELETE FROM attempts WHERE started_at < ?1",
                params![before],
            )?;
            exec(
                conn,
                "DELETE FROM events WHERE (status = 'delivered' AND delivered_at < ?1)
                    OR (status = 'discarded' AND discarded_at < ?1)",
                params![before],
            )
        })
    }
}

impl SqliteStore {
    /// Runs `sql` (parameters: id, route, now) once per key, all or none; returns how many
    /// rows it changed.
    fn update_deliveries(
        &self,
        keys: Vec<DeliveryKey>,
        sql: &'static str,
    ) -> BoxFuture<'_, Result<usize, StoreError>> {
        self.write(move |tx| {
            let now = clock::now_ms();
            atomic(tx, || {
                let mut count = 0;
                for key in &keys {
                    count += exec(tx, sql, params![key.id, key.route, now])?;
                }
                Ok(count)
            })
        })
    }
}
