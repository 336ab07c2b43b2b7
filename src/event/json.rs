//! The documented JSON shape of an event, as handlers, `events list --json` and the
//! webhook receive it.

use super::*;

/// The event's JSON form; `head` and `tail` add the inbox's fields (status, attempts) in the
/// places the documented record shape puts them.
#[derive(Serialize)]
pub(crate) struct EventJson<'a, H: Serialize, T: Serialize> {
    id: &'a str,
    received_at: Option<String>,
    source: &'static str,
    #[serde(flatten)]
    head: H,
    app: &'a str,
    authorizer_appid: Option<&'a str>,
    to_user_name: Option<&'a str>,
    from_user_name: Option<&'a str>,
    create_time: Option<i64>,
    msg_type: Option<&'a str>,
    event: Option<&'a str>,
    info_type: Option<&'a str>,
    category_audit: Option<&'a CategoryAudit>,
    fields: &'a Fields,
    #[serde(flatten)]
    tail: T,
}

/// Nothing to add.
#[derive(Serialize)]
pub(crate) struct NoExtra {}

impl Event {
    pub(crate) fn json_with<H: Serialize, T: Serialize>(
        &self,
        head: H,
        tail: T,
    ) -> EventJson<'_, H, T> {
        EventJson {
            id: &self.id,
            received_at: self.received_at.map(clock::rfc3339),
            source: self.source().as_str(),
            head,
            app: &self.app,
            authorizer_appid: self.authorizer_appid.as_deref(),
            to_user_name: self.to_user_name.as_deref(),
            from_user_name: self.from_user_name.as_deref(),
            create_time: self.create_time,
            msg_type: self.msg_type.as_deref(),
            event: self.event.as_deref(),
            info_type: self.info_type.as_deref(),
            category_audit: self.category_audit(),
            fields: &self.fields,
            tail,
        }
    }
}

#[derive(Serialize)]
struct PendingJson {
    status: &'static str,
}

#[derive(Serialize)]
struct AttemptsJson<'a> {
    attempts: u32,
    last_error: Option<&'a str>,
}

impl Event {
    /// The event as the JSON ready handlers send: the shape `wxpush events list --json`
    /// prints, with `status` `pending` (it is being delivered).
    pub fn delivery_json(&self) -> String {
        serde_json::to_string(&self.json_with(
            PendingJson { status: "pending" },
            AttemptsJson {
                attempts: self.attempts,
                last_error: self.last_error.as_deref(),
            },
        ))
        .unwrap_or_default()
    }
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json_with(NoExtra {}, NoExtra {}).serialize(serializer)
    }
}
