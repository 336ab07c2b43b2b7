//! Inboxes written by earlier releases open with this one and migrate, keeping everything:
//! the release before request keys (`tests/fixtures/inbox-before-request-keys.db`: four
//! delivered events, one platform retry, one quarantined push, made with that release's
//! binary), and the release before routes (schema 2, both stores).

use std::sync::{Arc, Mutex};

use wxpush::dispatch::{DeliveryPolicy, Dispatcher, Step, Wake};
use wxpush::store::{Admin, Inbox, ListFilter, Recorded, SqliteStore, Store};
use wxpush::{BoxError, BoxHandler, Event, Handler};

const OLD_INBOX: &[u8] = include_bytes!("../fixtures/inbox-before-request-keys.db");

#[tokio::test]
async fn an_inbox_of_the_previous_release_opens_and_migrates_with_nothing_lost() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("wxpush.db"), OLD_INBOX).expect("copy");
    let store = SqliteStore::open(dir.path()).expect("opens and migrates");
    let stats = store.stats().await.expect("stats");
    assert_eq!(
        (
            stats.delivered,
            stats.pending,
            stats.quarantined,
            stats.duplicates
        ),
        (4, 0, 1, 1)
    );
    let events = store
        .list(ListFilter {
            limit: 10,
            ..ListFilter::default()
        })
        .await
        .expect("lists");
    let names: Vec<&str> = events.iter().map(|r| r.event.name()).collect();
    assert_eq!(
        names,
        [
            "component_verify_ticket",
            "wxa_category_audit",
            "wxa_category_audit",
            "wxa_category_audit"
        ]
    );
    assert!(events.iter().any(|r| {
        r.event
            .category_audit()
            .is_some_and(|a| a.reason == "licence photo unreadable")
    }));
    let quarantined = store.quarantined(10).await.expect("reads");
    assert_eq!(quarantined.len(), 1);
    assert!(quarantined[0].reason.contains("behind this server's clock"));
    assert!(
        quarantined[0].query.msg_signature.is_some(),
        "its query reads back"
    );

    // The migrated inbox takes request keys: a replay of a new push is caught.
    let event = |authorizer: &str| {
        wxpush::Event::parse(
            "<xml><CreateTime>1764000999</CreateTime><Event>wxa_category_audit</Event><ret>3</ret><first>1</first><second>9</second></xml>",
            "demo",
            Some(authorizer),
        )
    };
    let key = Some("after-upgrade".to_owned());
    assert_eq!(
        store
            .record(event("wxA000000000000001"), key.clone())
            .await
            .ok(),
        Some(Recorded::New)
    );
    assert_eq!(
        store.record(event("wxB000000000000002"), key).await.ok(),
        Some(Recorded::Replay)
    );
    drop(store);
    let reopened = SqliteStore::open(dir.path()).expect("opens again, already migrated");
    assert_eq!(reopened.stats().await.expect("stats").pending, 1);
}

/// An inbox migrated by a newer wxpush is refused, not misread.
#[test]
fn an_inbox_from_a_newer_release_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    drop(SqliteStore::open(dir.path()).expect("created"));
    let conn = rusqlite::Connection::open(dir.path().join("wxpush.db")).expect("opens");
    conn.pragma_update(None, "user_version", 99).expect("set");
    drop(conn);
    let err = SqliteStore::open(dir.path()).err().map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("version 99") && e.contains("newer wxpush")),
        "{err:?}"
    );
}

/// An inbox at schema version 2 (the release before routes: `tests/fixtures/
/// inbox-schema-v2.db` and `postgres-schema-v2.sql`, written by that release's binary: a
/// delivered ticket, then three category audits whose handler failed, 8/39 rejected, 8/39
/// passed, 8/40 passed) migrates: every event is the route `default`'s with its state, and
/// the audits get ordering keys with their categories, so the two results of 8/39 are
/// delivered in order while 8/40 goes beside them.
async fn assert_migrated_to_routes(store: Arc<dyn Store>) {
    let stats = store.stats().await.expect("stats");
    assert_eq!((stats.delivered, stats.pending), (1, 3));
    let listed = store
        .list(ListFilter {
            limit: 10,
            ..ListFilter::default()
        })
        .await
        .expect("lists");
    assert!(listed.iter().all(|r| r.route == "default"), "{listed:?}");
    assert_eq!(store.expedite("default".into()).await.expect("due now"), 3);
    let handler = Recorder::default();
    let seen = Arc::clone(&handler.seen);
    let dispatcher = Dispatcher::new(
        Arc::clone(&store),
        BoxHandler::new(handler),
        DeliveryPolicy::default(),
        Wake::default(),
    );
    let step = dispatcher.deliver_due().await.expect("delivers");
    assert_eq!(
        step,
        Step::Attempted {
            delivered: 3,
            failed: 0
        }
    );
    let seen = seen.lock().expect("lock");
    let order: Vec<String> = seen.0.clone();
    let rejected = order.iter().position(|d| d == "8/39 rejected");
    let passed = order.iter().position(|d| d == "8/39 passed");
    assert!(rejected < passed && rejected.is_some(), "{order:?}");
    assert_eq!(seen.1, 2, "8/40 went beside 8/39: it has a key of its own");
}

/// Records each audit it is handed (`first/second result`) and the most at once.
#[derive(Default)]
struct Recorder {
    seen: Arc<Mutex<(Vec<String>, usize, usize)>>,
}

impl Handler for Recorder {
    async fn handle(&self, event: &Event) -> Result<(), BoxError> {
        {
            let mut seen = self.seen.lock().expect("lock");
            seen.2 += 1;
            seen.1 = seen.1.max(seen.2);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut seen = self.seen.lock().expect("lock");
        seen.2 -= 1;
        if let Some(audit) = event.category_audit() {
            let id = |v: &Option<wxpush::event::Scalar>| {
                v.as_ref().map(ToString::to_string).unwrap_or_default()
            };
            seen.0.push(format!(
                "{}/{} {}",
                id(&audit.first),
                id(&audit.second),
                audit.result.as_str()
            ));
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_schema_2_sqlite_inbox_migrates_to_routes_keeping_order() {
    let dir = tempfile::tempdir().expect("dir");
    let fixture = include_bytes!("../fixtures/inbox-schema-v2.db");
    std::fs::write(dir.path().join("wxpush.db"), fixture).expect("copy");
    let store = SqliteStore::open(dir.path()).expect("opens and migrates");
    assert_migrated_to_routes(Arc::new(store)).await;
}

#[tokio::test]
async fn a_schema_2_postgres_inbox_migrates_to_routes_keeping_order() {
    let Some(url) = crate::helpers::database_url() else {
        return;
    };
    let schema = crate::helpers::fresh_schema();
    let sql = include_str!("../fixtures/postgres-schema-v2.sql").replace("prev_v2", &schema);
    let client = crate::postgres::connect(&url).await;
    client
        .batch_execute(&sql)
        .await
        .expect("the old schema loads");
    let store = crate::postgres::open_store(&url, &schema)
        .await
        .expect("opens and migrates");
    assert_migrated_to_routes(Arc::new(store)).await;
}
