//! The lenient XML reader, for everything the fast path leaves: mismatched end tags,
//! entities, nesting, declarations, stray `&` and `<`. It never fails: whatever it cannot
//! read is skipped, and every value it reads keeps all its characters.

use quick_xml::Reader;
use quick_xml::events::Event as XmlEvent;

use super::{Fields, lossy};

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

pub(super) fn read_xml_leniently(text: &str) -> Fields {
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
pub(super) fn starts_reference(after: &str) -> bool {
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
