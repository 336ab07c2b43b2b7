//! The embedded store: one SQLite file (`wxpush.db`) in the data dir, WAL mode,
//! `synchronous = FULL` so a commit is on disk before it returns.
//!
//! Writes go through one writer thread that commits everything queued since its last
//! commit in one transaction (group commit): under load, many pushes share one fsync. A
//! failing statement undoes only itself, and a write of several statements runs them in a
//! savepoint (`atomic`), so one failing write does not undo the others. Reads use
//! a second connection; WAL lets them run beside the writer, and beside other processes
//! (the events CLI) using the same file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, params};
use tokio::sync::oneshot;

use super::held::Held;
use super::scalar_text;
use super::{
    Admin, Inbox, Lease, ListFilter, QuarantinedPush, Record, Recorded, Stats, Status, StoreError,
    StoredEvent, Submission, Submissions,
};
use crate::clock;
use crate::event::Event;
use crate::push::PushQuery;
use futures_util::future::BoxFuture;

/// The database file's name inside the data dir.
pub const DB_FILE: &str = "wxpush.db";

/// Most writes committed in one transaction.
mod admin;
mod inbox;
mod schema;

use schema::{migrate, with_owner_hint};

const MAX_BATCH: usize = 1024;

/// How long a new event stays held for this process's dispatcher (see [`super::held`])
/// before reads for due events return it; a restart gives held events back at once.
const HOLD_MS: i64 = 3_600_000;

/// Who holds held events, as `events show` prints it.
const HOLDER: &str = "the running server";

/// What the writer thread reports back to one write after the batch's commit.
type Completion = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;
/// One write: runs inside the batch transaction; says whether it succeeded.
type Job = Box<dyn FnOnce(Result<&Tx<'_>, &StoreError>) -> (bool, Completion) + Send>;

/// The writer's open transaction, as the writes of one batch see it.
struct Tx<'c> {
    conn: &'c Connection,
    /// Whether a submission is waiting for its audit result, once a write asked.
    open_submissions: std::cell::Cell<Option<bool>>,
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Tx<'_> {
    /// Whether any submission waits for its audit result. Asked once per transaction: no
    /// other connection can add one while the writer holds the write lock, and this
    /// transaction's own additions set it.
    fn has_open_submissions(&self) -> Result<bool, StoreError> {
        if let Some(open) = self.open_submissions.get() {
            return Ok(open);
        }
        let open = db(self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM submissions WHERE status = 'pending')")
            .and_then(|mut stmt| stmt.query_row([], |row| row.get(0))))?;
        self.open_submissions.set(Some(open));
        Ok(open)
    }
}

/// The SQLite inbox. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    path: PathBuf,
    jobs: mpsc::Sender<Job>,
    reader: Arc<Mutex<Connection>>,
    counters: Arc<WriteCounters>,
    held: Arc<Held>,
    /// Dropped with the store: stops the checkpoint thread.
    _alive: Arc<()>,
}

/// What the writer thread has done, for group-commit checks and metrics.
#[derive(Debug, Default)]
struct WriteCounters {
    /// Transactions committed (each one fsync).
    commits: AtomicU64,
    /// Writes those transactions carried.
    writes: AtomicU64,
    /// Frames in the WAL at the last checkpoint.
    wal_frames: AtomicI64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

const EVENT_COLUMNS: &str = "id, received_at, status, app, authorizer_appid, message, attempts, \
                             last_error, next_attempt_at, delivered_at, duplicates";

impl SqliteStore {
    /// Opens (creating if needed) `data_dir/wxpush.db` and starts the writer thread.
    ///
    /// # Errors
    /// [`StoreError::Open`] when the directory or database cannot be created or written.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(DB_FILE);
        let open_err = |reason: String| StoreError::Open {
            path: path.display().to_string(),
            reason: with_owner_hint(reason, data_dir),
        };
        std::fs::create_dir_all(data_dir)
            .map_err(|e| open_err(format!("cannot create the data dir: {e}")))?;
        let writer = connect(&path).map_err(|e| open_err(e.to_string()))?;
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_err(e.to_string()))?;
        // Creating the schema is also the check that the file is writable: SQLite silently
        // opens an unwritable file read-only.
        migrate(&writer).map_err(open_err)?;
        let reader = connect(&path).map_err(|e| open_err(e.to_string()))?;
        // Checkpoints (copying the WAL into the database file) run on their own thread, so
        // commits never wait behind one.
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| open_err(e.to_string()))?;
        // After the WAL starts over, its file is cut back to 96 MiB.
        writer
            .pragma_update(None, "journal_size_limit", 96 * 1024 * 1024)
            .map_err(|e| open_err(e.to_string()))?;
        let checkpointer = connect(&path).map_err(|e| open_err(e.to_string()))?;
        let alive = Arc::new(());
        let watch = Arc::downgrade(&alive);
        let (jobs, rx) = mpsc::channel::<Job>();
        let counters = Arc::new(WriteCounters::default());
        let checkpoint_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("wxpush-store-checkpoint".into())
            .spawn(move || run_checkpoints(&checkpointer, &watch, &checkpoint_counters))
            .map_err(|e| open_err(format!("cannot start the checkpoint thread: {e}")))?;
        let writer_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("wxpush-store-writer".into())
            .spawn(move || run_writer(writer, rx, &writer_counters))
            .map_err(|e| open_err(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            path,
            jobs,
            reader: Arc::new(Mutex::new(reader)),
            counters,
            held: Arc::new(Held::default()),
            _alive: alive,
        })
    }

    /// Opens `data_dir/wxpush.db` only if it exists (the CLI's commands; only `serve`
    /// creates an inbox).
    ///
    /// # Errors
    /// [`StoreError::Open`] saying where it looked and how to point elsewhere, when there is
    /// no inbox there; otherwise as [`SqliteStore::open`].
    pub fn open_existing(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(DB_FILE);
        if !path.is_file() {
            let shown = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
            return Err(StoreError::Open {
                path: shown.display().to_string(),
                reason: format!(
                    "no inbox there (data_dir = {:?}{}); run this command where `wxpush serve` runs, or point it at the inbox with WXPUSH_DATA_DIR or --config",
                    data_dir.display().to_string(),
                    if data_dir.is_relative() {
                        ", relative to the current directory"
                    } else {
                        ""
                    }
                ),
            });
        }
        Self::open(data_dir)
    }

    /// `(transactions committed, writes they carried)` since the store was opened. Under
    /// concurrent load the second grows faster than the first: that is group commit.
    pub fn commit_counts(&self) -> (u64, u64) {
        (
            self.counters.commits.load(Ordering::Relaxed),
            self.counters.writes.load(Ordering::Relaxed),
        )
    }

    /// Queues a write for the next group commit; resolves once it is durable.
    fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        self.write_then(f, |t| t)
    }

    /// Like [`SqliteStore::write`], running `after_commit` on the writer thread once the
    /// write is durable, whether or not anyone still awaits the result.
    fn write_then<T: Send + 'static, U: Send + 'static>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, StoreError> + Send + 'static,
        after_commit: impl FnOnce(T) -> U + Send + 'static,
    ) -> BoxFuture<'_, Result<U, StoreError>> {
        let (tx, rx) = oneshot::channel::<Result<U, StoreError>>();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Ok(conn) => f(conn),
                Err(e) => Err(e.clone()),
            };
            let ok = result.is_ok();
            let completion: Completion = Box::new(move |commit| {
                let _ = tx.send(match commit {
                    Ok(()) => result.map(after_commit),
                    Err(e) => Err(e.clone()),
                });
            });
            (ok, completion)
        });
        let sent = self.jobs.send(job);
        Box::pin(async move {
            sent.map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    /// Runs a read on the reader connection, off the async threads.
    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        let reader = Arc::clone(&self.reader);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let conn = reader
                    .lock()
                    .map_err(|_| StoreError::Database("reader lock poisoned".into()))?;
                f(&conn)
            })
            .await
            .map_err(|_| StoreError::Closed)?
        })
    }
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// The writer thread: batch everything queued, one transaction, one commit, reply to all.
fn run_writer(conn: Connection, rx: mpsc::Receiver<Job>, counters: &WriteCounters) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = run(&conn, "BEGIN IMMEDIATE") {
            let err = classify(e);
            tracing::error!(error = %err, "store: cannot start a transaction");
            for job in batch {
                let (_, completion) = job(Err(&err));
                completion(Err(&err));
            }
            continue;
        }
        let tx = Tx {
            conn: &conn,
            open_submissions: std::cell::Cell::new(None),
        };
        let mut completions = Vec::with_capacity(batch.len());
        let mut aborted = None;
        for job in batch {
            if let Some(err) = &aborted {
                let (_, completion) = job(Err(err));
                completions.push(completion);
                continue;
            }
            let (ok, completion) = job(Ok(&tx));
            completions.push(completion);
            // Some errors (a full disk, an I/O error) make SQLite roll back the whole
            // transaction: then nothing of this batch can be committed.
            if !ok && conn.is_autocommit() {
                aborted = Some(StoreError::Database(
                    "an error in this batch rolled back its transaction".into(),
                ));
            }
        }
        let commit = match aborted {
            Some(err) => Err(err),
            None => run(&conn, "COMMIT").map_err(classify),
        };
        if commit.is_ok() {
            counters.commits.fetch_add(1, Ordering::Relaxed);
            counters
                .writes
                .fetch_add(completions.len() as u64, Ordering::Relaxed);
        }
        if let Err(err) = &commit {
            tracing::error!(error = %err, "store: commit failed; nothing in this batch is acknowledged");
            let _ = run(&conn, "ROLLBACK");
        }
        for completion in completions {
            completion(commit.as_ref().map(|_| ()));
        }
        if counters.wal_frames.load(Ordering::Relaxed) >= WAL_RESTART_FRAMES {
            counters.wal_frames.store(0, Ordering::Relaxed);
            if let Err(error) = run(&conn, "PRAGMA wal_checkpoint(PASSIVE)") {
                tracing::warn!(%error, "store: cannot restart the WAL");
            }
        }
    }
}

/// How often the checkpoint thread copies committed WAL frames into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// WAL size (in 4 KiB frames) past which the writer, between two batches, makes the WAL
/// start over. A steady stream of commits otherwise never lets SQLite reset the WAL, and
/// the file grows without bound. By then the checkpoint thread has copied nearly every
/// frame, so the pause is short.
const WAL_RESTART_FRAMES: i64 = 16_384;

/// Writes committed since the last checkpoint before the next one runs (SQLite's own
/// automatic checkpoints wait for about 1000 pages). Checkpointing a near-empty WAL would
/// let SQLite reuse its file space, so a small write could succeed on a full disk and the
/// readiness check would miss it.
const CHECKPOINT_AFTER_WRITES: u64 = 500;

/// The checkpoint thread: every [`CHECKPOINT_EVERY`], once enough has been written, a
/// passive checkpoint, which never blocks commits; it records the WAL's size for the
/// writer. Ends when the store is dropped.
fn run_checkpoints(conn: &Connection, alive: &std::sync::Weak<()>, counters: &WriteCounters) {
    let passive = || {
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            row.get::<_, i64>(1)
        })
    };
    let mut checkpointed_at = 0;
    while alive.strong_count() > 0 {
        std::thread::sleep(CHECKPOINT_EVERY);
        let writes = counters.writes.load(Ordering::Relaxed);
        if writes.saturating_sub(checkpointed_at) < CHECKPOINT_AFTER_WRITES {
            continue;
        }
        checkpointed_at = writes;
        match passive() {
            Ok(frames) => counters.wal_frames.store(frames, Ordering::Relaxed),
            Err(error) => tracing::warn!(%error, "store: checkpoint failed"),
        }
    }
    let _ = passive();
}

/// Runs `f`'s statements all or none: in a savepoint, rolled back if `f` fails. Only
/// writes of more than one statement need it; a single failing statement undoes itself.
fn atomic<T>(
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
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute([])
}

/// Runs a statement through the statement cache: parsing SQL costs more than running these.
fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<usize, StoreError> {
    let mut stmt = db(conn.prepare_cached(sql))?;
    db(stmt.execute(params))
}

/// Maps SQLite errors to the kinds the service reacts to.
fn classify(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StoreError::Full(e.to_string()),
        Some(ErrorCode::ReadOnly) => StoreError::ReadOnly(e.to_string()),
        _ => StoreError::Database(e.to_string()),
    }
}

fn db<T>(r: rusqlite::Result<T>) -> Result<T, StoreError> {
    r.map_err(classify)
}

/// Inserts `event` (due at `due_at`) unless its id exists; counts the duplicate otherwise.
fn insert_event(
    tx: &Tx<'_>,
    event: &Event,
    now: i64,
    due_at: i64,
    request_key: Option<&str>,
) -> Result<Recorded, StoreError> {
    if let Some(key) = request_key
        && !claim_request(tx, key, now)?
    {
        // The same signed request was seen before: a platform retry of this event (counted
        // as a duplicate), or a copy sent to another path or with another body, which
        // neither creates nor re-attributes an event.
        let stored = db(tx
            .query_row(
                "SELECT 1 FROM events WHERE id = ?1",
                params![event.id],
                |_| Ok(()),
            )
            .optional())?;
        if stored.is_none() {
            return Ok(Recorded::Replay);
        }
    }
    if event.category_audit().is_some() && tx.has_open_submissions()? {
        atomic(tx, || insert_event_then(tx, event, now, due_at, true))
    } else {
        insert_event_then(tx, event, now, due_at, false)
    }
}

/// Records a request's key; false when it was already recorded (a replay).
fn claim_request(conn: &Connection, key: &str, now: i64) -> Result<bool, StoreError> {
    Ok(exec(
        conn,
        "INSERT INTO requests (key, received_at) VALUES (?1, ?2) ON CONFLICT(key) DO NOTHING",
        params![key, now],
    )? == 1)
}

/// [`insert_event`]'s statements; a new event resolves a submission when `resolve` is set.
fn insert_event_then(
    conn: &Connection,
    event: &Event,
    now: i64,
    due_at: i64,
    resolve: bool,
) -> Result<Recorded, StoreError> {
    let inserted = exec(conn,
        "INSERT INTO events (id, received_at, status, app, authorizer_appid, event_name, message, next_attempt_at)
         VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(id) DO NOTHING",
        params![event.id, now, event.app, event.authorizer_appid, event.name(), event.raw, due_at],
    )?;
    if inserted == 1 {
        if resolve {
            resolve_submission(conn, event, now)?;
        }
        return Ok(Recorded::New);
    }
    exec(
        conn,
        "UPDATE events SET duplicates = duplicates + 1, last_duplicate_at = ?2 WHERE id = ?1",
        params![event.id, now],
    )?;
    Ok(Recorded::Duplicate)
}

/// A new category-audit event resolves the newest pending submission of the same app,
/// categories and (where both know it) authorizer.
fn resolve_submission(conn: &Connection, event: &Event, now: i64) -> Result<(), StoreError> {
    let Some(audit) = event.category_audit() else {
        return Ok(());
    };
    exec(
        conn,
        "UPDATE submissions SET status = ?1, reason = ?2, resolved_at = ?3, event_id = ?4
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
            event.authorizer_appid
        ],
    )?;
    Ok(())
}

fn row_to_record(row: &Row<'_>) -> rusqlite::Result<Record> {
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
    // A new event stored as held (due exactly HOLD_MS after it arrived, never attempted)
    // is in the server's memory for delivery.
    let lease = match next_attempt_at {
        Some(until)
            if status == Status::Pending
                && attempts == 0
                && until == received_at.saturating_add(HOLD_MS) =>
        {
            Some(Lease {
                owner: HOLDER.to_owned(),
                until,
            })
        }
        _ => None,
    };
    Ok(StoredEvent {
        id,
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

fn row_to_quarantined(row: &Row<'_>) -> rusqlite::Result<QuarantinedPush> {
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

#[cfg(test)]
mod tests;
