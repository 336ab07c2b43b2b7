//! Configuration: embedded defaults, an optional file, `WXPUSH_*` environment overrides,
//! validated once into typed values.
//!
//! Errors name the key and the expected form and never print a secret's value.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::app::App;
use crate::cipher::AesKey;
use crate::dispatch::DeliveryPolicy;
use crate::secret::Secret;

/// The embedded `config/default.toml`.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// The demo token shipped in the defaults; a server using it warns loudly.
pub const DEMO_TOKEN: &str = "wxpushDemoToken";

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// The handler receiving events.
    pub handler: HandlerKind,
    /// Directory of the durable inbox.
    pub data_dir: PathBuf,
    /// Largest accepted distance between a push's timestamp and the clock; `None` = no check.
    pub max_clock_skew: Option<Duration>,
    /// How long delivered events (and their dedup memory) are kept.
    pub retention: Duration,
    /// Retry policy for handler calls.
    pub delivery: DeliveryPolicy,
    /// Log output format.
    pub log_format: LogFormat,
    /// The app whose pushes are received.
    pub app: App,
}

/// The built-in handlers the binary can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerKind {
    /// One log line per event.
    Log,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A configuration problem, naming the key (or file) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ConfigError {
    /// The key (`app.encoding_aes_key`), environment variable or file concerned.
    pub key: String,
    /// What is wrong and what form is expected.
    pub problem: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// Environment variables and the keys they override, with the kind of value they hold.
const ENV_OVERRIDES: &[(&str, &[&str], ValueKind)] = &[
    ("WXPUSH_LISTEN", &["listen"], ValueKind::Text),
    (
        "WXPUSH_BODY_LIMIT_BYTES",
        &["body_limit_bytes"],
        ValueKind::Integer,
    ),
    ("WXPUSH_HANDLER", &["handler"], ValueKind::Text),
    ("WXPUSH_DATA_DIR", &["data_dir"], ValueKind::Text),
    (
        "WXPUSH_MAX_CLOCK_SKEW_SECS",
        &["max_clock_skew_secs"],
        ValueKind::Integer,
    ),
    (
        "WXPUSH_RETENTION_DAYS",
        &["retention_days"],
        ValueKind::Integer,
    ),
    (
        "WXPUSH_DELIVERY_ATTEMPT_TIMEOUT_SECS",
        &["delivery", "attempt_timeout_secs"],
        ValueKind::Integer,
    ),
    (
        "WXPUSH_DELIVERY_MAX_ATTEMPTS",
        &["delivery", "max_attempts"],
        ValueKind::Integer,
    ),
    (
        "WXPUSH_DELIVERY_BACKOFF_INITIAL_MS",
        &["delivery", "backoff_initial_ms"],
        ValueKind::Integer,
    ),
    (
        "WXPUSH_DELIVERY_BACKOFF_MAX_SECS",
        &["delivery", "backoff_max_secs"],
        ValueKind::Integer,
    ),
    ("WXPUSH_LOG_FORMAT", &["log", "format"], ValueKind::Text),
    ("WXPUSH_APP_NAME", &["app", "name"], ValueKind::Text),
    ("WXPUSH_TOKEN", &["app", "token"], ValueKind::Text),
    (
        "WXPUSH_ENCODING_AES_KEY",
        &["app", "encoding_aes_key"],
        ValueKind::Text,
    ),
    ("WXPUSH_APPID", &["app", "appid"], ValueKind::Text),
];

#[derive(Clone, Copy)]
enum ValueKind {
    Text,
    Integer,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: String,
    body_limit_bytes: i64,
    handler: String,
    data_dir: String,
    max_clock_skew_secs: i64,
    retention_days: i64,
    delivery: RawDelivery,
    log: RawLog,
    app: RawApp,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    attempt_timeout_secs: i64,
    max_attempts: i64,
    backoff_initial_ms: i64,
    backoff_max_secs: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: String,
    token: String,
    encoding_aes_key: String,
    appid: String,
}

impl std::fmt::Debug for RawApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawApp")
            .field("name", &self.name)
            .field("appid", &self.appid)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Loads the defaults, then `file` if given, then the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file or key at fault.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("WXPUSH_"))
            .collect();
        Self::load_with(file, &env)
    }

    /// Like [`Config::load`] with an explicit environment (tests).
    ///
    /// # Errors
    /// [`ConfigError`] naming the file or key at fault.
    pub fn load_with(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut table = parse_toml(DEFAULT_TOML, "config/default.toml (embedded)")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(path.display().to_string(), format!("cannot read: {e}"))
            })?;
            let overlay = parse_toml(&text, &path.display().to_string())?;
            merge(&mut table, overlay);
        }
        apply_env(&mut table, env)?;
        let raw = RawConfig::deserialize(toml::Value::Table(table)).map_err(|e| {
            // serde messages name the field and the expected type, never the value of a
            // string; keep only the message.
            ConfigError::new("config", e.message().to_owned())
        })?;
        Self::validate(raw)
    }

    /// Loads from TOML text layered over the defaults, without the environment (tests).
    ///
    /// # Errors
    /// [`ConfigError`] naming the key at fault.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let mut table = parse_toml(DEFAULT_TOML, "config/default.toml (embedded)")?;
        merge(&mut table, parse_toml(text, "config")?);
        let raw = RawConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::new("config", e.message().to_owned()))?;
        Self::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        let listen = raw.listen.trim().parse::<SocketAddr>().map_err(|_| {
            ConfigError::new(
                "listen",
                format!(
                    "expected an address and port like 127.0.0.1:8080 or 0.0.0.0:8080, got '{}'",
                    raw.listen
                ),
            )
        })?;
        let body_limit_bytes = positive(raw.body_limit_bytes, "body_limit_bytes", 1024)?;
        let data_dir = PathBuf::from(raw.data_dir.trim());
        if raw.data_dir.trim().is_empty() {
            return Err(ConfigError::new(
                "data_dir",
                "expected a directory path, got an empty value",
            ));
        }
        let skew = positive(raw.max_clock_skew_secs, "max_clock_skew_secs", 0)?;
        let max_clock_skew = (skew > 0).then(|| Duration::from_secs(skew as u64));
        let retention_days = positive(raw.retention_days, "retention_days", 7)?;
        let retention = Duration::from_secs(retention_days as u64 * 86_400);
        let delivery = DeliveryPolicy {
            attempt_timeout: Duration::from_secs(positive(
                raw.delivery.attempt_timeout_secs,
                "delivery.attempt_timeout_secs",
                1,
            )? as u64),
            max_attempts: u32::try_from(positive(
                raw.delivery.max_attempts,
                "delivery.max_attempts",
                1,
            )?)
            .unwrap_or(u32::MAX),
            backoff_initial: Duration::from_millis(positive(
                raw.delivery.backoff_initial_ms,
                "delivery.backoff_initial_ms",
                1,
            )? as u64),
            backoff_max: Duration::from_secs(positive(
                raw.delivery.backoff_max_secs,
                "delivery.backoff_max_secs",
                1,
            )? as u64),
        };
        let handler = match raw.handler.trim() {
            "log" => HandlerKind::Log,
            other => {
                return Err(ConfigError::new(
                    "handler",
                    format!("expected one of: log; got '{other}'"),
                ));
            }
        };
        let log_format = match raw.log.format.trim() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::new(
                    "log.format",
                    format!("expected \"text\" or \"json\", got '{other}'"),
                ));
            }
        };
        let app = validate_app(raw.app)?;
        Ok(Self {
            listen,
            body_limit_bytes,
            handler,
            data_dir,
            max_clock_skew,
            retention,
            delivery,
            log_format,
            app,
        })
    }

    /// True while the app still uses the public demo credentials.
    pub fn uses_demo_credentials(&self) -> bool {
        self.app.token.expose() == DEMO_TOKEN
    }

    /// The effective configuration as TOML, with the token and key masked.
    pub fn to_masked_toml(&self) -> String {
        let handler = match self.handler {
            HandlerKind::Log => "log",
        };
        let format = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        format!(
            "listen = \"{}\"\nbody_limit_bytes = {}\nhandler = \"{handler}\"\ndata_dir = \"{}\"\nmax_clock_skew_secs = {}\nretention_days = {}\n\n[delivery]\nattempt_timeout_secs = {}\nmax_attempts = {}\nbackoff_initial_ms = {}\nbackoff_max_secs = {}\n\n[log]\nformat = \"{format}\"\n\n[app]\nname = \"{}\"\ntoken = \"{}\"\nencoding_aes_key = \"{}\"\nappid = \"{}\"\n",
            self.listen,
            self.body_limit_bytes,
            self.data_dir.display(),
            self.max_clock_skew.map_or(0, |d| d.as_secs()),
            self.retention.as_secs() / 86_400,
            self.delivery.attempt_timeout.as_secs(),
            self.delivery.max_attempts,
            self.delivery.backoff_initial.as_millis(),
            self.delivery.backoff_max.as_secs(),
            self.app.name,
            mask(self.app.token.expose().len()),
            mask(43),
            self.app.appid,
        )
    }
}

fn mask(len: usize) -> String {
    format!("******** ({len} characters, hidden)")
}

fn positive(value: i64, key: &str, min: i64) -> Result<usize, ConfigError> {
    if value < min {
        return Err(ConfigError::new(
            key,
            format!("expected an integer of at least {min}, got {value}"),
        ));
    }
    usize::try_from(value)
        .map_err(|_| ConfigError::new(key, format!("{value} is too large for this machine")))
}

fn validate_app(raw: RawApp) -> Result<App, ConfigError> {
    let name = raw.name.trim().to_owned();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ConfigError::new(
            "app.name",
            format!("expected letters, digits, '-' or '_', got '{}'", raw.name),
        ));
    }
    let token = raw.token.trim();
    let token_len = token.chars().count();
    if !(3..=32).contains(&token_len) || !token.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ConfigError::new(
            "app.token",
            format!(
                "expected 3 to 32 letters or digits (as entered in the platform's console), got {token_len} characters{}",
                if token.chars().all(|c| c.is_ascii_alphanumeric()) {
                    ""
                } else {
                    " including other characters"
                }
            ),
        ));
    }
    let aes_key = AesKey::parse(&raw.encoding_aes_key)
        .map_err(|e| ConfigError::new("app.encoding_aes_key", e.to_string()))?;
    let appid = raw.appid.trim().to_owned();
    if appid.is_empty() || appid.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::new(
            "app.appid",
            "expected the app id from the platform's console (like wx1234567890abcdef), got an empty or blank value",
        ));
    }
    Ok(App {
        name,
        token: Secret::new(token.to_owned()),
        aes_key: Secret::new(aes_key),
        appid,
    })
}

/// Parses TOML, reporting only the message and line: the offending line may hold a secret.
fn parse_toml(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
        ConfigError::new(origin, format!("not valid TOML{at}: {}", e.message()))
    })
}

/// Deep-merges `overlay` into `base`: tables merge, other values replace.
fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn apply_env(table: &mut toml::Table, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (var, path, kind) in ENV_OVERRIDES {
        let Some(text) = env.get(*var) else { continue };
        let value = match kind {
            ValueKind::Text => toml::Value::String(text.clone()),
            ValueKind::Integer => text
                .trim()
                .parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|_| {
                    ConfigError::new(*var, format!("expected an integer, got '{text}'"))
                })?,
        };
        match path {
            [key] => {
                table.insert((*key).to_owned(), value);
            }
            [section, key] => {
                let entry = table
                    .entry((*section).to_owned())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let toml::Value::Table(t) = entry {
                    t.insert((*key).to_owned(), value);
                } else {
                    return Err(ConfigError::new(
                        *section,
                        format!("expected a table to hold {key} (set by {var})"),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Where a `--config` file argument came from, for messages.
pub fn config_path(arg: Option<PathBuf>) -> Option<PathBuf> {
    arg.or_else(|| std::env::var_os("WXPUSH_CONFIG").map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn embedded_defaults_load_and_use_demo_credentials() -> Result<(), ConfigError> {
        let cfg = Config::load_with(None, &env(&[]))?;
        assert!(cfg.uses_demo_credentials());
        assert_eq!(cfg.body_limit_bytes, 65536);
        Ok(())
    }

    #[test]
    fn every_env_override_names_a_real_key() -> Result<(), ConfigError> {
        let values: Vec<(&str, &str)> = ENV_OVERRIDES
            .iter()
            .map(|(var, _, kind)| {
                let value = match (var, kind) {
                    (&"WXPUSH_LISTEN", _) => "127.0.0.1:1",
                    (&"WXPUSH_HANDLER", _) => "log",
                    (&"WXPUSH_LOG_FORMAT", _) => "json",
                    (&"WXPUSH_ENCODING_AES_KEY", _) => {
                        "FqRfJtSZ1eTemafkXIDruAmV0cJPssQEyOyi7ODadSB"
                    }
                    (_, ValueKind::Integer) => "4096",
                    (_, ValueKind::Text) => "abc123",
                };
                (*var, value)
            })
            .collect();
        let cfg = Config::load_with(None, &env(&values))?;
        assert_eq!(cfg.data_dir, PathBuf::from("abc123"));
        assert_eq!(cfg.delivery.max_attempts, 4096);
        assert_eq!(cfg.retention.as_secs(), 4096 * 86_400);
        assert_eq!(cfg.log_format, LogFormat::Json);
        Ok(())
    }

    #[test]
    fn env_overrides_apply() -> Result<(), ConfigError> {
        let cfg = Config::load_with(
            None,
            &env(&[
                ("WXPUSH_LISTEN", "0.0.0.0:9000"),
                ("WXPUSH_TOKEN", "abc123"),
                ("WXPUSH_APPID", "wxabc"),
            ]),
        )?;
        assert_eq!(cfg.listen.port(), 9000);
        assert_eq!(cfg.app.appid, "wxabc");
        assert!(!cfg.uses_demo_credentials());
        Ok(())
    }

    #[test]
    fn short_key_error_names_key_and_length_but_not_value() {
        let key = "FqRfJtSZ1eTemafkXIDruAmV0cJPssQEyOyi7ODad";
        let err = Config::load_with(None, &env(&[("WXPUSH_ENCODING_AES_KEY", key)]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            err,
            "app.encoding_aes_key: expected 43 base64 characters, got 41"
        );
        assert!(!err.contains(key));
    }

    #[test]
    fn bad_token_error_does_not_print_the_token() {
        let err = Config::from_toml("[app]\ntoken = \"bad token!\"")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("app.token: expected 3 to 32 letters or digits"));
        assert!(!err.contains("bad token"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let unknown = Config::from_toml("listn = \"x\"")
            .err()
            .map(|e| e.to_string());
        assert!(unknown.is_some_and(|e| e.contains("listn")));
        let listen = Config::from_toml("listen = \"nowhere\"")
            .err()
            .map(|e| e.key);
        assert_eq!(listen.as_deref(), Some("listen"));
        let number = Config::load_with(None, &env(&[("WXPUSH_BODY_LIMIT_BYTES", "lots")]))
            .err()
            .map(|e| e.key);
        assert_eq!(number.as_deref(), Some("WXPUSH_BODY_LIMIT_BYTES"));
    }

    #[test]
    fn toml_syntax_errors_give_the_line_not_the_text() {
        let err = Config::from_toml("[app]\ntoken = \"secretvalue")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("secretvalue"), "{err}");
    }

    #[test]
    fn masked_toml_hides_secrets() -> Result<(), ConfigError> {
        let cfg = Config::load_with(None, &env(&[]))?;
        let text = cfg.to_masked_toml();
        assert!(!text.contains(DEMO_TOKEN));
        assert!(!text.contains("FqRfJtSZ"));
        assert!(text.contains("wx5a1b2c3d4e5f6a7b"));
        Ok(())
    }
}
