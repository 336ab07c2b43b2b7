//! Bulk operations from the real binary, on both stores: discard and replay by filter, the
//! question before touching more than 100, discarded deliveries and quarantined pushes no
//! longer counted as dead or quarantined, and replays of one route leaving the others alone.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use wxpush::store::Status;

use crate::cli::wxpush;
use crate::downstream::{Downstream, Mode};
use crate::helpers::{Behavior, TestApp, app_toml, database_url, fresh_schema, pg_toml, vector};
use crate::integrations::metric;

fn audit(n: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_a]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName><CreateTime>{n}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_category_audit]]></Event><ret>3</ret><first>8</first><second>{n}</second><reason><![CDATA[]]></reason></xml>"
    )
}

/// 120 events to a working route and a failing one, and one quarantined push (a year-old
/// timestamp with the clock check on); `store_toml` picks the store, `env` is how the CLI
/// reaches it.
async fn scenario(store_toml: &str, mut env: Vec<(String, String)>) {
    let good = Downstream::running(Mode::Ok, Duration::ZERO).await;
    let bad = Downstream::running(Mode::Status(500), Duration::ZERO).await;
    let toml = app_toml("demo").replace("max_clock_skew_secs = 0", "max_clock_skew_secs = 300")
        + &format!(
            "\n[[routes]]\nname = \"good\"\nhandler = \"webhook\"\nwebhook = {{ url = \"{}\" }}\n\n[[routes]]\nname = \"bad\"\nhandler = \"webhook\"\nwebhook = {{ url = \"{}\" }}\n",
            good.url, bad.url
        )
        + store_toml;
    let behavior = Behavior {
        config_routes: true,
        ..Behavior::default()
    };
    let app = TestApp::spawn_with(&toml, behavior).await;
    env.push((
        "WXPUSH_DATA_DIR".into(),
        app.data_dir.path().display().to_string(),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let started = wxpush::clock::now_ms();
    for n in 0..120 {
        let answer = app.push_safe("/wechat", &audit(n)).await;
        assert_eq!(answer.body, "success", "{answer:?}");
    }
    assert_eq!(
        app.send_vector(&vector("safe-xml-passed")).await.body,
        "success"
    );
    good.wait_accepted(120, Duration::from_secs(30)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while app.store().stats().await.expect("stats").dead < 120 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dead: {:?} {:#?}",
            app.store().stats().await,
            app.store()
                .list(wxpush::store::ListFilter {
                    status: Some(Status::Pending),
                    limit: 3,
                    ..Default::default()
                })
                .await
                .map(|v| v
                    .into_iter()
                    .map(|r| (
                        r.route,
                        r.attempts,
                        r.next_attempt_at,
                        r.lease,
                        r.last_error
                    ))
                    .collect::<Vec<_>>())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = app.get_text("/metrics").await;
    assert_eq!(metric(&metrics, "wxpush_events_dead "), 120.0);
    assert_eq!(metric(&metrics, "wxpush_events_quarantined "), 1.0);

    // Without --yes and without a terminal to ask on, more than 100 are refused.
    let (ok, out, err) = wxpush(&["events", "discard", "--status", "dead"], &env);
    assert!(
        !ok && err.contains("120 match") && err.contains("--yes"),
        "{out}{err}"
    );
    assert!(out.contains("route bad: 120 dead"), "{out}");
    assert_eq!(
        app.store().stats().await.expect("stats").dead,
        120,
        "nothing changed"
    );
    // A window that holds none of them touches nothing.
    let before = wxpush::clock::rfc3339(started - 60_000);
    let (ok, out, err) = wxpush(
        &["events", "discard", "--status", "dead", "--until", &before],
        &env,
    );
    assert!(ok && out.contains("0 discarded"), "{out}{err}");

    let (ok, out, err) = wxpush(
        &[
            "events",
            "discard",
            "--route",
            "bad",
            "--status",
            "dead",
            "--since",
            &wxpush::clock::rfc3339(started),
            "--yes",
        ],
        &env,
    );
    assert!(ok && out.contains("120 discarded"), "{out}{err}");
    let (ok, out, err) = wxpush(&["events", "discard", "--status", "quarantined"], &env);
    assert!(ok && out.contains("1 discarded"), "{out}{err}");
    let stats = app.store().stats().await.expect("stats");
    assert_eq!(
        (stats.dead, stats.quarantined, stats.discarded),
        (0, 0, 121)
    );
    let metrics = app.get_text("/metrics").await;
    assert_eq!(metric(&metrics, "wxpush_events_dead "), 0.0);
    assert_eq!(metric(&metrics, "wxpush_events_quarantined "), 0.0);
    assert_eq!(metric(&metrics, "wxpush_events_discarded "), 121.0);
    let (ok, out, _) = wxpush(
        &[
            "events",
            "list",
            "--status",
            "discarded",
            "--limit",
            "500",
            "--json",
        ],
        &env,
    );
    assert!(ok);
    assert_eq!(
        out.lines().count(),
        120,
        "discarded deliveries stay visible"
    );

    // The receiver is fixed: replaying the bad route's deliveries (discarded ones too)
    // delivers each once there, and the good route is not touched.
    bad.set_mode(Mode::Ok);
    let (ok, out, err) = wxpush(&["events", "replay", "--route", "bad", "--yes"], &env);
    assert!(ok && out.contains("120 delivery(ies) queued"), "{out}{err}");
    bad.wait_accepted(120, Duration::from_secs(30)).await;
    let id = good.accepted()[0].id.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let records = app.store().get(id.clone()).await.expect("reads");
        if records.iter().all(|r| r.status == Status::Delivered) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{records:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(good.seen.requests.load(Ordering::SeqCst), 120);
    let (ok, _, err) = wxpush(&["events", "replay"], &env);
    assert!(!ok && err.contains("give event ids, or filters"), "{err}");
    let (ok, _, err) = wxpush(&["events", "replay", "--since", "yesterday"], &env);
    assert!(
        !ok && err.contains("--since: expected an RFC 3339 time"),
        "{err}"
    );
    let _keep = Arc::clone(&app.data_dir);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_discard_and_replay_by_filter_on_sqlite() {
    scenario("", Vec::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_discard_and_replay_by_filter_on_postgres() {
    let Some(url) = database_url() else { return };
    let schema = fresh_schema();
    let env = vec![
        ("WXPUSH_DATABASE_URL".to_owned(), url.clone()),
        ("WXPUSH_POSTGRES_SCHEMA".to_owned(), schema.clone()),
    ];
    scenario(&pg_toml(&url, &schema), env).await;
}
