//! PostgreSQL errors as [`StoreError`]s: the server's own message (not just "db error"),
//! the kinds the service reacts to, and never the connection URL.

use std::error::Error as _;

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::store::StoreError;

/// Maps a driver error, with the server's message and SQLSTATE when there is one.
pub(super) fn classify(e: &tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let text = format!(
            "PostgreSQL says: {} (SQLSTATE {})",
            db.message(),
            db.code().code()
        );
        return match *db.code() {
            SqlState::DISK_FULL => StoreError::Full(text),
            SqlState::READ_ONLY_SQL_TRANSACTION => StoreError::ReadOnly(format!(
                "{text}; is the URL pointing at a read-only standby?"
            )),
            _ => StoreError::Database(text),
        };
    }
    let mut text = format!("PostgreSQL connection: {e}");
    if let Some(source) = e.source() {
        text = format!("{text}: {source}");
    }
    StoreError::Database(text)
}

/// Maps a failure to get a connection from the pool.
pub(super) fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => classify(&e),
        PoolError::Timeout(_) => StoreError::Database(
            "no database connection became available in time (is PostgreSQL up and reachable?)"
                .into(),
        ),
        PoolError::Closed => StoreError::Closed,
        other => StoreError::Database(other.to_string()),
    }
}

/// Whether retrying the same transaction may succeed (deadlock, serialization failure).
pub(super) fn is_transient(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::T_R_DEADLOCK_DETECTED | &SqlState::T_R_SERIALIZATION_FAILURE)
    )
}

/// A [`StoreError::Open`] for the database at `target` (never including the password).
pub(super) fn open_error(target: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        path: format!("PostgreSQL {target}"),
        reason: reason.to_string(),
    }
}
