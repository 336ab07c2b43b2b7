//! `wxpush simulate`: a push sent exactly as the platform would make it (signed, encrypted),
//! with the request and the answer shown, using the server's own code.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use wxpush::escape::Printable;
use wxpush::event::fields::Format;
use wxpush::push::Mode;
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

pub(crate) fn pick_app<'a>(config: &'a Config, name: Option<&str>) -> anyhow::Result<&'a App> {
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
    let message = message(app, &args)?;
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
    let copies = args.retries.max(1);
    if args.print {
        for _ in 0..copies {
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
    let failed = runtime.block_on(send(app, &message, mode, &url, content_type, copies))?;
    if failed > 0 {
        bail!("{failed} of {copies} request(s) were not answered `success`");
    }
    Ok(())
}

/// The message to send: the sample, a ticket, a file's, or the category audit the flags say.
fn message(app: &App, args: &SimulateArgs) -> anyhow::Result<String> {
    let format = match args.format {
        FormatArg::Xml => Format::Xml,
        FormatArg::Json => Format::Json,
    };
    if args.seed_sample {
        return Ok(simulate::SEED_SAMPLE.to_owned());
    }
    if args.ticket {
        return Ok(simulate::verify_ticket(&app.appid, format));
    }
    if let Some(path) = &args.message_file {
        return std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()));
    }
    let ret = match args.ret.as_str() {
        "passed" => 3,
        "rejected" => 2,
        other => other.parse().with_context(|| {
            format!("--ret: expected passed, rejected or a number, got {other:?}")
        })?,
    };
    Ok(simulate::category_audit(
        &AuditSpec {
            ret,
            first: args.first.clone(),
            second: args.second.clone(),
            reason: args.reason.clone(),
            to_user_name: args.to_user_name.clone(),
        },
        format,
    ))
}

/// Sends `copies` fresh pushes of `message` and prints each exchange; returns how many
/// were not answered `success`.
async fn send(
    app: &App,
    message: &str,
    mode: Mode,
    url: &str,
    content_type: &str,
    copies: u32,
) -> anyhow::Result<u32> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut failed = 0;
    for n in 1..=copies {
        let push = simulate::build(app, message, mode);
        outln!(
            "POST {url}?{} ({mode:?} mode, app {})",
            push.query_string(),
            app.name
        )?;
        outln!("{}", push.body)?;
        let sent = client
            .post(format!("{url}?{}", push.query_string()))
            .header("content-type", content_type)
            .body(push.body)
            .send()
            .await;
        match sent {
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
    Ok(failed)
}
