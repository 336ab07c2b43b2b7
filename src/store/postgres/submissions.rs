//! The category workflow's records in PostgreSQL: submissions and how each was resolved,
//! the settable-category cache, uploaded media ids.

use tokio_postgres::Row;

use super::rows::row_to_record;
use super::{EVENT_COLUMNS, PostgresStore, text};
use crate::store::categories_sql::SUBMISSION_COLUMNS;
use crate::store::{KnownAudit, MediaRecord, StoreError, Submission, Submissions};
use futures_util::future::BoxFuture;

fn get(e: tokio_postgres::Error) -> StoreError {
    StoreError::Database(format!("reading a submission: {e}"))
}

/// The submission a pushed audit result ($1 its event id, $2 result, $3 app, $4 first,
/// $5 second, $6 authorizer) was already reported by: reconciled with the same result.
const KNOWN: &str =
    "source = 'reconciled' AND status = $2 AND app = $3 AND first = $4 AND second = $5
     AND (authorizer_appid IS NULL OR $6::text IS NULL OR authorizer_appid = $6)
     AND (push_event_id IS NULL OR push_event_id = $1)
     ORDER BY seq DESC LIMIT 1";

fn submission_row(r: &Row) -> Result<Submission, StoreError> {
    Ok(Submission {
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
        source: r.try_get(10).map_err(get)?,
    })
}

fn media_row(r: &Row) -> Result<MediaRecord, StoreError> {
    Ok(MediaRecord {
        media_id: r.try_get(0).map_err(get)?,
        app: r.try_get(1).map_err(get)?,
        appid: r.try_get(2).map_err(get)?,
        file: r.try_get(3).map_err(get)?,
        created_at: r.try_get(4).map_err(get)?,
        expires_at: r.try_get(5).map_err(get)?,
    })
}

impl Submissions for PostgresStore {
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
            let sql = format!("SELECT {SUBMISSION_COLUMNS} FROM submissions ORDER BY seq DESC");
            let mut out = self
                .query(&sql, &[])
                .await?
                .iter()
                .map(submission_row)
                .collect::<Result<Vec<_>, _>>()?;
            let rows = self
                .query(
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM events WHERE event_name = 'wxa_category_audit'
                         AND NOT EXISTS (SELECT 1 FROM submissions s
                                         WHERE s.event_id = events.id OR s.push_event_id = events.id)
                         AND seq = (SELECT min(seq) FROM events f WHERE f.id = events.id)
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

    fn submission(&self, id: String) -> BoxFuture<'_, Result<Option<Submission>, StoreError>> {
        Box::pin(async move {
            let sql = format!("SELECT {SUBMISSION_COLUMNS} FROM submissions WHERE id = $1");
            self.query(&sql, &[&id])
                .await?
                .first()
                .map(submission_row)
                .transpose()
        })
    }

    fn pending_submissions(&self) -> BoxFuture<'_, Result<Vec<Submission>, StoreError>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT {SUBMISSION_COLUMNS} FROM submissions WHERE status = 'pending' ORDER BY seq"
            );
            self.query(&sql, &[])
                .await?
                .iter()
                .map(submission_row)
                .collect()
        })
    }

    fn already_known(&self, a: KnownAudit) -> BoxFuture<'_, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
                &a.event_id,
                &a.result,
                &text(&a.app),
                &text(&a.first),
                &text(&a.second),
                &a.authorizer_appid.as_deref().map(text),
            ];
            // A look first: almost always there is nothing to note, and nothing is written.
            let found = self
                .query(
                    &format!("SELECT seq FROM submissions WHERE {KNOWN}"),
                    &params,
                )
                .await?;
            if found.is_empty() {
                return Ok(None);
            }
            let rows = self
                .query(
                    &format!(
                        "UPDATE submissions SET push_event_id = $1
                         WHERE seq = (SELECT seq FROM submissions WHERE {KNOWN})
                         RETURNING event_id"
                    ),
                    &params,
                )
                .await?;
            Ok(rows
                .first()
                .map(|r| r.try_get::<_, Option<String>>(0).map_err(get))
                .transpose()?
                .flatten())
        })
    }

    fn cache_settable(
        &self,
        appid: String,
        body: String,
        at: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.execute(
                "INSERT INTO settable_categories (appid, body, fetched_at) VALUES ($1, $2, $3)
                 ON CONFLICT (appid) DO UPDATE SET body = excluded.body, fetched_at = excluded.fetched_at",
                &[&text(&appid), &text(&body), &at],
            )
            .await?;
            Ok(())
        })
    }

    fn settable(&self, appid: String) -> BoxFuture<'_, Result<Option<(String, i64)>, StoreError>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT body, fetched_at FROM settable_categories WHERE appid = $1",
                    &[&appid],
                )
                .await?;
            rows.first()
                .map(|r| Ok((r.try_get(0).map_err(get)?, r.try_get(1).map_err(get)?)))
                .transpose()
        })
    }

    fn record_media(&self, m: MediaRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.execute(
                "INSERT INTO media (media_id, app, appid, file, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (media_id) DO NOTHING",
                &[
                    &text(&m.media_id),
                    &text(&m.app),
                    &text(&m.appid),
                    &text(&m.file),
                    &m.created_at,
                    &m.expires_at,
                ],
            )
            .await?;
            Ok(())
        })
    }

    fn media(&self, media_id: String) -> BoxFuture<'_, Result<Option<MediaRecord>, StoreError>> {
        Box::pin(async move {
            let rows = self
                .query(
                    "SELECT media_id, app, appid, file, created_at, expires_at FROM media WHERE media_id = $1",
                    &[&media_id],
                )
                .await?;
            rows.first().map(media_row).transpose()
        })
    }
}
