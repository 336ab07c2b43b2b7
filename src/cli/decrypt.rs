//! `wxpush decrypt`: every check on a captured request, explained step by step with the
//! configured apps, deciding the mode as the server does.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use wxpush::escape::Printable;
use wxpush::push::PushQuery;
use wxpush::{App, Config};

/// `wxpush decrypt` options.
#[derive(Debug, Args)]
pub(crate) struct DecryptArgs {
    /// The captured query string (or the whole URL).
    #[arg(long)]
    query: String,
    /// The captured body; standard input when not given.
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
    /// The request path, to read an authorizer app id from `/…/{authorizer_appid}/callback`.
    #[arg(long)]
    path: Option<String>,
}

/// Runs `wxpush decrypt`: explains every check on a captured request.
pub(crate) fn decrypt(config: &Config, args: DecryptArgs) -> anyhow::Result<()> {
    let body = match &args.body_file {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .context("reading the body from stdin")?;
            body
        }
    };
    let (path_part, query_part) = match args.query.split_once('?') {
        Some((before, after)) => (Some(before), after),
        None => (None, args.query.as_str()),
    };
    let query = PushQuery::from_map(parse_query(query_part));
    let path = args.path.as_deref().or(path_part).unwrap_or_default();
    let authorizer = path
        .trim_end_matches('/')
        .strip_suffix("/callback")
        .and_then(|p| p.rsplit('/').next())
        .filter(|a| !a.is_empty() && *a != "wechat");
    let apps: Vec<App> = config.apps().cloned().collect();
    let diagnoses = wxpush::tools::diagnose::diagnose(&apps, &query, &body, authorizer);
    let best_signed = diagnoses
        .first()
        .is_some_and(|d| d.steps.iter().any(|s| s.name == "signature" && s.ok));
    let shown = if best_signed {
        &diagnoses[..1]
    } else {
        &diagnoses[..]
    };
    for d in shown {
        outln!("app {}:", d.app)?;
        for step in &d.steps {
            outln!(
                "  [{}] {:<9} {}",
                if step.ok { "ok" } else { "FAIL" },
                step.name,
                Printable(&step.detail)
            )?;
        }
    }
    match diagnoses.first() {
        Some(d) if d.passed() => {
            if let Some(event) = &d.event {
                outln!("event:\n{}", serde_json::to_string_pretty(event)?)?;
            }
            Ok(())
        }
        _ => bail!("the request does not pass every check with the configured app(s)"),
    }
}

/// Splits `a=b&c=d`, decoding `%XX` and `+`.
fn parse_query(text: &str) -> std::collections::HashMap<String, String> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let hex = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(hi * 16 + lo);
            i += 3;
            continue;
        }
        out.push(if b == b'+' { b' ' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
