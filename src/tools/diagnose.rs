//! Step-by-step diagnosis of a captured push: which app, which signature, base64, AES,
//! padding, length field, app id, then the parsed event. Used by `wxpush decrypt`; it runs
//! the same checks as the request path ([`crate::push::signature`], [`crate::push::cipher`],
//! [`crate::event`]) but keeps going to say what it found at each step.

use crate::event::Event;
use crate::event::fields::{Fields, Format};
use crate::push::app::App;
use crate::push::cipher::{self, CipherError};
use crate::push::{self, Mode, PushQuery};

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Short name (`signature`, `padding`, …).
    pub name: &'static str,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, and on failure the likely cause.
    pub detail: String,
}

/// The checks for one configured app.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    /// The app tried.
    pub app: String,
    /// The checks, in order; stops after the first failure.
    pub steps: Vec<Step>,
    /// The event, when every check passed.
    pub event: Option<Event>,
}

impl Diagnosis {
    /// True when every step passed.
    pub fn passed(&self) -> bool {
        self.event.is_some() && self.steps.iter().all(|s| s.ok)
    }

    fn step(&mut self, name: &'static str, ok: bool, detail: impl Into<String>) -> bool {
        self.steps.push(Step {
            name,
            ok,
            detail: detail.into(),
        });
        ok
    }
}

/// Diagnoses a captured request against every app; the apps whose signature matches come
/// first.
pub fn diagnose(
    apps: &[App],
    query: &PushQuery,
    body: &[u8],
    authorizer_appid: Option<&str>,
) -> Vec<Diagnosis> {
    let mut all: Vec<Diagnosis> = apps
        .iter()
        .map(|app| diagnose_one(app, query, body, authorizer_appid))
        .collect();
    all.sort_by_key(|d| {
        let signed = d.steps.iter().any(|s| s.name == "signature" && s.ok);
        (!d.passed(), !signed)
    });
    all
}

fn diagnose_one(
    app: &App,
    query: &PushQuery,
    body: &[u8],
    authorizer_appid: Option<&str>,
) -> Diagnosis {
    let mut d = Diagnosis {
        app: app.name.clone(),
        steps: Vec::new(),
        event: None,
    };
    let text = String::from_utf8_lossy(body);
    let (envelope, format) = Fields::parse_detected(&text);
    let (Some(timestamp), Some(nonce)) = (query.timestamp.as_deref(), query.nonce.as_deref())
    else {
        d.step(
            "query",
            false,
            "timestamp and nonce are required; was the whole query captured?",
        );
        return d;
    };
    // The request path's own decision: a verdict here is the verdict of `serve`.
    let mode = push::decide_mode(query, &envelope);
    let described = match mode {
        Mode::Plain => "plain mode (no encrypt_type, and no msg_signature with an Encrypt)",
        Mode::Compat => "compat mode (plain fields and Encrypt)",
        Mode::Safe => "safe mode (Encrypt only)",
    };
    let fmt = match format {
        Format::Xml => "XML",
        Format::Json => "JSON",
    };
    d.step(
        "query",
        true,
        format!("{described}, {fmt} body of {} bytes", body.len()),
    );
    if mode == Mode::Plain {
        if check_plain(&mut d, app, query, timestamp, nonce) {
            finish(&mut d, app, &text, authorizer_appid);
        }
        return d;
    }
    let Some(encrypt) = envelope.get("Encrypt").filter(|e| !e.trim().is_empty()) else {
        d.step(
            "envelope",
            false,
            "encrypt_type=aes but the body has no Encrypt field",
        );
        return d;
    };
    if check_msg_signature(&mut d, app, query, [timestamp, nonce, encrypt])
        && let Some(message) = check_decrypt(&mut d, app, encrypt)
    {
        finish(&mut d, app, &message, authorizer_appid);
    }
    d
}

/// Which token matched, for messages.
fn with(previous: bool) -> &'static str {
    if previous {
        "the previous token"
    } else {
        "the token"
    }
}

/// A plain-mode push: `signature` over token, timestamp and nonce, unless the app requires
/// encryption.
fn check_plain(
    d: &mut Diagnosis,
    app: &App,
    query: &PushQuery,
    timestamp: &str,
    nonce: &str,
) -> bool {
    if app.require_encryption {
        return d.step(
            "signature",
            false,
            format!("app {} requires encrypted pushes (require_encryption): a plain-mode push is refused", app.name),
        );
    }
    let Some(sig) = query.signature.as_deref() else {
        return d.step("signature", false, "no signature parameter");
    };
    match push::verify_with_tokens(app, sig, &[timestamp, nonce], "signature") {
        Ok(previous) => d.step(
            "signature",
            true,
            format!("signature matches {}", with(previous)),
        ),
        Err(_) => d.step(
            "signature",
            false,
            format!(
                "signature does not match app {}'s token (wrong token, or another app's push)",
                app.name
            ),
        ),
    }
}

/// An encrypted push: `msg_signature` over token, timestamp, nonce and `Encrypt`, with the
/// likely cause when it does not match.
fn check_msg_signature(d: &mut Diagnosis, app: &App, query: &PushQuery, parts: [&str; 3]) -> bool {
    let matches =
        |given: &str, parts: &[&str]| push::verify_with_tokens(app, given, parts, "signature").ok();
    let Some(given) = query.msg_signature.as_deref() else {
        let hint = if query.signature.is_some() {
            ": the request has only `signature`, which does not cover Encrypt; safe mode is checked with msg_signature"
        } else {
            ""
        };
        return d.step("signature", false, format!("no msg_signature{hint}"));
    };
    if let Some(previous) = matches(given, &parts) {
        return d.step(
            "signature",
            true,
            format!(
                "msg_signature matches {} over timestamp, nonce and Encrypt",
                with(previous)
            ),
        );
    }
    let detail = if matches(given, &parts[..2]).is_some() {
        "msg_signature was computed like `signature` (token, timestamp, nonce) without Encrypt: `signature` used where `msg_signature` belongs".to_owned()
    } else if query
        .signature
        .as_deref()
        .and_then(|s| matches(s, &parts[..2]))
        .is_some()
    {
        "msg_signature does not match, but `signature` does: the token is right, so Encrypt (or msg_signature) was altered on the way".to_owned()
    } else {
        format!(
            "msg_signature does not match app {}'s token (wrong token, or another app's push)",
            app.name
        )
    };
    d.step("signature", false, detail)
}

/// Base64, AES, padding, length field and app id, each reported; the message on success.
fn check_decrypt(d: &mut Diagnosis, app: &App, encrypt: &str) -> Option<String> {
    let mut result = None;
    let mut first_error = None;
    for (key, previous) in app.aes_keys() {
        match cipher::decrypt_any(key, encrypt) {
            Ok(found) => {
                result = Some((found, previous));
                break;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let Some(((message, receive_id), previous_key)) = result else {
        let e = first_error.unwrap_or(CipherError::Base64);
        let failed = match e {
            CipherError::Base64 => "base64",
            CipherError::Length(_) => "aes",
            CipherError::Padding(_) => "padding",
            CipherError::Frame { .. } | CipherError::AppId { .. } => "length",
        };
        for name in ["base64", "aes", "padding", "length"] {
            if name == failed {
                d.step(name, false, e.to_string());
                return None;
            }
            d.step(name, true, "ok");
        }
        return None;
    };
    let key_note = if previous_key {
        " (with the previous key)"
    } else {
        ""
    };
    d.step("base64", true, "Encrypt is valid base64");
    d.step("aes", true, format!("AES-256-CBC decrypted{key_note}"));
    d.step("padding", true, "PKCS#7 padding in 1..=32");
    d.step(
        "length",
        true,
        format!("length field fits: {} message bytes", message.len()),
    );
    if receive_id != app.appid {
        d.step(
            "appid",
            false,
            format!(
                "the message carries {receive_id}, app {} expects {}: set appid to the id the platform encrypts for (a third-party platform's pushes carry the platform's component app id, not the Mini Program's)",
                app.name, app.appid
            ),
        );
        return None;
    }
    d.step("appid", true, format!("{receive_id} as expected"));
    Some(String::from_utf8_lossy(&message).into_owned())
}

fn finish(d: &mut Diagnosis, app: &App, message: &str, authorizer_appid: Option<&str>) {
    let event = Event::parse(message, &app.name, authorizer_appid);
    d.step(
        "parse",
        true,
        format!("{} with {} fields", event.name(), event.fields.len()),
    );
    d.event = Some(event);
}
