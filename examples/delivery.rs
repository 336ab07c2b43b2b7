//! Delivery benchmark: N category audits stored, then drained by the dispatcher into a local
//! webhook receiver that takes a fixed time per request, with `delivery.concurrency = 1`
//! (the sequential dispatcher of earlier versions) and with the default (16). Meanwhile a
//! pusher sends signed pushes at a steady rate and measures their latency, so the report
//! shows whether the drain slows ingest (its pushes are of another event, which the route
//! does not take: stored, not delivered, so they add no delivery work).
//!
//! ```sh
//! cargo run --release --example delivery -- [--events 600] [--latency-ms 50] [--rate 50]
//! ```
//!
//! Prints, per run: drain time, events/s, and the pushes' p50/p99 latency during the drain
//! and on an idle server; then the speedup of the concurrent run over the sequential one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use wxpush::push::Mode;
use wxpush::tools::simulate;

fn option(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A category audit of its own category (so that it has its own ordering key).
fn audit(i: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[o_bench]]></FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_category_audit]]></Event><ret>3</ret><first>{}</first><second>{}</second><reason><![CDATA[]]></reason></xml>",
        1_764_000_000 + i,
        1 + i / 1000,
        i % 1000
    )
}

/// A receiver that answers 200 after `latency`, counting requests.
async fn receiver(latency: Duration) -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let seen = Arc::clone(&seen);
            async move {
                tokio::time::sleep(latency).await;
                seen.fetch_add(1, Ordering::SeqCst);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), count)
}

/// One run's figures.
struct Run {
    drain: Duration,
    during: (Duration, Duration),
    idle: (Duration, Duration),
}

/// Pushes at `rate` per second until `done` says stop; returns the latencies.
async fn push_steadily(
    base: String,
    app: wxpush::App,
    rate: u64,
    first: u64,
    done: impl Fn() -> bool,
) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let mut latencies = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    let mut i = first;
    while !done() {
        tick.tick().await;
        let message = format!(
            "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><CreateTime>{i}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[bench_ingest]]></Event></xml>"
        );
        let push = simulate::build(&app, &message, Mode::Safe);
        i += 1;
        let started = Instant::now();
        let answer = client
            .post(format!("{base}/wechat?{}", push.query_string()))
            .body(push.body)
            .send()
            .await
            .expect("push answered");
        assert_eq!(answer.text().await.expect("body"), "success");
        latencies.push(started.elapsed());
    }
    latencies
}

fn percentiles(mut l: Vec<Duration>) -> (Duration, Duration) {
    l.sort_unstable();
    let at = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    (at(0.5), at(0.99))
}

async fn run(events: u64, latency: Duration, rate: u64, concurrency: usize) -> Run {
    let dir = tempfile::tempdir().expect("dir");
    let (url, delivered) = receiver(latency).await;
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[delivery]\nconcurrency = {concurrency}\n\n[[routes]]\nname = \"bench\"\nhandler = \"webhook\"\nevents = [\"wxa_category_audit\"]\nwebhook = {{ url = \"{url}\" }}\n",
        dir.path().display()
    );
    let config = wxpush::Config::from_toml(&toml).expect("config");
    let store = wxpush::service::open_store(&config).await.expect("store");
    // The backlog: stored before the server (and its dispatcher) starts.
    for i in 0..events {
        let event = wxpush::Event::parse(&audit(i), &config.app.name, None);
        store
            .record_routed(event, None, vec!["bench".into()])
            .await
            .expect("stored");
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let routes = wxpush::service::routes(&config).expect("routes");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = {
        let config = config.clone();
        tokio::spawn(async move {
            wxpush::service::run(&config, store, routes, listener, async {
                let _ = stopped.await;
            })
            .await
        })
    };
    let started = Instant::now();
    let backlog = events as usize;
    let counter = Arc::clone(&delivered);
    let during = push_steadily(
        base.clone(),
        config.app.clone(),
        rate,
        1_000_000,
        move || counter.load(Ordering::SeqCst) >= backlog,
    )
    .await;
    let drain = started.elapsed();
    // The same pusher on the idle server, for as many pushes (at least 100).
    let idle_count = during.len().max(100);
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&sent);
    let idle = push_steadily(base, config.app.clone(), rate, 2_000_000, move || {
        counter.fetch_add(1, Ordering::SeqCst) >= idle_count
    })
    .await;
    let _ = stop.send(());
    let _ = served.await;
    Run {
        drain,
        during: percentiles(during),
        idle: percentiles(idle),
    }
}

fn main() {
    let events = option("--events", 600);
    let latency = Duration::from_millis(option("--latency-ms", 50));
    let rate = option("--rate", 50);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    println!(
        "{events} stored events drained into a receiver taking {} ms per request; pushes at {rate}/s meanwhile",
        latency.as_millis()
    );
    let mut drains = Vec::new();
    for concurrency in [1, 16] {
        let r = runtime.block_on(run(events, latency, rate, concurrency));
        let per_sec = events as f64 / r.drain.as_secs_f64();
        println!(
            "concurrency {concurrency:>2}: drained in {:>6.2} s ({per_sec:>7.1} events/s); push latency p50/p99 during the drain {:.1}/{:.1} ms, idle {:.1}/{:.1} ms",
            r.drain.as_secs_f64(),
            r.during.0.as_secs_f64() * 1e3,
            r.during.1.as_secs_f64() * 1e3,
            r.idle.0.as_secs_f64() * 1e3,
            r.idle.1.as_secs_f64() * 1e3,
        );
        drains.push(r.drain);
    }
    println!(
        "speedup of the default (16) over the sequential dispatcher: {:.1}x",
        drains[0].as_secs_f64() / drains[1].as_secs_f64()
    );
}
