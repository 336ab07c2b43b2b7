//! A webhook receiver playing the integrator's service: real HTTP on loopback, told to be
//! down (nothing listening), to answer an error, to hang, to fail at random, or to work,
//! and recording what it accepted and how requests overlapped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// 200 after the latency.
    Ok,
    /// This status.
    Status(u16),
    /// Never answers (until the client gives up).
    Hang,
    /// 500 with this probability, else as `Ok`.
    Flaky(f64),
}

/// One accepted event: its ordering key (app and category ids) and `CreateTime`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub id: String,
    pub key: String,
    pub create_time: i64,
}

/// What the receiver saw.
#[derive(Debug, Default)]
pub struct Seen {
    mode: Mutex<Option<Mode>>,
    latency: Mutex<Duration>,
    /// Every accepted event, in the order accepted.
    pub accepted: Mutex<Vec<Accepted>>,
    in_flight: Mutex<HashSet<String>>,
    /// Requests for a key that arrived while another of the same key was in flight.
    pub overlaps: AtomicU32,
    current: AtomicUsize,
    /// Most requests in flight at once.
    pub max_in_flight: AtomicUsize,
    /// Every request.
    pub requests: AtomicU32,
}

/// A receiver on a fixed loopback port.
pub struct Downstream {
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    pub seen: Arc<Seen>,
    port: u16,
}

impl Downstream {
    /// A port with nothing listening on it yet: connections are refused until [`start`].
    ///
    /// [`start`]: Downstream::start
    pub fn reserve() -> Self {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = probe.local_addr().expect("addr").port();
        drop(probe);
        Self {
            url: format!("http://127.0.0.1:{port}/hook"),
            seen: Arc::default(),
            port,
        }
    }

    /// A receiver already listening, answering as `mode` after `latency`.
    pub async fn running(mode: Mode, latency: Duration) -> Self {
        let downstream = Self::reserve();
        downstream.set_latency(latency);
        downstream.start(mode).await;
        downstream
    }

    /// Starts listening, answering as `mode`.
    pub async fn start(&self, mode: Mode) {
        self.set_mode(mode);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind the reserved port");
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(answer))
            .with_state(Arc::clone(&self.seen));
        tokio::spawn(async move { axum::serve(listener, app).await });
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.seen.mode.lock().expect("lock") = Some(mode);
    }

    pub fn set_latency(&self, latency: Duration) {
        *self.seen.latency.lock().expect("lock") = latency;
    }

    /// Waits (up to `within`) until `n` events were accepted; returns them.
    pub async fn wait_accepted(&self, n: usize, within: Duration) -> Vec<Accepted> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let accepted = self.accepted();
            if accepted.len() >= n {
                return accepted;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {n} events accepted",
                accepted.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn accepted(&self) -> Vec<Accepted> {
        self.seen.accepted.lock().expect("lock").clone()
    }

    /// Per ordering key, the `CreateTime`s in the order they were accepted.
    pub fn accepted_by_key(&self) -> HashMap<String, Vec<i64>> {
        let mut by_key: HashMap<String, Vec<i64>> = HashMap::new();
        for a in self.accepted() {
            by_key.entry(a.key).or_default().push(a.create_time);
        }
        by_key
    }
}

async fn answer(
    axum::extract::State(seen): axum::extract::State<Arc<Seen>>,
    body: String,
) -> StatusCode {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    let event: Value = serde_json::from_str(&body).unwrap_or_default();
    let audit = &event["category_audit"];
    let key = format!("{}/{}/{}", event["app"], audit["first"], audit["second"]);
    let overlapped = !seen.in_flight.lock().expect("lock").insert(key.clone());
    if overlapped {
        seen.overlaps.fetch_add(1, Ordering::SeqCst);
    }
    let now = seen.current.fetch_add(1, Ordering::SeqCst) + 1;
    seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let status = respond(&seen, &event, &key).await;
    seen.current.fetch_sub(1, Ordering::SeqCst);
    if !overlapped {
        seen.in_flight.lock().expect("lock").remove(&key);
    }
    status
}

async fn respond(seen: &Seen, event: &Value, key: &str) -> StatusCode {
    let mode = seen.mode.lock().expect("lock").unwrap_or(Mode::Ok);
    let latency = *seen.latency.lock().expect("lock");
    match mode {
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return StatusCode::OK;
        }
        Mode::Status(code) => {
            return StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        }
        Mode::Flaky(p) if rand::random::<f64>() < p => {
            tokio::time::sleep(latency).await;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
        Mode::Flaky(_) | Mode::Ok => {}
    }
    tokio::time::sleep(latency).await;
    seen.accepted.lock().expect("lock").push(Accepted {
        id: event["id"].as_str().unwrap_or_default().to_owned(),
        key: key.to_owned(),
        create_time: event["create_time"].as_i64().unwrap_or_default(),
    });
    StatusCode::OK
}
