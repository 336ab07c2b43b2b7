//! Ready handlers against real peers (an HTTP receiver, a subprocess), several apps on one
//! server, key and token rotation, health and metrics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use wxpush::config::{CommandConfig, WebhookConfig};
use wxpush::handler::webhook;
use wxpush::store::Status;
use wxpush::{BoxHandler, CommandHandler, Event, Secret, WebhookHandler};

use crate::helpers::{
    Behavior, TestApp, app_toml, assert_nothing_left_to_deliver, vector, vector_event_id,
    wait_for_status, with_attempts,
};

/// Requests a test receiver saw: headers and body.
type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A local HTTP server that records each request and answers 500 to the first one, 200 after.
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(seen): axum::extract::State<Seen>,
                 headers: HeaderMap,
                 body: String| async move {
                    let mut all = seen.lock().expect("lock");
                    all.push((headers, body));
                    if all.len() == 1 {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    }
                },
            ),
        )
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), seen)
}

/// The webhook handler POSTs the documented JSON with id, timestamp and HMAC headers; a 500
/// answer is retried, and the 200 that follows marks the event delivered, once.
#[tokio::test]
async fn webhook_retries_after_500_and_signs_every_request() {
    let (url, seen) = receiver().await;
    let secret = "whsec_test";
    let handler = WebhookHandler::new(&WebhookConfig {
        url,
        secret: Some(Secret::new(secret.to_owned())),
        timeout: Duration::from_secs(5),
    })
    .expect("client builds");
    let behavior = Behavior {
        handler: Some(BoxHandler::new(handler)),
        ..Behavior::default()
    };
    let app = TestApp::spawn_with(&app_toml("demo"), behavior).await;
    assert_eq!(
        app.send_vector(&vector("safe-xml-rejected-utf8"))
            .await
            .body,
        "success"
    );
    let id = vector_event_id("safe-xml-rejected-utf8", "demo", None);
    let record = wait_for_status(&app, &id, Status::Delivered).await;
    assert_eq!(record.attempts, 2);
    let requests = seen.lock().expect("lock").clone();
    assert_eq!(
        requests.len(),
        2,
        "500 then 200: two requests, then no more"
    );
    for (i, (headers, body)) in requests.iter().enumerate() {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("wxpush-event-id"), id);
        let ts = header("wxpush-timestamp");
        assert_eq!(
            header("wxpush-signature"),
            webhook::signature(secret, &id, &ts, body).expect("hmac")
        );
        assert_eq!(header("content-type"), "application/json");
        let json: Value = serde_json::from_str(body).expect("JSON body");
        assert_eq!(json["id"], id.as_str());
        assert_eq!(json["status"], "pending");
        assert_eq!(json["attempts"], i);
        assert_eq!(json["category_audit"]["result"], "rejected");
        assert_eq!(
            json["category_audit"]["reason"],
            "资质证明不清晰，请重新上传营业执照"
        );
    }
    let second: Value = serde_json::from_str(&requests[1].1).expect("JSON");
    assert!(
        second["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{second}"
    );
    let store = Arc::clone(app.store.as_ref().expect("store"));
    app.stop().await;
    assert_eq!(seen.lock().expect("lock").len(), 2, "delivered once");
    assert_nothing_left_to_deliver(store).await;
}

/// The command handler runs a real program: event JSON on stdin, key fields in env, no
/// secrets in env; a non-zero exit is retried; the next run's exit 0 marks it delivered.
#[tokio::test]
async fn command_handler_runs_a_script_and_retries_on_failure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let script = dir.path().join("on-event.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nset -e\nn=$(cat {out}.count 2>/dev/null || echo 0)\necho $((n + 1)) > {out}.count\ncat > {out}.$n\nenv | grep '^WXPUSH_' | sort > {out}.$n.env\n[ \"$n\" -ge 1 ] || {{ echo 'first run fails' >&2; exit 3; }}\n",
            out = out.display()
        ),
    )
    .expect("write script");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .expect("chmod");
    let handler = CommandHandler::new(&CommandConfig {
        program: vec![script.display().to_string()],
        shell: false,
        timeout: Duration::from_secs(10),
    });
    let behavior = Behavior {
        handler: Some(BoxHandler::new(handler)),
        ..Behavior::default()
    };
    let app = TestApp::spawn_with(&app_toml("platform"), behavior).await;
    assert_eq!(
        app.send_vector(&vector("platform-authorizer-route"))
            .await
            .body,
        "success"
    );
    let plaintext = vector("platform-authorizer-route")["plaintext"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let id = Event::parse(&plaintext, "platform", Some("wx1111222233334444")).id;
    let record = wait_for_status(&app, &id, Status::Delivered).await;
    assert_eq!(record.attempts, 2);
    let first = app
        .store()
        .get(id.clone())
        .await
        .expect("read")
        .into_iter()
        .next()
        .expect("stored");
    assert_eq!(
        first
            .last_error
            .as_deref()
            .map(|e| e.contains("first run fails")),
        Some(true)
    );
    let stdin: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}.1", out.display())).expect("stdin saved"),
    )
    .expect("JSON");
    assert_eq!(stdin["id"], id.as_str());
    assert_eq!(stdin["authorizer_appid"], "wx1111222233334444");
    let env = std::fs::read_to_string(format!("{}.1.env", out.display())).expect("env saved");
    for line in [
        format!("WXPUSH_EVENT_ID={id}"),
        "WXPUSH_EVENT=wxa_category_audit".to_owned(),
        "WXPUSH_APP=platform".to_owned(),
        "WXPUSH_AUTHORIZER_APPID=wx1111222233334444".to_owned(),
        "WXPUSH_CATEGORY_FIRST=8".to_owned(),
        "WXPUSH_AUDIT_RESULT=passed".to_owned(),
        "WXPUSH_ATTEMPT=2".to_owned(),
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing in\n{env}");
    }
    app.stop().await;
}

/// A command that outlives its timeout is killed and the attempt counts as failed.
#[tokio::test]
async fn a_command_past_its_timeout_is_killed_and_retried() {
    let handler = CommandHandler::new(&CommandConfig {
        program: vec!["sleep 30".to_owned()],
        shell: true,
        timeout: Duration::from_secs(1),
    });
    let behavior = Behavior {
        handler: Some(BoxHandler::new(handler)),
        ..Behavior::default()
    };
    let toml = with_attempts(&app_toml("demo"), 1);
    let app = TestApp::spawn_with(&toml, behavior).await;
    assert_eq!(
        app.send_vector(&vector("safe-xml-passed")).await.body,
        "success"
    );
    let id = vector_event_id("safe-xml-passed", "demo", None);
    let record = wait_for_status(&app, &id, Status::Dead).await;
    assert!(
        record
            .last_error
            .is_some_and(|e| e.contains("timed out after 1 s and was killed"))
    );
    app.stop().await;
}

fn two_apps_toml() -> String {
    let platform = app_toml("platform");
    let platform_app = &platform[platform.find("[app]").expect("app table") + "[app]".len()..];
    format!("{}\n[[apps]]{platform_app}", app_toml("demo"))
}

/// Two apps with different keys on one server: each at its own route, events record which
/// app received them; a push to an unknown app is 404; a push signed for one app fails on
/// the other's route.
#[tokio::test]
async fn two_apps_with_different_keys_share_one_server() {
    let mut app = TestApp::spawn_with(&two_apps_toml(), Behavior::default()).await;
    assert_eq!(
        app.send_vector(&vector("safe-xml-passed")).await.body,
        "success"
    );
    assert_eq!(app.next_event().await.app, "demo");

    let mut v = vector("platform-authorizer-route");
    v["request"]["path"] = "/wechat/platform/wx1111222233334444/callback".into();
    assert_eq!(app.send_vector(&v).await.body, "success");
    let event = app.next_event().await;
    assert_eq!(
        (event.app.as_str(), event.authorizer_appid.as_deref()),
        ("platform", Some("wx1111222233334444"))
    );

    let mut v = vector("platform-verify-ticket");
    v["request"]["path"] = "/wechat/platform".into();
    assert_eq!(app.send_vector(&v).await.body, "success");
    assert_eq!(
        app.next_event().await.info_type.as_deref(),
        Some("component_verify_ticket")
    );

    let mut v = vector("safe-xml-passed");
    v["request"]["path"] = "/wechat/platform".into();
    assert_eq!(
        app.send_vector(&v).await.status,
        401,
        "demo's signature on platform's route"
    );
    v["request"]["path"] = "/wechat/nosuchapp".into();
    assert_eq!(app.send_vector(&v).await.status, 404);
    let mut check = vector("url-check-ok");
    check["request"]["path"] = "/wechat/demo".into();
    assert_eq!(app.send_vector(&check).await.body, "7139658310231475832");
    app.stop().await;
}

/// During a key and token change, pushes made with the previous key or token are accepted,
/// and counted in a metric.
#[tokio::test]
async fn previous_key_and_token_are_accepted_and_counted() {
    // The current credentials are new; the demo vectors were made with what is now "previous".
    let toml = app_toml("demo")
        .replace("token = \"wxpushDemoToken\"", "token = \"newToken2026\"\nprevious_token = \"wxpushDemoToken\"")
        .replace(
            "encoding_aes_key = \"FqRfJtSZ1eTemafkXIDruAmV0cJPssQEyOyi7ODadSB\"",
            "encoding_aes_key = \"Uw5ivvPr4xBUYFrca8hu62mO8LtaK66OKHIvIVOaPHJ\"\nprevious_encoding_aes_key = \"FqRfJtSZ1eTemafkXIDruAmV0cJPssQEyOyi7ODadSB\"",
        );
    let mut app = TestApp::spawn_with(&toml, Behavior::default()).await;
    assert_eq!(app.send_vector(&vector("url-check-ok")).await.status, 200);
    assert_eq!(app.send_vector(&vector("safe-json")).await.body, "success");
    assert_eq!(app.next_event().await.create_time, Some(1_764_287_994));
    // A fresh push with the current credentials still works.
    let fresh = vector("safe-xml-passed")["plaintext"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(app.push_safe("/wechat", &fresh).await.body, "success");
    app.next_event().await;
    let metrics = app.get_text("/metrics").await;
    for credential in ["token", "encoding_aes_key"] {
        let line = format!(
            "wxpush_previous_credentials_total{{app=\"demo\",credential=\"{credential}\"}}"
        );
        let value = metric(&metrics, &line);
        // Exactly the one push made with the previous token and key: this server owns its
        // registry, and URL checks are not counted here.
        assert_eq!(value, 1.0, "{line}");
    }
    app.stop().await;
}

/// The value of the first sample whose name and labels start with `prefix`; a missing
/// sample fails the test (a gauge that was never set is not a zero).
pub(crate) fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {prefix:?} in:\n{text}"))
}

/// /healthz answers, /readyz checks the store and the dispatcher.
#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn("demo").await;
    for (path, body) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let r = app
            .client
            .get(format!("{}{path}", app.base_url))
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.text().await.expect("text"), body);
    }
    app.stop().await;
}
