//! Load benchmark: drives the real `wxpush serve` (durable store on, default configuration
//! apart from credentials) and the bare axum baseline (`examples/bare.rs`) over loopback with
//! many connections, each request a distinct, freshly signed and encrypted push.
//!
//! ```sh
//! cargo run --release --example loadgen -- [--seconds 10] [--connections 64]
//! cargo run --release --example loadgen -- --target 127.0.0.1:8080   # an already running wxpush
//! cargo run --release --example loadgen -- --database-url postgres://user:pw@127.0.0.1/db
//! ```
//!
//! With `--database-url`, a third run drives wxpush on the PostgreSQL store (in a schema of
//! its own, dropped afterwards) and prints its throughput as a ratio to the embedded store.
//!
//! It builds both servers first (`cargo build --release`), then prints requests/s, p50/p99
//! latency, errors (anything but `200 success`), the server's peak RSS and CPU time per
//! request, and wxpush's throughput as a ratio to the bare server.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wxpush::push::Mode;

mod support;
use wxpush::tools::simulate;

struct Options {
    seconds: u64,
    connections: usize,
    /// Drive an already running wxpush at this address (host:port) only, e.g. to profile it.
    target: Option<String>,
    /// Also run wxpush on this PostgreSQL database.
    database_url: Option<String>,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let text = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    Options {
        database_url: text("--database-url"),
        seconds: value("--seconds", 10),
        connections: usize::try_from(value("--connections", 64)).unwrap_or(64),
        target: text("--target"),
    }
}

/// The `i`-th distinct push: a category audit with its own `second`. Its `CreateTime`
/// advances one second every 30 000 pushes, as for messages created in real time at about
/// the rate served: thousands of pushes share each second (and so the start of their ids).
fn make_push(app: &wxpush::App, i: usize) -> (String, String) {
    let message = format!(
        "<xml><ToUserName><![CDATA[gh_load]]></ToUserName><FromUserName><![CDATA[o_load]]></FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_category_audit]]></Event><ret>{}</ret><first>8</first><second>{i}</second><reason><![CDATA[资质证明不清晰，请重新上传营业执照。资质证明不清晰，请重新上传营业执照。]]></reason></xml>",
        1_764_000_000 + i / 30_000,
        2 + i % 2
    );
    let p = simulate::build(app, &message, Mode::Safe);
    (p.query_string(), p.body)
}

/// One run's results.
struct Report {
    name: &'static str,
    requests: usize,
    errors: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    peak_rss_kib: u64,
    cpu: Duration,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let opts = options();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--bin", "wxpush", "--example", "bare"])
        .status()?;
    if !status.success() {
        return Err("cargo build failed".into());
    }
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release");
    let config = wxpush::Config::load(None)?;
    let app = config.app;

    // Distinct pushes signed now (well inside the replay window), prepared ahead so that
    // signing does not compete with the servers; longer runs build the rest on the fly.
    let count = (60_000 * usize::try_from(opts.seconds).unwrap_or(10)).min(600_000);
    eprintln!("preparing {count} distinct pushes…");
    let pushes: Arc<Vec<(String, String)>> =
        Arc::new((0..count).map(|i| make_push(&app, i)).collect());
    let app = Arc::new(app);

    if let Some(addr) = &opts.target {
        let runtime = tokio::runtime::Runtime::new()?;
        let r = runtime.block_on(drive(
            "target",
            addr,
            pushes,
            Arc::clone(&app),
            opts.connections,
            Duration::from_secs(opts.seconds),
        ))?;
        println!(
            "{addr}: {} requests, {:.0} req/s, p50 {:?}, p99 {:?}, {} errors",
            r.requests,
            r.requests as f64 / r.elapsed.as_secs_f64(),
            r.p50,
            r.p99,
            r.errors
        );
        return Ok(());
    }
    let data = tempfile_dir()?;
    let mut reports = Vec::new();
    let schema = format!("loadgen_{}", std::process::id());
    let mut names = vec!["bare", "wxpush"];
    if opts.database_url.is_some() {
        names.push("wxpush-pg");
    }
    for name in names {
        let (mut child, addr) = match name {
            "bare" => start(
                Command::new(target.join("examples/bare")).arg("127.0.0.1:0"),
                false,
            )?,
            "wxpush" => start(
                Command::new(target.join("wxpush"))
                    .arg("serve")
                    .env("WXPUSH_LISTEN", "127.0.0.1:0")
                    .env("WXPUSH_DATA_DIR", &data),
                true,
            )?,
            _ => start(
                Command::new(target.join("wxpush"))
                    .arg("serve")
                    .env("WXPUSH_LISTEN", "127.0.0.1:0")
                    .env("WXPUSH_DATA_DIR", &data)
                    .env(
                        "WXPUSH_DATABASE_URL",
                        opts.database_url.as_deref().unwrap_or_default(),
                    )
                    .env("WXPUSH_POSTGRES_SCHEMA", &schema),
                true,
            )?,
        };
        let pid = child.id();
        let cpu_before = support::cpu_time(Some(pid));
        let runtime = tokio::runtime::Runtime::new()?;
        let report = runtime.block_on(drive(
            name,
            &addr,
            Arc::clone(&pushes),
            Arc::clone(&app),
            opts.connections,
            Duration::from_secs(opts.seconds),
        ))?;
        let cpu = support::cpu_time(Some(pid)).saturating_sub(cpu_before);
        let peak_rss_kib = peak_rss_kib(pid);
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let _ = child.wait();
        reports.push(Report {
            cpu,
            peak_rss_kib,
            ..report
        });
    }
    let _ = std::fs::remove_dir_all(&data);
    if let Some(url) = &opts.database_url {
        drop_schema(url, &schema)?;
    }

    println!(
        "\n{:<8} {:>10} {:>9} {:>9} {:>9} {:>7} {:>10} {:>12}",
        "server", "requests", "req/s", "p50", "p99", "errors", "peak RSS", "CPU/request"
    );
    for r in &reports {
        let rps = r.requests as f64 / r.elapsed.as_secs_f64();
        println!(
            "{:<8} {:>10} {:>9.0} {:>7.2}ms {:>7.2}ms {:>7} {:>7.1}MiB {:>10.1}µs",
            r.name,
            r.requests,
            rps,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.errors,
            r.peak_rss_kib as f64 / 1024.0,
            r.cpu.as_secs_f64() * 1e6 / r.requests.max(1) as f64,
        );
    }
    let rps = |r: &Report| r.requests as f64 / r.elapsed.as_secs_f64();
    if let [bare, wx, ..] = &reports[..] {
        println!("\nwxpush / bare throughput: {:.2}", rps(wx) / rps(bare));
    }
    if let [_, wx, pg] = &reports[..] {
        println!(
            "wxpush on PostgreSQL / on SQLite throughput: {:.2} (the PostgreSQL server's own CPU is not in CPU/request)",
            rps(pg) / rps(wx)
        );
    }
    Ok(())
}

/// Removes the schema the PostgreSQL run wrote to.
fn drop_schema(url: &str, schema: &str) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await?;
        Ok(())
    })
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("wxpush-loadgen-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Starts a server and reads its `listening on ADDR` line (stdout, or stderr for wxpush).
fn start(
    cmd: &mut Command,
    from_stderr: bool,
) -> Result<(Child, String), Box<dyn std::error::Error>> {
    cmd.stdin(Stdio::null());
    if from_stderr {
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "wxpush=info");
    } else {
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    }
    let mut child = cmd.spawn()?;
    let stream: Box<dyn std::io::Read + Send> = if from_stderr {
        Box::new(child.stderr.take().ok_or("no stderr")?)
    } else {
        Box::new(child.stdout.take().ok_or("no stdout")?)
    };
    let mut lines = BufReader::new(stream).lines();
    let addr = loop {
        let line = lines.next().ok_or("server exited before listening")??;
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect::<String>();
        }
    };
    // Keep draining the server's output so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok((child, addr))
}

async fn drive(
    name: &'static str,
    addr: &str,
    pushes: Arc<Vec<(String, String)>>,
    app: Arc<wxpush::App>,
    connections: usize,
    duration: Duration,
) -> Result<Report, Box<dyn std::error::Error>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, pushes, next, errors, app) = (
            client.clone(),
            Arc::clone(&pushes),
            Arc::clone(&next),
            Arc::clone(&errors),
            Arc::clone(&app),
        );
        let url = format!("http://{addr}/wechat");
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(100_000);
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let fresh;
                let (query, body) = match pushes.get(i) {
                    Some(push) => push,
                    None => {
                        fresh = make_push(&app, i);
                        &fresh
                    }
                };
                let t = Instant::now();
                let ok = match client
                    .post(format!("{url}?{query}"))
                    .header("content-type", "text/xml")
                    .body(body.clone())
                    .send()
                    .await
                {
                    Ok(r) => {
                        r.status().as_u16() == 200 && r.text().await.is_ok_and(|b| b == "success")
                    }
                    Err(_) => false,
                };
                latencies.push(t.elapsed());
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await?);
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Report {
        name,
        requests: all.len(),
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
        peak_rss_kib: 0,
        cpu: Duration::ZERO,
    })
}

/// VmHWM (peak resident set) of `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))
        .unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
