//! The request path without HTTP: query + body → authenticated message text.
//!
//! Decides the mode (safe, compat or plain) from the query and the body, checks the signature
//! that mode uses, and decrypts. The server maps [`PushError`] to HTTP statuses; the CLI's
//! diagnostics reuse the same steps. Parsing the message into an [`Event`](crate::Event) is the
//! next stage and never fails.

pub mod app;
pub mod cipher;
pub mod signature;

use std::collections::HashMap;

use self::app::App;
use self::cipher::CipherError;
use crate::event::fields::{Fields, Format};

/// The query parameters the platform sends with a URL check or a push.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PushQuery {
    /// `signature` over token, timestamp and nonce.
    pub signature: Option<String>,
    /// `timestamp` (unix seconds, as text).
    pub timestamp: Option<String>,
    /// `nonce`.
    pub nonce: Option<String>,
    /// `echostr` of the URL check.
    pub echostr: Option<String>,
    /// `encrypt_type` (`aes` in safe mode).
    pub encrypt_type: Option<String>,
    /// `msg_signature` over token, timestamp, nonce and `Encrypt`.
    pub msg_signature: Option<String>,
}

impl PushQuery {
    /// Picks the known parameters out of a decoded query map; others are ignored.
    pub fn from_map(mut map: HashMap<String, String>) -> Self {
        Self {
            signature: map.remove("signature"),
            timestamp: map.remove("timestamp"),
            nonce: map.remove("nonce"),
            echostr: map.remove("echostr"),
            encrypt_type: map.remove("encrypt_type"),
            msg_signature: map.remove("msg_signature"),
        }
    }

    fn require<'a>(value: &'a Option<String>, name: &'static str) -> Result<&'a str, PushError> {
        value
            .as_deref()
            .filter(|v| !v.is_empty())
            .ok_or(PushError::MissingParam(name))
    }
}

/// How the push was protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `encrypt_type=aes`, envelope holding `Encrypt`.
    Safe,
    /// Plain fields and `Encrypt` in one body; the encrypted part is used.
    Compat,
    /// No encryption; authenticated by `signature`.
    Plain,
}

/// A push whose signature checked out, decrypted where it was encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message text (XML or JSON).
    pub text: String,
    /// How it was protected.
    pub mode: Mode,
    /// The envelope's format.
    pub format: Format,
    /// The `timestamp` it was signed with.
    pub timestamp: String,
    /// It was signed with the app's previous token.
    pub previous_token: bool,
    /// It was encrypted with the app's previous EncodingAESKey.
    pub previous_key: bool,
    /// The request's identity for replay detection ([`request_key`] of the signature that
    /// was verified).
    pub request_key: String,
}

/// A signed request's identity: a hash of the signature that was verified and the
/// timestamp and nonce it covers. The platform signs every push anew, so a second request
/// with the same key is a copy of the first, whatever its path (or, in plain mode, whose
/// signature does not cover the body, whatever its body).
pub fn request_key(signature: &str, timestamp: &str, nonce: &str) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for part in [signature, timestamp, nonce] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    crate::hex::encode(&hasher.finalize()[..16])
}

/// Why a push was refused. The first three are the sender's fault; [`PushError::Undecryptable`]
/// is a genuine push that this configuration cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// A query parameter the mode needs is missing or empty.
    #[error("missing query parameter `{0}`")]
    MissingParam(&'static str),
    /// The body is empty.
    #[error("empty body")]
    EmptyBody,
    /// Safe mode, but the body has no `Encrypt` field.
    #[error("the body has no Encrypt field (encrypt_type=aes needs one)")]
    NoEncrypt,
    /// The signature does not match the configured token.
    #[error("{which} does not match (-40001): signed with another token, or altered on the way")]
    BadSignature {
        /// `signature` or `msg_signature`.
        which: &'static str,
    },
    /// Signed correctly, but this configuration cannot decrypt it.
    #[error("{error}")]
    Undecryptable {
        /// Why decryption failed.
        error: CipherError,
        /// The verified request's key ([`request_key`]), for replay detection of the
        /// quarantined push.
        request_key: String,
    },
    /// A plain-mode push for an app that requires encryption (`require_encryption`).
    #[error(
        "this app requires encrypted pushes (require_encryption): a plain-mode push is refused and not stored; set the console's message encryption mode to safe"
    )]
    EncryptionRequired,
}

/// Checks the URL-check signature and returns the `echostr` to answer with.
///
/// # Errors
/// [`PushError::MissingParam`] or [`PushError::BadSignature`].
pub fn url_check<'q>(app: &App, query: &'q PushQuery) -> Result<&'q str, PushError> {
    let signature = PushQuery::require(&query.signature, "signature")?;
    let timestamp = PushQuery::require(&query.timestamp, "timestamp")?;
    let nonce = PushQuery::require(&query.nonce, "nonce")?;
    let echostr = PushQuery::require(&query.echostr, "echostr")?;
    verify_with_tokens(app, signature, &[timestamp, nonce], "signature")?;
    Ok(echostr)
}

/// Tries the current token, then the previous one; says whether the previous one matched.
pub(crate) fn verify_with_tokens(
    app: &App,
    given: &str,
    parts: &[&str],
    which: &'static str,
) -> Result<bool, PushError> {
    for (token, previous) in app.tokens() {
        let mut all = Vec::with_capacity(parts.len() + 1);
        all.push(token);
        all.extend_from_slice(parts);
        if signature::verify(given, &all).is_ok() {
            return Ok(previous);
        }
    }
    Err(PushError::BadSignature { which })
}

/// Tries the current key, then the previous one. On failure, reports the current key's error.
fn decrypt_with_keys(app: &App, encrypt: &str) -> Result<(Vec<u8>, bool), CipherError> {
    let mut first_error = None;
    for (key, previous) in app.aes_keys() {
        match cipher::decrypt(key, encrypt, &app.appid) {
            Ok(plain) => return Ok((plain, previous)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(CipherError::Base64))
}

/// How a push is protected: the one decision, used by the request path and by
/// `wxpush decrypt` alike. Encrypted when the query says `encrypt_type=aes`, or when it
/// carries a `msg_signature` and the body a non-empty `Encrypt` (a body holding `Encrypt`
/// but signed with `signature` alone is plain); then compat when the envelope holds fields
/// besides `ToUserName`, `Encrypt` and `AppId`, else safe.
pub fn decide_mode(query: &PushQuery, envelope: &Fields) -> Mode {
    let aes_requested = query
        .encrypt_type
        .as_deref()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("aes"));
    let has_encrypt = envelope
        .get("Encrypt")
        .is_some_and(|e| !e.trim().is_empty());
    if !(aes_requested || (query.msg_signature.is_some() && has_encrypt)) {
        return Mode::Plain;
    }
    let is_envelope_field = |name: &str| {
        ["ToUserName", "Encrypt", "AppId"]
            .iter()
            .any(|f| f.eq_ignore_ascii_case(name))
    };
    if envelope.iter().any(|(k, _)| !is_envelope_field(k)) {
        Mode::Compat
    } else {
        Mode::Safe
    }
}

/// Checks a signed push's `timestamp` against the clock (`now_secs`, unix seconds).
///
/// # Errors
/// The reason, with the skew, when the timestamp is not a number or is further than `max`
/// from now. `None` for `max` turns the check off.
pub fn check_timestamp(
    timestamp: &str,
    now_secs: i64,
    max: Option<std::time::Duration>,
) -> Result<(), String> {
    let Some(max) = max else { return Ok(()) };
    let Ok(ts) = timestamp.trim().parse::<i64>() else {
        return Err(format!(
            "timestamp '{}' is not a number of seconds",
            timestamp.chars().take(20).collect::<String>()
        ));
    };
    let skew = ts.saturating_sub(now_secs);
    if skew.unsigned_abs() > max.as_secs() {
        let direction = if skew < 0 { "behind" } else { "ahead of" };
        return Err(format!(
            "timestamp {ts} is {} s {direction} this server's clock (max_clock_skew_secs = {}): a replayed push, or a clock out of sync",
            skew.unsigned_abs(),
            max.as_secs()
        ));
    }
    Ok(())
}

/// Authenticates a push and returns its message text.
///
/// # Errors
/// [`PushError`] naming what is wrong; see its variants.
pub fn receive(app: &App, query: &PushQuery, body: &[u8]) -> Result<Message, PushError> {
    // Checking UTF-8 is much faster than the lossy conversion, which only invalid bodies need.
    let body: std::borrow::Cow<'_, str> = match std::str::from_utf8(body) {
        Ok(text) => text.into(),
        Err(_) => String::from_utf8_lossy(body),
    };
    let aes_requested = query
        .encrypt_type
        .as_deref()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("aes"));
    if aes_requested {
        PushQuery::require(&query.msg_signature, "msg_signature")?;
    }
    let timestamp = PushQuery::require(&query.timestamp, "timestamp")?;
    let nonce = PushQuery::require(&query.nonce, "nonce")?;
    if !aes_requested && query.msg_signature.is_none() {
        PushQuery::require(&query.signature, "signature")?;
    }
    if body.trim().is_empty() {
        return Err(PushError::EmptyBody);
    }
    let (envelope, format) = Fields::parse_detected(&body);
    let encrypt = envelope.get("Encrypt").filter(|e| !e.trim().is_empty());
    let mode = decide_mode(query, &envelope);
    if mode == Mode::Plain {
        if app.require_encryption {
            return Err(PushError::EncryptionRequired);
        }
        let signature = PushQuery::require(&query.signature, "signature")?;
        let previous_token = verify_with_tokens(app, signature, &[timestamp, nonce], "signature")?;
        return Ok(Message {
            text: body.into_owned(),
            mode: Mode::Plain,
            format,
            timestamp: timestamp.to_owned(),
            previous_token,
            previous_key: false,
            request_key: request_key(signature, timestamp, nonce),
        });
    }

    let msg_signature = PushQuery::require(&query.msg_signature, "msg_signature")?;
    let encrypt = encrypt.ok_or(PushError::NoEncrypt)?;
    let previous_token = verify_with_tokens(
        app,
        msg_signature,
        &[timestamp, nonce, encrypt],
        "msg_signature",
    )?;
    let key = request_key(msg_signature, timestamp, nonce);
    let (plain, previous_key) =
        decrypt_with_keys(app, encrypt).map_err(|error| PushError::Undecryptable {
            error,
            request_key: key.clone(),
        })?;
    Ok(Message {
        // Valid UTF-8 (the norm) becomes the text without a copy.
        text: String::from_utf8(plain)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        mode,
        format,
        timestamp: timestamp.to_owned(),
        previous_token,
        previous_key,
        request_key: key,
    })
}

#[cfg(test)]
mod tests;
