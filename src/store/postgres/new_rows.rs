//! The rows of a batch's new events, as the arrays of one multi-row insert.

use std::collections::HashSet;

use deadpool_postgres::Transaction;

use super::text;
use crate::event::Event;

/// An event of the batch, as the batch stores it.
pub(super) struct Incoming<'a> {
    pub(super) event: &'a Event,
    pub(super) now: i64,
    pub(super) routes: &'a [String],
    pub(super) order_key: String,
}

/// Rows to insert, as the arrays of one multi-row insert.
#[derive(Default)]
pub(super) struct Rows<'a> {
    ids: Vec<&'a str>,
    routes: Vec<&'a str>,
    order_keys: Vec<&'a str>,
    times: Vec<i64>,
    statuses: Vec<&'static str>,
    apps: Vec<String>,
    authorizers: Vec<Option<String>>,
    names: Vec<String>,
    messages: Vec<&'a [u8]>,
    due: Vec<Option<i64>>,
    owners: Vec<Option<&'a str>>,
    delivered: Vec<Option<i64>>,
}

impl<'a> Rows<'a> {
    pub(super) fn push(
        &mut self,
        record: &'a Incoming<'a>,
        route: &'a str,
        status: &'static str,
        due: Option<i64>,
        owner: Option<&'a str>,
        delivered: Option<i64>,
    ) {
        let event = record.event;
        self.ids.push(&event.id);
        self.routes.push(route);
        self.order_keys.push(&record.order_key);
        self.times.push(record.now);
        self.statuses.push(status);
        self.apps.push(text(&event.app));
        self.authorizers
            .push(event.authorizer_appid.as_deref().map(text));
        self.names.push(text(event.name()));
        self.messages.push(event.raw.as_bytes());
        self.due.push(due);
        self.owners.push(owner);
        self.delivered.push(delivered);
    }

    /// Inserts the rows; returns the `(id, route)` of each row that was new.
    pub(super) async fn insert(
        &self,
        tx: &Transaction<'_>,
    ) -> Result<HashSet<(String, String)>, tokio_postgres::Error> {
        if self.ids.is_empty() {
            return Ok(HashSet::new());
        }
        let insert = tx
            .prepare_cached(
                "INSERT INTO events (id, route, order_key, received_at, status, app, authorizer_appid,
                                     event_name, message, next_attempt_at, lease_owner, delivered_at)
                 SELECT id, route, okey, ts, st, app, auth, name, msg, due, lo, dat
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[],
                             $7::text[], $8::text[], $9::bytea[], $10::int8[], $11::text[], $12::int8[])
                      WITH ORDINALITY AS t(id, route, okey, ts, st, app, auth, name, msg, due, lo, dat, ord)
                 ORDER BY ord
                 ON CONFLICT (id, route) DO NOTHING
                 RETURNING id, route",
            )
            .await?;
        let rows = tx
            .query(
                &insert,
                &[
                    &self.ids,
                    &self.routes,
                    &self.order_keys,
                    &self.times,
                    &self.statuses,
                    &self.apps,
                    &self.authorizers,
                    &self.names,
                    &self.messages,
                    &self.due,
                    &self.owners,
                    &self.delivered,
                ],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}
