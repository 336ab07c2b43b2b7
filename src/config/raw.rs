//! The configuration as read, before validation: every table and key the file format has
//! (`deny_unknown_fields`), and the reading that names the key and layer at fault.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{ConfigError, layers};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) listen: String,
    pub(super) admin_listen: String,
    pub(super) allow_demo_credentials: bool,
    pub(super) http: RawHttp,
    pub(super) body_limit_bytes: i64,
    pub(super) handler: String,
    pub(super) data_dir: String,
    pub(super) store: String,
    pub(super) postgres: RawPostgres,
    pub(super) max_clock_skew_secs: i64,
    pub(super) retention_days: i64,
    pub(super) delivery: RawDelivery,
    pub(super) log: RawLog,
    pub(super) alerts: RawAlerts,
    pub(super) api_base: String,
    pub(super) secrets_key: String,
    pub(super) tokens: RawTokens,
    pub(super) categories: RawCategories,
    pub(super) admin: RawAdmin,
    pub(super) webhook: RawWebhook,
    pub(super) command: RawCommand,
    pub(super) app: RawApp,
    #[serde(default)]
    pub(super) apps: Vec<RawApp>,
    #[serde(default)]
    pub(super) routes: Vec<RawRoute>,
}

/// A `[[routes]]` table: a name, a handler with its settings in the top-level keys' shape,
/// and optional filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) name: String,
    pub(super) handler: String,
    #[serde(default)]
    pub(super) events: Vec<String>,
    #[serde(default)]
    pub(super) apps: Vec<String>,
    pub(super) webhook: Option<RawRouteWebhook>,
    pub(super) command: Option<RawRouteCommand>,
}

/// A route's `webhook` settings; what is left out is as in `[webhook]`'s defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRouteWebhook {
    pub(super) url: String,
    #[serde(default)]
    pub(super) secret: String,
    pub(super) timeout_secs: Option<i64>,
}

impl std::fmt::Debug for RawRouteWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawRouteWebhook")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A route's `command` settings; what is left out is as in `[command]`'s defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRouteCommand {
    pub(super) program: Vec<String>,
    #[serde(default)]
    pub(super) shell: bool,
    pub(super) timeout_secs: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) header_timeout_secs: i64,
    pub(super) idle_timeout_secs: i64,
    pub(super) max_connections: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    pub(super) url: String,
    pub(super) secret: String,
    pub(super) timeout_secs: i64,
}

impl std::fmt::Debug for RawWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawWebhook")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCommand {
    pub(super) program: Vec<String>,
    pub(super) shell: bool,
    pub(super) timeout_secs: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDelivery {
    pub(super) attempt_timeout_secs: i64,
    pub(super) retry_schedule_secs: Vec<Seconds>,
    pub(super) concurrency: i64,
    pub(super) breaker_failures: i64,
    pub(super) breaker_probe_secs: i64,
    /// Deprecated, with the two below: the exponential backoff of earlier versions.
    #[serde(default)]
    pub(super) max_attempts: Option<i64>,
    #[serde(default)]
    pub(super) backoff_initial_ms: Option<i64>,
    #[serde(default)]
    pub(super) backoff_max_secs: Option<i64>,
}

/// A number of seconds written as an integer or a decimal (`5`, `0.5`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub(super) enum Seconds {
    Whole(i64),
    Fraction(f64),
}

impl Seconds {
    pub(super) fn as_f64(self) -> f64 {
        match self {
            #[allow(clippy::cast_precision_loss)]
            Self::Whole(n) => n as f64,
            Self::Fraction(x) => x,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    pub(super) webhook_url: String,
    pub(super) secret: String,
    pub(super) coalesce_secs: i64,
}

impl std::fmt::Debug for RawAlerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawAlerts")
            .field("webhook_url", &self.webhook_url)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) format: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    pub(super) name: String,
    pub(super) token: String,
    pub(super) encoding_aes_key: String,
    pub(super) appid: String,
    #[serde(default)]
    pub(super) previous_token: String,
    #[serde(default)]
    pub(super) previous_encoding_aes_key: String,
    #[serde(default)]
    pub(super) require_encryption: bool,
    #[serde(default)]
    pub(super) component_appsecret: String,
    #[serde(default)]
    pub(super) appsecret: String,
}

/// `[tokens]`: the token service's timing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTokens {
    pub(super) refresh_margin_secs: i64,
}

/// `[categories]`: the category workflow's timing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCategories {
    pub(super) reconcile_secs: i64,
}

/// `[admin]`: access to the operator endpoints.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) api_token: String,
    pub(super) console_password: String,
    pub(super) secure_cookies: bool,
}

impl std::fmt::Debug for RawAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawAdmin").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for RawApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawApp")
            .field("name", &self.name)
            .field("appid", &self.appid)
            .finish_non_exhaustive()
    }
}

/// Where the embedded defaults come from, for messages.
pub(super) const EMBEDDED: &str = "config/default.toml (embedded)";

/// Reads the merged layers into [`RawConfig`]. An error names the key (`delivery.max_attempts`,
/// `app.tokn`) and the layer that set it: the environment variable, the file, or the
/// embedded defaults. A wrong type is described by its kind, never by its value, which may
/// be a secret.
pub(super) fn deserialize_raw(
    table: toml::Table,
    file: Option<&(String, toml::Table)>,
    env: &BTreeMap<String, String>,
) -> Result<RawConfig, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let key = e.path().to_string();
        let segments: Vec<&str> = key.split('.').collect();
        let origin = layers::env_var_for(&segments, env)
            .map(|var| format!("environment variable {var}"))
            .or_else(|| {
                file.filter(|(_, t)| layers::holds(t, &segments))
                    .map(|(name, _)| name.clone())
            })
            .unwrap_or_else(|| EMBEDDED.to_owned());
        ConfigError::new(
            key,
            format!("{} (in {origin})", without_value(e.inner().message())),
        )
    })
}

/// serde's "invalid type: string \"abc\", expected i64" without the value.
fn without_value(message: &str) -> String {
    let Some(rest) = message.strip_prefix("invalid type: ") else {
        return message.to_owned();
    };
    let kind = rest.split_whitespace().next().unwrap_or("value");
    let expected = rest.rsplit_once(", expected ").map_or("", |(_, e)| e);
    format!("expected {expected}, got a {kind}")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPostgres {
    pub(super) url: String,
    pub(super) schema: String,
    pub(super) pool_size: i64,
    pub(super) lease_secs: i64,
    #[serde(default)]
    pub(super) ca_file: String,
}
