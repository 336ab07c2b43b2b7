//! The token service's records in the SQLite file, and its refresh locks: one lock file per
//! credential beside the database, so that two processes on one file (the server and the
//! CLI) never refresh the same credential at once.

use std::fs::File;
use std::path::PathBuf;

use rusqlite::{OptionalExtension, Row, params};
use sha2::{Digest, Sha256};

use super::SqliteStore;
use super::rows::{atomic, db, exec};
use crate::hex;
use crate::store::{
    CredentialWrite, Credentials, RefreshLock, StoreError, StoredAuthorizer, StoredTicket,
    StoredToken,
};
use futures_util::future::BoxFuture;

use crate::store::credentials_sql::{AUTHORIZER_COLUMNS, TOKEN_COLUMNS};

fn token_row(r: &Row<'_>) -> rusqlite::Result<StoredToken> {
    Ok(StoredToken {
        appid: r.get(0)?,
        kind: r.get(1)?,
        access_token: r.get(2)?,
        expires_at: r.get(3)?,
        refresh_at: r.get(4)?,
        refreshed_at: r.get(5)?,
        last_error: r.get(6)?,
    })
}

fn authorizer_row(r: &Row<'_>) -> rusqlite::Result<StoredAuthorizer> {
    Ok(StoredAuthorizer {
        authorizer_appid: r.get(0)?,
        component_appid: r.get(1)?,
        status: r.get(2)?,
        refresh_token: r.get(3)?,
        func_info: r.get(4)?,
        changed_at: r.get(5)?,
    })
}

impl Credentials for SqliteStore {
    fn save_ticket(&self, t: StoredTicket) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.write(move |tx| {
            let changed = exec(
                tx,
                "INSERT INTO tickets (component_appid, ticket, create_time, received_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (component_appid) DO UPDATE SET ticket = excluded.ticket,
                   create_time = excluded.create_time, received_at = excluded.received_at
                 WHERE excluded.create_time >= tickets.create_time",
                params![t.component_appid, t.ticket, t.create_time, t.received_at],
            )?;
            Ok(changed > 0)
        })
    }

    fn ticket(&self, component: String) -> BoxFuture<'_, Result<Option<StoredTicket>, StoreError>> {
        self.read(move |conn| {
            db(conn
                .query_row(
                    "SELECT component_appid, ticket, create_time, received_at FROM tickets
                     WHERE component_appid = ?1",
                    params![component],
                    |r| {
                        Ok(StoredTicket {
                            component_appid: r.get(0)?,
                            ticket: r.get(1)?,
                            create_time: r.get(2)?,
                            received_at: r.get(3)?,
                        })
                    },
                )
                .optional())
        })
    }

    fn token(&self, appid: String) -> BoxFuture<'_, Result<Option<StoredToken>, StoreError>> {
        self.read(move |conn| {
            db(conn
                .query_row(
                    &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE appid = ?1"),
                    params![appid],
                    token_row,
                )
                .optional())
        })
    }

    fn tokens(&self) -> BoxFuture<'_, Result<Vec<StoredToken>, StoreError>> {
        self.read(|conn| {
            let mut stmt = db(conn.prepare(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY appid"
            )))?;
            let rows = db(stmt.query_map([], token_row))?;
            rows.map(db).collect()
        })
    }

    fn save(&self, write: CredentialWrite) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |tx| {
            atomic(tx, || {
                if let Some(a) = &write.authorizer {
                    exec(
                        tx,
                        "INSERT INTO authorizers (authorizer_appid, component_appid, status,
                           refresh_token, func_info, changed_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT (authorizer_appid) DO UPDATE SET
                           component_appid = excluded.component_appid, status = excluded.status,
                           refresh_token = excluded.refresh_token, func_info = excluded.func_info,
                           changed_at = excluded.changed_at",
                        params![
                            a.authorizer_appid,
                            a.component_appid,
                            a.status,
                            a.refresh_token,
                            a.func_info,
                            a.changed_at
                        ],
                    )?;
                }
                if let Some(t) = &write.token {
                    exec(
                        tx,
                        "INSERT INTO tokens (appid, kind, access_token, expires_at, refresh_at,
                           refreshed_at, last_error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (appid) DO UPDATE SET kind = excluded.kind,
                           access_token = excluded.access_token, expires_at = excluded.expires_at,
                           refresh_at = excluded.refresh_at, refreshed_at = excluded.refreshed_at,
                           last_error = excluded.last_error",
                        params![
                            t.appid,
                            t.kind,
                            t.access_token,
                            t.expires_at,
                            t.refresh_at,
                            t.refreshed_at,
                            t.last_error
                        ],
                    )?;
                }
                if let Some(appid) = &write.drop_token {
                    exec(tx, "DELETE FROM tokens WHERE appid = ?1", params![appid])?;
                }
                Ok(())
            })
        })
    }

    fn token_error(
        &self,
        appid: String,
        kind: String,
        error: String,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |tx| {
            exec(
                tx,
                "INSERT INTO tokens (appid, kind, last_error) VALUES (?1, ?2, ?3)
                 ON CONFLICT (appid) DO UPDATE SET last_error = excluded.last_error",
                params![appid, kind, error],
            )?;
            Ok(())
        })
    }

    fn authorizer(
        &self,
        appid: String,
    ) -> BoxFuture<'_, Result<Option<StoredAuthorizer>, StoreError>> {
        self.read(move |conn| {
            db(conn
                .query_row(
                    &format!(
                        "SELECT {AUTHORIZER_COLUMNS} FROM authorizers WHERE authorizer_appid = ?1"
                    ),
                    params![appid],
                    authorizer_row,
                )
                .optional())
        })
    }

    fn authorizers(&self) -> BoxFuture<'_, Result<Vec<StoredAuthorizer>, StoreError>> {
        self.read(|conn| {
            let mut stmt = db(conn.prepare(&format!(
                "SELECT {AUTHORIZER_COLUMNS} FROM authorizers ORDER BY component_appid, authorizer_appid"
            )))?;
            let rows = db(stmt.query_map([], authorizer_row))?;
            rows.map(db).collect()
        })
    }

    fn refresh_lock(&self, key: String) -> BoxFuture<'_, Result<RefreshLock, StoreError>> {
        let path = self.lock_path(&key);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || lock_file(path))
                .await
                .map_err(|e| StoreError::Database(format!("refresh lock: {e}")))?
        })
    }
}

impl SqliteStore {
    /// The lock file of `key`: named by a hash, since keys (authorizer app ids) come from
    /// pushes.
    fn lock_path(&self, key: &str) -> PathBuf {
        let digest = Sha256::digest(key.as_bytes());
        let name = format!("{}.lock", hex::encode(&digest[..12]));
        let dir = self.path.with_file_name("wxpush.locks");
        dir.join(name)
    }
}

fn lock_file(path: PathBuf) -> Result<RefreshLock, StoreError> {
    let fail =
        |e: std::io::Error| StoreError::Database(format!("refresh lock {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(fail)?;
    file.lock().map_err(fail)?;
    // Dropping the file closes it, which releases the lock.
    Ok(RefreshLock(Box::new(file)))
}
