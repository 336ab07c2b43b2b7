//! Validation of the ready handlers' settings, shared by the top-level `[webhook]` and
//! `[command]` tables and the routes' inline ones.

use super::ConfigError;
use super::numbers::secs;
use crate::handler::{CommandConfig, WebhookConfig};
use crate::secret::Secret;

/// A webhook's settings; `key` is the table's (`webhook`, `routes[0].webhook`).
pub(super) fn validate_webhook(
    url: &str,
    secret: &str,
    timeout_secs: i64,
    key: &str,
) -> Result<WebhookConfig, ConfigError> {
    let url = url.trim().to_owned();
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
        return Err(ConfigError::new(
            format!("{key}.url"),
            if key == "webhook" {
                "expected an http:// or https:// URL (env WXPUSH_WEBHOOK_URL) for handler = \"webhook\""
            } else {
                "expected an http:// or https:// URL for handler = \"webhook\""
            },
        ));
    }
    let secret = (!secret.is_empty()).then(|| Secret::new(secret.to_owned()));
    let timeout = secs(timeout_secs, &format!("{key}.timeout_secs"), 1)?;
    Ok(WebhookConfig {
        url,
        secret,
        timeout,
    })
}

/// A command's settings; `key` is the table's (`command`, `routes[0].command`).
pub(super) fn validate_command(
    program: Vec<String>,
    shell: bool,
    timeout_secs: i64,
    key: &str,
) -> Result<CommandConfig, ConfigError> {
    let program: Vec<String> = program.into_iter().filter(|w| !w.is_empty()).collect();
    if program.is_empty() {
        return Err(ConfigError::new(
            format!("{key}.program"),
            if key == "command" {
                "expected a program and its arguments, e.g. [\"/usr/local/bin/on-event\", \"--verbose\"] (env WXPUSH_COMMAND) for handler = \"command\""
            } else {
                "expected a program and its arguments, e.g. [\"/usr/local/bin/on-event\", \"--verbose\"] for handler = \"command\""
            },
        ));
    }
    let timeout = secs(timeout_secs, &format!("{key}.timeout_secs"), 1)?;
    Ok(CommandConfig {
        program,
        shell,
        timeout,
    })
}
