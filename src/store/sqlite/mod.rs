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
    Admin, AttemptLog, DeliveryKey, DueQuery, Inbox, Lease, ListFilter, NO_ROUTE, QuarantinedPush,
    Record, Recorded, Stats, Status, StoreError, StoredEvent,
};
use crate::clock;
use crate::event::Event;
use crate::push::PushQuery;
use futures_util::future::BoxFuture;

/// The database file's name inside the data dir.
pub const DB_FILE: &str = "wxpush.db";

/// Most writes committed in one transaction.
mod admin;
mod credentials;
mod inbox;
mod rows;
mod schema;
mod submissions;
mod writer;

use rows::*;
use writer::*;

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
                             last_error, next_attempt_at, delivered_at, duplicates, held, route";

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

#[cfg(test)]
mod tests;
