//! The real binary: `serve` from the embedded defaults, `check-config`, configuration errors,
//! and shutdown on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::helpers::{TestApp, vector};

const BIN: &str = env!("CARGO_BIN_EXE_wxpush");

/// A running `wxpush serve` whose stderr lines are collected.
pub(crate) struct Served {
    pub(crate) child: Child,
    lines: mpsc::Receiver<String>,
    pub(crate) seen: Vec<String>,
    pub(crate) base_url: String,
}

impl Served {
    /// Starts `wxpush serve` on a random port with `envs` (give WXPUSH_DATA_DIR).
    pub(crate) fn start(envs: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve");
        Self::start_command(cmd, envs)
    }

    /// Starts a prepared command that ends up running `wxpush serve`.
    pub(crate) fn start_command(mut cmd: Command, envs: &[(&str, &str)]) -> Self {
        cmd.env_remove("RUST_LOG")
            .env("WXPUSH_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("binary starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut served = Self {
            child,
            lines,
            seen: Vec::new(),
            base_url: String::new(),
        };
        let line = served.wait_for("listening on");
        let addr: String = line
            .split("listening on ")
            .nth(1)
            .expect("address after 'listening on'")
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
            .collect();
        served.base_url = format!("http://{addr}");
        served
    }

    /// `http://ADDR` of `admin_listen`, from the line that announces it.
    pub(crate) fn admin_url(&mut self) -> String {
        let line = self.wait_for("operations endpoints (/healthz, /readyz, /metrics) on ");
        let addr: String = line
            .rsplit(" on ")
            .next()
            .unwrap_or_default()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
            .collect();
        format!("http://{addr}")
    }

    /// Waits (up to 10 s) for a stderr line containing `needle`.
    pub(crate) fn wait_for(&mut self, needle: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| {
                    panic!("no line with {needle:?}; saw:\n{}", self.seen.join("\n"))
                });
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Waits (up to 10 s) until `n` stderr lines contain `needle`.
    pub(crate) fn wait_for_count(&mut self, needle: &str, n: usize) {
        while self.seen.iter().filter(|l| l.contains(needle)).count() < n {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| {
                    panic!(
                        "fewer than {n} lines with {needle:?}; saw:\n{}",
                        self.seen.join("\n")
                    )
                });
            self.seen.push(line);
        }
    }

    /// After the process has exited: the remaining stderr lines, with every line seen.
    pub(crate) fn terminate_collected(mut self) -> (Option<std::process::ExitStatus>, Vec<String>) {
        let status = self.child.try_wait().ok().flatten();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(line);
        }
        (status, std::mem::take(&mut self.seen))
    }

    /// Sends SIGTERM and waits for the exit; returns the status and every stderr line.
    pub(crate) fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let status = self.child.wait().expect("child exits");
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(line);
        }
        (status, std::mem::take(&mut self.seen))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // A test that fails midway must not leave a server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a `wxpush` subcommand against a data dir; returns (success, stdout, stderr).
pub(crate) fn wxpush(args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("RUST_LOG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// On a fresh checkout, `serve` starts with the embedded defaults, warns about the demo
/// credentials, accepts a push made with the vectors' credentials, logs the category audit,
/// and exits 0 on SIGTERM.
#[tokio::test]
async fn serve_with_embedded_defaults_logs_a_pushed_category_audit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().to_string_lossy().into_owned();
    let mut served = Served::start(&[("WXPUSH_DATA_DIR", &data_dir)]);
    served.wait_for("DEMO CREDENTIALS");
    let client = TestApp::client_for(&served.base_url);
    let message = vector("safe-xml-rejected-utf8")["plaintext"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let answer = client.push_safe("/wechat", &message).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "success"));
    let line = served.wait_for("category audit");
    assert!(line.contains("rejected"), "{line}");
    assert!(line.contains("资质证明不清晰"), "{line}");
    let (status, lines) = served.terminate();
    assert!(status.success(), "exit status {status:?}");
    let all = lines.join("\n");
    assert!(!all.contains("wxpushDemoToken"), "token leaked into logs");
    assert!(
        !all.contains("FqRfJtSZ1eTemafkXIDruAmV0cJPssQEyOyi7ODadSB"),
        "key leaked into logs"
    );
    assert!(!all.contains("msg_signature="), "query leaked into logs");
}

/// A bad key is a clear configuration error naming the key and the expected form, with a
/// non-zero exit code and no secret in the output.
#[test]
fn bad_encoding_aes_key_fails_with_a_clear_message() {
    let key = "FqRfJtSZ1eTemafkXIDruAmV0cJPssQEyOyi7ODad";
    let out = Command::new(BIN)
        .arg("serve")
        .env("WXPUSH_ENCODING_AES_KEY", key)
        .output()
        .expect("binary runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("app.encoding_aes_key: expected 43 base64 characters, got 41"),
        "{stderr}"
    );
    assert!(!stderr.contains(key));
}

/// `check-config` prints the effective config with secrets masked; a `--config` file and env
/// both apply.
#[test]
fn check_config_masks_secrets_and_layers_file_and_env() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("wxpush.toml");
    std::fs::write(&path, "[app]\nname = \"shop\"\ntoken = \"fileToken123\"\n").expect("write");
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .env("WXPUSH_APPID", "wxfr0menv000000001")
        .output()
        .expect("binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("name = \"shop\""), "{stdout}");
    assert!(
        stdout.contains("appid = \"wxfr0menv000000001\""),
        "{stdout}"
    );
    assert!(!stdout.contains("fileToken123"), "{stdout}");
    assert!(!stdout.contains("FqRfJtSZ"), "{stdout}");
}

/// A missing config file is named in the error.
#[test]
fn missing_config_file_is_named() {
    let out = Command::new(BIN)
        .args(["check-config", "--config", "/nonexistent/wxpush.toml"])
        .output()
        .expect("binary runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/wxpush.toml: cannot read"),
        "{stderr}"
    );
}
