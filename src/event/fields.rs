//! Lenient reading of the platform's flat messages, XML or JSON, into ordered text fields.
//!
//! Both the outer envelope and the decrypted message are "flat": a root element (or object)
//! holding named values. This reader never fails: mismatched end tags (the platform's own
//! sample has `<first>…</nickname>`), stray text, a BOM, an XML declaration, entities, CDATA or
//! not, CRLF and indentation, unknown or missing fields all read; whatever cannot be read is
//! skipped. Field names are looked up exactly first, then ignoring ASCII case.

use quick_xml::Reader;
use quick_xml::events::Event as XmlEvent;
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

/// One element being read: its name, its text so far, and whether it had children.
struct Open {
    name: String,
    /// Every text and CDATA piece, concatenated.
    all: String,
    /// The same without whitespace-only text pieces (layout around CDATA).
    significant: String,
    has_cdata: bool,
    has_children: bool,
}

impl Open {
    fn new(name: &[u8]) -> Self {
        Self {
            name: lossy(name).into_owned(),
            all: String::new(),
            significant: String::new(),
            has_cdata: false,
            has_children: false,
        }
    }

    fn push_text(&mut self, text: &str) {
        self.all.push_str(text);
        if !text.trim().is_empty() {
            self.significant.push_str(text);
        }
    }

    fn push_cdata(&mut self, text: &str) {
        self.has_cdata = true;
        self.all.push_str(text);
        self.significant.push_str(text);
    }

    /// The element's value. With CDATA, whitespace-only text around it is layout and is
    /// dropped while the CDATA is kept exactly; without, the text is trimmed.
    fn into_field(self) -> (String, String) {
        let value = if self.has_cdata {
            self.significant
        } else if self.all.trim().len() == self.all.len() {
            self.all
        } else {
            self.all.trim().to_owned()
        };
        (self.name, value)
    }
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

fn read_xml_leniently(text: &str) -> Fields {
    let text = escape_stray(text);
    let mut reader = Reader::from_str(&text);
    {
        let config = reader.config_mut();
        config.check_end_names = false;
        config.allow_unmatched_ends = true;
        config.check_comments = false;
    }
    let mut fields = Fields::default();
    let mut stack: Vec<Open> = Vec::new();
    loop {
        match reader.read_event() {
            Ok(XmlEvent::Start(start)) => {
                if let Some(parent) = stack.last_mut() {
                    parent.has_children = true;
                }
                stack.push(Open::new(start.name().as_ref()));
            }
            Ok(XmlEvent::Empty(start)) => {
                if let Some(parent) = stack.last_mut() {
                    parent.has_children = true;
                    fields.push(lossy(start.name().as_ref()), "");
                }
            }
            Ok(XmlEvent::Text(t)) => {
                if let Some(open) = stack.last_mut() {
                    open.push_text(&unescape(&lossy(t.as_ref())));
                }
            }
            Ok(XmlEvent::GeneralRef(r)) => {
                if let Some(open) = stack.last_mut() {
                    let name = lossy(r.as_ref());
                    open.push_text(&unescape(&format!("&{name};")));
                }
            }
            Ok(XmlEvent::CData(c)) => {
                if let Some(open) = stack.last_mut() {
                    open.push_cdata(&lossy(c.as_ref()));
                }
            }
            Ok(XmlEvent::End(_)) => {
                if let Some(open) = stack.pop() {
                    // The root (or any element with children) is a container, not a field.
                    if !open.has_children && !stack.is_empty() {
                        let (name, value) = open.into_field();
                        fields.push(name, value);
                    }
                }
            }
            Ok(XmlEvent::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    // An unterminated document: keep what its open leaves hold.
    while let Some(open) = stack.pop() {
        if !open.has_children && !stack.is_empty() {
            let (name, value) = open.into_field();
            fields.push(name, value);
        }
    }
    fields
}

/// Escapes what strict XML forbids unescaped in text but a sender may still write, so that
/// the reader keeps it instead of stopping there: a `&` that starts no reference (`x & y`)
/// and a `<` that starts no markup (`a < b`, `<3`). CDATA sections and comments are copied
/// as they are. (A `<` directly followed by a letter reads as a tag, as in any XML.)
fn escape_stray(text: &str) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let stray = match bytes[i] {
            b'<' => {
                let rest = &text[i..];
                let skip = if rest.starts_with("<![CDATA[") {
                    Some(rest.find("]]>").map_or(rest.len(), |end| end + 3))
                } else if rest.starts_with("<!--") {
                    Some(rest.find("-->").map_or(rest.len(), |end| end + 3))
                } else {
                    None
                };
                if let Some(skip) = skip {
                    i += skip;
                    continue;
                }
                let markup = bytes.get(i + 1).is_some_and(|&c| {
                    c.is_ascii_alphabetic()
                        || matches!(c, b'_' | b':' | b'/' | b'!' | b'?')
                        || c >= 0x80
                });
                (!markup).then_some("&lt;")
            }
            b'&' => (!starts_reference(&text[i + 1..])).then_some("&amp;"),
            _ => None,
        };
        if let Some(escaped) = stray {
            let out = out.get_or_insert_with(|| String::with_capacity(text.len() + 16));
            out.push_str(&text[copied..i]);
            out.push_str(escaped);
            copied = i + 1;
        }
        i += 1;
    }
    match out {
        None => text.into(),
        Some(mut out) => {
            out.push_str(&text[copied..]);
            out.into()
        }
    }
}

/// Whether the text after a `&` is a reference: a name or `#` number, then `;`.
fn starts_reference(after: &str) -> bool {
    after
        .find(';')
        .filter(|&end| (1..=12).contains(&end))
        .is_some_and(|end| {
            after[..end]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'#')
        })
}

/// Resolves the five predefined entities and character references; anything else stays
/// as written.
fn unescape(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('&') {
        return text.into();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let resolved = after.find(';').filter(|&end| end <= 12).and_then(|end| {
            let name = &after[..end];
            let c = match name {
                "lt" => Some('<'),
                "gt" => Some('>'),
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => name.strip_prefix('#').and_then(|num| {
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok(),
                        None => num.parse::<u32>().ok(),
                    };
                    code.and_then(char::from_u32)
                }),
            };
            c.map(|c| (c, end))
        });
        match resolved {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.into()
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
