use std::sync::Arc;

use super::*;
use crate::store::{DEFAULT_ROUTE, KnownAudit, MediaRecord, Submission, Submissions};

fn audit(n: u32) -> Event {
    Event::parse(
        &format!(
            "<xml><CreateTime>{n}</CreateTime><Event>wxa_category_audit</Event><ret>3</ret><first>1</first><second>{n}</second></xml>"
        ),
        "demo",
        None,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_commits() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::Database(e.to_string()))?;
    let store = Arc::new(SqliteStore::open(dir.path())?);
    let tasks: Vec<_> = (0..500)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.record(audit(n), None).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(
            task.await
                .map_err(|e| StoreError::Database(e.to_string()))??,
            Recorded::New
        );
    }
    let (commits, writes) = store.commit_counts();
    assert_eq!(writes, 500);
    assert!(
        commits < 500,
        "{commits} commits for 500 concurrent writes: no group commit"
    );
    assert_eq!(store.stats().await?.pending, 500);
    Ok(())
}

#[tokio::test]
async fn a_submission_and_its_audit_in_one_batch_are_matched() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::Database(e.to_string()))?;
    let store = SqliteStore::open(dir.path())?;
    let submission = |n: u32| Submission {
        id: format!("sub_{n}"),
        app: "demo".into(),
        authorizer_appid: None,
        first: "1".into(),
        second: n.to_string(),
        status: "pending".into(),
        reason: String::new(),
        submitted_at: clock::now_ms(),
        resolved_at: None,
        event_id: None,
        source: None,
    };
    // All queued before any is awaited, so that the writer, busy with the first, takes
    // the rest in one transaction: audits find no open submission, then the submission
    // queued after them must still be matched by its audit.
    let before: Vec<_> = (100..140).map(|n| store.record(audit(n), None)).collect();
    let added = store.record_submission(submission(2));
    let matched = store.record(audit(2), None);
    let pending = store.record_submission(submission(3));
    for write in before {
        assert_eq!(write.await?, Recorded::New);
    }
    added.await?;
    assert_eq!(matched.await?, Recorded::New);
    pending.await?;
    let submissions = store.submissions().await?;
    let status = |id: &str| {
        submissions
            .iter()
            .find(|s| s.id == id)
            .map(|s| (s.status.clone(), s.event_id.clone()))
    };
    assert_eq!(
        status("sub_2"),
        Some(("passed".into(), Some(audit(2).id))),
        "{submissions:?}"
    );
    assert_eq!(status("sub_3"), Some(("pending".into(), None)));
    assert_eq!(
        status(&audit(100).id).map(|s| s.0),
        Some("unmatched".into())
    );
    Ok(())
}

#[tokio::test]
async fn duplicates_are_counted_not_stored_and_state_survives_reopening() -> Result<(), StoreError>
{
    let dir = tempfile::tempdir().map_err(|e| StoreError::Database(e.to_string()))?;
    {
        let store = SqliteStore::open(dir.path())?;
        assert_eq!(store.record(audit(1), None).await?, Recorded::New);
        assert_eq!(store.record(audit(1), None).await?, Recorded::Duplicate);
        store
            .mark_failed(
                DeliveryKey::new(audit(1).id, DEFAULT_ROUTE),
                "boom".into(),
                None,
            )
            .await?;
    }
    let store = SqliteStore::open(dir.path())?;
    assert_eq!(store.record(audit(1), None).await?, Recorded::Duplicate);
    let record = store
        .get(audit(1).id)
        .await?
        .into_iter()
        .next()
        .ok_or(StoreError::Closed)?;
    assert_eq!(
        (record.status, record.attempts, record.duplicates),
        (Status::Dead, 1, 2)
    );
    assert_eq!(record.last_error.as_deref(), Some("boom"));
    assert_eq!(store.replay_dead().await?, 1);
    assert_eq!(
        store.due(clock::now_ms(), DueQuery::any(10)).await?.len(),
        1
    );
    Ok(())
}

#[tokio::test]
async fn a_replayed_event_still_held_for_delivery_is_delivered_once() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::Database(e.to_string()))?;
    let store = SqliteStore::open(dir.path())?;
    store.record(audit(1), None).await?;
    assert_eq!(store.replay(vec![audit(1).id]).await?, 1);
    assert_eq!(
        store.due(clock::now_ms(), DueQuery::any(10)).await?.len(),
        1,
        "from memory"
    );
    assert!(
        store
            .due(clock::now_ms(), DueQuery::any(10))
            .await?
            .is_empty(),
        "not due in the file as well"
    );
    Ok(())
}

#[tokio::test]
async fn prune_removes_only_old_delivered_events() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::Database(e.to_string()))?;
    let store = SqliteStore::open(dir.path())?;
    for n in 1..=3 {
        store.record(audit(n), None).await?;
    }
    store
        .mark_delivered(DeliveryKey::new(audit(1).id, DEFAULT_ROUTE))
        .await?;
    store
        .mark_failed(
            DeliveryKey::new(audit(2).id, DEFAULT_ROUTE),
            "x".into(),
            None,
        )
        .await?;
    assert_eq!(store.prune(clock::now_ms() - 60_000).await?, 0);
    assert_eq!(store.prune(clock::now_ms() + 1).await?, 1);
    let stats = store.stats().await?;
    assert_eq!((stats.delivered, stats.dead, stats.pending), (0, 1, 1));
    Ok(())
}

/// An inbox from before the `held` column: an event handed to the server in memory (due
/// exactly an hour after arrival, never attempted) is marked held by the migration, shows
/// its holder, and is given back at the next start.
#[tokio::test]
async fn held_events_of_an_older_inbox_stay_held_after_the_migration() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::Database(e.to_string()))?;
    let id = audit(7).id;
    {
        let store = SqliteStore::open(dir.path())?;
        assert_eq!(store.record(audit(7), None).await?, Recorded::New);
    }
    let conn = Connection::open(dir.path().join(DB_FILE)).map_err(classify)?;
    conn.execute_batch(
        "ALTER TABLE events DROP COLUMN held; ALTER TABLE quarantine DROP COLUMN discarded_at;
         ALTER TABLE submissions DROP COLUMN source; ALTER TABLE submissions DROP COLUMN push_event_id;
         PRAGMA user_version = 1;",
    )
    .map_err(classify)?;
    drop(conn);
    let store = SqliteStore::open(dir.path())?;
    let record = store
        .get(id.clone())
        .await?
        .into_iter()
        .next()
        .ok_or(StoreError::Closed)?;
    assert_eq!(record.lease.map(|l| l.owner).as_deref(), Some(HOLDER));
    assert_eq!(store.take_over().await?, 1, "given back at start");
    let record = store
        .get(id)
        .await?
        .into_iter()
        .next()
        .ok_or(StoreError::Closed)?;
    assert!(record.lease.is_none());
    Ok(())
}

/// A reconciled audit resolves its submission as `reconciled`; the push that arrives
/// after it is recognised (once, for that push), media ids and the settable cache keep.
#[tokio::test]
async fn reconciled_results_and_late_pushes_are_matched() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::Database(e.to_string()))?;
    let store = SqliteStore::open(dir.path())?;
    store
        .record_submission(Submission {
            id: "sub_1".into(),
            app: "demo".into(),
            authorizer_appid: Some("wxa0000000000000a1".into()),
            first: "8".into(),
            second: "39".into(),
            status: "pending".into(),
            reason: String::new(),
            submitted_at: clock::now_ms(),
            resolved_at: None,
            event_id: None,
            source: None,
        })
        .await?;
    let reconciled = Event::parse(
        "<xml><Event>wxa_category_audit</Event><ret>2</ret><first>8</first><second>39</second><reason>blurred</reason><WxpushSource>reconciled</WxpushSource><WxpushSubmission>sub_1</WxpushSubmission></xml>",
        "demo",
        Some("wxa0000000000000a1"),
    );
    let reconciled_id = reconciled.id.clone();
    store.record(reconciled, None).await?;
    let resolved = store
        .submission("sub_1".into())
        .await?
        .ok_or(StoreError::Closed)?;
    assert_eq!(
        (
            resolved.status.as_str(),
            resolved.source.as_deref(),
            resolved.event_id.as_deref()
        ),
        ("rejected", Some("reconciled"), Some(reconciled_id.as_str()))
    );
    assert!(store.pending_submissions().await?.is_empty());
    let push = |id: &str, result: &str| KnownAudit {
        event_id: id.into(),
        app: "demo".into(),
        authorizer_appid: Some("wxa0000000000000a1".into()),
        first: "8".into(),
        second: "39".into(),
        result: result.into(),
    };
    assert_eq!(
        store.already_known(push("evt_p", "passed")).await?,
        None,
        "another result is news"
    );
    assert_eq!(
        store.already_known(push("evt_p", "rejected")).await?,
        Some(reconciled_id.clone())
    );
    assert_eq!(
        store.already_known(push("evt_p", "rejected")).await?,
        Some(reconciled_id),
        "again, for another route"
    );
    assert_eq!(
        store.already_known(push("evt_q", "rejected")).await?,
        None,
        "one push per result"
    );
    let media = MediaRecord {
        media_id: "m1".into(),
        app: "demo".into(),
        appid: "wxa0000000000000a1".into(),
        file: "licence.jpg".into(),
        created_at: 1,
        expires_at: 2,
    };
    store.record_media(media.clone()).await?;
    assert_eq!(store.media("m1".into()).await?, Some(media));
    store
        .cache_settable("wxa0000000000000a1".into(), "[]".into(), 7)
        .await?;
    assert_eq!(
        store.settable("wxa0000000000000a1".into()).await?,
        Some(("[]".into(), 7))
    );
    Ok(())
}
