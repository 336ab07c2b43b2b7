//! The container contract, tested against the real image (built by `.ci/image`, named by
//! `WXPUSH_TEST_IMAGE`) under podman: configuration from the environment alone, a non-root
//! uid, the `/data` volume kept across a restart, a healthy health check, a push answered
//! `success`, SIGTERM ending with exit 0 within 10 s, a read-only root filesystem, and an
//! unwritable volume refused with a message naming the uid.
//!
//! Without `WXPUSH_TEST_IMAGE` these tests say so and pass, except under `CI=true`, where
//! a missing image is a failure.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::helpers::TestApp;

const KEY: &str = "Uw5ivvPr4xBUYFrca8hu62mO8LtaK66OKHIvIVOaPHJ";
const TOKEN: &str = "imageToken42";
const APPID: &str = "wx1ma6e000000000a1";

/// The image under test, or `None` (outside CI) when none was built.
fn image() -> Option<String> {
    match std::env::var("WXPUSH_TEST_IMAGE") {
        Ok(image) if !image.is_empty() => Some(image),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but WXPUSH_TEST_IMAGE is not set: run the tests through `.ci/test cargo test`"
            );
            eprintln!("skipped: WXPUSH_TEST_IMAGE is not set (.ci/test builds the image)");
            None
        }
    }
}

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(args)
        .output()
        .expect("podman runs")
}

fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A container removed (with its volume, if named) when dropped.
struct Container {
    name: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.name]);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts the image detached with the app's credentials from the environment only.
fn start(image: &str, name: &str, port: u16, volume: &str, extra: &[&str]) -> Container {
    let _ = podman(&["rm", "-f", "-t", "0", name]);
    let publish = format!("127.0.0.1:{port}:8080");
    let mount = format!("{volume}:/data");
    let mut args = vec![
        "run", "-d", "--name", name, "-p", &publish, "-v", &mount, "-e",
    ];
    let token = format!("WXPUSH_TOKEN={TOKEN}");
    let key = format!("WXPUSH_ENCODING_AES_KEY={KEY}");
    let appid = format!("WXPUSH_APPID={APPID}");
    args.extend([token.as_str(), "-e", key.as_str(), "-e", appid.as_str()]);
    args.extend_from_slice(extra);
    args.push(image);
    podman_ok(&args);
    Container {
        name: name.to_owned(),
    }
}

fn client(port: u16) -> TestApp {
    let mut client = TestApp::client_for(&format!("http://127.0.0.1:{port}"));
    client.config = wxpush::Config::from_toml(&format!(
        "[app]\ntoken = \"{TOKEN}\"\nencoding_aes_key = \"{KEY}\"\nappid = \"{APPID}\"\n"
    ))
    .expect("config");
    client
}

/// Waits (up to 20 s) until the container's health check passes.
fn wait_healthy(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if podman(&["healthcheck", "run", name]).status.success() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let logs = podman(&["logs", name]);
    panic!(
        "{name} never became healthy: {}",
        String::from_utf8_lossy(&logs.stderr)
    );
}

fn audit(second: u32) -> String {
    format!(
        "<xml><ToUserName>gh_i</ToUserName><CreateTime>{}</CreateTime><MsgType>event</MsgType><Event>wxa_category_audit</Event><ret>3</ret><first>8</first><second>{second}</second><reason></reason></xml>",
        wxpush::clock::now_ms() / 1000
    )
}

/// Env-only start as a non-root user, a healthy health check, a push answered and kept on
/// the volume across a restart, and SIGTERM ending with exit 0 within 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_honours_the_container_contract() {
    let Some(image) = image() else { return };
    let volume = format!("wxpush-test-{}", std::process::id());
    let _ = podman(&["volume", "rm", "-f", &volume]);
    let port = free_port();
    let first = start(&image, "wxpush-contract", port, &volume, &[]);
    wait_healthy(&first.name);
    assert_eq!(podman_ok(&["exec", &first.name, "id", "-u"]), "10001");
    let answer = client(port).push_safe("/wechat", &audit(39)).await;
    assert_eq!(answer.body, "success");
    let public = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .expect("answers");
    assert_eq!(public.status().as_u16(), 404, "health is on admin_listen");

    let started = Instant::now();
    podman_ok(&["stop", "-t", "10", &first.name]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped in time"
    );
    let code = podman_ok(&["inspect", &first.name, "--format", "{{.State.ExitCode}}"]);
    assert_eq!(code, "0", "SIGTERM ends with exit 0");
    drop(first);

    let second = start(&image, "wxpush-contract", port, &volume, &["--read-only"]);
    wait_healthy(&second.name);
    let listed = podman_ok(&["exec", &second.name, "wxpush", "events", "list", "--json"]);
    assert!(
        listed.contains("\"second\":\"39\"") || listed.contains("\"second\":39"),
        "the event survived the restart: {listed}"
    );
    let answer = client(port).push_safe("/wechat", &audit(40)).await;
    assert_eq!(
        answer.body, "success",
        "a read-only root filesystem is fine"
    );
    drop(second);
    let _ = podman(&["volume", "rm", "-f", &volume]);
}

/// A volume the image's user cannot write: the container exits with a message naming the
/// uid it runs as.
#[test]
fn an_unwritable_volume_is_refused_naming_the_uid() {
    let Some(image) = image() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let host = dir.path().join("data");
    std::fs::create_dir(&host).expect("mkdir");
    let mount = format!("{}:/data", host.display());
    let name = "wxpush-unwritable";
    let _ = podman(&["rm", "-f", "-t", "0", name]);
    let token = format!("WXPUSH_TOKEN={TOKEN}");
    let key = format!("WXPUSH_ENCODING_AES_KEY={KEY}");
    let appid = format!("WXPUSH_APPID={APPID}");
    let out = podman(&[
        "run", "--name", name, "-v", &mount, "-e", &token, "-e", &key, "-e", &appid, &image,
    ]);
    let _ = podman(&["rm", "-f", "-t", "0", name]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("uid 10001"), "{err}");
}
