//! The category workflow's records in the SQLite file: submissions and how each was
//! resolved, the settable-category cache, uploaded media ids.

use rusqlite::{OptionalExtension, Row, params};

use super::EVENT_COLUMNS;
use super::SqliteStore;
use super::rows::{db, exec, row_to_record};
use crate::store::categories_sql::SUBMISSION_COLUMNS;
use crate::store::{KnownAudit, MediaRecord, StoreError, Submission, Submissions};
use futures_util::future::BoxFuture;

/// The submission a pushed audit result (?1 its event id, ?2 result, ?3 app, ?4 first,
/// ?5 second, ?6 authorizer) was already reported by: reconciled with the same result.
const KNOWN: &str =
    "source = 'reconciled' AND status = ?2 AND app = ?3 AND first = ?4 AND second = ?5
     AND (authorizer_appid IS NULL OR ?6 IS NULL OR authorizer_appid = ?6)
     AND (push_event_id IS NULL OR push_event_id = ?1)
     ORDER BY seq DESC LIMIT 1";

fn submission_row(r: &Row<'_>) -> rusqlite::Result<Submission> {
    Ok(Submission {
        id: r.get(0)?,
        app: r.get(1)?,
        authorizer_appid: r.get(2)?,
        first: r.get(3)?,
        second: r.get(4)?,
        status: r.get(5)?,
        reason: r.get(6)?,
        submitted_at: r.get(7)?,
        resolved_at: r.get(8)?,
        event_id: r.get(9)?,
        source: r.get(10)?,
    })
}

fn media_row(r: &Row<'_>) -> rusqlite::Result<MediaRecord> {
    Ok(MediaRecord {
        media_id: r.get(0)?,
        app: r.get(1)?,
        appid: r.get(2)?,
        file: r.get(3)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
    })
}

impl Submissions for SqliteStore {
    fn record_submission(&self, s: Submission) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |tx| {
            exec(tx,
                "INSERT INTO submissions (id, app, authorizer_appid, first, second, status, submitted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6)",
                params![s.id, s.app, s.authorizer_appid, s.first, s.second, s.submitted_at],
            )?;
            tx.open_submissions.set(Some(true));
            Ok(())
        })
    }

    fn submissions(&self) -> BoxFuture<'_, Result<Vec<Submission>, StoreError>> {
        self.read(|conn| {
            let mut stmt = db(conn.prepare_cached(&format!(
                "SELECT {SUBMISSION_COLUMNS} FROM submissions ORDER BY seq DESC"
            )))?;
            let mut out = db(stmt.query_map([], submission_row))?
                .map(db)
                .collect::<Result<Vec<_>, _>>()?;
            let mut stmt = db(conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events e WHERE event_name = 'wxa_category_audit'
                 AND id NOT IN (SELECT event_id FROM submissions WHERE event_id IS NOT NULL)
                 AND id NOT IN (SELECT push_event_id FROM submissions WHERE push_event_id IS NOT NULL)
                 AND seq = (SELECT min(seq) FROM events f WHERE f.id = e.id)
                 ORDER BY seq DESC"
            )))?;
            let rows = db(stmt.query_map([], row_to_record))?;
            for row in rows {
                out.extend(Submission::unmatched(&db(row)?.event));
            }
            Ok(out)
        })
    }

    fn submission(&self, id: String) -> BoxFuture<'_, Result<Option<Submission>, StoreError>> {
        self.read(move |conn| {
            let sql = format!("SELECT {SUBMISSION_COLUMNS} FROM submissions WHERE id = ?1");
            db(conn.query_row(&sql, params![id], submission_row).optional())
        })
    }

    fn pending_submissions(&self) -> BoxFuture<'_, Result<Vec<Submission>, StoreError>> {
        self.read(|conn| {
            let mut stmt = db(conn.prepare_cached(&format!(
                "SELECT {SUBMISSION_COLUMNS} FROM submissions WHERE status = 'pending' ORDER BY seq"
            )))?;
            db(stmt.query_map([], submission_row))?.map(db).collect()
        })
    }

    fn already_known(&self, a: KnownAudit) -> BoxFuture<'_, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            // A look on the reader first: almost always there is nothing to note, and the
            // writer is left alone.
            let look = a.clone();
            let candidate = self
                .read(move |conn| {
                    db(conn
                        .query_row(
                            &format!("SELECT seq FROM submissions WHERE {KNOWN}"),
                            params![
                                look.event_id,
                                look.result,
                                look.app,
                                look.first,
                                look.second,
                                look.authorizer_appid
                            ],
                            |r| r.get::<_, i64>(0),
                        )
                        .optional())
                })
                .await?;
            if candidate.is_none() {
                return Ok(None);
            }
            self.write(move |tx| {
                db(tx
                    .query_row(
                        &format!(
                            "UPDATE submissions SET push_event_id = ?1
                             WHERE seq = (SELECT seq FROM submissions WHERE {KNOWN})
                             RETURNING event_id"
                        ),
                        params![
                            a.event_id,
                            a.result,
                            a.app,
                            a.first,
                            a.second,
                            a.authorizer_appid
                        ],
                        |r| r.get::<_, Option<String>>(0),
                    )
                    .optional())
                .map(Option::flatten)
            })
            .await
        })
    }

    fn cache_settable(
        &self,
        appid: String,
        body: String,
        at: i64,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |tx| {
            exec(
                tx,
                "INSERT INTO settable_categories (appid, body, fetched_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (appid) DO UPDATE SET body = excluded.body, fetched_at = excluded.fetched_at",
                params![appid, body, at],
            )?;
            Ok(())
        })
    }

    fn settable(&self, appid: String) -> BoxFuture<'_, Result<Option<(String, i64)>, StoreError>> {
        self.read(move |conn| {
            db(conn
                .query_row(
                    "SELECT body, fetched_at FROM settable_categories WHERE appid = ?1",
                    params![appid],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional())
        })
    }

    fn record_media(&self, m: MediaRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |tx| {
            exec(
                tx,
                "INSERT INTO media (media_id, app, appid, file, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (media_id) DO NOTHING",
                params![
                    m.media_id,
                    m.app,
                    m.appid,
                    m.file,
                    m.created_at,
                    m.expires_at
                ],
            )?;
            Ok(())
        })
    }

    fn media(&self, media_id: String) -> BoxFuture<'_, Result<Option<MediaRecord>, StoreError>> {
        self.read(move |conn| {
            db(conn
                .query_row(
                    "SELECT media_id, app, appid, file, created_at, expires_at FROM media WHERE media_id = ?1",
                    params![media_id],
                    media_row,
                )
                .optional())
        })
    }
}
