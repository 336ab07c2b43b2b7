//! An inbox written by the release before request keys (`tests/fixtures/
//! inbox-before-request-keys.db`: four delivered events, one platform retry, one
//! quarantined push, made with that release's binary) opens with this one, migrates, and
//! keeps everything.

use wxpush::store::{Admin, Inbox, ListFilter, Recorded, SqliteStore};

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
