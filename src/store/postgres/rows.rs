//! Reading rows back into records (checked column by column) and the statements the
//! batch writer and the admin half share.

use super::*;

/// Turns a failed column read into a store error saying what was being read.
pub(super) fn read(what: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError + Copy {
    move |e| StoreError::Database(format!("reading {what}: {e}"))
}

pub(super) fn row_to_record(row: &Row) -> Result<Record, StoreError> {
    row_to_record_at(row, 0)
}

/// Reads [`EVENT_COLUMNS`] starting at column `base`.
pub(super) fn row_to_record_at(row: &Row, base: usize) -> Result<Record, StoreError> {
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
    let route: String = row.try_get(base + 12).map_err(get)?;
    let status = Status::parse(&status).ok_or_else(|| StoreError::unknown_status(&status))?;
    let lease = match (status, lease_owner, next_attempt_at) {
        (Status::Pending, Some(owner), Some(until)) => Some(Lease { owner, until }),
        _ => None,
    };
    Ok(StoredEvent {
        id,
        route,
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

pub(super) fn row_to_quarantined(row: &Row) -> Result<QuarantinedPush, StoreError> {
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

pub(super) fn seq_of(row: &Row) -> Result<i64, StoreError> {
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
            "UPDATE submissions SET status = $1, reason = $2, resolved_at = $3, event_id = $4,
                                    source = $9
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
                &event.source().as_str(),
            ],
        )
        .await?;
    Ok(())
}

/// Stores one event outside the batch (re-processed quarantine), a row per route (one
/// delivered [`NO_ROUTE`] row for none), due now, inside `tx`.
pub(super) async fn insert_one(
    tx: &deadpool_postgres::Transaction<'_>,
    event: &Event,
    now: i64,
    routes: &[String],
) -> Result<Recorded, tokio_postgres::Error> {
    let exists = tx
        .query_opt("SELECT 1 FROM events WHERE id = $1 LIMIT 1", &[&event.id])
        .await?
        .is_some();
    if exists {
        let stmt = tx
            .prepare_cached(
                "UPDATE events SET duplicates = duplicates + 1, last_duplicate_at = $2 WHERE id = $1",
            )
            .await?;
        tx.execute(&stmt, &[&event.id, &now]).await?;
        return Ok(Recorded::Duplicate);
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO events (id, route, order_key, received_at, status, app, authorizer_appid,
                                 event_name, message, next_attempt_at, delivered_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (id, route) DO NOTHING",
        )
        .await?;
    let no_route = [NO_ROUTE.to_owned()];
    let (targets, status) = if routes.is_empty() {
        (&no_route[..], "delivered")
    } else {
        (routes, "pending")
    };
    let delivered = routes.is_empty().then_some(now);
    let due = (!routes.is_empty()).then_some(now);
    for route in targets {
        tx.execute(
            &stmt,
            &[
                &event.id,
                route,
                &text(&event.order_key()),
                &now,
                &status,
                &text(&event.app),
                &event.authorizer_appid.as_deref().map(text),
                &text(event.name()),
                &event.raw.as_bytes(),
                &due,
                &delivered,
            ],
        )
        .await?;
    }
    resolve_submission(tx, event, now).await?;
    Ok(Recorded::New)
}
