//! No missed review result: a push that never arrives is found by the reconciling pull and
//! delivered once, with `source` `reconciled`; the late push is kept, not delivered again.
//! A category set elsewhere is tracked once a pull shows it.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::categories::{audit_push, cli, submissions};
use crate::fake_platform::FakePlatform;
use crate::helpers::{Behavior, TestApp, wait_for_status};
use crate::tokens_support::{AUTHORIZER, authorize, platform_toml};
use wxpush::store::Status;

/// A push that never arrives: the reconciling pull finds the result, resolves the
/// submission and delivers one audit event with `source` `reconciled`; the push, arriving
/// late, is stored and not delivered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_push_is_reconciled_and_the_late_push_is_not_delivered_again() {
    lost_push("").await;
}

/// The same on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_push_is_reconciled_on_postgres() {
    let Some(url) = crate::helpers::database_url() else {
        return;
    };
    lost_push(&crate::helpers::pg_toml(
        &url,
        &crate::helpers::fresh_schema(),
    ))
    .await;
}

async fn lost_push(store_toml: &str) {
    let fake = FakePlatform::start().await;
    let toml = platform_toml(&fake, 600)
        .replace("[tokens]", "[categories]\nreconcile_secs = 1\n[tokens]")
        + store_toml;
    let mut app = TestApp::spawn_with(&toml, Behavior::default()).await;
    let admin = app.admin_url.clone().expect("admin");
    authorize(&app, &fake, &admin).await;
    let (ok, _, err) = cli(
        &app,
        &fake,
        &[
            "add-category",
            "--authorizer",
            AUTHORIZER,
            "--first",
            "8",
            "--second",
            "40",
        ],
    );
    assert!(ok, "{err}");
    // Set in the platform's console, not by wxpush: tracked once a pull shows it.
    fake.with(|p| {
        p.categories.entry(AUTHORIZER.to_owned()).or_default().push(serde_json::json!(
            {"first": 1, "first_name": "", "second": 2, "second_name": "", "audit_status": 1, "audit_reason": ""}
        ));
    });
    fake.review(AUTHORIZER, 8, 40, 2, "the licence is blurred");
    let started = Instant::now();
    let reconciled = loop {
        let event = app.next_event().await;
        if event.category_audit().is_some() {
            break event;
        }
        assert!(started.elapsed() < Duration::from_secs(10));
    };
    let json: Value = serde_json::from_str(&reconciled.delivery_json()).expect("json");
    assert_eq!(json["source"], "reconciled");
    assert_eq!(json["category_audit"]["result"], "rejected", "{json}");
    assert_eq!(json["category_audit"]["reason"], "the licence is blurred");
    assert_eq!(json["authorizer_appid"], AUTHORIZER);
    let rows = submissions(&app, &fake);
    let ours = rows
        .iter()
        .find(|r| r["id"].as_str().is_some_and(|id| id.starts_with("sub_")))
        .expect("the submission");
    assert_eq!(
        (ours["status"].as_str(), ours["source"].as_str()),
        (Some("rejected"), Some("reconciled")),
        "{rows:?}"
    );

    let late = audit_push(8, 40, 2, "the licence is blurred");
    let path = format!("/wechat/{AUTHORIZER}/callback");
    assert_eq!(app.push_safe(&path, &late).await.body, "success");
    let late_id = wxpush::Event::parse(&late, "platform", Some(AUTHORIZER)).id;
    wait_for_status(&app, &late_id, Status::Delivered).await;
    assert!(
        app.received_now()
            .iter()
            .all(|e| e.category_audit().is_none()),
        "delivered once only"
    );
    let rows = submissions(&app, &fake);
    let seen: Vec<&Value> = rows
        .iter()
        .filter(|r| r["id"].as_str().is_some_and(|id| id.starts_with("seen_")))
        .collect();
    assert_eq!(
        seen.len(),
        1,
        "the category set elsewhere is tracked: {rows:?}"
    );
    assert_eq!(
        (seen[0]["first"].as_str(), seen[0]["status"].as_str()),
        (Some("1"), Some("pending"))
    );
    assert_eq!(
        rows.len(),
        2,
        "the late push is the submission's, not unmatched: {rows:?}"
    );
    app.stop().await;
}
