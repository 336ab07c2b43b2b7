//! Category management end to end against the fake platform: the settable list, checks
//! before any call, media upload, submitting by CLI and by HTTP, the result by push, and a
//! lost push in `reconcile.rs`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::wxpush;
use crate::fake_categories::LICENCE;
use crate::fake_platform::FakePlatform;
use crate::helpers::{Behavior, TestApp};
use crate::tokens_support::{API_TOKEN, AUTHORIZER, authorize, cli_env, platform_toml};

pub(crate) fn audit_push(first: i64, second: i64, ret: i64, reason: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_fake]]></ToUserName><FromUserName><![CDATA[o_platform]]></FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_category_audit]]></Event><ret>{ret}</ret><first>{first}</first><second>{second}</second><reason><![CDATA[{reason}]]></reason></xml>",
        wxpush::clock::now_ms() / 1000
    )
}

/// The CLI, in a thread (it blocks), with `app`'s configuration.
pub(crate) fn cli(app: &TestApp, fake: &FakePlatform, args: &[&str]) -> (bool, String, String) {
    let envs = cli_env(app, fake);
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    wxpush(args, &envs)
}

pub(crate) fn submissions(app: &TestApp, fake: &FakePlatform) -> Vec<Value> {
    let (ok, out, err) = cli(app, fake, &["categories", "--json"]);
    assert!(ok, "{err}");
    out.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// settable → checks → upload → add → in review → the push → passed, by the CLI; the
/// qualification's `expire_time` / `is_permanent` reach the platform byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_lifecycle_by_the_cli() {
    let fake = FakePlatform::start().await;
    let mut app = TestApp::spawn_with(&platform_toml(&fake, 600), Behavior::default()).await;
    let admin = app.admin_url.clone().expect("admin");
    authorize(&app, &fake, &admin).await;
    let (ok, out, err) = cli(
        &app,
        &fake,
        &[
            "categories",
            "settable",
            "--authorizer",
            AUTHORIZER,
            "--search",
            "出国",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("8/39") && out.contains(LICENCE) && !out.contains("8/40"),
        "{out}"
    );
    let (ok, out, _) = cli(
        &app,
        &fake,
        &[
            "categories",
            "settable",
            "--authorizer",
            AUTHORIZER,
            "--json",
        ],
    );
    assert!(ok);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert_eq!(fake.calls("getallcategories"), 1, "cached");

    // Checks before any call.
    let add = |app: &TestApp, extra: &[&str]| {
        let mut args = vec!["add-category", "--authorizer", AUTHORIZER];
        args.extend_from_slice(extra);
        cli(app, &fake, &args)
    };
    let (ok, _, err) = add(&app, &["--first", "8", "--second", "39"]);
    assert!(
        !ok && err.contains("needs qualifications") && err.contains(LICENCE),
        "{err}"
    );
    let (ok, _, err) = add(&app, &["--first", "8", "--second", "41"]);
    assert!(
        !ok && err.contains("8/41 is not a category") && err.contains("8/40 (教育 / 在线教育)"),
        "{err}"
    );
    assert_eq!(fake.calls("addcategory"), 0);

    let dir = tempfile::tempdir().expect("dir");
    let picture = dir.path().join("licence.jpg");
    std::fs::write(&picture, b"\xff\xd8\xff\xe0 a picture").expect("write");
    let cert = format!("{LICENCE}=@{}", picture.display());
    let (ok, out, err) = add(
        &app,
        &[
            "--first",
            "8",
            "--second",
            "39",
            "--cert",
            &cert,
            "--expire-time",
            "1767225600",
            "--is-permanent",
            "0",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("submitted category 8/39"), "{out}");
    assert_eq!(fake.calls("media/upload"), 1);
    let (media_id, file) = fake.with(|p| {
        let (id, (_, file, _)) = p.media.iter().next().expect("uploaded");
        (id.clone(), file.clone())
    });
    assert_eq!(file, "licence.jpg");
    let body = fake.with(|p| p.added[0].1.clone());
    assert_eq!(
        body,
        format!(
            r#"{{"categories":[{{"first":8,"second":39,"certicates":[{{"key":"{LICENCE}","value":"{media_id}","expire_time":1767225600,"is_permanent":0}}]}}]}}"#
        )
    );
    let (ok, out, _) = cli(
        &app,
        &fake,
        &["categories", "current", "--authorizer", AUTHORIZER],
    );
    assert!(
        ok && out.contains("8/39") && out.contains("in review"),
        "{out}"
    );

    fake.review(AUTHORIZER, 8, 39, 3, "");
    let path = format!("/wechat/{AUTHORIZER}/callback");
    assert_eq!(
        app.push_safe(&path, &audit_push(8, 39, 3, "")).await.body,
        "success"
    );
    let event = loop {
        let event = app.next_event().await;
        if event.category_audit().is_some() {
            break event;
        }
    };
    assert!(event.delivery_json().contains(r#""source":"push""#));
    let rows = submissions(&app, &fake);
    assert_eq!(
        (rows[0]["status"].as_str(), rows[0]["source"].as_str()),
        (Some("passed"), Some("push")),
        "{rows:?}"
    );

    // Deleting one in review, modifying one that was not rejected: the platform's codes,
    // with their fixes.
    let (ok, _, _) = add(&app, &["--first", "8", "--second", "40"]);
    assert!(ok);
    let (ok, _, err) = cli(
        &app,
        &fake,
        &[
            "categories",
            "delete",
            "--authorizer",
            AUTHORIZER,
            "--first",
            "8",
            "--second",
            "40",
        ],
    );
    assert!(
        !ok && err.contains("53308") && err.contains("wait for its result"),
        "{err}"
    );
    let (ok, _, err) = cli(
        &app,
        &fake,
        &[
            "categories",
            "modify",
            "--authorizer",
            AUTHORIZER,
            "--first",
            "8",
            "--second",
            "39",
            "--cert",
            &format!("{LICENCE}={media_id}"),
        ],
    );
    assert!(
        !ok && err.contains("53307") && err.contains("only a rejected category"),
        "{err}"
    );
    app.stop().await;
}

/// A media id past its 3 days is refused before any call; one uploaded for another
/// account is warned about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_media_is_refused_before_any_call() {
    let fake = FakePlatform::start().await;
    let app = TestApp::spawn_with(&platform_toml(&fake, 600), Behavior::default()).await;
    let admin = app.admin_url.clone().expect("admin");
    authorize(&app, &fake, &admin).await;
    let dir = tempfile::tempdir().expect("dir");
    let picture = dir.path().join("old.png");
    std::fs::write(&picture, b"\x89PNG old").expect("write");
    fake.with(|p| p.media_age_ms = (3 * 24 + 1) * 3600 * 1000);
    let file = picture.display().to_string();
    let (ok, out, err) = cli(
        &app,
        &fake,
        &["media", "upload", &file, "--authorizer", AUTHORIZER],
    );
    assert!(ok, "{err}");
    let media_id = out.trim().to_owned();
    assert!(media_id.starts_with("media_"), "{out}");
    let cert = format!("{LICENCE}={media_id}");
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
            "39",
            "--cert",
            &cert,
        ],
    );
    assert!(
        !ok && err.contains("expired") && err.contains("old.png"),
        "{err}"
    );
    assert_eq!(fake.calls("addcategory"), 0);

    // A media id of another authorizer: warned about, then refused by the platform (40007).
    let other = "wxa0000000000000a2";
    let code = fake.authorize(other);
    let push = crate::tokens_support::authorization_push("authorized", other, &code);
    app.push_safe("/wechat", &push).await;
    crate::tokens_support::wait_for_token(&admin, other).await;
    fake.with(|p| p.media_age_ms = 0);
    let (ok, out, err) = cli(
        &app,
        &fake,
        &["media", "upload", &file, "--authorizer", other],
    );
    assert!(ok, "{err}");
    let cert = format!("{LICENCE}={}", out.trim());
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
            "39",
            "--cert",
            &cert,
        ],
    );
    assert!(!ok, "{err}");
    assert!(
        err.contains(&format!("was uploaded for {other}, not {AUTHORIZER}")),
        "{err}"
    );
    assert!(
        err.contains("errcode 40007") && err.contains("upload the file again"),
        "{err}"
    );
    app.stop().await;
}

/// The integrator's backend over HTTP: what is set, a submission (checked as the CLI
/// checks it), the submission by id; 401 without the bearer token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_over_http() {
    let fake = FakePlatform::start().await;
    let app = TestApp::spawn_with(&platform_toml(&fake, 600), Behavior::default()).await;
    let admin = app.admin_url.clone().expect("admin");
    authorize(&app, &fake, &admin).await;
    let client = reqwest::Client::new();
    let url = format!("{admin}/v1/authorizers/{AUTHORIZER}/categories");
    let post = |body: &'static str| {
        client
            .post(&url)
            .bearer_auth(API_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let bad = post(r#"{"categories":[{"first":8,"second":41}]}"#)
        .await
        .expect("answers");
    assert_eq!(bad.status().as_u16(), 422);
    assert!(bad.text().await.unwrap_or_default().contains("8/40"));
    let created = post(r#"{"categories":[{"first":8,"second":40}]}"#)
        .await
        .expect("answers");
    assert_eq!(created.status().as_u16(), 201);
    let created: Value =
        serde_json::from_str(&created.text().await.unwrap_or_default()).expect("json");
    let id = created["submissions"][0]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let one: Value = serde_json::from_str(
        &client
            .get(format!("{admin}/v1/submissions/{id}"))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("answers")
            .text()
            .await
            .unwrap_or_default(),
    )
    .expect("json");
    assert_eq!(one["status"], "pending");
    let current: Value = serde_json::from_str(
        &client
            .get(&url)
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("answers")
            .text()
            .await
            .unwrap_or_default(),
    )
    .expect("json");
    assert_eq!(current["categories"][0]["second"], 40);
    assert_eq!(current["categories"][0]["audit_status"], 1);
    let anonymous = client.get(&url).send().await.expect("answers");
    assert_eq!(anonymous.status().as_u16(), 401);
    fake.review(AUTHORIZER, 8, 40, 3, "");
    let path = format!("/wechat/{AUTHORIZER}/callback");
    app.push_safe(&path, &audit_push(8, 40, 3, "")).await;
    let started = Instant::now();
    loop {
        let text = client
            .get(format!("{admin}/v1/submissions/{id}"))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("answers")
            .text()
            .await
            .unwrap_or_default();
        let one: Value = serde_json::from_str(&text).expect("json");
        if one["status"] == "passed" {
            assert_eq!(one["source"], "push");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{one}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}
