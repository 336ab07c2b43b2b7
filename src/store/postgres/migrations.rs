//! The PostgreSQL schema, as numbered migrations embedded in the binary.
//!
//! Every instance runs [`migrate`] on start. It takes a transaction-scoped advisory lock for
//! the schema first, so instances starting together apply each migration once: the others
//! wait, then find it recorded in `wxpush_migrations`. A database migrated by a newer
//! wxpush is refused rather than misread.

use tokio_postgres::Client;

use super::errors::{classify, open_error};
use crate::event::Event;
use crate::store::StoreError;

/// One step of the schema's history. Never edit a released one: add the next.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "events, quarantine, submissions, meta",
        sql: "
CREATE TABLE events (
    seq               bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    id                text PRIMARY KEY,
    received_at       bigint NOT NULL,
    status            text NOT NULL,
    app               text NOT NULL,
    authorizer_appid  text,
    event_name        text NOT NULL,
    message           bytea NOT NULL,
    attempts          integer NOT NULL DEFAULT 0,
    last_error        text,
    next_attempt_at   bigint,
    delivered_at      bigint,
    duplicates        integer NOT NULL DEFAULT 0,
    last_duplicate_at bigint,
    lease_owner       text
);
CREATE INDEX events_pending ON events (next_attempt_at) WHERE status = 'pending';
CREATE INDEX events_delivered ON events (delivered_at) WHERE status = 'delivered';
CREATE INDEX events_status ON events (status, seq);
CREATE INDEX events_name ON events (event_name, seq);
CREATE TABLE quarantine (
    seq              bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    id               text PRIMARY KEY,
    received_at      bigint NOT NULL,
    app              text NOT NULL,
    authorizer_appid text,
    query            text NOT NULL,
    body             bytea NOT NULL,
    reason           text NOT NULL,
    attempts         integer NOT NULL DEFAULT 0
);
CREATE TABLE submissions (
    seq              bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    id               text PRIMARY KEY,
    app              text NOT NULL,
    authorizer_appid text,
    first            text NOT NULL,
    second           text NOT NULL,
    status           text NOT NULL,
    reason           text NOT NULL DEFAULT '',
    submitted_at     bigint NOT NULL,
    resolved_at      bigint,
    event_id         text
);
CREATE INDEX submissions_open ON submissions (app, first, second) WHERE status = 'pending';
CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
",
    },
    Migration {
        version: 2,
        name: "requests (replay detection)",
        sql: "
CREATE TABLE requests (
    key         text PRIMARY KEY,
    received_at bigint NOT NULL
);
CREATE INDEX requests_received ON requests (received_at);
",
    },
    Migration {
        version: 3,
        name: "delivery state per route, ordering keys, discarding",
        // A row per event and route. Existing events are the route `default`'s; their
        // ordering key is app, authorizer and event name (pending category audits get their
        // categories added by `order_keys`).
        sql: "
ALTER TABLE events ADD COLUMN route text NOT NULL DEFAULT 'default';
ALTER TABLE events ADD COLUMN order_key text NOT NULL DEFAULT '';
ALTER TABLE events ALTER COLUMN route DROP DEFAULT;
ALTER TABLE events ALTER COLUMN order_key DROP DEFAULT;
UPDATE events SET order_key = app || chr(31) || coalesce(authorizer_appid, '') || chr(31) || event_name;
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (id, route);
CREATE INDEX events_order ON events (route, order_key, seq) WHERE status = 'pending';
ALTER TABLE events ADD COLUMN discarded_at bigint;
CREATE INDEX events_discarded ON events (discarded_at) WHERE status = 'discarded';
ALTER TABLE quarantine ADD COLUMN discarded_at bigint;
",
    },
    Migration {
        version: 4,
        name: "tickets, tokens, authorizers",
        sql: crate::store::credentials_sql::TABLES,
    },
    Migration {
        version: 5,
        name: "settable categories, media, how submissions were resolved",
        sql: crate::store::categories_sql::TABLES,
    },
    Migration {
        version: 6,
        name: "attempts",
        sql: crate::store::categories_sql::ATTEMPTS,
    },
];

/// After migration 3: pending category audits get the ordering key new ones have
/// ([`Event::order_key`], with their categories), so that a result stored before the
/// upgrade is still delivered before a later result of the same category.
async fn order_keys(tx: &tokio_postgres::Transaction<'_>) -> Result<(), tokio_postgres::Error> {
    let rows = tx
        .query(
            "SELECT seq, app, authorizer_appid, message FROM events
             WHERE status = 'pending' AND event_name = 'wxa_category_audit'",
            &[],
        )
        .await?;
    for row in rows {
        let message: Vec<u8> = row.try_get(3)?;
        let message = String::from_utf8_lossy(&message).into_owned();
        let authorizer: Option<String> = row.try_get(2)?;
        let app: String = row.try_get(1)?;
        let key = Event::from_message(message, &app, authorizer.as_deref()).order_key();
        let seq: i64 = row.try_get(0)?;
        tx.execute(
            "UPDATE events SET order_key = $2 WHERE seq = $1",
            &[&seq, &key],
        )
        .await?;
    }
    Ok(())
}

/// The newest schema version this build knows.
pub(super) fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// A schema migrated by a newer wxpush is refused rather than misread.
fn refuse_newer(applied: &[i32], schema: &str, target: &str) -> Result<(), StoreError> {
    match applied.last() {
        Some(&newest) if newest > latest() => Err(open_error(
            target,
            format!(
                "schema {schema} is at version {newest}, made by a newer wxpush; this one knows versions up to {}. Run the newer wxpush, or point this one at another schema (postgres.schema)",
                latest()
            ),
        )),
        _ => Ok(()),
    }
}

/// Creates `schema` if missing and applies the migrations it lacks, in one transaction.
/// Returns the versions applied now (empty when the schema was current).
pub(super) async fn migrate(
    client: &mut Client,
    schema: &str,
    target: &str,
) -> Result<Vec<i32>, StoreError> {
    let fail =
        |e: StoreError| open_error(target, format!("migrating schema {schema}: {}", e.detail()));
    let tx = client.transaction().await.map_err(|e| fail(classify(&e)))?;
    // One lock per schema: instances of different deployments sharing a database (or tests
    // using a schema each) do not wait for each other.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('wxpush:' || $1))",
        &[&schema],
    )
    .await
    .map_err(|e| fail(classify(&e)))?;
    let exists = tx
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .await
        .map_err(|e| fail(classify(&e)))?
        .is_some();
    if !exists {
        // The name was validated as [a-z_][a-z0-9_]*, so it needs no quoting.
        tx.batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .map_err(|e| fail(classify(&e)))?;
    }
    tx.batch_execute(&format!(
        "SET LOCAL search_path TO {schema};
         CREATE TABLE IF NOT EXISTS wxpush_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(|e| fail(classify(&e)))?;
    let applied: Vec<i32> = tx
        .query(
            "SELECT version FROM wxpush_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(|e| fail(classify(&e)))?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(|e| fail(classify(&e)))?;
    refuse_newer(&applied, schema, target)?;
    let mut now_applied = Vec::new();
    for migration in MIGRATIONS {
        if applied.contains(&migration.version) {
            continue;
        }
        tx.batch_execute(migration.sql).await.map_err(|e| {
            fail(StoreError::Database(format!(
                "migration {} ({}): {}",
                migration.version,
                migration.name,
                classify(&e)
            )))
        })?;
        if migration.version == 3 {
            order_keys(&tx).await.map_err(|e| fail(classify(&e)))?;
        }
        tx.execute(
            "INSERT INTO wxpush_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await
        .map_err(|e| fail(classify(&e)))?;
        now_applied.push(migration.version);
    }
    tx.commit().await.map_err(|e| fail(classify(&e)))?;
    Ok(now_applied)
}
