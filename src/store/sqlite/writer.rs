//! The writer thread (group commit: every queued write in one transaction, one fsync)
//! and the checkpoint thread beside it.

use super::*;

pub(super) fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// The writer thread: batch everything queued, one transaction, one commit, reply to all.
pub(super) fn run_writer(conn: Connection, rx: mpsc::Receiver<Job>, counters: &WriteCounters) {
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
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// WAL size (in 4 KiB frames) past which the writer, between two batches, makes the WAL
/// start over. A steady stream of commits otherwise never lets SQLite reset the WAL, and
/// the file grows without bound. By then the checkpoint thread has copied nearly every
/// frame, so the pause is short.
pub(super) const WAL_RESTART_FRAMES: i64 = 16_384;

/// Writes committed since the last checkpoint before the next one runs (SQLite's own
/// automatic checkpoints wait for about 1000 pages). Checkpointing a near-empty WAL would
/// let SQLite reuse its file space, so a small write could succeed on a full disk and the
/// readiness check would miss it.
pub(super) const CHECKPOINT_AFTER_WRITES: u64 = 500;

/// The checkpoint thread: every [`CHECKPOINT_EVERY`], once enough has been written, a
/// passive checkpoint, which never blocks commits; it records the WAL's size for the
/// writer. Ends when the store is dropped.
pub(super) fn run_checkpoints(
    conn: &Connection,
    alive: &std::sync::Weak<()>,
    counters: &WriteCounters,
) {
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
