//! Delivery that outlasts a slow or broken downstream: the breaker across an outage,
//! concurrency with per-key order (one instance, and two replicas on PostgreSQL), and routes
//! that fail apart. Receivers are real HTTP servers on loopback.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use wxpush::store::Status;

use crate::cli::{Served, wxpush};
use crate::downstream::{Downstream, Mode};
use crate::helpers::{Behavior, TestApp, app_toml, database_url, fresh_schema, pg_toml};
use crate::integrations::metric;

/// A category audit of category `first`/`second`; `n` (its CreateTime) tells events apart.
fn audit(n: u64, first: u32, second: u32) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_a]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName><CreateTime>{n}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_category_audit]]></Event><ret>3</ret><first>{first}</first><second>{second}</second><reason><![CDATA[]]></reason></xml>"
    )
}

/// The receiver is down far longer than the retry schedule lasts (0.4 s): first nothing
/// listens, then it answers 503, then it hangs. The route pauses once, probes, resumes once
/// when the receiver works again, and every event is delivered exactly once, none dead and
/// none past its schedule: the waits of the pause did not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_schedule_pauses_the_route_and_loses_nothing() {
    let downstream = Downstream::reserve();
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().display().to_string();
    let envs = [
        ("WXPUSH_DATA_DIR", data.as_str()),
        ("WXPUSH_HANDLER", "webhook"),
        ("WXPUSH_WEBHOOK_URL", downstream.url.as_str()),
        ("WXPUSH_WEBHOOK_TIMEOUT_SECS", "1"),
        ("WXPUSH_DELIVERY_ATTEMPT_TIMEOUT_SECS", "2"),
        ("WXPUSH_DELIVERY_RETRY_SCHEDULE_SECS", "0.2,0.2"),
        ("WXPUSH_DELIVERY_BREAKER_FAILURES", "2"),
        ("WXPUSH_DELIVERY_BREAKER_PROBE_SECS", "1"),
    ];
    let mut served = Served::start(&envs);
    let client = TestApp::client_for(&served.base_url);
    for n in 0..6 {
        let answer = client
            .push_safe("/wechat", &audit(100 + n, 8, n as u32 % 3))
            .await;
        assert_eq!(answer.body, "success");
    }
    served.wait_for("route paused");
    let metrics = client.get_text("/metrics").await;
    assert_eq!(
        metric(&metrics, "wxpush_route_paused{route=\"default\"}"),
        1.0
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    downstream.start(Mode::Status(503)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    downstream.set_mode(Mode::Hang);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(downstream.accepted().is_empty());
    downstream.set_mode(Mode::Ok);
    let accepted = downstream.wait_accepted(6, Duration::from_secs(15)).await;
    served.wait_for("route resumed");
    let metrics = client.get_text("/metrics").await;
    assert_eq!(
        metric(&metrics, "wxpush_route_paused{route=\"default\"}"),
        0.0
    );
    let probes = metric(
        &metrics,
        "wxpush_delivery_failures_total{route=\"default\",outcome=\"probe\"}",
    );
    assert!(probes >= 3.0, "probes of the paused route: {probes}");
    let (_, lines) = served.terminate();
    let ids: HashSet<&str> = accepted.iter().map(|a| a.id.as_str()).collect();
    assert_eq!((accepted.len(), ids.len()), (6, 6), "each delivered once");
    for (needle, times) in [("route paused", 1), ("route resumed", 1)] {
        let n = lines.iter().filter(|l| l.contains(needle)).count();
        assert_eq!(
            n,
            times,
            "{needle:?} logged {n} times:\n{}",
            lines.join("\n")
        );
    }
    let env = [("WXPUSH_DATA_DIR", data.as_str())];
    let (ok, out, err) = wxpush(&["events", "list", "--json"], &env);
    assert!(ok, "{err}");
    let records: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(records.len(), 6);
    for record in &records {
        assert_eq!(record["status"], "delivered", "{record}");
        let attempts = record["attempts"].as_u64().expect("attempts");
        assert!(
            attempts <= 3,
            "{attempts} attempts: the pause used up a schedule"
        );
    }
}

/// Config for the ordering tests: a webhook route to `url`, retries that outlast random
/// failures, no breaker.
fn ordered_toml(url: &str) -> String {
    let waits = vec!["0.05"; 40].join(", ");
    app_toml("demo").replace(
        crate::helpers::FAST_RETRIES,
        &format!("retry_schedule_secs = [{waits}]\nconcurrency = 16"),
    ) + &format!(
        "\n[[routes]]\nname = \"integrator\"\nhandler = \"webhook\"\nwebhook = {{ url = \"{url}\", timeout_secs = 5 }}\n"
    )
}

/// 200 events over 20 ordering keys into a receiver that takes 20 ms and fails 30 % of the
/// requests at random, pushed to `apps` in turn: per key, the events arrive in the order they
/// were pushed, never two of a key at once, while keys run concurrently.
async fn assert_ordered(apps: &[TestApp], downstream: &Downstream) {
    for n in 0..200u64 {
        let app = &apps[n as usize % apps.len()];
        let answer = app
            .push_safe("/wechat", &audit(1000 + n, 8, n as u32 % 20))
            .await;
        assert_eq!(answer.body, "success");
    }
    downstream.wait_accepted(200, Duration::from_secs(60)).await;
    let by_key = downstream.accepted_by_key();
    assert_eq!(by_key.len(), 20);
    for (key, times) in &by_key {
        let mut sorted = times.clone();
        sorted.sort_unstable();
        assert_eq!(times, &sorted, "key {key}: out of arrival order");
        assert_eq!(
            times.len(),
            10,
            "key {key}: delivered more or less than once"
        );
    }
    let seen = &downstream.seen;
    assert_eq!(
        seen.overlaps.load(Ordering::SeqCst),
        0,
        "two of one key in flight"
    );
    let most = seen.max_in_flight.load(Ordering::SeqCst);
    assert!(most > 1, "deliveries ran one at a time ({most})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_delivery_keeps_arrival_order_per_key() {
    let downstream = Downstream::running(Mode::Flaky(0.3), Duration::from_millis(20)).await;
    let behavior = Behavior {
        config_routes: true,
        ..Behavior::default()
    };
    let app = TestApp::spawn_with(&ordered_toml(&downstream.url), behavior).await;
    assert_ordered(std::slice::from_ref(&app), &downstream).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_keep_arrival_order_per_key() {
    let Some(url) = database_url() else { return };
    let schema = fresh_schema();
    let downstream = Downstream::running(Mode::Flaky(0.3), Duration::from_millis(20)).await;
    let toml = ordered_toml(&downstream.url) + &pg_toml(&url, &schema);
    let mut apps = Vec::new();
    for _ in 0..2 {
        let behavior = Behavior {
            config_routes: true,
            ..Behavior::default()
        };
        apps.push(TestApp::spawn_with(&toml, behavior).await);
    }
    assert_ordered(&apps, &downstream).await;
    // Events of one key stored at the same moment through both replicas: still never two
    // of a key in flight at once.
    downstream.set_mode(Mode::Ok);
    downstream.set_latency(Duration::from_millis(30));
    let pushes = (0..100u64).map(|n| {
        let app = &apps[n as usize % 2];
        async move {
            app.push_safe("/wechat", &audit(5000 + n, 9, n as u32 % 5))
                .await
        }
    });
    for answer in futures_util::future::join_all(pushes).await {
        assert_eq!(answer.body, "success");
    }
    downstream.wait_accepted(300, Duration::from_secs(60)).await;
    assert_eq!(downstream.seen.overlaps.load(Ordering::SeqCst), 0);
    for app in apps {
        app.stop().await;
    }
}

/// Two routes, one failing: the working one receives every event once; the failing one
/// retries only itself until its deliveries are dead; `events show` and the metrics tell
/// them apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_route_retries_only_itself() {
    let good = Downstream::running(Mode::Ok, Duration::ZERO).await;
    let bad = Downstream::running(Mode::Status(500), Duration::ZERO).await;
    let toml = app_toml("demo")
        + &format!(
            "\n[[routes]]\nname = \"good\"\nhandler = \"webhook\"\nwebhook = {{ url = \"{}\" }}\n\n[[routes]]\nname = \"bad\"\nhandler = \"webhook\"\nevents = [\"wxa_category_audit\"]\nwebhook = {{ url = \"{}\" }}\n",
            good.url, bad.url
        );
    let behavior = Behavior {
        config_routes: true,
        ..Behavior::default()
    };
    let app = TestApp::spawn_with(&toml, behavior).await;
    for n in 0..10u64 {
        assert_eq!(
            app.push_safe("/wechat", &audit(500 + n, 8, n as u32))
                .await
                .body,
            "success"
        );
    }
    let accepted = good.wait_accepted(10, Duration::from_secs(10)).await;
    let id = accepted[0].id.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.store().stats().await.expect("stats").dead < 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "bad deliveries never dead"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        bad.seen.requests.load(Ordering::SeqCst),
        30,
        "3 attempts each"
    );
    assert_eq!(
        good.seen.requests.load(Ordering::SeqCst),
        10,
        "the good route only once"
    );
    let records = app.store().get(id.clone()).await.expect("reads");
    let states: Vec<(&str, Status, u32)> = records
        .iter()
        .map(|r| (r.route.as_str(), r.status, r.attempts))
        .collect();
    assert_eq!(
        states,
        [("bad", Status::Dead, 3), ("good", Status::Delivered, 1)]
    );
    let metrics = app.get_text("/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "wxpush_delivery_failures_total{route=\"bad\",outcome=\"dead\"}"
        ),
        10.0
    );
    assert_eq!(
        metric(&metrics, "wxpush_delivery_attempts_total{route=\"good\"}"),
        10.0
    );
    let dir = std::sync::Arc::clone(&app.data_dir);
    let data = dir.path().display().to_string();
    app.stop().await;
    let (ok, out, err) = wxpush(&["events", "show", &id], &[("WXPUSH_DATA_DIR", &data)]);
    assert!(ok, "{err}");
    assert!(out.contains("  bad: dead, 3 attempt(s)"), "{out}");
    assert!(out.contains("    last error: "), "{out}");
    assert!(out.contains("  good: delivered, 1 attempt(s)"), "{out}");
    let env = [("WXPUSH_DATA_DIR", data.as_str())];
    let (ok, out, err) = wxpush(&["events", "list", "--route", "bad", "--json"], &env);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 10);
    assert!(
        out.lines()
            .all(|l| l.contains("\"route\":\"bad\"") && l.contains("\"status\":\"dead\""))
    );
}
