//! Validation: the raw configuration into typed values, one function per section. Errors
//! name the key and the expected form, never a secret's value.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::delivery::{validate_alerts, validate_delivery, validate_routes};
use super::handlers::{validate_command, validate_webhook};
use super::numbers::{positive, secs};
use super::raw::{RawApp, RawCommand, RawConfig, RawWebhook};
use super::tokens::{AppSecrets, validate_admin, validate_tokens};
use super::{Config, ConfigError, HttpLimits, LogFormat, store};
use crate::handler::HandlerKind;
use crate::push::app::App;
use crate::push::cipher::AesKey;
use crate::secret::Secret;

impl Config {
    pub(super) fn validate(mut raw: RawConfig) -> Result<Self, ConfigError> {
        let (listen, admin_listen, http) = validate_addresses(&raw)?;
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
        let (delivery, deprecations) = validate_delivery(&raw.delivery)?;
        let store = store::validate_store(&raw.store, raw.postgres, delivery.attempt_timeout)?;
        let handler = validate_handler(&raw.handler, raw.webhook, raw.command)?;
        let log_format = validate_log(&raw.log.format)?;
        let secrets = AppSecrets::take(&mut raw.app, &mut raw.apps);
        let (app, extra_apps) = validate_apps(raw.app, raw.apps)?;
        let apps: Vec<&App> = std::iter::once(&app).chain(&extra_apps).collect();
        let tokens = validate_tokens(&apps, secrets, &raw.api_base, &raw.secrets_key, &raw.tokens)?;
        let (admin_api_token, console) = validate_admin(raw.admin)?;
        let reconcile = positive(
            raw.categories.reconcile_secs,
            "categories.reconcile_secs",
            0,
        )?;
        let categories_reconcile = (reconcile > 0).then(|| Duration::from_secs(reconcile as u64));
        let routes = validate_routes(raw.routes, &handler, &apps)?;
        let alerts = validate_alerts(raw.alerts)?;
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
            routes,
            alerts,
            tokens,
            categories_reconcile,
            admin_api_token,
            console,
            deprecations,
        })
    }
}

/// `listen`, `admin_listen` and the `[http]` limits.
fn validate_addresses(
    raw: &RawConfig,
) -> Result<(SocketAddr, Option<SocketAddr>, HttpLimits), ConfigError> {
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
    Ok((listen, admin_listen, http))
}

/// `handler` and the settings of the one it names.
fn validate_handler(
    name: &str,
    webhook: RawWebhook,
    command: RawCommand,
) -> Result<HandlerKind, ConfigError> {
    Ok(match name.trim() {
        "log" => HandlerKind::Log,
        "webhook" => HandlerKind::Webhook(validate_webhook(
            &webhook.url,
            &webhook.secret,
            webhook.timeout_secs,
            "webhook",
        )?),
        "command" => HandlerKind::Command(validate_command(
            command.program,
            command.shell,
            command.timeout_secs,
            "command",
        )?),
        other => {
            return Err(ConfigError::new(
                "handler",
                format!("expected one of: log, webhook, command; got '{other}'"),
            ));
        }
    })
}

/// `log.format`.
fn validate_log(format: &str) -> Result<LogFormat, ConfigError> {
    Ok(match format.trim() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(ConfigError::new(
                "log.format",
                format!("expected \"text\" or \"json\", got '{other}'"),
            ));
        }
    })
}

/// `[app]` and `[[apps]]`: valid each, with unique names.
fn validate_apps(first: RawApp, more: Vec<RawApp>) -> Result<(App, Vec<App>), ConfigError> {
    let app = validate_app(first, "app")?;
    let mut extra_apps = Vec::with_capacity(more.len());
    for (i, raw_app) in more.into_iter().enumerate() {
        let key = format!("apps[{i}]");
        let extra = validate_app(raw_app, &key)?;
        let taken = extra.name == app.name || extra_apps.iter().any(|a: &App| a.name == extra.name);
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
    Ok((app, extra_apps))
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
