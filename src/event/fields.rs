//! Lenient reading of the platform's flat messages, XML or JSON, into ordered text fields.
//!
//! Both the outer envelope and the decrypted message are "flat": a root element (or object)
//! holding named values. This reader never fails: mismatched end tags (the platform's own
//! sample has `<first>…</nickname>`), stray text, a BOM, an XML declaration, entities, CDATA or
//! not, CRLF and indentation, unknown or missing fields all read; whatever cannot be read is
//! skipped. Field names are looked up exactly first, then ignoring ASCII case.

mod lenient;

use lenient::read_xml_leniently;
#[cfg(test)]
use lenient::starts_reference;
use serde::Serialize;
use serde::ser::SerializeMap;

/// The wire format of a body or message, decided from its first meaningful character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `<xml>…</xml>` (the default for anything that is not JSON).
    Xml,
    /// `{"ToUserName": …}`.
    Json,
}

impl Format {
    /// Detects the format from the text itself, ignoring any `Content-Type`: a JSON push may
    /// arrive labelled `text/xml`.
    pub fn detect(text: &str) -> Self {
        match strip_bom(text).trim_start().as_bytes().first() {
            Some(b'{') => Self::Json,
            _ => Self::Xml,
        }
    }
}

/// The named values of a message in their order of appearance, all as text.
///
/// Nested XML elements are flattened: each leaf element becomes a field named by its own
/// tag. JSON numbers and booleans keep their literal text; nested JSON values keep their JSON
/// text. When a name repeats, the first value wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// Reads `text` in the given format. Never fails; unreadable parts are skipped.
    pub fn parse(text: &str, format: Format) -> Self {
        let text = strip_bom(text);
        match format {
            Format::Xml => read_xml(text),
            Format::Json => read_json(text),
        }
    }

    /// Reads `text` in the format detected from its content.
    pub fn parse_detected(text: &str) -> (Self, Format) {
        let format = Format::detect(text);
        (Self::parse(text, format), format)
    }

    /// The value of `name`: an exact match first, else the first match ignoring ASCII case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .or_else(|| self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
            .map(|(_, v)| v.as_str())
    }

    /// The value of the first of `names` that is present and not blank.
    pub fn get_any(&self, names: &[&str]) -> Option<&str> {
        names
            .iter()
            .filter_map(|n| self.get(n))
            .find(|v| !v.trim().is_empty())
    }

    /// All fields, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no field was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds a field unless one with exactly this name exists.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        if !self.0.iter().any(|(k, _)| *k == name) {
            self.0.push((name, value.into()));
        }
    }
}

impl Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Bytes as text: borrowed when valid UTF-8 (checked quickly), else with U+FFFD for the
/// invalid parts.
fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.into(),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

fn read_xml(text: &str) -> Fields {
    scan_flat(text).unwrap_or_else(|| read_xml_leniently(text))
}

/// The fast path for the shape nearly every message has: a root element holding leaf
/// elements, each with one CDATA section or plain text without entities, and nothing else
/// (whitespace aside). Returns `None` for anything else (declarations, attributes,
/// nesting, entities, mismatched end tags…), which [`read_xml_leniently`] then reads. Where
/// it answers, it answers exactly as the lenient reader does; a test compares the two.
fn scan_flat(text: &str) -> Option<Fields> {
    let mut rest = text.trim_start().strip_prefix('<')?;
    let root_end = rest.find('>')?;
    let root = &rest[..root_end];
    if root.is_empty() || !root.bytes().all(is_name_byte) {
        return None;
    }
    rest = &rest[root_end + 1..];
    // Borrowed until the whole document has passed: a late mismatch costs no allocations.
    let mut found: Vec<(&str, &str)> = Vec::with_capacity(16);
    loop {
        rest = rest.trim_start();
        let tag = rest.strip_prefix('<')?;
        if let Some(close) = tag.strip_prefix('/') {
            let after = close.strip_prefix(root)?.strip_prefix('>')?;
            if !after.trim().is_empty() {
                return None;
            }
            let mut fields = Fields(Vec::with_capacity(found.len()));
            for (name, value) in found {
                fields.push(name, value);
            }
            return Some(fields);
        }
        let name_end = tag.find('>')?;
        let name = &tag[..name_end];
        if name.is_empty() || !name.bytes().all(is_name_byte) {
            return None;
        }
        let body = &tag[name_end + 1..];
        let (value, after_value) = if let Some(cdata) = body.trim_start().strip_prefix("<![CDATA[")
        {
            let end = cdata.find("]]>")?;
            (&cdata[..end], cdata[end + 3..].trim_start())
        } else {
            let end = body.find('<')?;
            let value = &body[..end];
            if value.contains('&') {
                return None;
            }
            (value.trim(), &body[end..])
        };
        rest = after_value
            .strip_prefix("</")?
            .strip_prefix(name)?
            .strip_prefix('>')?;
        found.push((name, value));
    }
}

/// Bytes of an element name the fast path accepts.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':') || b >= 0x80
}

fn read_json(text: &str) -> Fields {
    let mut fields = Fields::default();
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) {
        for (k, v) in map {
            fields.push(k, json_text(&v));
        }
    }
    fields
}

/// A JSON value as field text: strings unquoted, null empty, others as JSON.
fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
