//! The shared store: a PostgreSQL database that any number of wxpush replicas use at once.
//!
//! - The schema is created and upgraded on start by embedded, numbered migrations (`migrations.rs`).
//! - Pushes and delivery marks are written by a group-commit task (`batch.rs`); a push is
//!   answered only after its transaction commits.
//! - The event id is the primary key: a platform retry that reaches another replica is
//!   counted as a duplicate, never stored twice.
//! - With `sslmode=require` in the URL, connections use TLS (rustls) and verify the
//!   server's certificate (`tls.rs`).
//! - Dispatchers take due events with `FOR UPDATE SKIP LOCKED` and lease them for
//!   `postgres.lease_secs`: no two replicas attempt the same event at once, and the events
//!   of a replica that dies are taken by the others when its lease expires.

mod batch;
mod errors;
mod migrations;
mod tls;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{NoTls, Row};

use self::batch::{Counters, Owner, Write};
use self::errors::{classify, open_error, pool_error};
use super::{
    Lease, ListFilter, QuarantinedPush, Record, Recorded, Stats, Status, Store, StoreError,
    StoredEvent, Submission,
};
use crate::clock;
use crate::event::Event;
use crate::push::PushQuery;
use crate::secret::Secret;
use crate::store::held::Held;
use crate::store::scalar_text;
use futures_util::future::BoxFuture;

/// Longest a statement may run before the server cancels it.
const STATEMENT_TIMEOUT_MS: u32 = 30_000;

/// Settings of the PostgreSQL store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// The connection URL (`postgres://user:password@host:port/db`) or key=value string;
    /// it may hold a password, so it is kept as a secret.
    pub url: Secret<String>,
    /// Where the connection goes, without the password, for logs and errors.
    pub target: String,
    /// The schema holding wxpush's tables (created if missing).
    pub schema: String,
    /// Most connections one instance opens.
    pub pool_size: usize,
    /// How long an instance owns the events it took for delivery; after it, another
    /// instance may deliver them (the owner is assumed dead).
    pub lease: Duration,
    /// PEM file of the CA that signed the server's certificate, trusted beside the public
    /// roots when the URL asks for TLS (`sslmode=require`).
    pub ca_file: Option<std::path::PathBuf>,
}

/// Longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Delivered events deleted per statement when pruning, so no statement runs long.
const PRUNE_CHUNK: i64 = 10_000;

const EVENT_COLUMNS: &str = "id, received_at, status, app, authorizer_appid, message, attempts, \
                             last_error, next_attempt_at, delivered_at, duplicates, lease_owner";

/// The PostgreSQL store. Cheap to share behind an `Arc`.
pub struct PostgresStore {
    pool: Pool,
    writes: mpsc::UnboundedSender<Write>,
    counters: Arc<Counters>,
    owner: String,
    lease: Duration,
    target: String,
    /// New events this instance stored, leased to it, for its dispatcher.
    held: Arc<Held>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects, migrates the schema and starts the group-commit task.
    ///
    /// # Errors
    /// [`StoreError::Open`] naming the database (never the password) and what failed:
    /// unreachable server, authentication, permissions, or a schema from a newer wxpush.
    pub async fn open(config: &PostgresConfig) -> Result<Self, StoreError> {
        Self::connect(config, true).await
    }

    /// Like [`PostgresStore::open`], but refuses a schema that holds no inbox yet instead of
    /// creating one (the CLI's commands; only `serve` creates an inbox).
    ///
    /// # Errors
    /// As [`PostgresStore::open`], and [`StoreError::Open`] when the schema has no inbox.
    pub async fn open_existing(config: &PostgresConfig) -> Result<Self, StoreError> {
        Self::connect(config, false).await
    }

    async fn connect(config: &PostgresConfig, create: bool) -> Result<Self, StoreError> {
        let target = format!("{} (schema {})", config.target, config.schema);
        let mut pg: tokio_postgres::Config =
            config.url.expose().parse().map_err(|e| {
                open_error(&target, format!("not a PostgreSQL connection URL: {e}"))
            })?;
        let options = format!(
            "{} -c search_path={} -c statement_timeout={STATEMENT_TIMEOUT_MS}",
            pg.get_options().unwrap_or_default(),
            config.schema
        );
        pg.options(options.trim_start());
        if pg.get_application_name().is_none() {
            pg.application_name("wxpush");
        }
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(CONNECT_TIMEOUT);
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if pg.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            let tls =
                tls::connector(config.ca_file.as_deref()).map_err(|e| open_error(&target, e))?;
            Manager::from_config(pg, tls, manager_config)
        } else {
            Manager::from_config(pg, NoTls, manager_config)
        };
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(CONNECT_TIMEOUT * 2))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| open_error(&target, e))?;
        let mut client = pool
            .get()
            .await
            .map_err(|e| open_error(&target, pool_error(e).detail()))?;
        if !create {
            let table = format!("{}.wxpush_migrations", config.schema);
            let found = client
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
                .await
                .map_err(|e| open_error(&target, classify(&e).detail()))?;
            if !found.try_get::<_, bool>(0).unwrap_or(false) {
                return Err(open_error(
                    &target,
                    format!(
                        "schema {} holds no wxpush inbox; check WXPUSH_DATABASE_URL and WXPUSH_POSTGRES_SCHEMA (or --config), or start `wxpush serve` once to create it",
                        config.schema
                    ),
                ));
            }
        }
        let applied = migrations::migrate(&mut client, &config.schema, &target).await?;
        if !applied.is_empty() {
            tracing::info!(versions = ?applied, "migrated the PostgreSQL schema {}", config.schema);
        }
        drop(client);
        let counters = Arc::new(Counters::default());
        let owner = instance_name();
        let held = Arc::new(Held::default());
        let writes = batch::spawn(
            pool.clone(),
            Arc::clone(&counters),
            Owner {
                name: owner.clone(),
                lease_ms: i64::try_from(config.lease.as_millis()).unwrap_or(i64::MAX / 4),
                held: Arc::clone(&held),
            },
        );
        Ok(Self {
            pool,
            writes,
            counters,
            owner,
            lease: config.lease,
            target,
            held,
        })
    }

    /// This instance's name in leases (`host/pid/random`).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// `(transactions committed, writes they carried)` by the group-commit task.
    pub fn commit_counts(&self) -> (u64, u64) {
        (
            self.counters.commits.load(Ordering::Relaxed),
            self.counters.writes.load(Ordering::Relaxed),
        )
    }

    /// The newest schema version this build applies.
    pub fn schema_version() -> i32 {
        migrations::latest()
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs one statement on a pooled connection; returns the rows it changed.
    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(|e| classify(&e))?;
        client
            .execute(&stmt, params)
            .await
            .map_err(|e| classify(&e))
    }

    /// Runs one query on a pooled connection.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(|e| classify(&e))?;
        client.query(&stmt, params).await.map_err(|e| classify(&e))
    }
}

/// `host/pid/random`: unique per process, readable in `events show`.
fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "wxpush".to_owned());
    format!(
        "{host}/{}/{:06x}",
        std::process::id(),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// Text for a `text` column: PostgreSQL cannot store NUL characters, which a signed push
/// may still carry in a field; they become U+FFFD. (Whole messages are stored as bytes.)
pub(super) fn text(value: &str) -> String {
    if value.contains('\0') {
        value.replace('\0', "\u{FFFD}")
    } else {
        value.to_owned()
    }
}

/// Turns a failed column read into a store error saying what was being read.
fn read(what: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError + Copy {
    move |e| StoreError::Database(format!("reading {what}: {e}"))
}

fn row_to_record(row: &Row) -> Result<Record, StoreError> {
    row_to_record_at(row, 0)
}

/// Reads [`EVENT_COLUMNS`] starting at column `base`.
fn row_to_record_at(row: &Row, base: usize) -> Result<Record, StoreError> {
    let get = |e: tokio_postgres::Error| StoreError::Database(format!("reading an event: {e}"));
    let id: String = row.try_get(base).map_err(get)?;
    let received_at: i64 = row.try_get(base + 1).map_err(get)?;
    let status: String = row.try_get(base + 2).map_err(get)?;
    let app: String = row.try_get(base + 3).map_err(get)?;
    let authorizer: Option<String> = row.try_get(base + 4).map_err(get)?;
    let message: Vec<u8> = row.try_get(base + 5).map_err(get)?;
    let attempts: i32 = row.try_get(base + 6).map_err(get)?;
    let last_error: Option<String> = row.try_get(base + 7).map_err(get)?;
    let next_attempt_at: Option<i64> = row.try_get(base + 8).map_err(get)?;
    let duplicates: i32 = row.try_get(base + 10).map_err(get)?;
    let lease_owner: Option<String> = row.try_get(base + 11).map_err(get)?;
    let status = Status::parse(&status).ok_or_else(|| StoreError::unknown_status(&status))?;
    let lease = match (status, lease_owner, next_attempt_at) {
        (Status::Pending, Some(owner), Some(until)) => Some(Lease { owner, until }),
        _ => None,
    };
    Ok(StoredEvent {
        id,
        received_at,
        status,
        app,
        authorizer_appid: authorizer,
        message: String::from_utf8(message)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        attempts: u32::try_from(attempts).unwrap_or(0),
        last_error,
        next_attempt_at,
        delivered_at: row.try_get(base + 9).map_err(get)?,
        duplicates: u32::try_from(duplicates).unwrap_or(0),
        lease,
    }
    .into())
}

fn row_to_quarantined(row: &Row) -> Result<QuarantinedPush, StoreError> {
    let get = |e: tokio_postgres::Error| StoreError::Database(format!("reading quarantine: {e}"));
    let query: String = row.try_get(4).map_err(get)?;
    Ok(QuarantinedPush {
        id: row.try_get(0).map_err(get)?,
        received_at: row.try_get(1).map_err(get)?,
        app: row.try_get(2).map_err(get)?,
        authorizer_appid: row.try_get(3).map_err(get)?,
        query: serde_json::from_str::<PushQuery>(&query).map_err(|e| {
            StoreError::Database(format!(
                "reading quarantine: its stored query is unreadable: {e}"
            ))
        })?,
        body: row.try_get(5).map_err(get)?,
        reason: row.try_get(6).map_err(get)?,
    })
}

fn seq_of(row: &Row) -> Result<i64, StoreError> {
    row.try_get(0)
        .map_err(|e| StoreError::Database(format!("reading an event: {e}")))
}

/// A new category-audit event resolves the newest pending submission of the same app,
/// categories and (where both know it) authorizer.
pub(super) async fn resolve_submission(
    client: &impl GenericClient,
    event: &Event,
    now: i64,
) -> Result<(), tokio_postgres::Error> {
    let Some(audit) = event.category_audit() else {
        return Ok(());
    };
    let stmt = client
        .prepare_cached(
            "UPDATE submissions SET status = $1, reason = $2, resolved_at = $3, event_id = $4
             WHERE seq = (SELECT seq FROM submissions
                          WHERE status = 'pending' AND app = $5 AND first = $6 AND second = $7
                            AND (authorizer_appid IS NULL OR $8::text IS NULL OR authorizer_appid = $8)
                          ORDER BY seq DESC LIMIT 1)",
        )
        .await?;
    client
        .execute(
            &stmt,
            &[
                &audit.result.as_str(),
                &text(&audit.reason),
                &now,
                &event.id,
                &text(&event.app),
                &text(scalar_text(&audit.first).trim()),
                &text(scalar_text(&audit.second).trim()),
                &event.authorizer_appid.as_deref().map(text),
            ],
        )
        .await?;
    Ok(())
}

/// Stores one event outside the batch (re-processed quarantine), inside `tx`.
async fn insert_one(
    tx: &deadpool_postgres::Transaction<'_>,
    event: &Event,
    now: i64,
) -> Result<Recorded, tokio_postgres::Error> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO events (id, received_at, status, app, authorizer_appid, event_name, message, next_attempt_at)
             VALUES ($1, $2, 'pending', $3, $4, $5, $6, $2)
             ON CONFLICT (id) DO NOTHING",
        )
        .await?;
    let inserted = tx
        .execute(
            &stmt,
            &[
                &event.id,
                &now,
                &text(&event.app),
                &event.authorizer_appid.as_deref().map(text),
                &text(event.name()),
                &event.raw.as_bytes(),
            ],
        )
        .await?;
    if inserted == 1 {
        resolve_submission(tx, event, now).await?;
        return Ok(Recorded::New);
    }
    let stmt = tx
        .prepare_cached(
            "UPDATE events SET duplicates = duplicates + 1, last_duplicate_at = $2 WHERE id = $1",
        )
        .await?;
    tx.execute(&stmt, &[&event.id, &now]).await?;
    Ok(Recorded::Duplicate)
}

fn limit(n: usize) -> i64 {
    i64::try_from(n.max(1)).unwrap_or(i64::MAX)
}

impl Store for PostgresStore {
    fn record(
        &self,
        event: Event,
        request_key: Option<String>,
    ) -> BoxFuture<'_, Result<Recorded, StoreError>> {
        let (reply, rx) = oneshot::channel();
        let sent = self.writes.send(Write::Record {
            event: Box::new(event),
            request_key,
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

    fn due(&self, now: i64, limit_n: usize) -> BoxFuture<'_, Result<Vec<Record>, StoreError>> {
        Box::pin(async move {
            // Events this instance stored are leased to it from the start and wait in
            // memory: no read needed. The database is asked for due events nobody holds
            // (retries, replays, a dead instance's expired leases) when memory is empty, and
            // at least once a second under load, with SKIP LOCKED so that concurrent
            // instances never take the same event.
            let (held, look) = self.held.take(limit_n);
            let mut records: Vec<(i64, Record)> = held.into_iter().map(|r| (0, r)).collect();
            let wanted = limit_n.saturating_sub(records.len());
            if look && wanted > 0 {
                let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX / 4);
                let until = now.saturating_add(lease_ms);
                let claimed = self
                    .query(
                        &format!(
                            "WITH due AS (
                                 SELECT id AS due_id FROM events
                                 WHERE status = 'pending' AND next_attempt_at <= $1
                                 ORDER BY seq LIMIT $2
                                 FOR UPDATE SKIP LOCKED)
                             UPDATE events SET next_attempt_at = $3, lease_owner = $4
                             FROM due WHERE id = due.due_id
                             RETURNING seq, {EVENT_COLUMNS}"
                        ),
                        &[&now, &limit(wanted), &until, &self.owner],
                    )
                    .await?;
                for row in &claimed {
                    records.push((seq_of(row)?, row_to_record_at(row, 1)?));
                }
            }
            // Memory first (seq 0), then the database's in arrival order.
            records.sort_by_key(|(seq, _)| *seq);
            Ok(records.into_iter().map(|(_, r)| r).collect())
        })
    }

    fn next_due_at(&self) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT min(next_attempt_at) FROM events WHERE status = 'pending'",
                    &[],
                )
                .await?;
            Ok(rows.first().and_then(|r| r.get::<_, Option<i64>>(0)))
        })
    }

    fn mark_delivered(&self, id: String) -> BoxFuture<'_, Result<(), StoreError>> {
        let (reply, rx) = oneshot::channel();
        let sent = self.writes.send(Write::Delivered {
            id,
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
        id: String,
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
            // instance owns the event and its outcome counts.
            self.execute(
                "UPDATE events SET status = $2, attempts = attempts + 1, last_error = $3,
                 next_attempt_at = $4, lease_owner = NULL
                 WHERE id = $1 AND (lease_owner IS NULL OR lease_owner = $5)",
                &[&id, &status, &text(&error), &retry_at, &self.owner],
            )
            .await?;
            Ok(())
        })
    }

    fn release(&self, ids: Vec<String>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(());
            }
            self.execute(
                "UPDATE events SET next_attempt_at = $2, lease_owner = NULL
                 WHERE id = ANY($1) AND status = 'pending' AND lease_owner = $3",
                &[&ids, &clock::now_ms(), &self.owner],
            )
            .await?;
            Ok(())
        })
    }

    fn get(&self, id: String) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        Box::pin(async move {
            let rows = self
                .query(
                    &format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"),
                    &[&id],
                )
                .await?;
            rows.first().map(row_to_record).transpose()
        })
    }

    fn list(&self, filter: ListFilter) -> BoxFuture<'_, Result<Vec<Record>, StoreError>> {
        Box::pin(async move {
            let status = filter.status.map(Status::as_str);
            let rows = self
                .query(
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM events
                         WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR event_name = $2)
                         ORDER BY seq DESC LIMIT $3"
                    ),
                    &[&status, &filter.event, &limit(filter.limit)],
                )
                .await?;
            rows.iter().map(row_to_record).collect()
        })
    }

    fn replay(&self, ids: Vec<String>) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let n = self
                .execute(
                    // An event leased to an instance right now keeps its lease: it is
                    // being delivered, and freeing it would let another instance deliver it
                    // at the same time.
                    "UPDATE events SET status = 'pending', delivered_at = NULL,
                     attempts = CASE WHEN status = 'pending' AND lease_owner IS NOT NULL
                                      AND next_attempt_at > $2 THEN attempts ELSE 0 END,
                     next_attempt_at = CASE WHEN status = 'pending' AND lease_owner IS NOT NULL
                                      AND next_attempt_at > $2 THEN next_attempt_at ELSE $2 END,
                     lease_owner = CASE WHEN status = 'pending' AND lease_owner IS NOT NULL
                                      AND next_attempt_at > $2 THEN lease_owner ELSE NULL END
                     WHERE id = ANY($1)",
                    &[&ids, &clock::now_ms()],
                )
                .await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    fn replay_dead(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let n = self
                .execute(
                    "UPDATE events SET status = 'pending', attempts = 0, next_attempt_at = $1,
                     lease_owner = NULL WHERE status = 'dead'",
                    &[&clock::now_ms()],
                )
                .await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    fn quarantined(&self, n: usize) -> BoxFuture<'_, Result<Vec<QuarantinedPush>, StoreError>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT id, received_at, app, authorizer_appid, query, body, reason
                     FROM quarantine ORDER BY seq LIMIT $1",
                    &[&limit(n)],
                )
                .await?;
            rows.iter().map(row_to_quarantined).collect()
        })
    }

    fn release_quarantined(
        &self,
        quarantine_id: String,
        event: Event,
    ) -> BoxFuture<'_, Result<Recorded, StoreError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let outcome = async {
                let tx = client.transaction().await?;
                let recorded = insert_one(&tx, &event, clock::now_ms()).await?;
                tx.execute("DELETE FROM quarantine WHERE id = $1", &[&quarantine_id])
                    .await?;
                tx.commit().await?;
                Ok::<_, tokio_postgres::Error>(recorded)
            }
            .await;
            outcome.map_err(|e| classify(&e))
        })
    }

    fn requarantine(
        &self,
        quarantine_id: String,
        reason: String,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.execute(
                "UPDATE quarantine SET reason = $2, attempts = attempts + 1 WHERE id = $1",
                &[&quarantine_id, &text(&reason)],
            )
            .await?;
            Ok(())
        })
    }

    fn stats(&self) -> BoxFuture<'_, Result<Stats, StoreError>> {
        Box::pin(async move {
            let mut stats = Stats::default();
            let rows = self
                .query(
                    "SELECT status, count(*), coalesce(sum(duplicates), 0)::int8 FROM events GROUP BY status",
                    &[],
                )
                .await?;
            for row in &rows {
                let status: String = row.try_get(0).map_err(read("counts"))?;
                let count =
                    u64::try_from(row.try_get::<_, i64>(1).map_err(read("counts"))?).unwrap_or(0);
                stats.duplicates +=
                    u64::try_from(row.try_get::<_, i64>(2).map_err(read("counts"))?).unwrap_or(0);
                match Status::parse(&status) {
                    Some(Status::Pending) => stats.pending = count,
                    Some(Status::Delivered) => stats.delivered = count,
                    Some(Status::Dead) => stats.dead = count,
                    _ => return Err(StoreError::unknown_status(&status)),
                }
            }
            let rows = self
                .query(
                    "SELECT (SELECT count(*) FROM quarantine),
                            (SELECT min(received_at) FROM events WHERE status = 'pending')",
                    &[],
                )
                .await?;
            if let Some(row) = rows.first() {
                stats.quarantined =
                    u64::try_from(row.try_get::<_, i64>(0).map_err(read("counts"))?).unwrap_or(0);
                stats.oldest_pending_at = row.try_get(1).map_err(read("counts"))?;
            }
            Ok(stats)
        })
    }

    fn prune(&self, before: i64) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            self.execute("DELETE FROM requests WHERE received_at < $1", &[&before])
                .await?;
            let mut total = 0usize;
            loop {
                let n = self
                    .execute(
                        "DELETE FROM events WHERE id IN (
                             SELECT id FROM events WHERE status = 'delivered' AND delivered_at < $1
                             LIMIT $2)",
                        &[&before, &PRUNE_CHUNK],
                    )
                    .await?;
                total += usize::try_from(n).unwrap_or(usize::MAX);
                if n < u64::try_from(PRUNE_CHUNK).unwrap_or(u64::MAX) {
                    return Ok(total);
                }
            }
        })
    }

    fn record_submission(&self, s: Submission) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.execute(
                "INSERT INTO submissions (id, app, authorizer_appid, first, second, status, submitted_at)
                 VALUES ($1, $2, $3, $4, $5, 'pending', $6)",
                &[
                    &s.id,
                    &text(&s.app),
                    &s.authorizer_appid.as_deref().map(text),
                    &text(&s.first),
                    &text(&s.second),
                    &s.submitted_at,
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn submissions(&self) -> BoxFuture<'_, Result<Vec<Submission>, StoreError>> {
        Box::pin(async move {
            let mut out = Vec::new();
            let rows = self
                .query(
                    "SELECT id, app, authorizer_appid, first, second, status, reason, submitted_at,
                            resolved_at, event_id FROM submissions ORDER BY seq DESC",
                    &[],
                )
                .await?;
            let get = read("a submission");
            for r in &rows {
                out.push(Submission {
                    id: r.try_get(0).map_err(get)?,
                    app: r.try_get(1).map_err(get)?,
                    authorizer_appid: r.try_get(2).map_err(get)?,
                    first: r.try_get(3).map_err(get)?,
                    second: r.try_get(4).map_err(get)?,
                    status: r.try_get(5).map_err(get)?,
                    reason: r.try_get(6).map_err(get)?,
                    submitted_at: r.try_get(7).map_err(get)?,
                    resolved_at: r.try_get(8).map_err(get)?,
                    event_id: r.try_get(9).map_err(get)?,
                });
            }
            let rows = self
                .query(
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM events WHERE event_name = 'wxa_category_audit'
                         AND NOT EXISTS (SELECT 1 FROM submissions s WHERE s.event_id = events.id)
                         ORDER BY seq DESC"
                    ),
                    &[],
                )
                .await?;
            for row in &rows {
                out.extend(Submission::unmatched(&row_to_record(row)?.event));
            }
            Ok(out)
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

    fn take_over(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        // Every instance has a name of its own (host/pid/random): what an earlier run
        // leased falls due when its leases expire, like any other instance's.
        Box::pin(async { Ok(0) })
    }

    fn release_all(&self, keep: Vec<String>) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let n = self
                .execute(
                    "UPDATE events SET next_attempt_at = $2, lease_owner = NULL
                     WHERE status = 'pending' AND lease_owner = $1 AND NOT (id = ANY($3))",
                    &[&self.owner, &clock::now_ms(), &keep],
                )
                .await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }
}
