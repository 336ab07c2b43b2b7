//! The debugging tools through the real binary: simulate → server, decrypt on every shared
//! vector, add-category against a local API server, and submission tracking end to end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{RawQuery, State};
use serde_json::Value;

use crate::cli::{Served, wxpush};
use crate::helpers::vectors;

/// Env for the vectors' app `name` (data dir and listen port come from the caller).
fn app_env(name: &str) -> Vec<(String, String)> {
    let doc = vectors();
    let app = doc["apps"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name).cloned())
        .expect("app");
    let s = |k: &str| app[k].as_str().unwrap_or_default().to_owned();
    vec![
        ("WXPUSH_APP_NAME".into(), s("name")),
        ("WXPUSH_TOKEN".into(), s("token")),
        ("WXPUSH_ENCODING_AES_KEY".into(), s("encoding_aes_key")),
        ("WXPUSH_APPID".into(), s("appid")),
    ]
}

fn refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// `simulate` drives the real server in every mode and format; `--retries 3` sends three
/// copies of one message that are delivered once.
#[tokio::test]
async fn simulate_reaches_the_server_in_every_mode_and_format_and_retries_dedup() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().display().to_string();
    let env = [("WXPUSH_DATA_DIR", data.as_str())];
    let mut served = Served::start(&env);
    let url = format!("{}/wechat", served.base_url);
    let mut n = 0;
    for mode in ["safe", "compat", "plain"] {
        for format in ["xml", "json"] {
            n += 1;
            let reason = format!("reason {mode} {format}");
            let (ok, out, err) = wxpush(
                &[
                    "simulate", "--url", &url, "--mode", mode, "--format", format, "--ret",
                    "rejected", "--reason", &reason,
                ],
                &env,
            );
            assert!(
                ok && out.contains("-> 200 OK success"),
                "{mode}/{format}: {out}{err}"
            );
            served.wait_for(&format!("reason=\"{reason}\""));
        }
    }
    let (ok, out, _) = wxpush(
        &[
            "simulate",
            "--url",
            &url,
            "--second",
            "77",
            "--retries",
            "3",
        ],
        &env,
    );
    assert!(ok && out.matches("-> 200 OK success").count() == 3, "{out}");
    let (ok, out, _) = wxpush(&["simulate", "--url", &url, "--ticket"], &env);
    assert!(ok, "{out}");
    served.wait_for("component verify ticket");
    served.wait_for_count("second=77", 1);
    let (_, stats, _) = wxpush(&["events", "stats", "--json"], &env);
    let stats: Value = serde_json::from_str(stats.trim()).expect("stats");
    assert_eq!(stats["duplicates"], 2, "{stats}");
    assert_eq!(
        stats["delivered"].as_u64().unwrap_or(0) + stats["pending"].as_u64().unwrap_or(0),
        n + 2
    );
    let (_, lines) = served.terminate();
    assert_eq!(
        lines.iter().filter(|l| l.contains("second=77")).count(),
        1,
        "delivered once"
    );
}

/// `decrypt` on every shared POST vector: exit 0 exactly where the vector is accepted,
/// otherwise the failing check is named.
#[test]
fn decrypt_explains_every_shared_vector() {
    let failing: HashMap<&str, &str> = [
        ("bad-msg-signature", "signature"),
        ("missing-msg-signature", "signature"),
        ("wrong-appid-inside", "appid"),
        ("bad-padding-zero", "padding"),
        ("bad-length-field", "length"),
        ("not-base64", "base64"),
        ("truncated-ciphertext", "aes"),
        ("envelope-without-encrypt", "envelope"),
        ("empty-body", "envelope"),
        ("missing-query", "query"),
    ]
    .into();
    let dir = tempfile::tempdir().expect("dir");
    let doc = vectors();
    let mut checked = 0;
    for v in doc["vectors"].as_array().into_iter().flatten() {
        let id = v["id"].as_str().unwrap_or_default();
        if v["request"]["method"] != "POST" || id == "body-too-large" {
            continue;
        }
        let query: Vec<String> = v["request"]["query"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or_default()))
            .collect();
        let body = dir.path().join(id);
        std::fs::write(&body, v["request"]["body"].as_str().unwrap_or_default()).expect("write");
        let env = app_env(v["app"].as_str().unwrap_or("demo"));
        let (ok, out, err) = wxpush(
            &[
                "decrypt",
                "--query",
                &query.join("&"),
                "--body-file",
                &body.display().to_string(),
                "--path",
                v["request"]["path"].as_str().unwrap_or("/wechat"),
            ],
            &refs(&env),
        );
        match failing.get(id) {
            None => {
                assert!(ok, "{id}: {out}{err}");
                assert!(out.contains("event:"), "{id}: {out}");
                if let Some(ct) = v["expect"]["event"]["create_time"].as_i64() {
                    assert!(
                        out.contains(&format!("\"create_time\": {ct}")),
                        "{id}: {out}"
                    );
                }
            }
            Some(step) => {
                assert!(!ok, "{id} should fail: {out}");
                assert!(
                    out.contains(&format!("[FAIL] {step}")),
                    "{id}: expected {step} to fail:\n{out}"
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 28, "{checked}");
}

/// A msg_signature computed like `signature` (without Encrypt) is named as that mistake.
#[test]
fn decrypt_names_signature_used_where_msg_signature_belongs() {
    let doc = vectors();
    let v = doc["vectors"]
        .as_array()
        .and_then(|a| a.iter().find(|v| v["id"] == "safe-xml-passed").cloned())
        .expect("vector");
    let q = &v["request"]["query"];
    let s = |k: &str| q[k].as_str().unwrap_or_default().to_owned();
    let query = format!(
        "signature={0}&timestamp={1}&nonce={2}&encrypt_type=aes&msg_signature={0}",
        s("signature"),
        s("timestamp"),
        s("nonce")
    );
    let dir = tempfile::tempdir().expect("dir");
    let body = dir.path().join("body");
    std::fs::write(&body, v["request"]["body"].as_str().unwrap_or_default()).expect("write");
    let (ok, out, _) = wxpush(
        &[
            "decrypt",
            "--query",
            &query,
            "--body-file",
            &body.display().to_string(),
        ],
        &[],
    );
    assert!(!ok);
    assert!(
        out.contains("`signature` used where `msg_signature` belongs"),
        "{out}"
    );
}

/// Creates the inbox in `dir` as `serve` would: the other commands refuse to create one.
fn create_inbox(dir: &std::path::Path) {
    drop(wxpush::store::SqliteStore::open(dir).expect("inbox created"));
}

/// Requests the fake API saw: (query, body).
type Requests = Arc<Mutex<Vec<(String, String)>>>;
/// The fake API's state: what it saw, and the errcodes still to answer.
type ApiState = (Requests, Arc<Mutex<Vec<i64>>>);

/// A fake `addcategory` API: answers each request with the next errcode of a script.
async fn fake_api(errcodes: Vec<i64>) -> (String, Requests) {
    let seen: Requests = Arc::default();
    let script = Arc::new(Mutex::new(errcodes));
    let state = (Arc::clone(&seen), script);
    let app = axum::Router::new()
        .route(
            "/cgi-bin/wxopen/addcategory",
            axum::routing::post(
                |State((seen, script)): State<ApiState>,
                 RawQuery(query): RawQuery,
                 body: String| async move {
                    seen.lock()
                        .expect("lock")
                        .push((query.unwrap_or_default(), body));
                    let mut script = script.lock().expect("lock");
                    let code = if script.is_empty() {
                        0
                    } else {
                        script.remove(0)
                    };
                    let msg = match code {
                        0 => "ok",
                        -1 => "system error",
                        40001 => "invalid credential",
                        _ => "some other problem",
                    };
                    axum::Json(serde_json::json!({"errcode": code, "errmsg": msg}))
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

/// `add-category` sends the documented body, retries "system busy", and maps 40001 and
/// unknown codes to clear errors without printing the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_category_talks_to_the_api_as_documented() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().display().to_string();
    let (api, seen) = fake_api(vec![-1, 0, 40001, 45009]).await;
    create_inbox(dir.path());
    let env = [
        ("WXPUSH_DATA_DIR", data.as_str()),
        ("WXPUSH_API_BASE", api.as_str()),
        ("WXPUSH_ACCESS_TOKEN", "tok_SECRET_123"),
    ];
    let run = |args: Vec<&'static str>| {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>();
        std::thread::spawn(move || wxpush(&args, &refs(&env)))
            .join()
            .expect("thread")
    };
    let (ok, out, err) = run(vec![
        "add-category",
        "--first",
        "8",
        "--second",
        "39",
        "--cert",
        "营业执照=media_abc",
        "--cert",
        "许可证=media_def",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("submitted category 8/39"), "{out}");
    {
        let requests = seen.lock().expect("lock");
        assert_eq!(requests.len(), 2, "-1 then 0: retried once");
        for (query, body) in requests.iter() {
            assert_eq!(query, "access_token=tok_SECRET_123");
            assert_eq!(
                body,
                r#"{"categories":[{"first":8,"second":39,"certicates":[{"key":"营业执照","value":"media_abc"},{"key":"许可证","value":"media_def"}]}]}"#
            );
        }
    }
    let (ok, out, err) = run(vec!["add-category", "--first", "8", "--second", "40"]);
    assert!(!ok);
    assert!(
        err.contains("40001") && err.contains("access token is invalid or expired"),
        "{err}"
    );
    assert!(!out.contains("tok_SECRET_123") && !err.contains("tok_SECRET_123"));
    let (ok, _, err) = run(vec!["add-category", "--first", "8", "--second", "41"]);
    assert!(
        !ok && err.contains("errcode 45009 (some other problem)"),
        "{err}"
    );
    let (_, list, _) = run(vec!["categories", "--json"]);
    assert_eq!(
        list.lines().count(),
        1,
        "only the accepted submission is tracked: {list}"
    );
}

/// End to end: add-category → the platform's audit result (simulated) → `categories`
/// shows the submission passed or rejected, and an audit with no submission as unmatched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_are_resolved_by_their_audit_results() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().display().to_string();
    let (api, _) = fake_api(vec![]).await;
    create_inbox(dir.path());
    let env = [
        ("WXPUSH_DATA_DIR", data.as_str()),
        ("WXPUSH_API_BASE", api.as_str()),
        ("WXPUSH_ACCESS_TOKEN", "t"),
    ];
    let owned: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let run = move |args: Vec<String>| {
        let env = owned.clone();
        std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            wxpush(&args, &refs(&env))
        })
        .join()
        .expect("thread")
    };
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert!(run(args(&["add-category", "--first", "8", "--second", "39"])).0);
    assert!(run(args(&["add-category", "--first", "8", "--second", "40"])).0);
    let mut served = Served::start(&env);
    let url = format!("{}/wechat", served.base_url);
    assert!(
        run(args(&[
            "simulate",
            "--url",
            &url,
            "--second",
            "39",
            "--ret",
            "rejected",
            "--reason",
            "need licence"
        ]))
        .0
    );
    assert!(
        run(args(&[
            "simulate", "--url", &url, "--second", "40", "--ret", "passed"
        ]))
        .0
    );
    assert!(
        run(args(&[
            "simulate", "--url", &url, "--second", "41", "--ret", "passed"
        ]))
        .0
    );
    served.wait_for_count("category audit", 3);
    let (ok, out, _) = run(args(&["categories", "--json"]));
    assert!(ok);
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let status = |second: &str| {
        rows.iter()
            .find(|r| r["second"] == second)
            .map(|r| (r["status"].clone(), r["reason"].clone()))
    };
    assert_eq!(
        status("39"),
        Some(("rejected".into(), "need licence".into()))
    );
    assert_eq!(status("40").map(|s| s.0), Some("passed".into()));
    assert_eq!(status("41").map(|s| s.0), Some("unmatched".into()));
    let (_, table, _) = run(args(&["categories"]));
    assert!(table.contains("(no matching submission)"), "{table}");
    served.terminate();
}
