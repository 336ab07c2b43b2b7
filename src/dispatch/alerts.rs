//! Alerts: a signed JSON POST to the operator's webhook when a route pauses or resumes, a
//! delivery goes dead, or a push is quarantined. Repeats of one kind (and route) within the
//! coalescing window become one alert saying how many; alerts are best effort (a few
//! tries, then a warning in the log), never in the way of receiving or delivering.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::clock;
use crate::handler::BoxError;
use crate::handler::webhook::{EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature};
use crate::secret::Secret;

/// Settings of the `[alerts]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertsConfig {
    /// Where alerts are POSTed.
    pub webhook_url: String,
    /// Key of the `Wxpush-Signature` HMAC, as the webhook handler's; none without it.
    pub secret: Option<Secret<String>>,
    /// Repeats of one kind and route within this window are sent as one.
    pub coalesce: Duration,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum AlertKind {
    /// A route paused after consecutive failures.
    #[serde(rename = "route.paused")]
    RoutePaused,
    /// A paused route resumed.
    #[serde(rename = "route.resumed")]
    RouteResumed,
    /// A delivery used up its retry schedule.
    #[serde(rename = "event.dead")]
    EventDead,
    /// A genuine push could not be processed and was quarantined.
    #[serde(rename = "push.quarantined")]
    PushQuarantined,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// What happened.
    pub kind: AlertKind,
    /// The route, where one applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The event, for `event.dead`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The quarantined push, for `push.quarantined`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine_id: Option<String>,
}

impl Alert {
    /// An alert of `kind` about `route`.
    pub fn route(kind: AlertKind, route: &str) -> Self {
        Self {
            kind,
            route: Some(route.to_owned()),
            event_id: None,
            quarantine_id: None,
        }
    }
}

/// The body as sent.
#[derive(Serialize)]
struct Body<'a> {
    id: &'a str,
    #[serde(flatten)]
    alert: &'a Alert,
    /// When the (latest) occurrence happened.
    at: String,
    /// How many occurrences this alert stands for (more than 1 when coalesced; the ids
    /// are the latest's).
    count: u32,
}

/// Where alerts are raised: cheap to clone; does nothing when alerts are off.
#[derive(Debug, Clone, Default)]
pub struct Alerts(Option<mpsc::UnboundedSender<(Alert, i64)>>);

impl Alerts {
    /// Alerts off.
    pub fn off() -> Self {
        Self(None)
    }

    /// Starts the task that sends alerts for `config` (on the current runtime).
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS setup).
    pub fn start(config: AlertsConfig) -> Result<Self, BoxError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("wxpush/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(coalesce(rx, Sender { client, config }));
        Ok(Self(Some(tx)))
    }

    /// Raises `alert`, now.
    pub fn raise(&self, alert: Alert) {
        if let Some(tx) = &self.0 {
            let _ = tx.send((alert, clock::now_ms()));
        }
    }
}

/// One kind and route's window: when an alert was last sent, and what came since.
struct Window {
    sent_at: Instant,
    waiting: Option<(Alert, i64, u32)>,
}

/// Sends the first alert of a kind and route at once, and what repeats within the window
/// as one alert at the window's end.
async fn coalesce(mut rx: mpsc::UnboundedReceiver<(Alert, i64)>, sender: Sender) {
    let window = sender.config.coalesce;
    let mut windows: HashMap<(AlertKind, Option<String>), Window> = HashMap::new();
    loop {
        let next_flush = windows
            .values()
            .filter(|w| w.waiting.is_some())
            .map(|w| w.sent_at + window)
            .min();
        let flush_at = next_flush.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            received = rx.recv() => {
                let Some((alert, at)) = received else { break };
                let key = (alert.kind, alert.route.clone());
                match windows.get_mut(&key) {
                    Some(w) if w.sent_at.elapsed() < window => {
                        let count = w.waiting.as_ref().map_or(0, |(_, _, n)| *n) + 1;
                        w.waiting = Some((alert, at, count));
                    }
                    _ => {
                        sender.send(alert, at, 1);
                        windows.insert(key, Window { sent_at: Instant::now(), waiting: None });
                    }
                }
            }
            () = tokio::time::sleep_until(flush_at), if next_flush.is_some() => {
                for w in windows.values_mut() {
                    if w.sent_at.elapsed() >= window && let Some((alert, at, count)) = w.waiting.take() {
                        sender.send(alert, at, count);
                        w.sent_at = Instant::now();
                    }
                }
            }
        }
    }
    for w in windows.into_values() {
        if let Some((alert, at, count)) = w.waiting {
            sender.send(alert, at, count);
        }
    }
}

/// POSTs alerts, each in a task of its own: three tries, then a warning.
struct Sender {
    client: reqwest::Client,
    config: AlertsConfig,
}

impl Sender {
    fn send(&self, alert: Alert, at: i64, count: u32) {
        let id = format!("alr_{:016x}", rand::random::<u64>());
        let body = serde_json::to_string(&Body {
            id: &id,
            alert: &alert,
            at: clock::rfc3339(at),
            count,
        })
        .unwrap_or_default();
        let (client, config) = (self.client.clone(), self.config.clone());
        tokio::spawn(async move {
            let mut error = String::new();
            for wait in [0, 1, 5] {
                tokio::time::sleep(Duration::from_secs(wait)).await;
                match post(&client, &config, &id, &body).await {
                    Ok(()) => return,
                    Err(e) => error = e,
                }
            }
            tracing::warn!(kind = ?alert.kind, %error, "could not send an alert to alerts.webhook_url");
        });
    }
}

async fn post(
    client: &reqwest::Client,
    config: &AlertsConfig,
    id: &str,
    body: &str,
) -> Result<(), String> {
    let timestamp = (clock::now_ms() / 1000).to_string();
    let mut request = client
        .post(&config.webhook_url)
        .header("content-type", "application/json")
        .header(EVENT_ID_HEADER, id)
        .header(TIMESTAMP_HEADER, &timestamp);
    if let Some(secret) = &config.secret {
        let signed = signature(secret.expose(), id, &timestamp, body).map_err(|e| e.to_string())?;
        request = request.header(SIGNATURE_HEADER, signed);
    }
    let response = request
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| format!("request failed: {}", e.without_url()))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", response.status()))
    }
}
