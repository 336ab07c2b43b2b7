//! The SQLite schema: the original tables and the numbered migrations after them
//! (`PRAGMA user_version`), and the hint an unwritable data dir gets.

use std::path::Path;

use rusqlite::Connection;

use crate::event::Event;

/// The schema's numbered steps after the original [`SCHEMA`], applied in order and recorded
/// in `PRAGMA user_version`. Never edit a released one: add the next.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE IF NOT EXISTS requests (
         key         TEXT PRIMARY KEY,
         received_at INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE INDEX IF NOT EXISTS requests_received ON requests(received_at);",
    ),
    (
        2,
        // New events handed to the running server's dispatcher in memory say so in a
        // column; before, they were told apart by being due exactly an hour after arrival.
        "ALTER TABLE events ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
         UPDATE events SET held = 1
          WHERE status = 'pending' AND attempts = 0 AND next_attempt_at = received_at + 3600000;",
    ),
    (
        3,
        // Delivery state per route: a row per event and route, the id unique per route; and
        // when an operator discarded a delivery or a quarantined push.
        // Existing events are the route `default`'s; their ordering key is app, authorizer
        // and event name (category audits get their categories added by `order_keys`).
        "CREATE TABLE events_v3 (
             seq              INTEGER PRIMARY KEY AUTOINCREMENT,
             id               TEXT NOT NULL,
             route            TEXT NOT NULL,
             order_key        TEXT NOT NULL,
             received_at      INTEGER NOT NULL,
             status           TEXT NOT NULL,
             app              TEXT NOT NULL,
             authorizer_appid TEXT,
             event_name       TEXT NOT NULL,
             message          TEXT NOT NULL,
             attempts         INTEGER NOT NULL DEFAULT 0,
             last_error       TEXT,
             next_attempt_at  INTEGER,
             delivered_at     INTEGER,
             duplicates       INTEGER NOT NULL DEFAULT 0,
             last_duplicate_at INTEGER,
             held             INTEGER NOT NULL DEFAULT 0,
             discarded_at     INTEGER,
             UNIQUE (id, route)
         );
         INSERT INTO events_v3 (seq, id, route, order_key, received_at, status, app,
                                authorizer_appid, event_name, message, attempts, last_error,
                                next_attempt_at, delivered_at, duplicates, last_duplicate_at, held)
         SELECT seq, id, 'default',
                app || char(31) || coalesce(authorizer_appid, '') || char(31) || event_name,
                received_at, status, app, authorizer_appid, event_name, message, attempts,
                last_error, next_attempt_at, delivered_at, duplicates, last_duplicate_at, held
           FROM events;
         DROP TABLE events;
         ALTER TABLE events_v3 RENAME TO events;
         CREATE INDEX events_pending ON events(next_attempt_at) WHERE status = 'pending';
         CREATE INDEX events_delivered ON events(delivered_at) WHERE status = 'delivered';
         CREATE INDEX events_status ON events(status, seq);
         CREATE INDEX events_order ON events(route, order_key, seq) WHERE status = 'pending';
         CREATE INDEX events_discarded ON events(discarded_at) WHERE status = 'discarded';
         ALTER TABLE quarantine ADD COLUMN discarded_at INTEGER;",
    ),
    (4, crate::store::credentials_sql::TABLES),
    (5, crate::store::categories_sql::TABLES),
    (6, crate::store::categories_sql::ATTEMPTS),
];

/// After migration 3: pending category audits get the ordering key new ones have
/// ([`Event::order_key`], with their categories), so that a result stored before the
/// upgrade is still delivered before a later result of the same category.
fn order_keys(conn: &Connection) -> Result<(), String> {
    let mut stmt = conn
        .prepare(
            "SELECT seq, app, authorizer_appid, message FROM events
             WHERE status = 'pending' AND event_name = 'wxa_category_audit'",
        )
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, String>(3)?,
            ))
        })
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    for (seq, app, authorizer, message) in rows {
        let key = Event::from_message(message, &app, authorizer.as_deref()).order_key();
        conn.execute(
            "UPDATE events SET order_key = ?2 WHERE seq = ?1",
            rusqlite::params![seq, key],
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Creates the original schema if missing and applies the migrations the file lacks, in one
/// transaction. Creating the schema is also the check that the file is writable: SQLite
/// silently opens an unwritable file read-only.
pub(super) fn migrate(conn: &Connection) -> Result<(), String> {
    conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA}"))
        .map_err(|e| e.to_string())?;
    let result = (|| {
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| e.to_string())?;
        let latest = MIGRATIONS.last().map_or(0, |m| m.0);
        if version > latest {
            return Err(format!(
                "the inbox is at schema version {version}, made by a newer wxpush; this one knows versions up to {latest}"
            ));
        }
        for (number, sql) in MIGRATIONS.iter().filter(|m| m.0 > version) {
            conn.execute_batch(sql)
                .map_err(|e| format!("migration {number}: {e}"))?;
            if *number == 3 {
                order_keys(conn).map_err(|e| format!("migration {number}: {e}"))?;
            }
            conn.pragma_update(None, "user_version", number)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })();
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute_batch(end).map_err(|e| e.to_string())?;
    result
}

/// Adds, when `dir` cannot be written by this process, which uid it runs as and how to fix
/// it: the usual cause in a container whose volume belongs to another user.
pub(super) fn with_owner_hint(reason: String, dir: &Path) -> String {
    let probe = dir.join(".wxpush-write-check");
    let writable = std::fs::create_dir_all(dir).is_ok()
        && std::fs::write(&probe, b"").is_ok()
        && std::fs::remove_file(&probe).is_ok();
    if writable {
        return reason;
    }
    match process_uid() {
        Some(uid) => format!(
            "{reason}; {} is not writable by uid {uid}, which wxpush runs as (is it read-only, or owned by another user?): give that uid the directory (chown {uid} {}), or run as its owner",
            dir.display(),
            dir.display()
        ),
        None => format!(
            "{reason}; {} is not writable by this process",
            dir.display()
        ),
    }
}

/// The real uid of this process, from `/proc/self/status` (Linux).
fn process_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
}

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    received_at      INTEGER NOT NULL,
    status           TEXT NOT NULL,
    app              TEXT NOT NULL,
    authorizer_appid TEXT,
    event_name       TEXT NOT NULL,
    message          TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    next_attempt_at  INTEGER,
    delivered_at     INTEGER,
    duplicates       INTEGER NOT NULL DEFAULT 0,
    last_duplicate_at INTEGER
);
CREATE INDEX IF NOT EXISTS events_pending ON events(next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS events_delivered ON events(delivered_at) WHERE status = 'delivered';
CREATE INDEX IF NOT EXISTS events_status ON events(status, seq);
CREATE TABLE IF NOT EXISTS quarantine (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    received_at      INTEGER NOT NULL,
    app              TEXT NOT NULL,
    authorizer_appid TEXT,
    query            TEXT NOT NULL,
    body             BLOB NOT NULL,
    reason           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS submissions (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    app              TEXT NOT NULL,
    authorizer_appid TEXT,
    first            TEXT NOT NULL,
    second           TEXT NOT NULL,
    status           TEXT NOT NULL,
    reason           TEXT NOT NULL DEFAULT '',
    submitted_at     INTEGER NOT NULL,
    resolved_at      INTEGER,
    event_id         TEXT
);
CREATE INDEX IF NOT EXISTS submissions_open ON submissions(app, first, second) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";
