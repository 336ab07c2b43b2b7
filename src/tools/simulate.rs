//! Pushes made exactly as the platform makes them: signed, encrypted with an app's key (or
//! plain / compat), XML or JSON. Used by `wxpush simulate` and by the tests; the server
//! checks them with the same [`crate::push::signature`] and [`crate::push::cipher`] code.

use crate::clock;
use crate::event::fields::Format;
use crate::push::Mode;
use crate::push::app::App;
use crate::push::cipher;
use crate::push::signature;

/// The documentation's own category-audit sample, verbatim, mismatched end tags included.
pub const SEED_SAMPLE: &str = "<xml>\n\t<ToUserName><![CDATA[gh_fxxxxxxxa4b2]]></ToUserName>\n\t<FromUserName><![CDATA[odxxxxM-xxxxxxxx-trm4a7apsU8]]></FromUserName>\n\t<CreateTime>1488800000</CreateTime>\n\t<MsgType><![CDATA[event]]></MsgType>\n\t<Event><![CDATA[wxa_category_audit]]></Event>\n\t<ret>2</ret>\n\t<first>First class id</nickname>\n\t<second>Secondary category id</reason>\n      <reason>Reasons for dismissal</reason>\n</xml>";

/// A push ready to send: query parameters and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedPush {
    /// Query parameters, in the platform's order.
    pub query: Vec<(&'static str, String)>,
    /// The body.
    pub body: String,
}

impl SimulatedPush {
    /// The query as a URL query string (values are hex, digits or fixed words: no escaping
    /// needed).
    pub fn query_string(&self) -> String {
        self.query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Builds a push of `message` for `app` as the platform would now: fresh timestamp, nonce
/// and random prefix every call. The envelope's format follows the message's.
pub fn build(app: &App, message: &str, mode: Mode) -> SimulatedPush {
    let timestamp = (clock::now_ms() / 1000).to_string();
    let nonce = rand::random::<u32>().to_string();
    let token = app.token.expose();
    let signature = signature::sign(&[token, &timestamp, &nonce]);
    if mode == Mode::Plain {
        return SimulatedPush {
            query: vec![
                ("signature", signature),
                ("timestamp", timestamp),
                ("nonce", nonce),
            ],
            body: message.to_owned(),
        };
    }
    let encrypt = cipher::encrypt(
        app.aes_key.expose(),
        message.as_bytes(),
        &app.appid,
        rand::random(),
    );
    let msg_signature = signature::sign(&[token, &timestamp, &nonce, &encrypt]);
    let format = Format::detect(message);
    let body = match (format, mode) {
        (Format::Json, Mode::Compat) => {
            let mut value = serde_json::from_str::<serde_json::Value>(message)
                .unwrap_or_else(|_| serde_json::json!({}));
            if let Some(object) = value.as_object_mut() {
                object.insert("Encrypt".into(), encrypt.into());
            }
            value.to_string()
        }
        (Format::Json, _) => {
            serde_json::json!({"ToUserName": to_user_name(message), "Encrypt": encrypt}).to_string()
        }
        (Format::Xml, Mode::Compat) => {
            let inner = message.trim();
            match inner.rfind("</xml>") {
                Some(end) => format!(
                    "{}<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>",
                    &inner[..end]
                ),
                None => format!("<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"),
            }
        }
        (Format::Xml, _) => format!(
            "<xml><ToUserName><![CDATA[{}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>",
            to_user_name(message)
        ),
    };
    SimulatedPush {
        query: vec![
            ("signature", signature),
            ("timestamp", timestamp),
            ("nonce", nonce),
            ("encrypt_type", "aes".to_owned()),
            ("msg_signature", msg_signature),
        ],
        body,
    }
}

fn to_user_name(message: &str) -> String {
    crate::event::fields::Fields::parse_detected(message)
        .0
        .get_any(&["ToUserName", "AppId"])
        .unwrap_or("gh_simulated")
        .to_owned()
}

/// What a simulated category audit says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSpec {
    /// `ret`: 3 passed, 2 rejected, anything else as given.
    pub ret: i64,
    /// First-level category id.
    pub first: String,
    /// Second-level category id.
    pub second: String,
    /// Rejection reason.
    pub reason: String,
    /// `ToUserName` (the Mini Program's original id).
    pub to_user_name: String,
}

/// A category-audit message in `format`, created now.
pub fn category_audit(spec: &AuditSpec, format: Format) -> String {
    let now = clock::now_ms() / 1000;
    let number_or_text = |v: &str| match v.trim().parse::<i64>() {
        Ok(n) => serde_json::Value::from(n),
        Err(_) => serde_json::Value::from(v),
    };
    match format {
        Format::Json => serde_json::json!({
            "ToUserName": spec.to_user_name,
            "FromUserName": "o_wxpush_simulate",
            "CreateTime": now,
            "MsgType": "event",
            "Event": "wxa_category_audit",
            "ret": spec.ret,
            "first": number_or_text(&spec.first),
            "second": number_or_text(&spec.second),
            "reason": spec.reason,
        })
        .to_string(),
        Format::Xml => format!(
            "<xml><ToUserName>{}</ToUserName><FromUserName><![CDATA[o_wxpush_simulate]]></FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_category_audit]]></Event><ret>{}</ret><first>{}</first><second>{}</second><reason>{}</reason></xml>",
            cdata(&spec.to_user_name),
            spec.ret,
            cdata(&spec.first),
            cdata(&spec.second),
            cdata(&spec.reason)
        ),
    }
}

/// A `component_verify_ticket` notice for a third-party platform `appid`, created now.
pub fn verify_ticket(appid: &str, format: Format) -> String {
    let now = clock::now_ms() / 1000;
    let ticket = format!("ticket@@@simulated-{:08x}", rand::random::<u32>());
    match format {
        Format::Json => serde_json::json!({
            "AppId": appid, "CreateTime": now, "InfoType": "component_verify_ticket",
            "ComponentVerifyTicket": ticket,
        })
        .to_string(),
        Format::Xml => format!(
            "<xml><AppId>{}</AppId><CreateTime>{now}</CreateTime><InfoType><![CDATA[component_verify_ticket]]></InfoType><ComponentVerifyTicket>{}</ComponentVerifyTicket></xml>",
            cdata(appid),
            cdata(&ticket)
        ),
    }
}

/// `text` as CDATA, split where it contains the CDATA end marker.
fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;
    use crate::push::cipher::AesKey;
    use crate::push::{self, PushQuery};
    use crate::secret::Secret;

    fn app() -> App {
        App {
            name: "demo".into(),
            token: Secret::new("tok123".into()),
            aes_key: Secret::new(AesKey::from_bytes([3; 32])),
            appid: "wxsim".into(),
            previous_token: None,
            previous_aes_key: None,
            require_encryption: false,
        }
    }

    fn query(p: &SimulatedPush) -> PushQuery {
        PushQuery::from_map(
            p.query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn every_mode_and_format_round_trips_through_the_request_path() {
        let app = app();
        for format in [Format::Xml, Format::Json] {
            let spec = AuditSpec {
                ret: 2,
                first: "8".into(),
                second: "39".into(),
                reason: "a ]]> b".into(),
                to_user_name: "gh_x".into(),
            };
            let message = category_audit(&spec, format);
            for mode in [Mode::Safe, Mode::Compat, Mode::Plain] {
                let p = build(&app, &message, mode);
                let received = push::receive(&app, &query(&p), p.body.as_bytes());
                let received = received.map_err(|e| format!("{mode:?} {format:?}: {e}"));
                assert_eq!(received.as_ref().map(|m| m.mode), Ok(mode));
                let text = received.map(|m| m.text).unwrap_or_default();
                let audit = Event::parse(&text, "demo", None).category_audit().cloned();
                assert_eq!(
                    audit.map(|a| a.reason),
                    Some("a ]]> b".to_owned()),
                    "{mode:?} {format:?}"
                );
            }
        }
    }
}
