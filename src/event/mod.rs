//! Events: what a decrypted (or plain) message says, read leniently.
//!
//! [`Event::parse`] never fails. The common fields every push carries are typed, the category
//! audit result (`wxa_category_audit`) and the third-party platform's verify ticket get their
//! own types, and every message keeps all its fields as text and its raw form, so events
//! wxpush has no type for still reach the handler whole.

pub mod fields;
mod id;
mod json;

use id::identity;

use serde::Serialize;
use sha1::{Digest, Sha1};

use crate::clock;
use crate::event::fields::{Fields, Format};

/// `Event` value of a category audit result.
pub const CATEGORY_AUDIT: &str = "wxa_category_audit";
/// `InfoType` value of the third-party platform's ticket push.
pub const COMPONENT_VERIFY_TICKET: &str = "component_verify_ticket";
/// The field of a category audit wxpush made from a pull of the current categories (see
/// [`Source::Reconciled`]); pushes never carry it.
pub const SOURCE_FIELD: &str = "WxpushSource";

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The platform pushed it.
    Push,
    /// wxpush found a category's review result by pulling the current categories before any
    /// push reported it, and made the audit event the push would have been.
    Reconciled,
}

impl Source {
    /// As in the event's JSON (`source`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Reconciled => "reconciled",
        }
    }
}

/// One message pushed by the platform, with where it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Stable id derived from the message's identity (see [`Event::parse`]): every platform
    /// retry of one message has the same id, so handlers can use it as an idempotency key.
    pub id: String,
    /// When wxpush first stored it (unix milliseconds); `None` before it is stored.
    pub received_at: Option<i64>,
    /// Delivery attempts made before the current one (0 on the first).
    pub attempts: u32,
    /// The previous attempt's error, when there was one.
    pub last_error: Option<String>,
    /// Name of the configured app that received it.
    pub app: String,
    /// The authorizer's (Mini Program's) app id from the `/wechat/{authorizer_appid}/callback`
    /// route, when a third-party platform pushed it there.
    pub authorizer_appid: Option<String>,
    /// `ToUserName`: the receiving account's original id (`gh_…`).
    pub to_user_name: Option<String>,
    /// `FromUserName`: the sender id.
    pub from_user_name: Option<String>,
    /// `CreateTime`: unix seconds, when numeric.
    pub create_time: Option<i64>,
    /// `MsgType` (`event` for events).
    pub msg_type: Option<String>,
    /// `Event`: the event name of Mini Program events.
    pub event: Option<String>,
    /// `InfoType`: the notice name of third-party platform notices.
    pub info_type: Option<String>,
    /// `MsgId` of user messages.
    pub msg_id: Option<String>,
    /// What the message is, typed where wxpush knows the event.
    pub kind: EventKind,
    /// Every field of the message, as text, in order.
    pub fields: Fields,
    /// The format the message came in.
    pub format: Format,
    /// The message exactly as decrypted (or as received in plain mode).
    pub raw: String,
}

/// The typed part of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// `wxa_category_audit`: the platform reviewed a category submitted with `addcategory`.
    CategoryAudit(CategoryAudit),
    /// `component_verify_ticket`: the third-party platform's ticket, pushed every 10 minutes.
    ComponentVerifyTicket {
        /// `ComponentVerifyTicket`.
        ticket: String,
    },
    /// Any other event or message: see [`Event::fields`].
    Other,
}

/// The result of a category review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CategoryAudit {
    /// `first`: the first-level category id (text when not numeric).
    pub first: Option<Scalar>,
    /// `second`: the second-level category id (text when not numeric).
    pub second: Option<Scalar>,
    /// `ret`: the platform's result code as sent.
    pub ret: Option<Scalar>,
    /// What `ret` means.
    pub result: AuditResult,
    /// `reason`: why it was rejected; may be empty.
    pub reason: String,
}

/// The meaning of a category audit's `ret`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditResult {
    /// `ret` = 3.
    Passed,
    /// `ret` = 2.
    Rejected,
    /// Any other or missing `ret`: kept, not refused.
    Unknown,
}

impl AuditResult {
    /// The lowercase name used in logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Rejected => "rejected",
            Self::Unknown => "unknown",
        }
    }
}

/// A value that is an integer when the text is numeric, else the text itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum Scalar {
    /// Numeric text.
    Int(i64),
    /// Anything else, kept as sent (e.g. the documentation's "First class id").
    Text(String),
}

impl Scalar {
    /// Reads `text` as an integer when it is one (surrounding whitespace ignored).
    pub fn from_text(text: &str) -> Self {
        let trimmed = text.trim();
        match trimmed.parse::<i64>() {
            Ok(n) => Self::Int(n),
            Err(_) => Self::Text(text.to_owned()),
        }
    }

    /// The integer, when numeric.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(n) => Some(*n),
            Self::Text(_) => None,
        }
    }
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Int(n) => write!(f, "{n}"),
            Self::Text(t) => f.write_str(t),
        }
    }
}

impl Event {
    /// Reads a message (XML or JSON, detected from the text). Never fails: a message that
    /// cannot be read at all becomes an [`EventKind::Other`] event with no fields and its raw
    /// text.
    ///
    /// The id identifies the message, not the request: `MsgId` when present, else the app,
    /// the authorizer, `ToUserName`/`AppId`, `FromUserName`, `CreateTime`, `Event`/`InfoType`
    /// and all the event's own fields (for a category audit: `first`, `second`, `ret`,
    /// `reason`), so that a retry maps to the same id and two different audit results in one
    /// second do not.
    pub fn parse(message: &str, app: &str, authorizer_appid: Option<&str>) -> Self {
        Self::from_message(message.to_owned(), app, authorizer_appid)
    }

    /// Like [`Event::parse`], keeping `message` as the event's raw text without copying it.
    pub fn from_message(message: String, app: &str, authorizer_appid: Option<&str>) -> Self {
        let (fields, format) = Fields::parse_detected(&message);
        let text = |name: &str| {
            fields
                .get(name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let event = text("Event");
        let info_type = text("InfoType");
        let kind = classify(&fields, event.as_deref(), info_type.as_deref());
        let id = identity(&fields, &message, app, authorizer_appid);
        Self {
            id,
            received_at: None,
            attempts: 0,
            last_error: None,
            app: app.to_owned(),
            authorizer_appid: authorizer_appid.map(str::to_owned),
            to_user_name: text("ToUserName"),
            from_user_name: text("FromUserName"),
            create_time: fields
                .get("CreateTime")
                .and_then(|t| t.trim().parse::<i64>().ok()),
            msg_type: text("MsgType"),
            event,
            info_type,
            msg_id: text("MsgId"),
            kind,
            fields,
            format,
            raw: message,
        }
    }

    /// Computes the deduplication key from the event's fields, as [`Event::parse`] did for
    /// [`Event::id`]: a platform retry of the same message gives the same key. An event
    /// stored by a version with the older id form (24 hex digits of hash alone) keeps that
    /// id, which this key then does not match.
    pub fn dedup_key(&self) -> String {
        identity(
            &self.fields,
            &self.raw,
            &self.app,
            self.authorizer_appid.as_deref(),
        )
    }

    /// The category audit, when this is one.
    pub fn category_audit(&self) -> Option<&CategoryAudit> {
        match &self.kind {
            EventKind::CategoryAudit(audit) => Some(audit),
            _ => None,
        }
    }

    /// The ordering key: events sharing it are delivered one at a time, in arrival order
    /// (per route). It is the app, the authorizer and the event name, and for a category
    /// audit also its `first` and `second` category ids, so that the results of one
    /// category's reviews never overtake each other while other categories go on. Fields
    /// are separated by U+001F, which no name or id contains.
    pub fn order_key(&self) -> String {
        let mut key = format!(
            "{}\u{1f}{}\u{1f}{}",
            self.app,
            self.authorizer_appid.as_deref().unwrap_or(""),
            self.name()
        );
        if let Some(audit) = self.category_audit() {
            let id = |v: &Option<Scalar>| v.as_ref().map(|s| s.to_string()).unwrap_or_default();
            key.push('\u{1f}');
            key.push_str(id(&audit.first).trim());
            key.push('\u{1f}');
            key.push_str(id(&audit.second).trim());
        }
        key.replace('\0', "\u{fffd}")
    }

    /// Where the event came from: a push, or a reconciling pull.
    pub fn source(&self) -> Source {
        match self.fields.get(SOURCE_FIELD).map(str::trim) {
            Some("reconciled") => Source::Reconciled,
            _ => Source::Push,
        }
    }

    /// The event's name: `Event`, else `InfoType`, else `MsgType`, else `unknown`.
    pub fn name(&self) -> &str {
        self.event
            .as_deref()
            .or(self.info_type.as_deref())
            .or(self.msg_type.as_deref())
            .unwrap_or("unknown")
    }
}

fn classify(fields: &Fields, event: Option<&str>, info_type: Option<&str>) -> EventKind {
    if event.is_some_and(|e| e.eq_ignore_ascii_case(CATEGORY_AUDIT)) {
        let scalar = |name: &str| fields.get(name).map(Scalar::from_text);
        let ret = scalar("ret");
        let result = match ret.as_ref().and_then(Scalar::as_int) {
            Some(3) => AuditResult::Passed,
            Some(2) => AuditResult::Rejected,
            _ => AuditResult::Unknown,
        };
        return EventKind::CategoryAudit(CategoryAudit {
            first: scalar("first"),
            second: scalar("second"),
            ret,
            result,
            reason: fields.get("reason").unwrap_or_default().to_owned(),
        });
    }
    if info_type.is_some_and(|i| i.eq_ignore_ascii_case(COMPONENT_VERIFY_TICKET))
        && let Some(ticket) = fields.get("ComponentVerifyTicket")
    {
        return EventKind::ComponentVerifyTicket {
            ticket: ticket.trim().to_owned(),
        };
    }
    EventKind::Other
}

#[cfg(test)]
mod tests;
