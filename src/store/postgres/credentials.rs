//! The token service's records in PostgreSQL, and its refresh locks: a session advisory
//! lock per credential and schema, so that of all replicas one refreshes a credential at a
//! time.

use std::time::{Duration, Instant};

use tokio_postgres::Row;

use super::errors::classify;
use super::{PostgresStore, text};
use crate::store::{
    CredentialWrite, Credentials, RefreshLock, StoreError, StoredAuthorizer, StoredTicket,
    StoredToken,
};
use futures_util::future::BoxFuture;

use crate::store::credentials_sql::{AUTHORIZER_COLUMNS, TOKEN_COLUMNS};

/// How long a refresh waits for another instance's refresh of the same credential.
const LOCK_WAIT: Duration = Duration::from_secs(60);

fn get(e: tokio_postgres::Error) -> StoreError {
    StoreError::Database(format!("reading credentials: {e}"))
}

fn token_row(r: &Row) -> Result<StoredToken, StoreError> {
    Ok(StoredToken {
        appid: r.try_get(0).map_err(get)?,
        kind: r.try_get(1).map_err(get)?,
        access_token: r.try_get(2).map_err(get)?,
        expires_at: r.try_get(3).map_err(get)?,
        refresh_at: r.try_get(4).map_err(get)?,
        refreshed_at: r.try_get(5).map_err(get)?,
        last_error: r.try_get(6).map_err(get)?,
    })
}

fn authorizer_row(r: &Row) -> Result<StoredAuthorizer, StoreError> {
    Ok(StoredAuthorizer {
        authorizer_appid: r.try_get(0).map_err(get)?,
        component_appid: r.try_get(1).map_err(get)?,
        status: r.try_get(2).map_err(get)?,
        refresh_token: r.try_get(3).map_err(get)?,
        func_info: r.try_get(4).map_err(get)?,
        changed_at: r.try_get(5).map_err(get)?,
    })
}

impl Credentials for PostgresStore {
    fn save_ticket(&self, t: StoredTicket) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let changed = self
                .execute(
                    "INSERT INTO tickets (component_appid, ticket, create_time, received_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (component_appid) DO UPDATE SET ticket = excluded.ticket,
                       create_time = excluded.create_time, received_at = excluded.received_at
                     WHERE excluded.create_time >= tickets.create_time",
                    &[
                        &text(&t.component_appid),
                        &t.ticket,
                        &t.create_time,
                        &t.received_at,
                    ],
                )
                .await?;
            Ok(changed > 0)
        })
    }

    fn ticket(&self, component: String) -> BoxFuture<'_, Result<Option<StoredTicket>, StoreError>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT component_appid, ticket, create_time, received_at FROM tickets
                     WHERE component_appid = $1",
                    &[&component],
                )
                .await?;
            rows.first()
                .map(|r| {
                    Ok(StoredTicket {
                        component_appid: r.try_get(0).map_err(get)?,
                        ticket: r.try_get(1).map_err(get)?,
                        create_time: r.try_get(2).map_err(get)?,
                        received_at: r.try_get(3).map_err(get)?,
                    })
                })
                .transpose()
        })
    }

    fn token(&self, appid: String) -> BoxFuture<'_, Result<Option<StoredToken>, StoreError>> {
        Box::pin(async move {
            let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE appid = $1");
            let rows = self.query(&sql, &[&appid]).await?;
            rows.first().map(token_row).transpose()
        })
    }

    fn tokens(&self) -> BoxFuture<'_, Result<Vec<StoredToken>, StoreError>> {
        Box::pin(async move {
            let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY appid");
            self.query(&sql, &[]).await?.iter().map(token_row).collect()
        })
    }

    fn save(&self, write: CredentialWrite) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(|e| classify(&e))?;
            if let Some(a) = &write.authorizer {
                tx.execute(
                    "INSERT INTO authorizers (authorizer_appid, component_appid, status,
                       refresh_token, func_info, changed_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (authorizer_appid) DO UPDATE SET
                       component_appid = excluded.component_appid, status = excluded.status,
                       refresh_token = excluded.refresh_token, func_info = excluded.func_info,
                       changed_at = excluded.changed_at",
                    &[
                        &text(&a.authorizer_appid),
                        &text(&a.component_appid),
                        &a.status,
                        &a.refresh_token,
                        &text(&a.func_info),
                        &a.changed_at,
                    ],
                )
                .await
                .map_err(|e| classify(&e))?;
            }
            if let Some(t) = &write.token {
                tx.execute(
                    "INSERT INTO tokens (appid, kind, access_token, expires_at, refresh_at,
                       refreshed_at, last_error) VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (appid) DO UPDATE SET kind = excluded.kind,
                       access_token = excluded.access_token, expires_at = excluded.expires_at,
                       refresh_at = excluded.refresh_at, refreshed_at = excluded.refreshed_at,
                       last_error = excluded.last_error",
                    &[
                        &text(&t.appid),
                        &t.kind,
                        &t.access_token,
                        &t.expires_at,
                        &t.refresh_at,
                        &t.refreshed_at,
                        &t.last_error.as_deref().map(text),
                    ],
                )
                .await
                .map_err(|e| classify(&e))?;
            }
            if let Some(appid) = &write.drop_token {
                tx.execute("DELETE FROM tokens WHERE appid = $1", &[appid])
                    .await
                    .map_err(|e| classify(&e))?;
            }
            tx.commit().await.map_err(|e| classify(&e))
        })
    }

    fn token_error(
        &self,
        appid: String,
        kind: String,
        error: String,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.execute(
                "INSERT INTO tokens (appid, kind, last_error) VALUES ($1, $2, $3)
                 ON CONFLICT (appid) DO UPDATE SET last_error = excluded.last_error",
                &[&text(&appid), &kind, &text(&error)],
            )
            .await?;
            Ok(())
        })
    }

    fn authorizer(
        &self,
        appid: String,
    ) -> BoxFuture<'_, Result<Option<StoredAuthorizer>, StoreError>> {
        Box::pin(async move {
            let sql =
                format!("SELECT {AUTHORIZER_COLUMNS} FROM authorizers WHERE authorizer_appid = $1");
            let rows = self.query(&sql, &[&appid]).await?;
            rows.first().map(authorizer_row).transpose()
        })
    }

    fn authorizers(&self) -> BoxFuture<'_, Result<Vec<StoredAuthorizer>, StoreError>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT {AUTHORIZER_COLUMNS} FROM authorizers ORDER BY component_appid, authorizer_appid"
            );
            self.query(&sql, &[])
                .await?
                .iter()
                .map(authorizer_row)
                .collect()
        })
    }

    fn refresh_lock(&self, key: String) -> BoxFuture<'_, Result<RefreshLock, StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let lock = "SELECT pg_try_advisory_lock(hashtextextended('wxpush.refresh:' || current_schema() || ':' || $1, 0))";
            let started = Instant::now();
            // Tried rather than waited for, so that a long refresh elsewhere never runs
            // into the statement timeout.
            loop {
                let row = client
                    .query_one(lock, &[&key])
                    .await
                    .map_err(|e| classify(&e))?;
                if row.try_get::<_, bool>(0).map_err(get)? {
                    break;
                }
                if started.elapsed() > LOCK_WAIT {
                    return Err(StoreError::Database(format!(
                        "another instance has been refreshing this credential for over {} s",
                        LOCK_WAIT.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Ok(RefreshLock(Box::new(Held {
                client: Some(client),
                key,
            })))
        })
    }
}

/// A session holding an advisory lock; unlocks it when dropped, or closes the session
/// (which releases it) when it cannot.
struct Held {
    client: Option<deadpool_postgres::Client>,
    key: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let key = std::mem::take(&mut self.key);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            drop(deadpool_postgres::Object::take(client));
            return;
        };
        runtime.spawn(async move {
            let unlock = "SELECT pg_advisory_unlock(hashtextextended('wxpush.refresh:' || current_schema() || ':' || $1, 0))";
            if client.query_one(unlock, &[&key]).await.is_err() {
                drop(deadpool_postgres::Object::take(client));
            }
        });
    }
}
