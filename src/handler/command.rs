//! The `command` handler: run a program per event with the event JSON on stdin and its key
//! fields in `WXPUSH_*` environment variables. Exit status 0 means delivered; another status,
//! or running past the timeout (the process is then killed), is an error the dispatcher
//! retries.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use super::{BoxError, Handler};
use crate::event::Event;

/// Settings of the `command` handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandConfig {
    /// The program and its arguments (with `shell`, one shell command line).
    pub program: Vec<String>,
    /// Run through `sh -c`.
    pub shell: bool,
    /// Longest a run may take; the process is killed after it.
    pub timeout: Duration,
}

/// Environment variables of the server that hold secrets; never passed to the program.
const SECRET_VARS: &[&str] = &[
    "WXPUSH_TOKEN",
    "WXPUSH_ENCODING_AES_KEY",
    "WXPUSH_PREVIOUS_TOKEN",
    "WXPUSH_PREVIOUS_ENCODING_AES_KEY",
    "WXPUSH_WEBHOOK_SECRET",
    "WXPUSH_ALERTS_SECRET",
    "WXPUSH_ACCESS_TOKEN",
    "WXPUSH_DATABASE_URL",
];

/// Runs a program per event.
#[derive(Debug, Clone)]
pub struct CommandHandler {
    program: Vec<String>,
    shell: bool,
    timeout: Duration,
}

impl CommandHandler {
    /// A handler for `config`.
    pub fn new(config: &CommandConfig) -> Self {
        Self {
            program: config.program.clone(),
            shell: config.shell,
            timeout: config.timeout,
        }
    }

    fn command(&self) -> Result<Command, BoxError> {
        let (first, rest) = self
            .program
            .split_first()
            .ok_or("no program configured (command.program is empty)")?;
        let mut cmd = if self.shell {
            let mut cmd = Command::new("sh");
            cmd.arg("-c").arg(self.program.join(" "));
            cmd
        } else {
            let mut cmd = Command::new(first);
            cmd.args(rest);
            cmd
        };
        for var in SECRET_VARS {
            cmd.env_remove(var);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Ok(cmd)
    }
}

/// The key fields of `event` as environment variables.
fn env_vars(event: &Event) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("WXPUSH_EVENT_ID", event.id.clone()),
        ("WXPUSH_EVENT", event.name().to_owned()),
        ("WXPUSH_APP", event.app.clone()),
        ("WXPUSH_ATTEMPT", (event.attempts + 1).to_string()),
    ];
    let optional = [
        ("WXPUSH_AUTHORIZER_APPID", event.authorizer_appid.clone()),
        ("WXPUSH_TO_USER_NAME", event.to_user_name.clone()),
        ("WXPUSH_FROM_USER_NAME", event.from_user_name.clone()),
        (
            "WXPUSH_CREATE_TIME",
            event.create_time.map(|t| t.to_string()),
        ),
    ];
    vars.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    if let Some(audit) = event.category_audit() {
        let text = |v: &Option<crate::event::Scalar>| {
            v.as_ref().map(ToString::to_string).unwrap_or_default()
        };
        vars.push(("WXPUSH_CATEGORY_FIRST", text(&audit.first)));
        vars.push(("WXPUSH_CATEGORY_SECOND", text(&audit.second)));
        vars.push(("WXPUSH_AUDIT_RESULT", audit.result.as_str().to_owned()));
        vars.push(("WXPUSH_AUDIT_REASON", audit.reason.clone()));
    }
    vars
}

impl Handler for CommandHandler {
    async fn handle(&self, event: &Event) -> Result<(), BoxError> {
        let mut cmd = self.command()?;
        cmd.envs(env_vars(event));
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", self.program.join(" ")))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A program that does not read its stdin may exit first: that is not an error.
            let _ = stdin.write_all(event.delivery_json().as_bytes()).await;
        }
        let output = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| {
                format!(
                    "command timed out after {} s and was killed",
                    self.timeout.as_secs()
                )
            })??;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = stderr
            .trim()
            .chars()
            .rev()
            .take(300)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Err(format!("command exited with {}: {tail}", output.status).into())
    }
}
