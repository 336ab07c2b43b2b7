//! Layering: the embedded defaults, a file, and `WXPUSH_*` environment variables, merged as
//! TOML tables before validation.

use std::collections::BTreeMap;

use super::ConfigError;

/// Environment variables and the keys they override, with the kind of value they hold.
pub(super) const ENV_OVERRIDES: &[(&str, &[&str], ValueKind)] = &[
    ("WXPUSH_LISTEN", &["listen"], ValueKind::Text),
    ("WXPUSH_ADMIN_LISTEN", &["admin_listen"], ValueKind::Text),
    (
        "WXPUSH_ALLOW_DEMO_CREDENTIALS",
        &["allow_demo_credentials"],
        ValueKind::Bool,
    ),
    (
        "WXPUSH_HTTP_HEADER_TIMEOUT_SECS",
        &["http", "header_timeout_secs"],
        ValueKind::Integer,
    ),
    (
        "WXPUSH_HTTP_IDLE_TIMEOUT_SECS",
        &["http", "idle_timeout_secs"],
        ValueKind::Integer,
    ),
    (
        "WXPUSH_HTTP_MAX_CONNECTIONS",
        &["http", "max_connections"],
        ValueKind::Integer,
    ),
    (
        "WXPUSH_BODY_LIMIT_BYTES",
        &["body_limit_bytes"],
        ValueKind::Integer,
    ),
    ("WXPUSH_HANDLER", &["handler"], ValueKind::Text),
    ("WXPUSH_API_BASE", &["api_base"], ValueKind::Text),
    ("WXPUSH_SECRETS_KEY", &["secrets_key"], ValueKind::Text),
    (
        "WXPUSH_TOKENS_REFRESH_MARGIN_SECS",
        &["tokens", "refresh_margin_secs"],
        ValueKind::Integer,
    ),
    (
        "WXPUSH_CATEGORIES_RECONCILE_SECS",
        &["categories", "reconcile_secs"],
        ValueKind::Integer,
    ),
    (
        "WXPUSH_ADMIN_API_TOKEN",
        &["admin", "api_token"],
        ValueKind::Text,
    ),
    (
        "WXPUSH_ADMIN_CONSOLE_PASSWORD",
        &["admin", "console_password"],
        ValueKind::Text,
    ),
    (
        "WXPUSH_ADMIN_SECURE_COOKIES",
        &["admin", "secure_cookies"],
        ValueKind::Bool,
    ),
    (
        "WXPUSH_COMPONENT_APPSECRET",
        &["app", "component_appsecret"],
        ValueKind::Text,
    ),
    ("WXPUSH_APPSECRET", &["app", "appsecret"], ValueKind::Text),
    ("WXPUSH_DATA_DIR", &["data_dir"], ValueKind::Text),
    ("WXPUSH_STORE", &["store"], ValueKind::Text),
    ("WXPUSH_DATABASE_URL", &["postgres", "url"], ValueKind::Text),
    (
        "WXPUSH_POSTGRES_SCHEMA",
        &["postgres", "schema"],
        ValueKind::Text,
    ),
    (
        "WXPUSH_POSTGRES_POOL_SIZE",
        &["postgres", "pool_size"],
        ValueKind::Integer,
    ),
    (
        "WXPUSH_POSTGRES_CA_FILE",
        &["postgres", "ca_file"],
        ValueKind::Text,
    ),
    (
        "WXPUSH_POSTGRES_LEASE_SECS",
        &["postgres", "lease_secs"],
        ValueKind::Integer,
    ),
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
        "WXPUSH_DELIVERY_RETRY_SCHEDULE_SECS",
        &["delivery", "retry_schedule_secs"],
        ValueKind::Numbers,
    ),
    (
        "WXPUSH_DELIVERY_CONCURRENCY",
        &["delivery", "concurrency"],
        ValueKind::Integer,
    ),
    (
        "WXPUSH_DELIVERY_BREAKER_FAILURES",
        &["delivery", "breaker_failures"],
        ValueKind::Integer,
    ),
    (
        "WXPUSH_DELIVERY_BREAKER_PROBE_SECS",
        &["delivery", "breaker_probe_secs"],
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
    (
        "WXPUSH_ALERTS_WEBHOOK_URL",
        &["alerts", "webhook_url"],
        ValueKind::Text,
    ),
    (
        "WXPUSH_ALERTS_SECRET",
        &["alerts", "secret"],
        ValueKind::Text,
    ),
    (
        "WXPUSH_ALERTS_COALESCE_SECS",
        &["alerts", "coalesce_secs"],
        ValueKind::Integer,
    ),
    ("WXPUSH_APP_NAME", &["app", "name"], ValueKind::Text),
    ("WXPUSH_TOKEN", &["app", "token"], ValueKind::Text),
    (
        "WXPUSH_ENCODING_AES_KEY",
        &["app", "encoding_aes_key"],
        ValueKind::Text,
    ),
    ("WXPUSH_APPID", &["app", "appid"], ValueKind::Text),
    (
        "WXPUSH_PREVIOUS_TOKEN",
        &["app", "previous_token"],
        ValueKind::Text,
    ),
    (
        "WXPUSH_PREVIOUS_ENCODING_AES_KEY",
        &["app", "previous_encoding_aes_key"],
        ValueKind::Text,
    ),
    (
        "WXPUSH_REQUIRE_ENCRYPTION",
        &["app", "require_encryption"],
        ValueKind::Bool,
    ),
    ("WXPUSH_WEBHOOK_URL", &["webhook", "url"], ValueKind::Text),
    (
        "WXPUSH_WEBHOOK_SECRET",
        &["webhook", "secret"],
        ValueKind::Text,
    ),
    (
        "WXPUSH_WEBHOOK_TIMEOUT_SECS",
        &["webhook", "timeout_secs"],
        ValueKind::Integer,
    ),
    ("WXPUSH_COMMAND", &["command", "program"], ValueKind::Words),
    (
        "WXPUSH_COMMAND_SHELL",
        &["command", "shell"],
        ValueKind::Bool,
    ),
    (
        "WXPUSH_COMMAND_TIMEOUT_SECS",
        &["command", "timeout_secs"],
        ValueKind::Integer,
    ),
];

/// Keys that still work but are no longer in the defaults: setting one logs what to write
/// instead.
#[cfg(test)]
pub(super) const DEPRECATED: &[&str] = &[
    "delivery.max_attempts",
    "delivery.backoff_initial_ms",
    "delivery.backoff_max_secs",
];

/// How an environment variable's text becomes a TOML value.
#[derive(Clone, Copy)]
pub(super) enum ValueKind {
    /// As is.
    Text,
    /// A decimal integer.
    Integer,
    /// Numbers separated by commas, as an array (empty text: none).
    Numbers,
    /// Words separated by whitespace, as an array (a program and its arguments).
    Words,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`).
    Bool,
}

/// The environment variable among `env` that sets the key at `path`, if one does.
pub(super) fn env_var_for(path: &[&str], env: &BTreeMap<String, String>) -> Option<&'static str> {
    ENV_OVERRIDES
        .iter()
        .find(|(var, key, _)| *key == path && env.contains_key(*var))
        .map(|(var, _, _)| *var)
}

/// Whether `table` sets the key at `path` (or, for an unknown key, the table holding it).
pub(super) fn holds(table: &toml::Table, path: &[&str]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return true;
    };
    // `apps[0]` names an entry of the `apps` array.
    let name = first.split('[').next().unwrap_or(first);
    match table.get(name) {
        None => false,
        Some(toml::Value::Table(inner)) => rest.is_empty() || holds(inner, rest),
        Some(toml::Value::Array(items)) => !items.is_empty(),
        Some(_) => rest.is_empty(),
    }
}

/// Parses TOML, reporting only the message and line: the offending line may hold a secret.
pub(super) fn parse_toml(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
        ConfigError::new(origin, format!("not valid TOML{at}: {}", e.message()))
    })
}

/// Deep-merges `overlay` into `base`: tables merge, other values replace.
pub(super) fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

pub(super) fn apply_env(
    table: &mut toml::Table,
    env: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
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
            ValueKind::Numbers => toml::Value::Array(
                text.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| {
                        t.parse::<i64>()
                            .map(toml::Value::Integer)
                            .or_else(|_| t.parse::<f64>().map(toml::Value::Float))
                            .map_err(|_| {
                                ConfigError::new(
                                    *var,
                                    format!("expected numbers separated by commas, like 5,300,1800; got '{text}'"),
                                )
                            })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            ValueKind::Words => toml::Value::Array(
                text.split_whitespace()
                    .map(|w| toml::Value::String(w.to_owned()))
                    .collect(),
            ),
            ValueKind::Bool => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => toml::Value::Boolean(true),
                "false" | "0" | "no" | "" => toml::Value::Boolean(false),
                _ => {
                    return Err(ConfigError::new(
                        *var,
                        format!("expected true or false, got '{text}'"),
                    ));
                }
            },
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
