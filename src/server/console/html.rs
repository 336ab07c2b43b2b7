//! HTML for the console: every piece of text from a push goes through [`esc`] (control
//! characters made visible, then `&<>"'` as entities), pages share one layout, and the only
//! style is the stylesheet served from the console itself (the Content-Security-Policy
//! allows nothing else: no inline script or style, nothing from other origins).

use std::fmt::Write as _;

/// `text` safe inside HTML text and attribute values.
pub(crate) fn esc(text: &str) -> String {
    let visible = crate::escape::printable(text);
    let mut out = String::with_capacity(visible.len());
    for c in visible.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page: the layout around `body`, with the navigation and the logout form (carrying
/// `csrf`) when signed in.
pub(crate) fn page(title: &str, csrf: Option<&str>, body: &str) -> String {
    let mut nav = String::new();
    if let Some(csrf) = csrf {
        let _ = write!(
            nav,
            r#"<nav><a href="/console/">Overview</a> <a href="/console/events">Events</a> <a href="/console/quarantine">Quarantine</a> <a href="/console/categories">Categories</a>
<form method="post" action="/console/logout" class="inline">{}<button type="submit">Log out</button></form></nav>"#,
            csrf_field(csrf)
        );
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{} · wxpush</title><link rel="stylesheet" href="/console/static/console.css"></head>
<body><header><strong>wxpush</strong> {nav}</header><main><h1>{}</h1>
{body}
</main></body></html>"#,
        esc(title),
        esc(title)
    )
}

/// `text` for a URL's path segment or query value.
pub(crate) fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The hidden field every form carries.
pub(crate) fn csrf_field(csrf: &str) -> String {
    format!(r#"<input type="hidden" name="csrf" value="{}">"#, esc(csrf))
}

/// A flash message line, when there is one.
pub(crate) fn notice(text: Option<&str>) -> String {
    text.map(|t| format!(r#"<p class="notice">{}</p>"#, esc(t)))
        .unwrap_or_default()
}

/// A message passed along a redirect (`?notice=…`).
#[derive(serde::Deserialize, Default)]
pub(crate) struct Flash {
    #[serde(default)]
    pub(crate) notice: Option<String>,
}

/// An error paragraph: what failed, and why.
pub(crate) fn failed(what: &str, error: impl std::fmt::Display) -> String {
    format!(
        r#"<p class="error">{}: {}</p>"#,
        esc(what),
        esc(&error.to_string())
    )
}

/// A time (unix ms) as RFC 3339, or `-`.
pub(crate) fn time(ms: Option<i64>) -> String {
    ms.map(crate::clock::rfc3339).unwrap_or_else(|| "-".into())
}

/// The console's stylesheet: readable on a laptop and a phone.
pub(crate) const STYLESHEET: &str = "
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#234;color:#fff;padding:.6em 1em;display:flex;flex-wrap:wrap;gap:1em;align-items:center}
header a{color:#cde;margin-right:.8em}
nav{display:flex;flex-wrap:wrap;align-items:center;gap:.3em}
main{padding:1em;max-width:80em}
table{border-collapse:collapse;width:100%;font-size:.9em;display:block;overflow-x:auto}
th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top;white-space:nowrap}
td.wrap{white-space:normal;word-break:break-all}
pre{background:#fff;border:1px solid #ddd;padding:.6em;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
form.inline{display:inline}
form.filters{display:flex;flex-wrap:wrap;gap:.5em;margin-bottom:1em}
input,select,button{font:inherit;padding:.2em .4em}
.notice{background:#ffd;border:1px solid #cc8;padding:.5em}
.error{background:#fdd;border:1px solid #c88;padding:.5em}
.dead,.rejected{color:#a00}.delivered,.passed{color:#070}.pending{color:#850}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}dt{font-weight:bold}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_a_push_is_shown_as_text() {
        assert_eq!(
            esc("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(
            esc("\"><img src=x onerror=alert(1)>"),
            "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"
        );
        assert_eq!(esc("a\u{1b}[31m\r\nb"), "a\\u{1b}[31m\\r\\nb");
        assert_eq!(esc("it's & ok"), "it&#39;s &amp; ok");
    }
}
