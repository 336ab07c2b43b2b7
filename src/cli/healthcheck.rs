//! `wxpush healthcheck`: a dependency-free HTTP probe of `/healthz`, so a container image
//! needs no curl.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context as _, bail};
use wxpush::Config;

/// Probes `url` (`http://host:port/path`), or `/healthz` where the configuration serves
/// it: `admin_listen` when set, else `listen`.
pub(crate) fn run(config: &Config, url: Option<&str>) -> anyhow::Result<()> {
    let (addr, path) = match url {
        Some(url) => parse(url)?,
        None => {
            let mut addr = config.admin_listen.unwrap_or(config.listen);
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            (addr, "/healthz".to_owned())
        }
    };
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.take(4096).read_to_string(&mut response)?;
    let status = response.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        outln!("healthy: {addr}{path}")?;
        Ok(())
    } else {
        bail!("unhealthy: {addr}{path} answered {status:?}")
    }
}

fn parse(url: &str) -> anyhow::Result<(SocketAddr, String)> {
    let rest = url
        .strip_prefix("http://")
        .context("--url: expected http://host:port/path")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let addr = host
        .parse::<SocketAddr>()
        .with_context(|| format!("--url: expected an IP address and port, got {host:?}"))?;
    Ok((addr, format!("/{path}")))
}
