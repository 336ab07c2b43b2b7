//! Configuration: embedded defaults, an optional file, `WXPUSH_*` environment overrides,
//! validated once into typed values.
//!
//! Errors name the key and the expected form and never print a secret's value.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod layers;
mod store;

#[cfg(test)]
use layers::{ENV_OVERRIDES, ValueKind};
use layers::{apply_env, merge, parse_toml};
pub use crate::handler::{CommandConfig, HandlerKind, WebhookConfig};
pub use crate::store::{PostgresConfig, StoreKind};

use crate::push::app::App;
use crate::push::cipher::AesKey;
use crate::dispatch::DeliveryPolicy;
use crate::secret::Secret;

/// The embedded `config/default.toml`.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// The demo token shipped in the defaults; a server using it warns loudly.
pub const DEMO_TOKEN: &str = "wxpushDemoToken";
/// The demo EncodingAESKey shipped in the defaults.
pub const DEMO_AES_KEY: &str = "FqRfJtSZ1eTemafkXIDruAmV0cJPssQEyOyi7ODadSB";
/// The demo app id shipped in the defaults.
pub const DEMO_APPID: &str = "wx5a1b2c3d4e5f6a7b";

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where `/healthz`, `/readyz` and `/metrics` are served instead of on `listen`.
    pub admin_listen: Option<SocketAddr>,
    /// Start on a non-loopback address even while demo credentials are configured.
    pub allow_demo_credentials: bool,
    /// Connection limits of the HTTP server.
    pub http: HttpLimits,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// The handler receiving events.
    pub handler: HandlerKind,
    /// Directory of the durable inbox (the SQLite store) and of nothing else.
    pub data_dir: PathBuf,
    /// Which inbox holds the events.
    pub store: StoreKind,
    /// Largest accepted distance between a push's timestamp and the clock; `None` = no check.
    pub max_clock_skew: Option<Duration>,
    /// How long delivered events (and their dedup memory) are kept.
    pub retention: Duration,
    /// Retry policy for handler calls.
    pub delivery: DeliveryPolicy,
    /// Log output format.
    pub log_format: LogFormat,
    /// The default app: `/wechat` and `/wechat/{authorizer_appid}/callback`.
    pub app: App,
    /// Further apps, each at `/wechat/{name}` and `/wechat/{name}/{authorizer_appid}/callback`.
    pub extra_apps: Vec<App>,
}

/// Connection limits of the HTTP server: no client can hold a connection, or all of them,
/// without sending requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request's headers must be complete this long after its first byte (or after the
    /// connection opened); otherwise the connection is closed.
    pub header_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// Most connections open at once; further clients wait in the listen queue.
    pub max_connections: usize,
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
    pub(crate) fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: String,
    admin_listen: String,
    allow_demo_credentials: bool,
    http: RawHttp,
    body_limit_bytes: i64,
    handler: String,
    data_dir: String,
    store: String,
    postgres: store::RawPostgres,
    max_clock_skew_secs: i64,
    retention_days: i64,
    delivery: RawDelivery,
    log: RawLog,
    webhook: RawWebhook,
    command: RawCommand,
    app: RawApp,
    #[serde(default)]
    apps: Vec<RawApp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    header_timeout_secs: i64,
    idle_timeout_secs: i64,
    max_connections: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    secret: String,
    timeout_secs: i64,
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
struct RawCommand {
    program: Vec<String>,
    shell: bool,
    timeout_secs: i64,
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
    #[serde(default)]
    previous_token: String,
    #[serde(default)]
    previous_encoding_aes_key: String,
    #[serde(default)]
    require_encryption: bool,
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
        let mut table = parse_toml(DEFAULT_TOML, EMBEDDED)?;
        let mut file_layer = None;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(path.display().to_string(), format!("cannot read: {e}"))
            })?;
            let overlay = parse_toml(&text, &path.display().to_string())?;
            file_layer = Some((path.display().to_string(), overlay.clone()));
            merge(&mut table, overlay);
        }
        apply_env(&mut table, env)?;
        let raw = deserialize_raw(table, file_layer.as_ref(), env)?;
        Self::validate(raw)
    }

    /// Loads from TOML text layered over the defaults, without the environment (tests).
    ///
    /// # Errors
    /// [`ConfigError`] naming the key at fault.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let mut table = parse_toml(DEFAULT_TOML, EMBEDDED)?;
        let overlay = parse_toml(text, "config")?;
        let file_layer = ("the given TOML".to_owned(), overlay.clone());
        merge(&mut table, overlay);
        let raw = deserialize_raw(table, Some(&file_layer), &BTreeMap::new())?;
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
        let admin_listen = match raw.admin_listen.trim() {
            "" => None,
            text => Some(text.parse::<SocketAddr>().map_err(|_| {
                ConfigError::new(
                    "admin_listen",
                    format!(
                        "expected an address and port like 127.0.0.1:9090, or empty for none; got '{text}'"
                    ),
                )
            })?),
        };
        if admin_listen.is_some_and(|a| a == listen && a.port() != 0) {
            return Err(ConfigError::new(
                "admin_listen",
                "must differ from listen: the operations endpoints leave the public port",
            ));
        }
        let http = HttpLimits {
            header_timeout: secs(raw.http.header_timeout_secs, "http.header_timeout_secs", 1)?,
            idle_timeout: secs(raw.http.idle_timeout_secs, "http.idle_timeout_secs", 1)?,
            max_connections: positive(raw.http.max_connections, "http.max_connections", 1)?,
        };
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
            attempt_timeout: secs(
                raw.delivery.attempt_timeout_secs,
                "delivery.attempt_timeout_secs",
                1,
            )?,
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
            backoff_max: secs(
                raw.delivery.backoff_max_secs,
                "delivery.backoff_max_secs",
                1,
            )?,
        };
        let store = store::validate_store(&raw.store, raw.postgres, delivery.attempt_timeout)?;
        let handler = match raw.handler.trim() {
            "log" => HandlerKind::Log,
            "webhook" => HandlerKind::Webhook(validate_webhook(raw.webhook)?),
            "command" => HandlerKind::Command(validate_command(raw.command)?),
            other => {
                return Err(ConfigError::new(
                    "handler",
                    format!("expected one of: log, webhook, command; got '{other}'"),
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
        let app = validate_app(raw.app, "app")?;
        let mut extra_apps = Vec::with_capacity(raw.apps.len());
        for (i, raw_app) in raw.apps.into_iter().enumerate() {
            let key = format!("apps[{i}]");
            let extra = validate_app(raw_app, &key)?;
            let taken =
                extra.name == app.name || extra_apps.iter().any(|a: &App| a.name == extra.name);
            if taken || extra.name == "callback" {
                return Err(ConfigError::new(
                    format!("{key}.name"),
                    format!(
                        "'{}' is already used (names must be unique and not 'callback')",
                        extra.name
                    ),
                ));
            }
            extra_apps.push(extra);
        }
        Ok(Self {
            listen,
            admin_listen,
            allow_demo_credentials: raw.allow_demo_credentials,
            http,
            body_limit_bytes,
            handler,
            data_dir,
            store,
            max_clock_skew,
            retention,
            delivery,
            log_format,
            app,
            extra_apps,
        })
    }

    /// Where events are stored, for messages: the SQLite file or the PostgreSQL target.
    pub fn store_description(&self) -> String {
        match &self.store {
            StoreKind::Sqlite => format!(
                "the SQLite inbox {}",
                self.data_dir.join(crate::store::sqlite::DB_FILE).display()
            ),
            StoreKind::Postgres(pg) => {
                format!("PostgreSQL {} (schema {})", pg.target, pg.schema)
            }
        }
    }

    /// True while any app still uses any of the public demo credentials.
    pub fn uses_demo_credentials(&self) -> bool {
        !self.demo_credentials().is_empty()
    }

    /// Every credential still at its public demo value, as `app.token (WXPUSH_TOKEN)`; a
    /// server using any of them can be sent forged pushes by anyone.
    pub fn demo_credentials(&self) -> Vec<String> {
        let mut found = Vec::new();
        // Compared in canonical form: the demo text's last character carries unused bits.
        let demo_key = AesKey::parse(DEMO_AES_KEY)
            .ok()
            .map(|k| k.to_encoding_aes_key());
        for (i, app) in self.apps().enumerate() {
            let prefix = if i == 0 {
                "app".to_owned()
            } else {
                format!("apps[{}]", i - 1)
            };
            let checks = [
                (app.token.expose() == DEMO_TOKEN, "token", "WXPUSH_TOKEN"),
                (
                    Some(app.aes_key.expose().to_encoding_aes_key()) == demo_key,
                    "encoding_aes_key",
                    "WXPUSH_ENCODING_AES_KEY",
                ),
                (app.appid == DEMO_APPID, "appid", "WXPUSH_APPID"),
            ];
            for (is_demo, key, var) in checks {
                if is_demo {
                    found.push(if i == 0 {
                        format!("{prefix}.{key} ({var})")
                    } else {
                        format!("{prefix}.{key}")
                    });
                }
            }
        }
        found
    }

    /// Refuses a server that would accept forged pushes from the network: listening on a
    /// non-loopback address while a demo credential is configured, unless
    /// `allow_demo_credentials` is set.
    ///
    /// # Errors
    /// [`ConfigError`] naming every credential still at its demo value.
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        let demo = self.demo_credentials();
        if demo.is_empty() || self.listen.ip().is_loopback() || self.allow_demo_credentials {
            return Ok(());
        }
        Err(ConfigError::new(
            "listen",
            format!(
                "{} is reachable from the network, but these credentials are still the public demo values: {}. Anyone could sign pushes for this server. Set them (env or --config), or set WXPUSH_ALLOW_DEMO_CREDENTIALS=true to start anyway",
                self.listen,
                demo.join(", ")
            ),
        ))
    }

    /// Every app: the default one first.
    pub fn apps(&self) -> impl Iterator<Item = &App> {
        std::iter::once(&self.app).chain(&self.extra_apps)
    }

    /// The effective configuration as TOML, with tokens, keys and the webhook secret masked.
    pub fn to_masked_toml(&self) -> String {
        use std::fmt::Write as _;
        let format = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        let mut out = format!(
            "listen = \"{}\"\nadmin_listen = \"{}\"\nallow_demo_credentials = {}\nbody_limit_bytes = {}\nhandler = \"{}\"\ndata_dir = \"{}\"\nstore = \"{}\"\nmax_clock_skew_secs = {}\nretention_days = {}\n\n[http]\nheader_timeout_secs = {}\nidle_timeout_secs = {}\nmax_connections = {}\n\n[delivery]\nattempt_timeout_secs = {}\nmax_attempts = {}\nbackoff_initial_ms = {}\nbackoff_max_secs = {}\n\n[log]\nformat = \"{format}\"\n",
            self.listen,
            self.admin_listen.map(|a| a.to_string()).unwrap_or_default(),
            self.allow_demo_credentials,
            self.body_limit_bytes,
            self.handler.name(),
            self.data_dir.display(),
            self.store.name(),
            self.max_clock_skew.map_or(0, |d| d.as_secs()),
            self.retention.as_secs() / 86_400,
            self.http.header_timeout.as_secs(),
            self.http.idle_timeout.as_secs(),
            self.http.max_connections,
            self.delivery.attempt_timeout.as_secs(),
            self.delivery.max_attempts,
            self.delivery.backoff_initial.as_millis(),
            self.delivery.backoff_max.as_secs(),
        );
        if let StoreKind::Postgres(pg) = &self.store {
            let _ = write!(
                out,
                "\n[postgres]\nurl = \"{} (password hidden)\"\nschema = \"{}\"\npool_size = {}\nlease_secs = {}\n",
                pg.target,
                pg.schema,
                pg.pool_size,
                pg.lease.as_secs()
            );
        }
        match &self.handler {
            HandlerKind::Log => {}
            HandlerKind::Webhook(w) => {
                let _ = write!(
                    out,
                    "\n[webhook]\nurl = \"{}\"\nsecret = \"{}\"\ntimeout_secs = {}\n",
                    w.url,
                    w.secret
                        .as_ref()
                        .map_or_else(|| "(none)".to_owned(), |s| mask(s.expose().len())),
                    w.timeout.as_secs()
                );
            }
            HandlerKind::Command(c) => {
                let _ = write!(
                    out,
                    "\n[command]\nprogram = {:?}\nshell = {}\ntimeout_secs = {}\n",
                    c.program,
                    c.shell,
                    c.timeout.as_secs()
                );
            }
        }
        for (i, app) in self.apps().enumerate() {
            let header = if i == 0 { "[app]" } else { "[[apps]]" };
            let _ = write!(
                out,
                "\n{header}\nname = \"{}\"\ntoken = \"{}\"\nencoding_aes_key = \"{}\"\nappid = \"{}\"\nrequire_encryption = {}\n",
                app.name,
                mask(app.token.expose().len()),
                mask(43),
                app.appid,
                app.require_encryption,
            );
            if let Some(t) = &app.previous_token {
                let _ = writeln!(out, "previous_token = \"{}\"", mask(t.expose().len()));
            }
            if app.previous_aes_key.is_some() {
                let _ = writeln!(out, "previous_encoding_aes_key = \"{}\"", mask(43));
            }
        }
        out
    }
}

/// Where the embedded defaults come from, for messages.
const EMBEDDED: &str = "config/default.toml (embedded)";

/// Reads the merged layers into [`RawConfig`]. An error names the key (`delivery.max_attempts`,
/// `app.tokn`) and the layer that set it: the environment variable, the file, or the
/// embedded defaults. A wrong type is described by its kind, never by its value, which may
/// be a secret.
fn deserialize_raw(
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

fn mask(len: usize) -> String {
    format!("******** ({len} characters, hidden)")
}

/// A whole number of seconds of at least `min`.
fn secs(value: i64, key: &str, min: i64) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(positive(value, key, min)? as u64))
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

fn validate_token(token: &str, key: &str) -> Result<Secret<String>, ConfigError> {
    let token = token.trim();
    let token_len = token.chars().count();
    let alnum = token.chars().all(|c| c.is_ascii_alphanumeric());
    if !(3..=32).contains(&token_len) || !alnum {
        return Err(ConfigError::new(
            key,
            format!(
                "expected 3 to 32 letters or digits (as entered in the platform's console), got {token_len} characters{}",
                if alnum {
                    ""
                } else {
                    " including other characters"
                }
            ),
        ));
    }
    Ok(Secret::new(token.to_owned()))
}

fn validate_app(raw: RawApp, key: &str) -> Result<App, ConfigError> {
    let name = raw.name.trim().to_owned();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ConfigError::new(
            format!("{key}.name"),
            format!("expected letters, digits, '-' or '_', got '{}'", raw.name),
        ));
    }
    let token = validate_token(&raw.token, &format!("{key}.token"))?;
    let aes_key = AesKey::parse(&raw.encoding_aes_key)
        .map_err(|e| ConfigError::new(format!("{key}.encoding_aes_key"), e.to_string()))?;
    let appid = raw.appid.trim().to_owned();
    if !crate::push::app::is_appid(&appid) {
        return Err(ConfigError::new(
            format!("{key}.appid"),
            format!(
                "expected the app id from the platform's console: wx and 16 letters or digits (like wx1234567890abcdef), got {} characters",
                appid.chars().count()
            ),
        ));
    }
    let previous_token = if raw.previous_token.trim().is_empty() {
        None
    } else {
        Some(validate_token(
            &raw.previous_token,
            &format!("{key}.previous_token"),
        )?)
    };
    let previous_aes_key = if raw.previous_encoding_aes_key.trim().is_empty() {
        None
    } else {
        Some(Secret::new(
            AesKey::parse(&raw.previous_encoding_aes_key).map_err(|e| {
                ConfigError::new(format!("{key}.previous_encoding_aes_key"), e.to_string())
            })?,
        ))
    };
    Ok(App {
        name,
        token,
        aes_key: Secret::new(aes_key),
        appid,
        previous_token,
        previous_aes_key,
        require_encryption: raw.require_encryption,
    })
}

fn validate_webhook(raw: RawWebhook) -> Result<WebhookConfig, ConfigError> {
    let url = raw.url.trim().to_owned();
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
        return Err(ConfigError::new(
            "webhook.url",
            "expected an http:// or https:// URL (env WXPUSH_WEBHOOK_URL) for handler = \"webhook\"",
        ));
    }
    let secret = (!raw.secret.is_empty()).then(|| Secret::new(raw.secret));
    let timeout = secs(raw.timeout_secs, "webhook.timeout_secs", 1)?;
    Ok(WebhookConfig {
        url,
        secret,
        timeout,
    })
}

fn validate_command(raw: RawCommand) -> Result<CommandConfig, ConfigError> {
    let program: Vec<String> = raw.program.into_iter().filter(|w| !w.is_empty()).collect();
    if program.is_empty() {
        return Err(ConfigError::new(
            "command.program",
            "expected a program and its arguments, e.g. [\"/usr/local/bin/on-event\", \"--verbose\"] (env WXPUSH_COMMAND) for handler = \"command\"",
        ));
    }
    let timeout = secs(raw.timeout_secs, "command.timeout_secs", 1)?;
    Ok(CommandConfig {
        program,
        shell: raw.shell,
        timeout,
    })
}

/// Where a `--config` file argument came from, for messages.
pub fn config_path(arg: Option<PathBuf>) -> Option<PathBuf> {
    arg.or_else(|| std::env::var_os("WXPUSH_CONFIG").map(PathBuf::from))
}

#[cfg(test)]
mod tests;
