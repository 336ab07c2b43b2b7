//! `wxpush simulate`, `wxpush verify-url` and `wxpush decrypt`: see a push arrive, check a
//! deployed URL, and explain a captured request, all with the server's own code.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use wxpush::escape::Printable;
use wxpush::event::fields::Format;
use wxpush::push::{Mode, PushQuery};
use wxpush::tools::simulate::{self, AuditSpec};
use wxpush::{App, Config};

/// `wxpush simulate` options.
#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// The configured app whose credentials sign the push (default: the default app).
    #[arg(long)]
    app: Option<String>,
    /// Where to send it (default: this configuration's local push URL).
    #[arg(long)]
    url: Option<String>,
    /// Send to the third-party route for this authorizer app id.
    #[arg(long)]
    authorizer: Option<String>,
    /// How the push is protected.
    #[arg(long, value_enum, default_value_t = ModeArg::Safe)]
    mode: ModeArg,
    /// The message format.
    #[arg(long, value_enum, default_value_t = FormatArg::Xml)]
    format: FormatArg,
    /// Category audit result: passed, rejected, or a number.
    #[arg(long, default_value = "passed")]
    ret: String,
    /// First-level category id.
    #[arg(long, default_value = "8")]
    first: String,
    /// Second-level category id.
    #[arg(long, default_value = "39")]
    second: String,
    /// Rejection reason.
    #[arg(long, default_value = "")]
    reason: String,
    /// The Mini Program's original id (ToUserName).
    #[arg(long, default_value = "gh_wxpush_simulated")]
    to_user_name: String,
    /// Send the platform documentation's malformed sample instead.
    #[arg(long, conflicts_with_all = ["ticket", "message_file"])]
    seed_sample: bool,
    /// Send a component_verify_ticket notice instead.
    #[arg(long, conflicts_with = "message_file")]
    ticket: bool,
    /// Send this message (XML or JSON) instead.
    #[arg(long, value_name = "FILE")]
    message_file: Option<PathBuf>,
    /// Send the same message this many times, as the platform's retries do.
    #[arg(long, default_value_t = 1)]
    retries: u32,
    /// Print a ready curl command instead of sending.
    #[arg(long)]
    print: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    Safe,
    Compat,
    Plain,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Xml,
    Json,
}

fn pick_app<'a>(config: &'a Config, name: Option<&str>) -> anyhow::Result<&'a App> {
    match name {
        None => Ok(&config.app),
        Some(name) => config.apps().find(|a| a.name == name).with_context(|| {
            let names: Vec<&str> = config.apps().map(|a| a.name.as_str()).collect();
            format!("--app: no app named {name:?}; configured: {names:?}")
        }),
    }
}

/// The local push URL for `app` (and `authorizer`) under `config`.
fn local_url(config: &Config, app: &App, authorizer: Option<&str>) -> String {
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let mut url = format!("http://{addr}/wechat");
    if app.name != config.app.name {
        url.push('/');
        url.push_str(&app.name);
    }
    if let Some(authorizer) = authorizer {
        url.push_str(&format!("/{authorizer}/callback"));
    }
    url
}

/// Runs `wxpush simulate`.
pub(crate) fn simulate(config: &Config, args: SimulateArgs) -> anyhow::Result<()> {
    let app = pick_app(config, args.app.as_deref())?;
    let format = match args.format {
        FormatArg::Xml => Format::Xml,
        FormatArg::Json => Format::Json,
    };
    let message = if args.seed_sample {
        simulate::SEED_SAMPLE.to_owned()
    } else if args.ticket {
        simulate::verify_ticket(&app.appid, format)
    } else if let Some(path) = &args.message_file {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    } else {
        let ret = match args.ret.as_str() {
            "passed" => 3,
            "rejected" => 2,
            other => other.parse().with_context(|| {
                format!("--ret: expected passed, rejected or a number, got {other:?}")
            })?,
        };
        simulate::category_audit(
            &AuditSpec {
                ret,
                first: args.first.clone(),
                second: args.second.clone(),
                reason: args.reason.clone(),
                to_user_name: args.to_user_name.clone(),
            },
            format,
        )
    };
    let mode = match args.mode {
        ModeArg::Safe => Mode::Safe,
        ModeArg::Compat => Mode::Compat,
        ModeArg::Plain => Mode::Plain,
    };
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| local_url(config, app, args.authorizer.as_deref()));
    let content_type = match Format::detect(&message) {
        Format::Json => "application/json",
        Format::Xml => "text/xml",
    };
    if args.print {
        for _ in 0..args.retries.max(1) {
            let push = simulate::build(app, &message, mode);
            outln!(
                "curl -s '{url}?{}' -H 'Content-Type: {content_type}' --data-binary '{}'",
                push.query_string(),
                push.body.replace('\'', "'\\''")
            )?;
        }
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let mut failed = 0;
        for n in 1..=args.retries.max(1) {
            let push = simulate::build(app, &message, mode);
            outln!(
                "POST {url}?{} ({mode:?} mode, app {})",
                push.query_string(),
                app.name
            )?;
            outln!("{}", push.body)?;
            match client
                .post(format!("{url}?{}", push.query_string()))
                .header("content-type", content_type)
                .body(push.body)
                .send()
                .await
            {
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    outln!("-> {status} {}\n", Printable(&body))?;
                    if !(status.is_success() && body == "success") {
                        failed += 1;
                    }
                }
                Err(e) => {
                    outln!("-> request {n} failed: {}\n", e.without_url())?;
                    failed += 1;
                }
            }
        }
        if failed > 0 {
            bail!(
                "{failed} of {} request(s) were not answered `success`",
                args.retries.max(1)
            );
        }
        Ok(())
    })
}

/// Runs `wxpush verify-url URL`: the platform's GET check against a deployed receiver.
pub(crate) fn verify_url(config: &Config, url: &str, app: Option<&str>) -> anyhow::Result<()> {
    let app = pick_app(config, app)?;
    let timestamp = (wxpush::clock::now_ms() / 1000).to_string();
    let nonce = rand::random::<u32>().to_string();
    let echostr = format!("{}", rand::random::<u64>());
    let signature = wxpush::push::signature::sign(&[app.token.expose(), &timestamp, &nonce]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, location, body) = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let response = client
            .get(url)
            .query(&[
                ("signature", signature.as_str()),
                ("timestamp", &timestamp),
                ("nonce", &nonce),
                ("echostr", &echostr),
            ])
            .send()
            .await
            .map_err(|e| anyhow::anyhow!(explain_request_error(&e.without_url())))?;
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await.unwrap_or_default();
        anyhow::Ok((status, location, body))
    })?;
    outln!("GET {url} with app {}'s token: {status}", app.name)?;
    let verdict = if status.is_success() && body == echostr {
        outln!("PASS: the URL answered the check exactly as the platform expects")?;
        return Ok(());
    } else if status.is_success() && body.trim() == echostr {
        "the answer has extra whitespace around echostr; the platform compares exactly. A proxy or framework adds it.".to_owned()
    } else if status.is_success() && body.contains(&echostr) {
        "the answer wraps echostr in something else (HTML, JSON, a template); answer the bare value as text".to_owned()
    } else if status.is_success() {
        format!(
            "answered 200 but not with echostr (got {:?}); the path may reach another service, or a proxy rewrote the body",
            body.chars().take(80).collect::<String>()
        )
    } else if status.as_u16() == 401 || status.as_u16() == 403 {
        format!(
            "the signature was refused: the receiver's token differs from app {}'s token here",
            app.name
        )
    } else if status.as_u16() == 404 {
        "404: wrong path. Receivers answer at /wechat, /wechat/{name} or /wechat/{authorizer_appid}/callback".to_owned()
    } else if status.is_redirection() {
        format!(
            "redirect to {}: the platform does not follow redirects; register the final URL (often the https one)",
            Printable(&location.unwrap_or_default())
        )
    } else if status.as_u16() == 400 {
        format!(
            "400: the receiver says the request is malformed ({}); a proxy may drop the query string",
            Printable(&body.chars().take(120).collect::<String>())
        )
    } else {
        format!(
            "{status}: the receiver failed ({})",
            Printable(&body.chars().take(120).collect::<String>())
        )
    };
    bail!("FAIL: {verdict}")
}

fn explain_request_error(e: &reqwest::Error) -> String {
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        chain.push_str(&s.to_string());
        chain.push_str(": ");
        source = s.source();
    }
    let lower = chain.to_lowercase();
    let cause = if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
    {
        "TLS problem: the platform needs a valid certificate for the host name (not self-signed, full chain)"
    } else if e.is_timeout() {
        "no answer within 10 s: a firewall, or the receiver is stuck (the platform gives up after 5 s)"
    } else if e.is_connect() {
        "cannot connect: is the receiver running, the host and port right, the port open?"
    } else {
        "the request failed"
    };
    format!("FAIL: {cause} ({})", chain.trim_end_matches(": "))
}

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
        if b == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(hi * 16 + lo);
                i += 3;
                continue;
            }
        }
        out.push(if b == b'+' { b' ' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
