//! Statements and row mapping shared by the inbox and admin halves: inserting an event
//! (with its request key and submission), reading rows back, mapping errors.

use super::*;

/// Runs `f`'s statements all or none: in a savepoint, rolled back if `f` fails. Only
/// writes of more than one statement need it; a single failing statement undoes itself.
pub(super) fn atomic<T>(
    conn: &Connection,
    f: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    db(run(conn, "SAVEPOINT write"))?;
    let result = f();
    // After an error that rolled back the whole transaction, no savepoint is left.
    if !conn.is_autocommit() {
        if result.is_err() {
            let _ = run(conn, "ROLLBACK TO write");
        }
        let _ = run(conn, "RELEASE write");
    }
    result
}

/// Runs a statement without parameters through the statement cache.
pub(super) fn run(conn: &Connection, sql: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute([])
}

/// Runs a statement through the statement cache: parsing SQL costs more than running these.
pub(super) fn exec(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<usize, StoreError> {
    let mut stmt = db(conn.prepare_cached(sql))?;
    db(stmt.execute(params))
}

/// Maps SQLite errors to the kinds the service reacts to.
pub(super) fn classify(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StoreError::Full(e.to_string()),
        Some(ErrorCode::ReadOnly) => StoreError::ReadOnly(e.to_string()),
        _ => StoreError::Database(e.to_string()),
    }
}

pub(super) fn db<T>(r: rusqlite::Result<T>) -> Result<T, StoreError> {
    r.map_err(classify)
}

/// Inserts `event`, a row per route (for no route, one [`NO_ROUTE`] row, delivered),
/// unless its id exists (counting the duplicate then). A route's row is `held` when `hold`
/// allows and it is the only pending delivery of its route and ordering key: it is handed
/// to the running server's dispatcher in memory (due only after [`HOLD_MS`] as a safety
/// net). Any other row is due now, and handed out once the deliveries before it are done.
/// Returns the outcome and the routes whose rows are held.
pub(super) fn insert_event(
    tx: &Tx<'_>,
    event: &Event,
    now: i64,
    hold: bool,
    request_key: Option<&str>,
    routes: &[String],
) -> Result<(Recorded, Vec<String>), StoreError> {
    if let Some(key) = request_key
        && !claim_request(tx, key, now)?
        && !event_exists(tx, &event.id)?
    {
        // The same signed request was seen before, and made no event: a copy sent to
        // another path or with another body, which neither creates nor re-attributes one.
        // (A platform retry of a stored event is counted as a duplicate below.)
        return Ok((Recorded::Replay, Vec::new()));
    }
    let resolve = event.category_audit().is_some() && tx.has_open_submissions()?;
    let write = || {
        let Some(held) = insert_rows(tx, event, now, hold, routes)? else {
            exec(
                tx,
                "UPDATE events SET duplicates = duplicates + 1, last_duplicate_at = ?2 WHERE id = ?1",
                params![event.id, now],
            )?;
            return Ok((Recorded::Duplicate, Vec::new()));
        };
        if resolve {
            resolve_submission(tx, event, now)?;
        }
        Ok((Recorded::New, held))
    };
    // One statement undoes itself when it fails; more need a savepoint.
    if routes.len() > 1 || resolve {
        atomic(tx, write)
    } else {
        write()
    }
}

fn event_exists(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(db(conn
        .prepare_cached("SELECT 1 FROM events WHERE id = ?1 LIMIT 1")
        .and_then(|mut stmt| stmt.query_row(params![id], |_| Ok(())).optional()))?
    .is_some())
}

/// [`insert_event`]'s rows; returns the routes whose rows are held, or `None` when the
/// event is already stored (its first route's row, or its no-route row, exists).
fn insert_rows(
    conn: &Connection,
    event: &Event,
    now: i64,
    hold: bool,
    routes: &[String],
) -> Result<Option<Vec<String>>, StoreError> {
    let order_key = event.order_key();
    if routes.is_empty() {
        let inserted = exec(conn,
            "INSERT INTO events (id, route, order_key, received_at, status, app, authorizer_appid, event_name, message, delivered_at)
             VALUES (?1, ?2, ?3, ?4, 'delivered', ?5, ?6, ?7, ?8, ?4)
             ON CONFLICT(id, route) DO NOTHING",
            params![event.id, NO_ROUTE, order_key, now, event.app, event.authorizer_appid, event.name(), event.raw],
        )?;
        return Ok((inserted == 1).then(Vec::new));
    }
    let mut held = Vec::new();
    for (i, route) in routes.iter().enumerate() {
        let first = hold
            && db(conn
                .prepare_cached(
                    "SELECT 1 FROM events WHERE status = 'pending' AND route = ?1 AND order_key = ?2 LIMIT 1",
                )
                .and_then(|mut stmt| stmt.query_row(params![route, order_key], |_| Ok(())).optional()))?
            .is_none();
        let inserted = exec(conn,
            "INSERT INTO events (id, route, order_key, received_at, status, app, authorizer_appid, event_name, message, next_attempt_at, held)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(id, route) DO NOTHING",
            params![
                event.id,
                route,
                order_key,
                now,
                event.app,
                event.authorizer_appid,
                event.name(),
                event.raw,
                if first { now + HOLD_MS } else { now },
                first
            ],
        )?;
        if inserted == 0 && i == 0 {
            return Ok(None);
        }
        if first && inserted == 1 {
            held.push(route.clone());
        }
    }
    Ok(Some(held))
}

/// Records a request's key; false when it was already recorded (a replay).
pub(super) fn claim_request(conn: &Connection, key: &str, now: i64) -> Result<bool, StoreError> {
    Ok(exec(
        conn,
        "INSERT INTO requests (key, received_at) VALUES (?1, ?2) ON CONFLICT(key) DO NOTHING",
        params![key, now],
    )? == 1)
}

/// A new category-audit event resolves the newest pending submission of the same app,
/// categories and (where both know it) authorizer.
pub(super) fn resolve_submission(
    conn: &Connection,
    event: &Event,
    now: i64,
) -> Result<(), StoreError> {
    let Some(audit) = event.category_audit() else {
        return Ok(());
    };
    exec(
        conn,
        "UPDATE submissions SET status = ?1, reason = ?2, resolved_at = ?3, event_id = ?4,
                                source = ?9
         WHERE seq = (SELECT seq FROM submissions
                      WHERE status = 'pending' AND app = ?5 AND first = ?6 AND second = ?7
                        AND (authorizer_appid IS NULL OR ?8 IS NULL OR authorizer_appid = ?8)
                      ORDER BY seq DESC LIMIT 1)",
        params![
            audit.result.as_str(),
            audit.reason,
            now,
            event.id,
            event.app,
            scalar_text(&audit.first).trim(),
            scalar_text(&audit.second).trim(),
            event.authorizer_appid,
            event.source().as_str()
        ],
    )?;
    Ok(())
}

pub(super) fn row_to_record(row: &Row<'_>) -> rusqlite::Result<Record> {
    let id: String = row.get(0)?;
    let received_at: i64 = row.get(1)?;
    let status: String = row.get(2)?;
    let app: String = row.get(3)?;
    let authorizer: Option<String> = row.get(4)?;
    let message: String = row.get(5)?;
    let attempts: u32 = row.get(6)?;
    let last_error: Option<String> = row.get(7)?;
    let status = Status::parse(&status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Text,
            Box::new(StoreError::unknown_status(&status)),
        )
    })?;
    let next_attempt_at: Option<i64> = row.get(8)?;
    // A new event handed to the running server's dispatcher in memory.
    let held: bool = row.get(11)?;
    let route: String = row.get(12)?;
    let lease = match next_attempt_at {
        Some(until) if held && status == Status::Pending => Some(Lease {
            owner: HOLDER.to_owned(),
            until,
        }),
        _ => None,
    };
    Ok(StoredEvent {
        id,
        route,
        received_at,
        status,
        app,
        authorizer_appid: authorizer,
        message,
        attempts,
        last_error,
        next_attempt_at,
        delivered_at: row.get(9)?,
        duplicates: row.get(10)?,
        lease,
    }
    .into())
}

pub(super) fn row_to_quarantined(row: &Row<'_>) -> rusqlite::Result<QuarantinedPush> {
    let query: String = row.get(4)?;
    Ok(QuarantinedPush {
        id: row.get(0)?,
        received_at: row.get(1)?,
        app: row.get(2)?,
        authorizer_appid: row.get(3)?,
        query: serde_json::from_str::<PushQuery>(&query).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, Box::new(e))
        })?,
        body: row.get(5)?,
        reason: row.get(6)?,
    })
}
