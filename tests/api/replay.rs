//! Replay detection in the stores themselves: one request key, whatever event it would make,
//! creates at most one event, on SQLite and across PostgreSQL replicas, including keys
//! raced from two instances at once and quarantined pushes.

use std::sync::Arc;

use wxpush::config::StoreKind;
use wxpush::store::{PostgresStore, QuarantinedPush, Recorded, SqliteStore, Store};
use wxpush::{Config, Event};

use crate::helpers::{database_url, fresh_schema, pg_toml};

fn audit(authorizer: Option<&str>) -> Event {
    Event::parse(
        "<xml><CreateTime>1764000000</CreateTime><Event>wxa_category_audit</Event><ret>3</ret><first>1</first><second>2</second></xml>",
        "demo",
        authorizer,
    )
}

async fn postgres(url: &str, schema: &str) -> PostgresStore {
    let config = Config::from_toml(&pg_toml(url, schema)).expect("test config is valid");
    let StoreKind::Postgres(pg) = &config.store else {
        panic!("a URL selects the PostgreSQL store");
    };
    PostgresStore::open(pg).await.expect("opens")
}

/// The same key again: a duplicate for the same event, a replay for any other; the
/// quarantine honours keys too; a different key for the same event is a plain duplicate.
async fn keys_make_at_most_one_event(first: &dyn Store, second: &dyn Store) {
    let key = || Some("k1".to_owned());
    let a = audit(Some("wxA000000000000001"));
    let b = audit(Some("wxB000000000000002"));
    assert_eq!(
        first.record(a.clone(), key()).await.ok(),
        Some(Recorded::New)
    );
    assert_eq!(
        second.record(b.clone(), key()).await.ok(),
        Some(Recorded::Replay)
    );
    assert_eq!(
        second.record(a.clone(), key()).await.ok(),
        Some(Recorded::Duplicate)
    );
    assert_eq!(
        first.record(a.clone(), Some("k2".into())).await.ok(),
        Some(Recorded::Duplicate)
    );
    assert!(second.get(b.id.clone()).await.expect("reads").is_empty());
    let stored = first
        .get(a.id.clone())
        .await
        .expect("reads")
        .into_iter()
        .next()
        .expect("stored");
    assert_eq!(stored.duplicates, 2);
    let push = |authorizer: &str| {
        QuarantinedPush::new(
            "demo",
            Some(authorizer),
            Default::default(),
            b"x".to_vec(),
            "r".into(),
        )
    };
    let q = Some("q1".to_owned());
    assert_eq!(
        first
            .quarantine(push("wxA000000000000001"), q.clone())
            .await
            .ok(),
        Some(Recorded::New)
    );
    assert_eq!(
        second.quarantine(push("wxB000000000000002"), q).await.ok(),
        Some(Recorded::Replay)
    );
    assert_eq!(first.quarantined(10).await.expect("reads").len(), 1);
}

#[tokio::test]
async fn sqlite_keeps_one_event_per_request_key() {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(dir.path()).expect("opens");
    keys_make_at_most_one_event(&store, &store).await;
}

/// Two replicas: a key seen by one is a replay on the other.
#[tokio::test]
async fn postgres_replicas_share_request_keys() {
    let Some(url) = database_url() else { return };
    let schema = fresh_schema();
    let one = postgres(&url, &schema).await;
    let two = postgres(&url, &schema).await;
    keys_make_at_most_one_event(&one, &two).await;
}

/// The same key raced from two replicas, each with a different attribution, 20 times over:
/// each time exactly one event is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_raced_from_two_replicas_makes_one_event() {
    let Some(url) = database_url() else { return };
    let schema = fresh_schema();
    let one: Arc<dyn Store> = Arc::new(postgres(&url, &schema).await);
    let two: Arc<dyn Store> = Arc::new(postgres(&url, &schema).await);
    for n in 0..20 {
        let key = format!("race{n}");
        let (a, b) = (
            audit(Some(&format!("wxA{n:015}"))),
            audit(Some(&format!("wxB{n:015}"))),
        );
        let (s1, s2) = (Arc::clone(&one), Arc::clone(&two));
        let (k1, k2) = (key.clone(), key);
        let first = tokio::spawn(async move { s1.record(a, Some(k1)).await });
        let second = tokio::spawn(async move { s2.record(b, Some(k2)).await });
        let mut outcomes = vec![
            first.await.expect("task").expect("records"),
            second.await.expect("task").expect("records"),
        ];
        outcomes.sort_by_key(|o| format!("{o:?}"));
        assert_eq!(outcomes, vec![Recorded::New, Recorded::Replay], "round {n}");
    }
}
