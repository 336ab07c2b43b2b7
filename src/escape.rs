//! Untrusted text made safe to print. Everything that comes from a push (and any other
//! outside input) passes through here on its way to a text log line or a CLI table: control
//! characters (CR, LF, ESC, NUL, …) and the Unicode line separators and bidirectional
//! overrides become visible escapes, so such text can never start a forged line, move the
//! cursor or recolour a terminal. JSON output needs none of this: its encoder escapes them.

use std::borrow::Cow;
use std::fmt;

/// Whether `c` must not reach a terminal or log line as is.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// Writes `c` as its visible escape: `\n`, `\r`, `\t`, or `\u{1b}`.
fn write_escape(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        other => write!(out, "\\u{{{:x}}}", u32::from(other)),
    }
}

/// `text` with every control character escaped; borrowed when there is none (the norm).
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let _ = fmt::Write::write_str(&mut EscapingWriter(&mut out), text);
    Cow::Owned(out)
}

/// Displays a string with its control characters escaped (see [`printable`]).
#[derive(Debug, Clone, Copy)]
pub struct Printable<'a>(pub &'a str);

impl fmt::Display for Printable<'_> {
    /// Honours width and alignment (`{:<8}`), as `str` does, for table columns.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&printable(self.0))
    }
}

/// A writer that escapes control characters in everything written through it, without
/// allocating: the text log format writes every field value through one.
#[derive(Debug)]
pub struct EscapingWriter<W>(pub W);

impl<W: fmt::Write> fmt::Write for EscapingWriter<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some((at, c)) = rest.char_indices().find(|&(_, c)| needs_escape(c)) {
            self.0.write_str(&rest[..at])?;
            write_escape(&mut self.0, c)?;
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_escapes() {
        let forged = "ok\n2026-01-01T00:00:00Z  INFO forged\r\x1b[31mred\x00\u{202e}";
        let safe = printable(forged);
        assert_eq!(
            safe,
            "ok\\n2026-01-01T00:00:00Z  INFO forged\\r\\u{1b}[31mred\\u{0}\\u{202e}"
        );
        assert!(!safe.chars().any(needs_escape));
        assert_eq!(Printable(forged).to_string(), safe);
        assert_eq!(format!("[{:<6}]", Printable("a\nb")), "[a\\nb  ]");
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        let text = "类目审核 passed: 资质 OK \"quoted\" <xml/>";
        assert!(matches!(printable(text), Cow::Borrowed(t) if t == text));
    }
}
