//! Validation of `[delivery]` (the retry schedule, concurrency, the breaker, and the
//! deprecated backoff keys), of `[[routes]]` and of `[alerts]`.

use std::time::Duration;

use super::ConfigError;
use super::handlers::{validate_command, validate_webhook};
use super::numbers::{positive, secs};
use super::raw::{RawAlerts, RawDelivery, RawRoute, Seconds};
use crate::dispatch::{AlertsConfig, DeliveryPolicy, Jitter, RouteConfig, RouteFilter};
use crate::handler::HandlerKind;
use crate::push::app::App;
use crate::secret::Secret;
use crate::store::DEFAULT_ROUTE;

/// The `[delivery]` table, and what to say about deprecated keys it uses.
pub(super) fn validate_delivery(
    raw: &RawDelivery,
) -> Result<(DeliveryPolicy, Vec<String>), ConfigError> {
    let mut policy = DeliveryPolicy {
        attempt_timeout: secs(raw.attempt_timeout_secs, "delivery.attempt_timeout_secs", 1)?,
        retry_schedule: raw
            .retry_schedule_secs
            .iter()
            .enumerate()
            .map(|(i, s)| wait(*s, i))
            .collect::<Result<_, _>>()?,
        jitter: Jitter::Around,
        concurrency: positive(raw.concurrency, "delivery.concurrency", 1)?,
        breaker_failures: u32::try_from(positive(
            raw.breaker_failures,
            "delivery.breaker_failures",
            0,
        )?)
        .unwrap_or(u32::MAX),
        breaker_probe: secs(raw.breaker_probe_secs, "delivery.breaker_probe_secs", 1)?,
    };
    let mut deprecations = Vec::new();
    if raw.max_attempts.is_some()
        || raw.backoff_initial_ms.is_some()
        || raw.backoff_max_secs.is_some()
    {
        let max_attempts = positive(raw.max_attempts.unwrap_or(8), "delivery.max_attempts", 1)?;
        let initial = positive(
            raw.backoff_initial_ms.unwrap_or(1000),
            "delivery.backoff_initial_ms",
            1,
        )?;
        let max = secs(
            raw.backoff_max_secs.unwrap_or(600),
            "delivery.backoff_max_secs",
            1,
        )?;
        policy.retry_schedule = DeliveryPolicy::exponential_schedule(
            u32::try_from(max_attempts).unwrap_or(u32::MAX),
            Duration::from_millis(initial as u64),
            max,
        );
        policy.jitter = Jitter::Below;
        let waits: Vec<String> = policy
            .retry_schedule
            .iter()
            .map(|w| format!("{}", w.as_secs_f64()))
            .collect();
        deprecations.push(format!(
            "delivery.max_attempts, delivery.backoff_initial_ms and delivery.backoff_max_secs are deprecated (and used as set: a delivery is dead after {max_attempts} attempts, about {} s). Write `retry_schedule_secs = [{}]` in [delivery] (env WXPUSH_DELIVERY_RETRY_SCHEDULE_SECS={}) for the same waits, or remove them for the default schedule of about 28 hours",
            policy.retry_schedule.iter().map(Duration::as_secs_f64).sum::<f64>().round(),
            waits.join(", "),
            waits.join(",")
        ));
    }
    Ok((policy, deprecations))
}

/// One wait of the retry schedule: at least 10 ms, at most a year.
fn wait(value: Seconds, index: usize) -> Result<Duration, ConfigError> {
    let secs = value.as_f64();
    if !(0.01..=31_536_000.0).contains(&secs) {
        return Err(ConfigError::new(
            format!("delivery.retry_schedule_secs[{index}]"),
            format!("expected a number of seconds from 0.01 to 31536000, got {secs}"),
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `[[routes]]`, or without any the top-level `handler` as the one route `default`.
pub(super) fn validate_routes(
    raw: Vec<RawRoute>,
    default: &HandlerKind,
    apps: &[&App],
) -> Result<Vec<RouteConfig>, ConfigError> {
    if raw.is_empty() {
        return Ok(vec![RouteConfig {
            filter: RouteFilter::all(DEFAULT_ROUTE),
            handler: default.clone(),
        }]);
    }
    let mut routes: Vec<RouteConfig> = Vec::with_capacity(raw.len());
    for (i, route) in raw.into_iter().enumerate() {
        let key = format!("routes[{i}]");
        let name = route.name.trim().to_owned();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(ConfigError::new(
                format!("{key}.name"),
                format!(
                    "expected 1 to 64 letters, digits, '-' or '_', got '{}'",
                    crate::escape::printable(&route.name)
                ),
            ));
        }
        if name == crate::tokens::TOKENS_ROUTE {
            return Err(ConfigError::new(
                format!("{key}.name"),
                "'tokens' is the token service's own route: choose another name",
            ));
        }
        if routes.iter().any(|r| r.filter.name == name) {
            return Err(ConfigError::new(
                format!("{key}.name"),
                format!("'{name}' is already used: route names must be unique"),
            ));
        }
        for app in &route.apps {
            if !apps.iter().any(|a| a.name == *app) {
                return Err(ConfigError::new(
                    format!("{key}.apps"),
                    format!(
                        "'{}' is not a configured app (configured: {})",
                        crate::escape::printable(app),
                        apps.iter()
                            .map(|a| a.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        if route.events.iter().any(|e| e.trim().is_empty()) {
            return Err(ConfigError::new(
                format!("{key}.events"),
                "expected event names like \"wxa_category_audit\", got an empty one",
            ));
        }
        let handler = route_handler(&key, &route)?;
        routes.push(RouteConfig {
            filter: RouteFilter {
                name,
                events: route.events.iter().map(|e| e.trim().to_owned()).collect(),
                apps: route.apps,
            },
            handler,
        });
    }
    Ok(routes)
}

/// A route's handler from its `handler` name and the settings table of that name.
fn route_handler(key: &str, route: &RawRoute) -> Result<HandlerKind, ConfigError> {
    let needs = |table: &str| {
        ConfigError::new(
            format!("{key}.{table}"),
            format!(
                "handler = \"{table}\" needs its settings in the route, e.g. {table} = {}",
                if table == "webhook" {
                    "{ url = \"https://…\" }"
                } else {
                    "{ program = [\"/usr/local/bin/on-event\"] }"
                }
            ),
        )
    };
    Ok(match route.handler.trim() {
        "log" => HandlerKind::Log,
        "webhook" => {
            let raw = route.webhook.as_ref().ok_or_else(|| needs("webhook"))?;
            HandlerKind::Webhook(validate_webhook(
                &raw.url,
                &raw.secret,
                raw.timeout_secs.unwrap_or(10),
                &format!("{key}.webhook"),
            )?)
        }
        "command" => {
            let raw = route.command.as_ref().ok_or_else(|| needs("command"))?;
            HandlerKind::Command(validate_command(
                raw.program.clone(),
                raw.shell,
                raw.timeout_secs.unwrap_or(30),
                &format!("{key}.command"),
            )?)
        }
        other => {
            return Err(ConfigError::new(
                format!("{key}.handler"),
                format!(
                    "expected one of: log, webhook, command; got '{}'",
                    crate::escape::printable(other)
                ),
            ));
        }
    })
}

/// `[alerts]`: off without a URL.
pub(super) fn validate_alerts(raw: RawAlerts) -> Result<Option<AlertsConfig>, ConfigError> {
    let url = raw.webhook_url.trim().to_owned();
    if url.is_empty() {
        return Ok(None);
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
        return Err(ConfigError::new(
            "alerts.webhook_url",
            "expected an http:// or https:// URL (env WXPUSH_ALERTS_WEBHOOK_URL), or empty for no alerts",
        ));
    }
    Ok(Some(AlertsConfig {
        webhook_url: url,
        secret: (!raw.secret.is_empty()).then(|| Secret::new(raw.secret)),
        coalesce: secs(raw.coalesce_secs, "alerts.coalesce_secs", 1)?,
    }))
}
