//! The container contract, tested with the binary itself: configuration from the environment
//! alone, all interfaces, writes only to the data dir, JSON logs without secrets, graceful
//! SIGTERM with a request in flight, the command handler's environment, and /metrics counts.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cli::Served;
use crate::helpers::{TestApp, signed_safe_push, vector};
use crate::integrations::metric;

const KEY: &str = "Uw5ivvPr4xBUYFrca8hu62mO8LtaK66OKHIvIVOaPHJ";
const TOKEN: &str = "containerToken7";

fn audit(second: u32) -> String {
    format!(
        "<xml><ToUserName>gh_c</ToUserName><FromUserName>o</FromUserName><CreateTime>1764000000</CreateTime><MsgType>event</MsgType><Event>wxa_category_audit</Event><ret>3</ret><first>8</first><second>{second}</second><reason></reason></xml>"
    )
}

/// Starts from env vars only on 0.0.0.0, logs JSON with no secret, runs the command handler
/// without secrets in its environment, writes only under the data dir, and on SIGTERM
/// finishes a request whose body is still arriving, then exits 0 within 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_honours_the_container_contract() {
    let cwd = tempfile::tempdir().expect("cwd");
    let volume = tempfile::tempdir().expect("volume");
    let data = volume.path().join("data");
    let seen = volume.path().join("seen");
    let command = format!("env > {0}.env; cat > {0}.json", seen.display());
    let data_s = data.display().to_string();
    let envs = [
        // tower_http's debug line says when a request is being handled.
        ("RUST_LOG", "wxpush=info,tower_http=debug"),
        ("WXPUSH_LISTEN", "0.0.0.0:0"),
        ("WXPUSH_TOKEN", TOKEN),
        ("WXPUSH_ENCODING_AES_KEY", KEY),
        ("WXPUSH_APPID", "wxc0ntainer0000001"),
        ("WXPUSH_APP_NAME", "shop"),
        ("WXPUSH_DATA_DIR", data_s.as_str()),
        ("WXPUSH_LOG_FORMAT", "json"),
        ("WXPUSH_HANDLER", "command"),
        ("WXPUSH_COMMAND_SHELL", "true"),
        ("WXPUSH_COMMAND", command.as_str()),
    ];
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wxpush"));
    cmd.arg("serve")
        .current_dir(cwd.path())
        .env("WXPUSH_LISTEN", "0.0.0.0:0");
    let mut served = Served::start_command(cmd, &envs);
    assert!(
        served.base_url.starts_with("http://0.0.0.0:"),
        "{}",
        served.base_url
    );
    let port = served.base_url.rsplit(':').next().expect("port").to_owned();
    let base = format!("http://127.0.0.1:{port}");

    let mut client = TestApp::client_for(&base);
    client.config = wxpush::Config::from_toml(&format!(
        "[app]\nname = \"shop\"\ntoken = \"{TOKEN}\"\nencoding_aes_key = \"{KEY}\"\nappid = \"wxc0ntainer0000001\"\n"
    ))
    .expect("config");
    assert_eq!(client.push_safe("/wechat", &audit(1)).await.body, "success");
    for _ in 0..100 {
        if seen.with_extension("json").exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let env = std::fs::read_to_string(format!("{}.env", seen.display())).expect("command ran");
    assert!(env.contains("WXPUSH_EVENT=wxa_category_audit") && env.contains("WXPUSH_APP=shop"));
    assert!(
        !env.contains(TOKEN) && !env.contains(KEY),
        "secrets reached the command"
    );

    // The first push's line is in before the second request is sent.
    served.wait_for_count("started processing request", 1);
    // A request whose body is still arriving when SIGTERM comes.
    let (query, body) = signed_safe_push(&client.config.app, &audit(2));
    let mut stream = TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect");
    write!(
        stream,
        "POST /wechat?{query} HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        &body[..20]
    )
    .expect("send head");
    stream.flush().expect("flush");
    // The request is being handled (its headers are in) before the signal comes: the
    // second request's line, not the first push's (which `wait_for` alone would find).
    served.wait_for_count("started processing request", 2);
    let pid = served.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let started = Instant::now();
    // Shutdown has begun before the rest of the body arrives.
    served.wait_for("shutting down");
    stream.write_all(&body.as_bytes()[20..]).expect("send rest");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read answer");
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("success"),
        "{answer}"
    );
    let status = served.child.wait().expect("exit");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let (_, lines) = served.terminate_collected();

    for line in &lines {
        let json: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(json.get("level").is_some(), "{line}");
        assert!(
            !line.contains(TOKEN) && !line.contains(KEY),
            "secret in log: {line}"
        );
    }
    assert_eq!(
        std::fs::read_dir(cwd.path()).expect("cwd").count(),
        0,
        "wrote outside the data dir"
    );
    let written: Vec<String> = std::fs::read_dir(&data)
        .expect("data dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert!(
        written.iter().all(|f| f.starts_with("wxpush.db")),
        "{written:?}"
    );
}

/// `/metrics` in Prometheus text format counts known traffic exactly (its own process).
#[tokio::test]
async fn metrics_count_known_traffic() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().display().to_string();
    let mut served = Served::start(&[("WXPUSH_DATA_DIR", data.as_str())]);
    let client = TestApp::client_for(&served.base_url);
    for n in [1, 2] {
        assert_eq!(client.push_safe("/wechat", &audit(n)).await.body, "success");
    }
    assert_eq!(client.push_safe("/wechat", &audit(1)).await.body, "success");
    assert_eq!(
        client
            .send_vector(&vector("bad-msg-signature"))
            .await
            .status,
        401
    );
    assert_eq!(
        client.send_vector(&vector("missing-query")).await.status,
        400
    );
    // The vectors' timestamps are a year old: genuine, so quarantined (default skew 300 s).
    assert_eq!(
        client.send_vector(&vector("safe-xml-passed")).await.body,
        "success"
    );
    assert_eq!(
        client.send_vector(&vector("url-check-ok")).await.status,
        200
    );
    served.wait_for_count("category audit", 2);
    let text = client.get_text("/metrics").await;
    let count = |labels: &str| {
        metric(
            &text,
            &format!("wxpush_requests_total{{app=\"demo\",outcome=\"{labels}\"}} "),
        )
    };
    assert_eq!(count("ok"), 2.0, "{text}");
    assert_eq!(count("duplicate"), 1.0);
    assert_eq!(count("bad_signature"), 1.0);
    assert_eq!(count("bad_request"), 1.0);
    assert_eq!(count("quarantined"), 1.0);
    assert_eq!(count("url_check"), 1.0);
    assert_eq!(
        metric(
            &text,
            "wxpush_events_total{app=\"demo\",event=\"wxa_category_audit\",result=\"passed\"} "
        ),
        2.0
    );
    assert_eq!(metric(&text, "wxpush_delivery_attempts_total"), 2.0);
    assert_eq!(metric(&text, "wxpush_events_quarantined"), 1.0);
    assert_eq!(metric(&text, "wxpush_events_pending"), 0.0);
    assert_eq!(
        metric(
            &text,
            "wxpush_request_duration_seconds_bucket{kind=\"push\",le=\"5\"}"
        ),
        6.0,
        "{text}"
    );
    assert!(text.contains("# TYPE wxpush_request_duration_seconds histogram"));
    served.terminate();
}
