//! An event's identity: the id every platform retry of one message shares (the dedup
//! key), from `MsgId` or from the message's fields, prefixed with its `CreateTime`.

use super::*;

/// Fields every event has; the rest are "the event's own".
const COMMON_FIELDS: &[&str] = &[
    "ToUserName",
    "FromUserName",
    "CreateTime",
    "MsgType",
    "Event",
    "InfoType",
    "AppId",
    "MsgId",
];

/// The event's id: `evt_` and 24 hex digits of a SHA-1 over what makes the message itself.
///
/// An event identified by its fields (no `MsgId`) whose `CreateTime` is a number gets `evt_`,
/// then the time as 8 hex digits, then 16 hex digits of the hash. Its id then sorts by
/// creation time, and the store's id index takes new ids near its end instead of at a random
/// place each, so a commit writes fewer index pages (half the bytes per push when few pushes
/// share a second). `CreateTime` is part of such an event's identity anyway, so this changes
/// no deduplication.
pub(super) fn identity(
    fields: &Fields,
    raw: &str,
    app: &str,
    authorizer_appid: Option<&str>,
) -> String {
    let mut hasher = Sha1::new();
    let mut part = |text: &str| {
        hasher.update(text.as_bytes());
        hasher.update([0x1f]);
    };
    part(app);
    part(authorizer_appid.unwrap_or_default());
    let get = |name: &str| fields.get(name).map(str::trim).unwrap_or_default();
    let mut created: Option<u32> = None;
    if !get("MsgId").is_empty() {
        part("msg");
        part(get("ToUserName"));
        part(get("MsgId"));
    } else if fields.is_empty() {
        part("raw");
        part(raw);
    } else {
        part("event");
        part(
            fields
                .get_any(&["ToUserName", "AppId"])
                .unwrap_or_default()
                .trim(),
        );
        part(get("FromUserName"));
        let create_time = get("CreateTime");
        part(create_time);
        created = create_time.parse().ok();
        part(
            fields
                .get_any(&["Event", "InfoType"])
                .unwrap_or_default()
                .trim(),
        );
        // The event's own fields, all of them: for a category audit first, second, ret and
        // reason. A retry carries the same message, so they match; two audit results that
        // differ in any of them are different events.
        let mut own: Vec<(String, &str)> = fields
            .iter()
            .filter(|(k, _)| !COMMON_FIELDS.iter().any(|c| c.eq_ignore_ascii_case(k)))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim()))
            .collect();
        own.sort_unstable();
        for (k, v) in own {
            part(&k);
            part(v);
        }
    }
    let digest = hasher.finalize();
    match created {
        Some(t) => format!("evt_{t:08x}{}", crate::hex::encode(&digest[..8])),
        None => format!("evt_{}", crate::hex::encode(&digest[..12])),
    }
}
