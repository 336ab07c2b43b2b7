//! Alerts reach the operator's webhook, signed like the webhook handler's requests: a route
//! pausing and resuming, deliveries going dead (repeats coalesced into one with a count),
//! and a push quarantined.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::downstream::{Downstream, Mode};
use crate::helpers::{Behavior, FAST_RETRIES, TestApp, app_toml, vector};

type Received = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A receiver of alerts on loopback.
async fn alert_receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/alerts",
            axum::routing::post(
                |axum::extract::State(r): axum::extract::State<Received>,
                 headers: HeaderMap,
                 body: String| async move {
                    r.lock().expect("lock").push((headers, body));
                },
            ),
        )
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/alerts"), received)
}

fn audit(n: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_a]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName><CreateTime>{n}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_category_audit]]></Event><ret>3</ret><first>8</first><second>{n}</second><reason><![CDATA[]]></reason></xml>"
    )
}

/// Waits until alerts of `kind` add up to `count` occurrences; returns them.
async fn wait_for(received: &Received, kind: &str, count: u64) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let of_kind: Vec<Value> = received
            .lock()
            .expect("lock")
            .iter()
            .map(|(_, body)| serde_json::from_str::<Value>(body).expect("JSON"))
            .filter(|a| a["kind"] == kind)
            .collect();
        let total: u64 = of_kind
            .iter()
            .map(|a| a["count"].as_u64().unwrap_or(0))
            .sum();
        if total >= count {
            return of_kind;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{kind}: {total} of {count}; got {:?}",
            received.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_signed_coalesced_and_cover_pause_resume_dead_and_quarantine() {
    let (url, received) = alert_receiver().await;
    let downstream = Downstream::running(Mode::Status(500), Duration::ZERO).await;
    let secret = "alert-secret";
    let toml = app_toml("demo")
        .replace("max_clock_skew_secs = 0", "max_clock_skew_secs = 300")
        .replace(
            &format!("{FAST_RETRIES}\nbreaker_failures = 0"),
            "retry_schedule_secs = []\nbreaker_failures = 4\nbreaker_probe_secs = 1\nconcurrency = 1",
        )
        + &format!(
            "\n[alerts]\nwebhook_url = \"{url}\"\nsecret = \"{secret}\"\ncoalesce_secs = 1\n\n[[routes]]\nname = \"integrator\"\nhandler = \"webhook\"\nwebhook = {{ url = \"{}\" }}\n",
            downstream.url
        );
    let behavior = Behavior {
        config_routes: true,
        ..Behavior::default()
    };
    let app = TestApp::spawn_with(&toml, behavior).await;
    for n in 0..4 {
        assert_eq!(app.push_safe("/wechat", &audit(n)).await.body, "success");
    }
    let dead = wait_for(&received, "event.dead", 4).await;
    assert_eq!(
        dead.len(),
        2,
        "the first at once, three more as one: {dead:?}"
    );
    assert_eq!(dead[1]["count"], 3);
    assert!(dead.iter().all(|a| {
        a["route"] == "integrator"
            && a["event_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("evt_"))
    }));
    let paused = wait_for(&received, "route.paused", 1).await;
    assert_eq!(paused[0]["route"], "integrator");

    downstream.set_mode(Mode::Ok);
    assert_eq!(app.push_safe("/wechat", &audit(9)).await.body, "success");
    wait_for(&received, "route.resumed", 1).await;
    assert_eq!(
        app.send_vector(&vector("safe-xml-passed")).await.body,
        "success"
    );
    let quarantined = wait_for(&received, "push.quarantined", 1).await;
    assert!(
        quarantined[0]["quarantine_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("q_"))
    );
    assert!(quarantined[0].get("route").is_none());

    for (headers, body) in received.lock().expect("lock").iter() {
        let header = |name: &str| headers[name].to_str().expect("ascii").to_owned();
        let (id, timestamp) = (header("wxpush-event-id"), header("wxpush-timestamp"));
        let alert: Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(alert["id"], id.as_str());
        assert!(alert["at"].as_str().is_some_and(|at| at.ends_with('Z')));
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(header("wxpush-signature"), format!("v1={expected}"));
    }
    app.stop().await;
}
