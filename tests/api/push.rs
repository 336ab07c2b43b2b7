//! Pushes (POST): every shared vector over HTTP, both routes, both formats, bad input, and
//! the request never waiting on the handler.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Semaphore;
use wxpush::{Event, EventKind};

use crate::helpers::{Behavior, TestApp, app_toml, assert_subset, vector, vectors};

/// Every POST vector gets its expected status over HTTP; accepted ones reach the handler
/// once each (the retry vectors are one message) with the expected fields; genuine but
/// undecryptable ones are acknowledged and quarantined, never delivered.
#[tokio::test]
async fn every_post_vector_gets_its_expected_status_and_event() {
    post_vector_suite(String::new).await;
}

/// The POST vector suite against servers (one per app) whose config ends with
/// `store_toml()`.
pub(crate) async fn post_vector_suite(store_toml: impl Fn() -> String) {
    let doc = vectors();
    for name in ["demo", "platform"] {
        let mut app = TestApp::spawn_on(name, &store_toml()).await;
        let mut expected: HashMap<String, (String, Value)> = HashMap::new();
        let mut quarantined = 0;
        for v in doc["vectors"].as_array().into_iter().flatten() {
            if v["app"] != name || v["request"]["method"] != "POST" {
                continue;
            }
            let id = v["id"].as_str().unwrap_or("?").to_owned();
            let answer = app.send_vector(v).await;
            match &v["expect"]["status"] {
                Value::String(s) if s == "operator-error" => {
                    assert_eq!(
                        (answer.status, answer.body.as_str()),
                        (200, "success"),
                        "{id}"
                    );
                    quarantined += 1;
                }
                status => {
                    assert_eq!(
                        Some(u64::from(answer.status)),
                        status.as_u64(),
                        "{id}: {}",
                        answer.body
                    );
                }
            }
            if answer.status == 200 && v["expect"]["event"].is_object() {
                assert_eq!(answer.body, "success", "{id}");
                let path = v["request"]["path"].as_str().unwrap_or_default();
                let authorizer = path
                    .strip_prefix("/wechat/")
                    .and_then(|p| p.strip_suffix("/callback"));
                let event_id = Event::parse(
                    v["plaintext"].as_str().unwrap_or_default(),
                    name,
                    authorizer,
                )
                .id;
                expected.insert(event_id, (id, v["expect"]["event"].clone()));
            }
        }
        let mut delivered = HashMap::new();
        while delivered.len() < expected.len() {
            let event = app.next_event().await;
            assert!(
                delivered.insert(event.id.clone(), event).is_none(),
                "delivered twice"
            );
        }
        for (event_id, (vector_id, want)) in &expected {
            let event = delivered
                .get(event_id)
                .unwrap_or_else(|| panic!("{vector_id} not delivered"));
            let json = serde_json::to_value(event).expect("event serialises");
            assert_subset(want, &json, vector_id);
        }
        let stats = app.store().stats().await.expect("stats");
        assert_eq!(stats.quarantined, quarantined, "{name}");
        let leftover = app.stop().await;
        assert!(
            leftover.is_empty(),
            "{name}: unexpected events {leftover:?}"
        );
    }
}

/// The third-party route keeps the authorizer's app id on the event.
#[tokio::test]
async fn authorizer_route_records_the_authorizer_appid() {
    let mut app = TestApp::spawn("platform").await;
    let answer = app.send_vector(&vector("platform-authorizer-route")).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "success"));
    let event = app.next_event().await;
    assert_eq!(
        event.authorizer_appid.as_deref(),
        Some("wx1111222233334444")
    );
    assert_eq!(event.app, "platform");
    app.stop().await;
}

/// Fresh pushes in both formats on both routes, signed and encrypted like the platform.
#[tokio::test]
async fn fresh_xml_and_json_pushes_on_both_routes_are_accepted() {
    let mut app = TestApp::spawn("demo").await;
    let xml = "<xml><ToUserName>gh_a</ToUserName><FromUserName>o1</FromUserName><CreateTime>1700000000</CreateTime><MsgType>event</MsgType><Event>wxa_category_audit</Event><ret>3</ret><first>1</first><second>2</second><reason></reason></xml>";
    let json = r#"{"ToUserName":"gh_a","CreateTime":1700000001,"MsgType":"event","Event":"wxa_category_audit","ret":2,"first":1,"second":3,"reason":"blurry"}"#;
    for (path, json_format) in [
        ("/wechat", false),
        ("/wechat", true),
        ("/wechat/wxa0th000000000001/callback", false),
        ("/wechat/wxa0th000000000001/callback", true),
    ] {
        let message = if json_format { json } else { xml };
        let answer = app.push_safe(path, message).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "success"),
            "{path}"
        );
        let event = app.next_event().await;
        let audit = event.category_audit().cloned().expect("a category audit");
        assert_eq!(audit.first.and_then(|f| f.as_int()), Some(1));
        assert_eq!(event.authorizer_appid.is_some(), path.contains("callback"));
    }
    app.stop().await;
}

/// Events wxpush has no type for reach the handler whole, as generic events.
#[tokio::test]
async fn unknown_events_are_acknowledged_and_delivered_generically() {
    let mut app = TestApp::spawn("demo").await;
    let message = "<xml><ToUserName>gh_a</ToUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>wxa_nickname_audit</Event><nickname>x</nickname><Nested><Inner>y</Inner></Nested></xml>";
    let answer = app.push_safe("/wechat", message).await;
    assert_eq!(answer.body, "success");
    let event = app.next_event().await;
    assert_eq!(event.kind, EventKind::Other);
    assert_eq!(event.name(), "wxa_nickname_audit");
    assert_eq!(event.fields.get("Inner"), Some("y"));
    assert_eq!(event.raw, message);
    app.stop().await;
}

/// A body over the configured cap is refused with 413 before any work.
#[tokio::test]
async fn body_over_the_cap_is_rejected_with_413() {
    let toml = format!("body_limit_bytes = 2048\n{}", app_toml("demo"));
    let app = TestApp::spawn_with(&toml, Behavior::default()).await;
    let big = "<xml>".to_owned() + &"A".repeat(4096) + "</xml>";
    let answer = app.push_safe("/wechat", &big).await;
    assert_eq!(answer.status, 413);
    app.stop().await;
}

/// The request never waits on the handler: with the handler held back, pushes are still
/// answered, and the events arrive once it is released.
#[tokio::test]
async fn a_stuck_handler_does_not_hold_up_the_answer() {
    let gate = Arc::new(Semaphore::new(0));
    let behavior = Behavior {
        gate: Some(gate.clone()),
        ..Behavior::default()
    };
    let mut app = TestApp::spawn_with(&app_toml("demo"), behavior).await;
    for id in ["safe-xml-passed", "safe-json"] {
        let answer = app.send_vector(&vector(id)).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "success"),
            "{id}"
        );
    }
    assert!(app.received_now().is_empty());
    gate.add_permits(2);
    app.next_event().await;
    app.next_event().await;
    app.stop().await;
}

/// Requests on unknown paths or methods get 404 / 405, not a crash.
#[tokio::test]
async fn unknown_paths_and_methods_are_answered_plainly() {
    let app = TestApp::spawn("demo").await;
    let r = app
        .client
        .get(format!("{}/nowhere", app.base_url))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 404);
    let r = app
        .client
        .put(format!("{}/wechat", app.base_url))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 405);
    app.stop().await;
}

/// A push signed with another token is 401; a plain push without signature is 400.
#[tokio::test]
async fn push_with_wrong_signature_is_rejected_with_401() {
    let app = TestApp::spawn("demo").await;
    let mut v = vector("plain-xml");
    v["request"]["query"]["signature"] = "f4ea74334d3c9566f021bf9aa69fa381c0cc380c".into();
    assert_eq!(app.send_vector(&v).await.status, 401);
    let mut v = vector("plain-xml");
    v["request"]["query"]
        .as_object_mut()
        .map(|q| q.remove("signature"));
    assert_eq!(app.send_vector(&v).await.status, 400);
    assert!(app.stop().await.is_empty());
}
