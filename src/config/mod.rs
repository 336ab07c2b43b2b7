//! Configuration: embedded defaults, an optional file, `WXPUSH_*` environment overrides,
//! validated once into typed values.
//!
//! Errors name the key and the expected form and never print a secret's value.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod delivery;
mod handlers;
mod layers;
mod masked;
mod numbers;
mod raw;
mod store;
mod tokens;
mod validate;

pub use crate::handler::{CommandConfig, HandlerKind, WebhookConfig};
pub use crate::server::HttpLimits;
pub use crate::store::{PostgresConfig, StoreKind};
pub use crate::telemetry::LogFormat;
#[cfg(test)]
use layers::{DEPRECATED, ENV_OVERRIDES, ValueKind};
use layers::{apply_env, merge, parse_toml};
use raw::{EMBEDDED, deserialize_raw};

use crate::dispatch::{AlertsConfig, DeliveryPolicy, RouteConfig, Routing};
use crate::push::app::App;
use crate::push::cipher::AesKey;
use crate::secret::Secret;
pub use crate::tokens::TokensConfig;

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
    /// Where events are delivered: `[[routes]]`, or the one route `default` with `handler`.
    pub routes: Vec<RouteConfig>,
    /// Where alerts go (`[alerts]`), if anywhere.
    pub alerts: Option<AlertsConfig>,
    /// The token service: managed apps, `api_base`, `secrets_key`, `[tokens]`.
    pub tokens: TokensConfig,
    /// The console's settings; `None` = off (no password and no API token).
    pub console: Option<crate::server::console::ConsoleConfig>,
    /// `categories.reconcile_secs`: how often accounts with submissions in review are
    /// pulled; `None` = never.
    pub categories_reconcile: Option<Duration>,
    /// `[admin] api_token`: the bearer token of the operator API; `None` = not served.
    pub admin_api_token: Option<Secret<String>>,
    /// What to say about deprecated keys the configuration uses (logged by `serve`).
    pub deprecations: Vec<String>,
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

    /// Which routes take which events: the configured routes, and the token service's own
    /// (`tokens`) when a third-party platform's tokens are managed.
    pub fn routing(&self) -> Routing {
        let configured = self.routes.iter().map(|r| r.filter.clone());
        Routing(
            configured
                .chain(crate::tokens::token_events(&self.tokens))
                .collect(),
        )
    }

    /// Every app: the default one first.
    pub fn apps(&self) -> impl Iterator<Item = &App> {
        std::iter::once(&self.app).chain(&self.extra_apps)
    }
}

/// Where a `--config` file argument came from, for messages.
pub fn config_path(arg: Option<PathBuf>) -> Option<PathBuf> {
    arg.or_else(|| std::env::var_os("WXPUSH_CONFIG").map(PathBuf::from))
}

#[cfg(test)]
mod tests;
