//! `wxpush verify-url`: the platform's URL check against a deployed receiver, with the
//! likely cause of a failure.

use std::time::Duration;

use anyhow::bail;
use wxpush::Config;
use wxpush::escape::Printable;

use super::simulate::pick_app;

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
