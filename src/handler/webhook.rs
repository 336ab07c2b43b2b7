//! The `webhook` handler: POST each event as JSON to a URL, signed with HMAC-SHA256 when a
//! secret is set. A 2xx answer means delivered; anything else, or a timeout, is an error the
//! dispatcher retries.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{BoxError, Handler};
use crate::clock;
use crate::event::Event;
use crate::secret::Secret;

/// Settings of the `webhook` handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Where events are POSTed (`http://` or `https://`).
    pub url: String,
    /// Key of the `Wxpush-Signature` HMAC; no signature header without it.
    pub secret: Option<Secret<String>>,
    /// Longest a request may take.
    pub timeout: Duration,
}

/// Header carrying the event id (the idempotency key).
pub const EVENT_ID_HEADER: &str = "Wxpush-Event-Id";
/// Header carrying the unix time the request was signed at.
pub const TIMESTAMP_HEADER: &str = "Wxpush-Timestamp";
/// Header carrying `v1=<hex hmac-sha256(secret, "{id}.{timestamp}.{body}")>`.
pub const SIGNATURE_HEADER: &str = "Wxpush-Signature";

/// POSTs events to a URL.
#[derive(Debug, Clone)]
pub struct WebhookHandler {
    client: reqwest::Client,
    url: String,
    secret: Option<Secret<String>>,
}

impl WebhookHandler {
    /// A handler for `config`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS setup).
    pub fn new(config: &WebhookConfig) -> Result<Self, BoxError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("wxpush/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            url: config.url.clone(),
            secret: config.secret.clone(),
        })
    }
}

/// `v1=` + hex HMAC-SHA256 of `"{id}.{timestamp}.{body}"` under `secret`.
///
/// # Errors
/// Never in practice: HMAC takes keys of any length.
pub fn signature(
    secret: &str,
    id: &str,
    timestamp: &str,
    body: &str,
) -> Result<String, hmac::digest::InvalidLength> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    Ok(format!(
        "v1={}",
        crate::hex::encode(&mac.finalize().into_bytes())
    ))
}

impl Handler for WebhookHandler {
    async fn handle(&self, event: &Event) -> Result<(), BoxError> {
        let body = event.delivery_json();
        let timestamp = (clock::now_ms() / 1000).to_string();
        let mut request = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header(EVENT_ID_HEADER, &event.id)
            .header(TIMESTAMP_HEADER, &timestamp);
        if let Some(secret) = &self.secret {
            request = request.header(
                SIGNATURE_HEADER,
                signature(secret.expose(), &event.id, &timestamp, &body)?,
            );
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| format!("webhook request failed: {}", e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let excerpt: String = text.chars().take(200).collect();
        Err(format!("webhook answered {status}: {excerpt}").into())
    }
}

#[cfg(test)]
mod tests {
    use super::signature;

    #[test]
    fn signature_is_hmac_sha256_over_id_timestamp_body() {
        // printf 'evt_1.1700000000.{}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            signature("secret", "evt_1", "1700000000", "{}")
                .ok()
                .as_deref(),
            Some("v1=81cb8b50961f0fd250d94959303132527aa389817f295263b27dc72d42ec0a3e")
        );
    }
}
