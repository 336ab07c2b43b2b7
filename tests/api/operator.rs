//! What an operator sees when input is hostile or the machine misbehaves: log lines and CLI
//! tables that no push can forge, commands that end cleanly on a closed pipe and say what
//! is wrong, and a full disk that readiness reports and delivery outlives.

use std::io::Read as _;
use std::process::{Command, Stdio};

use crate::cli::{Served, wxpush};
use crate::helpers::TestApp;
use crate::inbox_cli::{namespace_dirs, ready, serve_in_namespace, wait_file};

const FORGED: &str = "ok\n2026-01-01T00:00:00.000000Z  INFO category audit app=FORGED first=666 result=\"passed\"\r\x1b[2K\x1b[31m";

/// A reason holding a newline, CR and ESC stays inside its own log line and table row,
/// escaped; nothing starts a line of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_reason_cannot_forge_a_log_line_or_a_table_row() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().display().to_string();
    let env = [("WXPUSH_DATA_DIR", data.as_str())];
    let mut served = Served::start(&env);
    let url = format!("{}/wechat", served.base_url);
    let (ok, out, err) = wxpush(
        &[
            "simulate", "--url", &url, "--ret", "rejected", "--reason", FORGED,
        ],
        &env,
    );
    assert!(ok, "{out}{err}");
    let line = served.wait_for("category audit");
    assert!(line.contains("reason=\"ok\\n2026-01-01T00:00:00"), "{line}");
    let (_, lines) = served.terminate();
    for line in &lines {
        assert!(!line.starts_with("2026-01-01"), "forged line: {line}");
        assert!(
            !line.contains(['\r', '\x1b']),
            "raw control character: {line:?}"
        );
    }
    let (ok, table, err) = wxpush(&["events", "list"], &env);
    assert!(ok, "{err}");
    assert_eq!(table.lines().count(), 2, "a header and one row: {table}");
    assert!(!table.contains(['\r', '\x1b']), "{table:?}");
    let id = table
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .expect("an id");
    let (ok, shown, _) = wxpush(&["events", "show", id], &env);
    assert!(ok);
    assert!(!shown.contains(['\r', '\x1b']), "{shown:?}");
    assert!(
        shown.lines().all(|l| !l.starts_with("2026-01-01")),
        "{shown}"
    );
}

/// `simulate --print | head -1`: the reader goes away; the command ends quietly, no panic.
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wxpush"))
        .args(["simulate", "--print", "--retries", "100000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let mut first = [0u8; 64];
    let mut stdout = child.stdout.take().expect("stdout");
    stdout.read_exact(&mut first).expect("some output");
    drop(stdout);
    let status = child.wait().expect("exits");
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    assert!(status.success(), "{status:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Commands other than `serve` never create an inbox: they say where they looked.
#[test]
fn commands_refuse_to_create_an_inbox_and_say_where_they_looked() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("elsewhere");
    let data = missing.display().to_string();
    for args in [
        &["events", "list"][..],
        &["events", "stats"],
        &["categories"],
    ] {
        let (ok, _, err) = wxpush(args, &[("WXPUSH_DATA_DIR", data.as_str())]);
        assert!(!ok, "{args:?}");
        assert!(err.contains("no inbox there"), "{err}");
        assert!(
            err.contains("wxpush.db") && err.contains("WXPUSH_DATA_DIR"),
            "{err}"
        );
    }
    assert!(!missing.exists(), "nothing was created");
}

/// Clear errors: an unknown id is named, a misspelt key in `add-category --file` is named,
/// an unreachable API host is named with the cause, and config errors name key and file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_what_they_are_about() {
    let dir = tempfile::tempdir().expect("dir");
    drop(wxpush::store::SqliteStore::open(dir.path()).expect("inbox"));
    let data = dir.path().display().to_string();
    let env = [
        ("WXPUSH_DATA_DIR", data.as_str()),
        ("WXPUSH_ACCESS_TOKEN", "tok"),
        ("WXPUSH_API_BASE", "http://127.0.0.1:1"),
    ];
    let (ok, _, err) = wxpush(&["events", "replay", "evt_zzz"], &env);
    assert!(!ok && err.contains("evt_zzz"), "{err}");

    let file = dir.path().join("categories.json");
    std::fs::write(
        &file,
        r#"{"categories":[{"first":8,"second":39,"certificates":[]}]}"#,
    )
    .expect("write");
    let path = file.display().to_string();
    let (ok, _, err) = wxpush(&["add-category", "--file", &path], &env);
    assert!(!ok && err.contains("unknown field `certificates`"), "{err}");

    let (ok, _, err) = wxpush(&["add-category", "--first", "8", "--second", "39"], &env);
    assert!(!ok, "{err}");
    assert!(
        err.contains("cannot reach http://127.0.0.1:1") && err.to_lowercase().contains("refused"),
        "{err}"
    );
    assert!(!err.contains("tok"), "{err}");

    let config = dir.path().join("wxpush.toml");
    std::fs::write(&config, "[app]\ntokn = \"abc\"\n").expect("write");
    let config_s = config.display().to_string();
    let (ok, _, err) = wxpush(&["check-config", "--config", &config_s], &[]);
    assert!(
        !ok && err.contains("app.tokn") && err.contains(&config_s),
        "{err}"
    );
}

/// The readiness probe reports the write path pushes use: once the inbox itself has filled
/// the disk, `/readyz` is 503 until pushes fit again, then 200 and pushes are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_pushes_on_a_disk_the_inbox_filled() {
    let (ctl, data) = namespace_dirs();
    let mut served = serve_in_namespace(SPARE_SCRIPT, ctl.path(), &data, &[]);
    let client = TestApp::client_for(&served.base_url);
    let big = "x".repeat(24_000);
    let mut refused = false;
    for n in 0..400 {
        let answer = client.push_safe("/wechat", &audit_with(n, &big)).await;
        if answer.status == 503 {
            refused = true;
            break;
        }
        assert_eq!(answer.body, "success");
    }
    assert!(refused, "the inbox filled the disk");
    served.wait_for("cannot store the push");
    assert_eq!(ready(&client).await, 503, "not ready while pushes fail");
    // Room for a one-row write, not for a push: readiness must still say no.
    std::fs::write(ctl.path().join("free_some"), "").expect("signal");
    wait_file(&ctl.path().join("freed_some"));
    assert_eq!(
        ready(&client).await,
        503,
        "a small write fits; pushes do not"
    );
    std::fs::write(ctl.path().join("free"), "").expect("signal");
    wait_file(&ctl.path().join("freed"));
    assert_eq!(ready(&client).await, 200, "ready once pushes fit");
    let answer = client
        .push_safe("/wechat", &audit_with(9999, "after"))
        .await;
    assert_eq!(answer.body, "success");
    served.terminate();
}

/// A delivery whose "delivered" mark the full disk refused is recorded as soon as space
/// returns, without a restart, and the handler is not called again.
#[test]
fn a_delivered_mark_refused_by_a_full_disk_is_kept_and_applied() {
    let (ctl, data) = namespace_dirs();
    let calls = ctl.path().join("calls");
    // The handler fills the disk, then succeeds: marking the delivery cannot be written.
    let handler = format!(
        "echo call >> {calls}; dd if=/dev/zero of={data}/filler bs=4k 2>/dev/null; touch {ctl}/filled; exit 0",
        calls = calls.display(),
        data = data.display(),
        ctl = ctl.path().display()
    );
    let env = [
        ("WXPUSH_HANDLER", "command"),
        ("WXPUSH_COMMAND_SHELL", "true"),
        ("WXPUSH_COMMAND", handler.as_str()),
    ];
    let mut served = serve_in_namespace(FREE_ON_SIGNAL_SCRIPT, ctl.path(), &data, &env);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let client = TestApp::client_for(&served.base_url);
    let answer = runtime.block_on(client.push_safe("/wechat", &audit_with(1, "r")));
    assert_eq!(answer.body, "success");
    wait_file(&ctl.path().join("filled"));
    served.wait_for("cannot record a delivery outcome");
    std::fs::write(ctl.path().join("free"), "").expect("signal");
    wait_file(&ctl.path().join("freed"));
    served.wait_for("recorded delivery outcomes the store had refused");
    // The inbox lives in the server's mount namespace: the script lists it from there.
    std::fs::write(ctl.path().join("check"), "").expect("signal");
    wait_file(&ctl.path().join("checked"));
    let listed = std::fs::read_to_string(ctl.path().join("list.json")).expect("list");
    let event: serde_json::Value =
        serde_json::from_str(listed.lines().next().expect("one event")).expect("JSON");
    assert_eq!(event["status"], "delivered", "{listed}");
    assert_eq!(event["attempts"], 1, "{listed}");
    let (status, _) = served.terminate();
    assert!(status.success());
    let called = std::fs::read_to_string(&calls).expect("calls");
    assert_eq!(called.lines().count(), 1, "delivered once: {called}");
}

fn audit_with(n: u32, reason: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_o]]></ToUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_category_audit]]></Event><ret>2</ret><first>8</first><second>{n}</second><reason><![CDATA[{reason}]]></reason></xml>",
        1_764_000_000 + n
    )
}

/// A 1 MiB tmpfs on the data dir with two spare files, 16 KiB (removed when `free_some`
/// appears) and 320 KiB (removed when `free` appears): the inbox fills the rest by itself.
const SPARE_SCRIPT: &str = r#"
set -e
mount -t tmpfs -o size=1m tmpfs "$DATA"
dd if=/dev/zero of="$DATA/spare_small" bs=4k count=4 2>/dev/null
dd if=/dev/zero of="$DATA/spare" bs=4k count=80 2>/dev/null
"$BIN" serve &
pid=$!
trap 'kill -TERM $pid; wait $pid; exit $?' TERM
while [ ! -e "$CTL/free_some" ]; do sleep 0.05; done
rm -f "$DATA/spare_small"
touch "$CTL/freed_some"
while [ ! -e "$CTL/free" ]; do sleep 0.05; done
rm -f "$DATA/spare"
touch "$CTL/freed"
wait $pid
"#;

/// A 1 MiB tmpfs on the data dir; when `free` appears, the handler's filler is removed;
/// when `check` appears, the inbox is listed into `list.json`.
const FREE_ON_SIGNAL_SCRIPT: &str = r#"
set -e
mount -t tmpfs -o size=1m tmpfs "$DATA"
"$BIN" serve &
pid=$!
trap 'kill -TERM $pid; wait $pid; exit $?' TERM
while [ ! -e "$CTL/free" ]; do sleep 0.05; done
rm -f "$DATA/filler"
touch "$CTL/freed"
while [ ! -e "$CTL/check" ]; do sleep 0.05; done
"$BIN" events list --json > "$CTL/list.json"
touch "$CTL/checked"
wait $pid
"#;

/// `cargo run --example custom_handler` shows its own log lines with the default filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_custom_handler_example_logs_its_own_lines() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_wxpush"));
    let example = bin
        .parent()
        .map(|dir| dir.join("examples").join("custom_handler"))
        .expect("target dir");
    assert!(
        example.exists(),
        "{example:?} is missing: run the whole `cargo test`, which builds the examples"
    );
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().display().to_string();
    let mut served =
        Served::start_command(Command::new(example), &[("WXPUSH_DATA_DIR", data.as_str())]);
    let url = format!("{}/wechat", served.base_url);
    let (ok, out, err) = wxpush(&["simulate", "--url", &url], &[]);
    assert!(ok, "{out}{err}");
    served.wait_for("category status");
}
