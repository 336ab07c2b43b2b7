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

mod admin;
mod batch;
mod credentials;
mod errors;
mod inbox;
mod insert;
mod migrations;
mod new_rows;
mod rows;
mod submissions;
mod tls;

use rows::*;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{NoTls, Row};

use self::batch::{Counters, Write};
use self::errors::{classify, open_error, pool_error};
use self::insert::Owner;
use super::{
    Admin, AttemptLog, DeliveryKey, DueQuery, Inbox, Lease, ListFilter, NO_ROUTE, QuarantinedPush,
    Record, Recorded, Stats, Status, StoreError, StoredEvent,
};
use crate::clock;
use crate::event::Event;
use crate::push::PushQuery;
use crate::secret::Secret;
use crate::store::held::Held;
use crate::store::scalar_text;

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
                             last_error, next_attempt_at, delivered_at, duplicates, lease_owner, \
                             route";

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
        let pool = pool(config, &target)?;
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

/// The connection pool for `config`: wxpush's options (schema, statement timeout, name),
/// TLS when the URL asks for it.
fn pool(config: &PostgresConfig, target: &str) -> Result<Pool, StoreError> {
    let mut pg: tokio_postgres::Config = config
        .url
        .expose()
        .parse()
        .map_err(|e| open_error(target, format!("not a PostgreSQL connection URL: {e}")))?;
    // Custom plans for every execution: the generic plans PostgreSQL switches prepared
    // statements to were measured to halve ingest at times, on tables whose statistics
    // change quickly (docs/performance.md).
    let options = format!(
        "{} -c search_path={} -c statement_timeout={STATEMENT_TIMEOUT_MS} -c plan_cache_mode=force_custom_plan",
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
        let tls = tls::connector(config.ca_file.as_deref()).map_err(|e| open_error(target, e))?;
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
        .map_err(|e| open_error(target, e))?;
    Ok(pool)
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

/// A delivery's key as one text, `id` U+001F `route`: matched with `id || chr(31) || route`
/// beside `id = ANY(…)`, so that the primary key's index finds the rows.
pub(super) fn pair(key: &DeliveryKey) -> String {
    format!("{}\u{1f}{}", key.id, key.route)
}

fn limit(n: usize) -> i64 {
    i64::try_from(n.max(1)).unwrap_or(i64::MAX)
}
