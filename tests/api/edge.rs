//! The HTTP edge against hostile clients: slow or idle connections, too many of them,
//! oversized bodies, forged authorizer paths, replayed requests, plain pushes where
//! encryption is required, and operations endpoints kept off the public port.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wxpush::store::ListFilter;

use crate::cli::{Served, wxpush};
use crate::helpers::{Behavior, TestApp, app_toml, signed_safe_push, vector};
use crate::integrations::metric;

fn audit(n: u32) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_e]]></ToUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_category_audit]]></Event><ret>3</ret><first>8</first><second>{n}</second><reason><![CDATA[]]></reason></xml>",
        1_764_000_000 + n
    )
}

/// A server with tight connection limits.
async fn limited(header_secs: u64, idle_secs: u64, max: usize) -> TestApp {
    let toml = format!(
        "{}[http]\nheader_timeout_secs = {header_secs}\nidle_timeout_secs = {idle_secs}\nmax_connections = {max}\n",
        app_toml("demo")
    );
    TestApp::spawn_with(&toml, Behavior::default()).await
}

/// Reads until the server closes the connection (or `within` passes); returns what came.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(String::from_utf8_lossy(&seen).into_owned()),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// A client that trickles header bytes is cut off after `header_timeout_secs`; one that
/// opens and says nothing too; a keep-alive connection is closed once idle.
#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    let app = limited(1, 2, 64).await;
    let addr = app.base_url.trim_start_matches("http://").to_owned();

    let mut slow = TcpStream::connect(&addr).await.expect("connects");
    slow.write_all(b"POST /wechat HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("writes");
    let (mut reader, mut writer) = slow.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if writer.write_all(b"X").await.is_err() {
                return true;
            }
        }
        false
    });
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(6), reader.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0) | Err(_))),
        "a trickling client is closed: {closed:?}"
    );
    trickle.abort();

    let mut silent = TcpStream::connect(&addr).await.expect("connects");
    assert!(
        read_until_closed(&mut silent, Duration::from_secs(6))
            .await
            .is_some(),
        "a silent connection is closed"
    );

    let mut idle = TcpStream::connect(&addr).await.expect("connects");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("writes");
    let answered = read_until_closed(&mut idle, Duration::from_secs(8))
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    app.stop().await;
}

/// With every connection slot taken by slow clients, a real push waits in the listen queue
/// instead of failing, and is answered (and stored) as soon as a slot frees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let app = limited(30, 30, 4).await;
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(&addr).await.expect("connects");
        stream
            .write_all(b"POST /wechat HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("writes");
        slow.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (query, body) = signed_safe_push(&app.config.app, &audit(1));
    let push = app
        .client
        .post(format!("{}/wechat?{query}", app.base_url))
        .body(body)
        .send();
    let push = tokio::spawn(push);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!push.is_finished(), "no slot is free: the push waits");
    drop(slow.pop());
    let answer = tokio::time::timeout(Duration::from_secs(5), push)
        .await
        .expect("answered once a slot frees")
        .expect("task")
        .expect("response");
    assert_eq!(answer.text().await.expect("text"), "success");
    drop(slow);
    app.stop().await;
}

/// A `Content-Length` over the limit is answered 413 at once, before any body arrives.
#[tokio::test]
async fn an_announced_oversized_body_gets_413_at_once() {
    let app = TestApp::spawn("demo").await;
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).await.expect("connects");
    stream
        .write_all(b"POST /wechat?timestamp=1&nonce=2&signature=3 HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n<xml>")
        .await
        .expect("writes");
    let answer = read_until_closed(&mut stream, Duration::from_secs(2))
        .await
        .expect("answered and closed well within the 4 s request timeout");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body_limit_bytes"), "{answer}");
    app.stop().await;
}

/// Authorizer segments that are not app ids are 404 and never become an attribution.
#[tokio::test]
async fn authorizer_segments_must_be_app_ids() {
    let app = TestApp::spawn("demo").await;
    let long = "a".repeat(10_000);
    for bad in [
        "%00",
        "wx%0D%0Aevil",
        "..%2F..%2Fetc%2Fpasswd",
        long.as_str(),
        "wx123",
    ] {
        for path in [
            format!("/wechat/{bad}/callback"),
            format!("/wechat/demo/{bad}/callback"),
        ] {
            let answer = app.push_safe(&path, &audit(1)).await;
            assert_eq!(answer.status, 404, "{path}: {}", answer.body);
        }
    }
    let answer = app.push_safe("/wechat//callback", &audit(1)).await;
    assert_eq!(answer.status, 404);
    let ok = app
        .push_safe("/wechat/wx1111222233334444/callback", &audit(1))
        .await;
    assert_eq!(ok.body, "success");
    let stored = app
        .store()
        .list(ListFilter {
            limit: 10,
            ..ListFilter::default()
        })
        .await
        .expect("lists");
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].event.authorizer_appid.as_deref(),
        Some("wx1111222233334444")
    );
    app.stop().await;
}

/// One captured push replayed to three paths gives one event with the first path's
/// attribution; the copies are answered `success` and counted as `replay`.
#[tokio::test]
async fn a_replayed_request_neither_creates_nor_reattributes_an_event() {
    let app = TestApp::spawn("demo").await;
    let (query, body) = signed_safe_push(&app.config.app, &audit(7));
    let mut answers = Vec::new();
    for path in [
        "/wechat/wxA000000000000001/callback",
        "/wechat",
        "/wechat/wxB000000000000002/callback",
        "/wechat/wxA000000000000001/callback",
    ] {
        let response = app
            .client
            .post(format!("{}{path}?{query}", app.base_url))
            .body(body.clone())
            .send()
            .await
            .expect("sent");
        answers.push(response.text().await.expect("text"));
    }
    assert!(answers.iter().all(|a| a == "success"), "{answers:?}");
    let stored = app
        .store()
        .list(ListFilter {
            limit: 10,
            ..ListFilter::default()
        })
        .await
        .expect("lists");
    assert_eq!(stored.len(), 1, "one event");
    assert_eq!(
        stored[0].event.authorizer_appid.as_deref(),
        Some("wxA000000000000001")
    );
    assert_eq!(stored[0].duplicates, 1, "the same path again is a retry");
    let text = app.get_text("/metrics").await;
    let count = |outcome: &str| {
        metric(
            &text,
            &format!("wxpush_requests_total{{app=\"demo\",outcome=\"{outcome}\"}} "),
        )
    };
    // The server owns its registry: these are its counts alone.
    assert_eq!(count("replay"), 2.0, "{text}");
    assert_eq!(count("duplicate"), 1.0, "{text}");
    assert_eq!(count("ok"), 1.0, "{text}");
    app.stop().await;
}

/// With `require_encryption`, a correctly signed plain push is refused with 401 and not
/// stored; encrypted pushes still are.
#[tokio::test]
async fn plain_pushes_are_refused_where_encryption_is_required() {
    let toml = format!("{}require_encryption = true\n", app_toml("demo"));
    let app = TestApp::spawn_with(&toml, Behavior::default()).await;
    let plain = app.send_vector(&vector("plain-xml")).await;
    assert_eq!(plain.status, 401, "{}", plain.body);
    assert_eq!(app.store().stats().await.expect("stats").pending, 0);
    let safe = app.send_vector(&vector("safe-xml-passed")).await;
    assert_eq!(safe.body, "success");
    app.stop().await;
}

/// With `admin_listen`, the operations endpoints leave the public port, and
/// `wxpush healthcheck` follows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_endpoints_move_to_admin_listen() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().display().to_string();
    let mut served = Served::start(&[
        ("WXPUSH_DATA_DIR", data.as_str()),
        ("WXPUSH_ADMIN_LISTEN", "127.0.0.1:0"),
    ]);
    let line = served.wait_for("operations endpoints");
    let admin: String = line
        .rsplit(" on ")
        .next()
        .expect("address")
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    let client = reqwest::Client::new();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let public = client
            .get(format!("{}{path}", served.base_url))
            .send()
            .await
            .expect("public answers");
        assert_eq!(public.status().as_u16(), 404, "{path} on listen");
        let private = client
            .get(format!("http://{admin}{path}"))
            .send()
            .await
            .expect("admin answers");
        assert_eq!(private.status().as_u16(), 200, "{path} on admin_listen");
    }
    let public_addr = served.base_url.trim_start_matches("http://").to_owned();
    let (ok, out, err) = wxpush(
        &["healthcheck"],
        &[
            ("WXPUSH_LISTEN", public_addr.as_str()),
            ("WXPUSH_ADMIN_LISTEN", admin.as_str()),
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains(&admin), "{out}");
    served.terminate();
}

/// On a public address the demo credentials stop `serve` (exit 2, naming each) unless
/// allowed; on loopback the warning names every credential still at its demo value.
#[test]
fn demo_credentials_on_a_public_address_refuse_to_start() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().display().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wxpush"))
        .arg("serve")
        .env_remove("RUST_LOG")
        .env("WXPUSH_DATA_DIR", &data)
        .env("WXPUSH_LISTEN", "0.0.0.0:0")
        .env("WXPUSH_TOKEN", "myOwnToken1")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WXPUSH_ENCODING_AES_KEY") && err.contains("WXPUSH_APPID"),
        "{err}"
    );
    assert!(!err.contains("WXPUSH_TOKEN"), "the token is set: {err}");

    let allowed = Served::start(&[
        ("WXPUSH_DATA_DIR", data.as_str()),
        ("WXPUSH_LISTEN", "0.0.0.0:0"),
        ("WXPUSH_ALLOW_DEMO_CREDENTIALS", "true"),
    ]);
    drop(allowed);
    let mut loopback = Served::start(&[
        ("WXPUSH_DATA_DIR", data.as_str()),
        ("WXPUSH_TOKEN", "myOwnToken1"),
    ]);
    let warning = loopback.wait_for("DEMO CREDENTIALS");
    assert!(
        warning.contains("app.encoding_aes_key") && warning.contains("app.appid"),
        "{warning}"
    );
    assert!(!warning.contains("app.token"), "{warning}");
}

/// 300 stalled clients against a server allowed 256 descriptors: the connection limit keeps
/// descriptors for the store and the dispatcher, the stalled clients are cut off, and a real
/// push is answered and delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_cannot_exhaust_descriptors() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().display().to_string();
    let mut cmd = std::process::Command::new("prlimit");
    cmd.args(["--nofile=256", "--", env!("CARGO_BIN_EXE_wxpush"), "serve"]);
    let mut served = Served::start_command(
        cmd,
        &[
            ("WXPUSH_DATA_DIR", data.as_str()),
            ("WXPUSH_HTTP_MAX_CONNECTIONS", "100"),
            ("WXPUSH_HTTP_HEADER_TIMEOUT_SECS", "1"),
        ],
    );
    let addr = served.base_url.trim_start_matches("http://").to_owned();
    let mut stalled = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect(&addr).await.expect("connects");
        let _ = stream
            .write_all(b"POST /wechat HTTP/1.1\r\nHost: x\r\n")
            .await;
        stalled.push(stream);
    }
    let client = TestApp::client_for(&served.base_url);
    let answer = tokio::time::timeout(
        Duration::from_secs(15),
        client.push_safe("/wechat", &audit(3)),
    )
    .await
    .expect("answered while stalled clients keep connecting");
    assert_eq!(answer.body, "success");
    served.wait_for("category audit");
    drop(stalled);
    let (status, lines) = served.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("cannot accept connections")),
        "descriptors never ran out"
    );
}
