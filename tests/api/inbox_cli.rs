//! The inbox through the real binary: the events CLI against a running server, a SIGKILL
//! mid-stream, quarantine repair, and a full or read-only data dir.

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use wxpush::Event;

use crate::cli::{Served, wxpush};
use crate::helpers::{TestApp, vector, vector_event_id};

fn audit(n: u32) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_a]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_category_audit]]></Event><ret>{}</ret><first>8</first><second>{n}</second><reason><![CDATA[r{n}]]></reason></xml>",
        1_764_000_000 + n,
        if n.is_multiple_of(2) { 2 } else { 3 }
    )
}

/// `events list --json` lines, parsed.
fn list_json(envs: &[(&str, &str)], extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["events", "list", "--json", "--limit", "100000"];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = wxpush(&args, envs);
    assert!(ok, "events list failed: {stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// Polls `events list` until every id in `ids` is delivered (30 s at most).
fn wait_all_delivered(envs: &[(&str, &str)], ids: &HashSet<String>) -> Vec<Value> {
    for _ in 0..300 {
        let events = list_json(envs, &[]);
        let delivered: HashSet<&str> = events
            .iter()
            .filter(|e| e["status"] == "delivered")
            .filter_map(|e| e["id"].as_str())
            .collect();
        if ids.iter().all(|id| delivered.contains(id.as_str())) {
            return events;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("not every acknowledged event was delivered");
}

/// The events CLI works against the data dir of a running server: list (table and the
/// documented JSON shape), show, stats, and replay of a delivered event.
#[tokio::test]
async fn events_cli_inspects_and_replays_while_the_server_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().to_string_lossy().into_owned();
    let envs = [("WXPUSH_DATA_DIR", data_dir.as_str())];
    let mut served = Served::start(&envs);
    let client = TestApp::client_for(&served.base_url);
    for n in [39, 40] {
        assert_eq!(
            client
                .push_safe("/wechat/wxa0th000000000001/callback", &audit(n))
                .await
                .body,
            "success"
        );
    }
    let ids: HashSet<String> = [39, 40]
        .iter()
        .map(|n| Event::parse(&audit(*n), "demo", Some("wxa0th000000000001")).id)
        .collect();
    let events = wait_all_delivered(&envs, &ids);
    let e = events
        .iter()
        .find(|e| e["category_audit"]["second"] == 40)
        .expect("second 40 listed");
    let keys: Vec<&str> = e
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "id",
        "received_at",
        "source",
        "status",
        "app",
        "authorizer_appid",
        "to_user_name",
        "from_user_name",
        "create_time",
        "msg_type",
        "event",
        "info_type",
        "category_audit",
        "fields",
        "attempts",
        "last_error",
    ] {
        assert!(keys.contains(&key), "missing {key} in {e}");
    }
    assert_eq!(e["authorizer_appid"], "wxa0th000000000001");
    assert_eq!(e["category_audit"]["result"], "rejected");
    assert_eq!(e["category_audit"]["first"], 8);
    assert_eq!(e["fields"]["reason"], "r40");
    assert_eq!(e["attempts"], 1);
    assert_eq!(e["source"], "push");
    assert!(e["received_at"].as_str().is_some_and(|t| t.ends_with('Z')));

    let (ok, table, _) = wxpush(&["events", "list", "--event", "wxa_category_audit"], &envs);
    assert!(
        ok && table.contains("category 8/40 rejected: r40"),
        "{table}"
    );
    let id = e["id"].as_str().expect("id");
    let (ok, shown, _) = wxpush(&["events", "show", id], &envs);
    assert!(ok && shown.contains("<second>40</second>"), "{shown}");
    let (ok, stats, _) = wxpush(&["events", "stats", "--json"], &envs);
    assert!(ok);
    let stats: Value = serde_json::from_str(stats.trim()).expect("stats JSON");
    assert_eq!(stats["delivered"], 2);

    let (ok, out, _) = wxpush(&["events", "replay", id], &envs);
    assert!(ok, "{out}");
    // Delivered again by the running server: its log handler logs the audit a second time.
    served.wait_for_count("second=40", 2);
    let (ok, _, err) = wxpush(&["events", "show", "evt_nope"], &envs);
    assert!(!ok && err.contains("no event with id evt_nope"), "{err}");
    let (status, _) = served.terminate();
    assert!(status.success());
}

/// Crash test: 400 senders keep distinct pushes in flight, SIGKILL mid-stream, restart on
/// the same data dir: every push that was answered `success` is stored and is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_push_survives_a_sigkill() {
    const SENDERS: u32 = 400;
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().to_string_lossy().into_owned();
    let envs = [("WXPUSH_DATA_DIR", data_dir.as_str())];
    let mut served = Served::start(&envs);
    let client = Arc::new(TestApp::client_for(&served.base_url));
    let acked = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let client = Arc::clone(&client);
        let acked = Arc::clone(&acked);
        // Each sender pushes until a push is not acknowledged: the kill always lands while
        // pushes are in flight, however fast the server is.
        senders.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            for k in 0..10_000u32 {
                let n = k * SENDERS + sender;
                let answer = client.try_push_safe("/wechat", &audit(n)).await;
                if !answer.is_some_and(|a| a.status == 200 && a.body == "success") {
                    return (answered, true);
                }
                answered.push(n);
                acked.fetch_add(1, Ordering::SeqCst);
            }
            (answered, false)
        }));
    }
    while acked.load(Ordering::SeqCst) < 100 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    served.child.kill().expect("SIGKILL");
    served.child.wait().expect("reaped");
    let mut acknowledged = HashSet::new();
    for sender in senders {
        let (answered, cut_off) = sender.await.expect("sender");
        assert!(cut_off, "a sender finished before the kill");
        acknowledged.extend(
            answered
                .into_iter()
                .map(|n| Event::parse(&audit(n), "demo", None).id),
        );
    }
    assert!(acknowledged.len() >= 100, "{}", acknowledged.len());

    let restarted = Served::start(&envs);
    let events = wait_all_delivered(&envs, &acknowledged);
    let stored: HashSet<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    assert!(acknowledged.iter().all(|id| stored.contains(id.as_str())));
    let (status, _) = restarted.terminate();
    assert!(status.success());
}

/// With the wrong key configured, a genuine push is quarantined (answered `success`); after
/// the operator sets the right key, `events retry-quarantined` turns it into an event that
/// the server delivers.
#[tokio::test]
async fn retry_quarantined_from_the_cli_delivers_after_the_key_is_fixed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().to_string_lossy().into_owned();
    let wrong_key = "Uw5ivvPr4xBUYFrca8hu62mO8LtaK66OKHIvIVOaPHJ";
    let wrong = [
        ("WXPUSH_DATA_DIR", data_dir.as_str()),
        ("WXPUSH_ENCODING_AES_KEY", wrong_key),
        ("WXPUSH_MAX_CLOCK_SKEW_SECS", "0"),
    ];
    let mut served = Served::start(&wrong);
    let client = TestApp::client_for(&served.base_url);
    let answer = client.send_vector(&vector("safe-xml-passed")).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "success"));
    served.wait_for("push quarantined");
    let q = list_json(&wrong, &["--status", "quarantined"]);
    assert_eq!(q.len(), 1);
    assert!(
        q[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("-40008")),
        "{}",
        q[0]
    );
    let (ok, out, _) = wxpush(&["events", "retry-quarantined"], &wrong);
    assert!(!ok && out.contains("1 still failing"), "{out}");
    served.terminate();

    let fixed = [
        ("WXPUSH_DATA_DIR", data_dir.as_str()),
        ("WXPUSH_MAX_CLOCK_SKEW_SECS", "0"),
    ];
    let (ok, out, err) = wxpush(&["events", "retry-quarantined"], &fixed);
    assert!(ok, "{out}{err}");
    assert!(out.contains("1 released"), "{out}");
    let mut served = Served::start(&fixed);
    let id = vector_event_id("safe-xml-passed", "demo", None);
    wait_all_delivered(&fixed, &HashSet::from([id]));
    served.wait_for("category audit");
    served.terminate();
}

/// Shell that mounts a small tmpfs on the data dir in a private mount namespace, then runs
/// `wxpush serve` in the background and fills the disk when `fill` appears, frees it when
/// `free` appears.
const FULL_DISK_SCRIPT: &str = r#"
set -e
mount -t tmpfs -o size=1m tmpfs "$DATA"
"$BIN" serve &
pid=$!
trap 'kill -TERM $pid; wait $pid; exit $?' TERM
while [ ! -e "$CTL/fill" ]; do sleep 0.05; done
dd if=/dev/zero of="$DATA/filler" bs=4k 2>/dev/null || true
touch "$CTL/filled"
while [ ! -e "$CTL/free" ]; do sleep 0.05; done
rm -f "$DATA/filler"
touch "$CTL/freed"
wait $pid
"#;

/// The status of `GET /readyz`.
pub(crate) async fn ready(client: &TestApp) -> u16 {
    client
        .client
        .get(format!("{}/readyz", client.base_url))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Waits (up to 20 s) for a control file the tmpfs scripts write.
pub(crate) fn wait_file(path: &std::path::Path) {
    for _ in 0..400 {
        if path.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} never appeared", path.display());
}

/// A full disk under the data dir: pushes are answered 503 (never `success`) and `/readyz`
/// is 503 while it is full; both recover once space is freed; everything acknowledged is
/// delivered.
#[tokio::test]
async fn a_full_data_dir_answers_503_and_acknowledges_nothing() {
    let (ctl, data) = namespace_dirs();
    let mut served = serve_in_namespace(FULL_DISK_SCRIPT, ctl.path(), &data, &[]);
    let client = TestApp::client_for(&served.base_url);
    assert_eq!(client.push_safe("/wechat", &audit(1)).await.body, "success");
    assert_eq!(ready(&client).await, 200);

    std::fs::write(ctl.path().join("fill"), "").expect("signal fill");
    wait_file(&ctl.path().join("filled"));
    let mut statuses = Vec::new();
    for n in 2..12 {
        statuses.push(client.push_safe("/wechat", &audit(n)).await.status);
    }
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    served.wait_for("cannot store the push");
    assert_eq!(
        ready(&client).await,
        503,
        "/readyz reports the full data dir"
    );

    std::fs::write(ctl.path().join("free"), "").expect("signal free");
    wait_file(&ctl.path().join("freed"));
    assert_eq!(ready(&client).await, 200);
    let answer = client.push_safe("/wechat", &audit(20)).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "success"));
    served.wait_for("second=20");
    let (status, lines) = served.terminate();
    assert!(status.success(), "{status:?}");
    let audits = lines
        .iter()
        .filter(|l| l.contains("category audit"))
        .count();
    assert_eq!(audits, 2, "only the two acknowledged pushes were delivered");
}

/// A data dir the process cannot write stops `serve` at start with a message naming it.
#[test]
fn a_read_only_data_dir_fails_at_start_with_a_clear_message() {
    let (_ctl, data) = namespace_dirs();
    let out = Command::new("unshare")
        .args([
            "-rm",
            "sh",
            "-c",
            r#"mount -t tmpfs -o ro tmpfs "$DATA" && exec "$BIN" serve"#,
        ])
        .env("DATA", &data)
        .env("BIN", env!("CARGO_BIN_EXE_wxpush"))
        .env("WXPUSH_DATA_DIR", &data)
        .env("WXPUSH_LISTEN", "127.0.0.1:0")
        .output()
        .expect("unshare runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot open the store at"), "{stderr}");
    assert!(stderr.contains("wxpush.db"), "{stderr}");
}

/// A control dir and, inside it, an empty data dir, for a server in a private mount
/// namespace.
pub(crate) fn namespace_dirs() -> (tempfile::TempDir, std::path::PathBuf) {
    let ctl = tempfile::tempdir().expect("temp dir");
    let data = ctl.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    (ctl, data)
}

/// `wxpush serve`, started by `script` in a private mount namespace (`unshare -rm`) with
/// `DATA`, `CTL` and `BIN` set, the data dir as `WXPUSH_DATA_DIR`, and `envs`.
pub(crate) fn serve_in_namespace(
    script: &str,
    ctl: &std::path::Path,
    data: &std::path::Path,
    envs: &[(&str, &str)],
) -> Served {
    let mut cmd = Command::new("unshare");
    cmd.args(["-rm", "sh", "-c", script])
        .env("DATA", data)
        .env("CTL", ctl)
        .env("BIN", env!("CARGO_BIN_EXE_wxpush"))
        .env("WXPUSH_DATA_DIR", data);
    Served::start_command(cmd, envs)
}
