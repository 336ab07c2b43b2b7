//! The SQLite schema: the original tables and the numbered migrations after them
//! (`PRAGMA user_version`), and the hint an unwritable data dir gets.

use std::path::Path;

use rusqlite::Connection;

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
];

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
