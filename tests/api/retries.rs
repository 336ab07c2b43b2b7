//! The durable inbox: platform retries stored once, handler failures retried, dead events
//! replayed, pending events resumed after a restart, quarantine and its repair.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use wxpush::store::{ListFilter, Status};

use crate::helpers::{Behavior, TestApp, app_toml, vector, wait_for_status, with_attempts};

fn audit(create_time: u64, second: u32) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_a]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName><CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_category_audit]]></Event><ret>3</ret><first>8</first><second>{second}</second><reason><![CDATA[]]></reason></xml>"
    )
}

/// Three copies of one message (new timestamp, nonce, random prefix each) → three
/// `success` answers, one stored event, one delivery, two duplicates counted.
#[tokio::test]
async fn a_retry_burst_is_stored_once_and_delivered_once() {
    let mut app = TestApp::spawn("demo").await;
    for id in ["retry-1", "retry-2", "retry-3"] {
        let answer = app.send_vector(&vector(id)).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "success"),
            "{id}"
        );
    }
    let event = app.next_event().await;
    assert_eq!(event.create_time, Some(1_764_288_020));
    let stats = app.store().stats().await.expect("stats");
    assert_eq!((stats.delivered + stats.pending, stats.duplicates), (1, 2));
    let leftover = app.stop().await;
    assert!(leftover.is_empty(), "delivered again: {leftover:?}");
}

/// Two audit results in the same second that differ only in `second` are two events.
#[tokio::test]
async fn audit_results_differing_only_in_second_are_two_events() {
    let mut app = TestApp::spawn("demo").await;
    for second in [39, 40] {
        let answer = app
            .push_safe("/wechat", &audit(1_764_288_100, second))
            .await;
        assert_eq!(answer.body, "success");
    }
    let a = app.next_event().await;
    let b = app.next_event().await;
    assert_ne!(a.id, b.id);
    app.stop().await;
}

/// A handler that fails twice then succeeds: delivered once, after 3 attempts, with the
/// last error kept.
#[tokio::test]
async fn a_failing_handler_is_retried_until_it_succeeds() {
    let behavior = Behavior {
        fail_first: Some(Arc::new(AtomicU32::new(2))),
        ..Behavior::default()
    };
    let toml = with_attempts(&app_toml("demo"), 5);
    let mut app = TestApp::spawn_with(&toml, behavior).await;
    assert_eq!(app.push_safe("/wechat", &audit(1, 1)).await.body, "success");
    let event = app.next_event().await;
    let record = wait_for_status(&app, &event.id, Status::Delivered).await;
    assert_eq!(record.attempts, 3);
    assert_eq!(
        record.last_error.as_deref(),
        Some("test handler: planned failure")
    );
    assert_eq!(app.calls.load(Ordering::SeqCst), 3);
    assert!(app.stop().await.is_empty());
}

/// Configurations of earlier versions, with `max_attempts` and `backoff_*` instead of a
/// retry schedule, still start and behave as before: a delivery is dead after
/// `max_attempts` attempts, the backoff doubling from `backoff_initial_ms`.
#[tokio::test]
async fn the_deprecated_backoff_keys_still_give_the_old_behaviour() {
    let never = Behavior {
        healthy: Some(Arc::new(AtomicBool::new(false))),
        ..Behavior::default()
    };
    let toml = app_toml("demo").replace(
        crate::helpers::FAST_RETRIES,
        "max_attempts = 4\nbackoff_initial_ms = 10\nbackoff_max_secs = 1",
    );
    let config = wxpush::Config::from_toml(&toml).expect("the old keys load");
    assert_eq!(
        config.delivery.retry_schedule,
        [10, 20, 40].map(std::time::Duration::from_millis)
    );
    assert!(config.deprecations[0].contains("retry_schedule_secs = [0.01, 0.02, 0.04]"));
    let app = TestApp::spawn_with(&toml, never).await;
    assert_eq!(app.push_safe("/wechat", &audit(9, 9)).await.body, "success");
    let id = wxpush::Event::parse(&audit(9, 9), "demo", None).id;
    let dead = wait_for_status(&app, &id, Status::Dead).await;
    assert_eq!((dead.attempts, app.calls.load(Ordering::SeqCst)), (4, 4));
    app.stop().await;
}

/// A handler that always fails: the event is dead after its last attempt, kept and visible;
/// replaying it once the handler works delivers it.
#[tokio::test]
async fn an_always_failing_handler_leaves_a_dead_event_that_replay_delivers() {
    let healthy = Arc::new(AtomicBool::new(false));
    let behavior = Behavior {
        healthy: Some(Arc::clone(&healthy)),
        ..Behavior::default()
    };
    let mut app = TestApp::spawn_with(&app_toml("demo"), behavior).await;
    let message = audit(2, 2);
    assert_eq!(app.push_safe("/wechat", &message).await.body, "success");
    let id = wxpush::Event::parse(&message, "demo", None).id;
    let dead = wait_for_status(&app, &id, Status::Dead).await;
    assert_eq!(dead.attempts, 3);
    let listed = app
        .store()
        .list(ListFilter {
            status: Some(Status::Dead),
            limit: 10,
            ..ListFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);

    healthy.store(true, Ordering::SeqCst);
    assert_eq!(app.store().replay_dead().await.expect("replay"), 1);
    let event = app.next_event().await;
    assert_eq!(event.id, id);
    wait_for_status(&app, &id, Status::Delivered).await;
    app.stop().await;
}

/// Events stored but not yet delivered when the server stops are delivered after a restart
/// on the same data dir, and a retry arriving after the restart is still a duplicate.
#[tokio::test]
async fn pending_events_are_delivered_after_a_restart() {
    let never = Behavior {
        healthy: Some(Arc::new(AtomicBool::new(false))),
        ..Behavior::default()
    };
    let toml = with_attempts(&app_toml("demo"), 1000);
    let first = TestApp::spawn_with(&toml, never).await;
    let dir = Arc::clone(&first.data_dir);
    for second in [1, 2] {
        assert_eq!(
            first.push_safe("/wechat", &audit(3, second)).await.body,
            "success"
        );
    }
    assert!(first.stop().await.is_empty());

    let mut second = TestApp::spawn_in(&toml, Behavior::default(), dir).await;
    let a = second.next_event().await;
    let b = second.next_event().await;
    assert_ne!(a.id, b.id);
    assert_eq!(
        second.push_safe("/wechat", &audit(3, 1)).await.body,
        "success"
    );
    let stats = second.store().stats().await.expect("stats");
    assert_eq!(stats.duplicates, 1);
    assert!(second.stop().await.is_empty());
}

/// A genuine push this configuration cannot decrypt (wrong app id here) is acknowledged and
/// quarantined with the reason; with the configuration fixed, re-processing delivers it.
#[tokio::test]
async fn a_wrong_app_id_quarantines_and_retry_quarantined_delivers_after_the_fix() {
    let wrong = app_toml("demo").replace("wx5a1b2c3d4e5f6a7b", "wx0000000000000000");
    let app = TestApp::spawn_with(&wrong, Behavior::default()).await;
    let answer = app.send_vector(&vector("safe-xml-passed")).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "success"));
    let quarantined = app.store().quarantined(10).await.expect("quarantine");
    assert_eq!(quarantined.len(), 1);
    assert!(
        quarantined[0]
            .reason
            .contains("appid check failed (-40005)"),
        "{}",
        quarantined[0].reason
    );
    assert!(
        quarantined[0].reason.contains("wx5a1b2c3d4e5f6a7b"),
        "names the app id found"
    );
    let dir = Arc::clone(&app.data_dir);
    assert!(app.stop().await.is_empty());

    let mut fixed = TestApp::spawn_in(&app_toml("demo"), Behavior::default(), dir).await;
    let report = wxpush::quarantine::retry_all(
        fixed.store(),
        std::slice::from_ref(&fixed.config.app),
        &fixed.config.routing(),
    )
    .await
    .expect("retry");
    assert_eq!((report.released, report.still_failing.len()), (1, 0));
    let stats = fixed.store().stats().await.expect("stats");
    assert_eq!(
        (stats.quarantined, stats.pending + stats.delivered),
        (0, 1),
        "released as one event"
    );
    let event = fixed.next_event().await;
    assert_eq!(event.create_time, Some(1_764_287_990));
    assert_eq!(fixed.store().stats().await.expect("stats").quarantined, 0);
    fixed.stop().await;
}

/// A push outside the replay window is acknowledged but quarantined with the skew in the
/// reason; unauthenticated pushes are never stored.
#[tokio::test]
async fn old_timestamps_are_quarantined_and_bad_signatures_never_stored() {
    let toml = app_toml("demo").replace("max_clock_skew_secs = 0", "max_clock_skew_secs = 300");
    let app = TestApp::spawn_with(&toml, Behavior::default()).await;
    let answer = app.send_vector(&vector("safe-xml-passed")).await;
    assert_eq!(answer.body, "success");
    let bad = app.send_vector(&vector("bad-msg-signature")).await;
    assert_eq!(bad.status, 401);
    let quarantined = app.store().quarantined(10).await.expect("quarantine");
    assert_eq!(quarantined.len(), 1, "only the genuine push is kept");
    assert!(
        quarantined[0]
            .reason
            .contains("s behind this server's clock (max_clock_skew_secs = 300)")
    );
    let stats = app.store().stats().await.expect("stats");
    assert_eq!(stats.pending + stats.delivered, 0);
    assert_eq!(app.calls.load(Ordering::SeqCst), 0);
    app.stop().await;
}
