//! Test harness: the shared vectors, a server on a random loopback port with a recording
//! handler, and a client that signs like the platform.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use wxpush::dispatch::Routes;
use wxpush::store::Store;
use wxpush::{BoxError, BoxHandler, Config, Event, Handler};

/// The shared test vectors, copied from the project's fixtures.
pub const VECTORS: &str = include_str!("../fixtures/vectors.json");

/// Parsed vectors document.
pub fn vectors() -> Value {
    serde_json::from_str(VECTORS).expect("fixtures/vectors.json is valid JSON")
}

/// One vector by id.
pub fn vector(id: &str) -> Value {
    vectors()["vectors"]
        .as_array()
        .and_then(|all| all.iter().find(|v| v["id"] == id).cloned())
        .unwrap_or_else(|| panic!("no vector {id}"))
}

/// The retry schedule of [`app_toml`]: three attempts, 10 ms apart.
pub const FAST_RETRIES: &str = "retry_schedule_secs = [0.01, 0.01]";

/// `toml` (from [`app_toml`]) with `attempts` attempts per delivery, 10 ms apart.
pub fn with_attempts(toml: &str, attempts: usize) -> String {
    let waits = vec!["0.01"; attempts.saturating_sub(1)].join(", ");
    toml.replace(FAST_RETRIES, &format!("retry_schedule_secs = [{waits}]"))
}

/// Config TOML (over the defaults) for a vectors app, on a random loopback port, with the
/// clock-skew check off (the vectors have fixed timestamps), fast retries and no breaker.
pub fn app_toml(name: &str) -> String {
    let doc = vectors();
    let app = doc["apps"]
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no app {name}"));
    format!(
        "listen = \"127.0.0.1:0\"\nmax_clock_skew_secs = 0\n[delivery]\n{FAST_RETRIES}\nbreaker_failures = 0\n[app]\nname = \"{}\"\ntoken = \"{}\"\nencoding_aes_key = \"{}\"\nappid = \"{}\"\n",
        app["name"].as_str().unwrap_or_default(),
        app["token"].as_str().unwrap_or_default(),
        app["encoding_aes_key"].as_str().unwrap_or_default(),
        app["appid"].as_str().unwrap_or_default(),
    )
}

/// How the test handler behaves.
#[derive(Clone, Default)]
pub struct Behavior {
    /// Wait for a permit before each event.
    pub gate: Option<Arc<Semaphore>>,
    /// Fail this many calls first.
    pub fail_first: Option<Arc<AtomicU32>>,
    /// Fail while this is false.
    pub healthy: Option<Arc<AtomicBool>>,
    /// Use this handler instead of the recording one (no events reach the channel).
    pub handler: Option<BoxHandler>,
    /// Deliver to the configuration's routes (as `serve` does) instead of either.
    pub config_routes: bool,
}

/// Sends every event it accepts into a channel, after behaving as told.
struct RecordingHandler {
    tx: mpsc::UnboundedSender<Event>,
    behavior: Behavior,
    calls: Arc<AtomicU32>,
}

impl Handler for RecordingHandler {
    async fn handle(&self, event: &Event) -> Result<(), BoxError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.behavior.gate {
            gate.acquire().await?.forget();
        }
        if let Some(left) = &self.behavior.fail_first
            && left.load(Ordering::SeqCst) > 0
        {
            left.fetch_sub(1, Ordering::SeqCst);
            return Err("test handler: planned failure".into());
        }
        if let Some(healthy) = &self.behavior.healthy
            && !healthy.load(Ordering::SeqCst)
        {
            return Err("test handler: unhealthy".into());
        }
        self.tx.send(event.clone())?;
        Ok(())
    }
}

/// A running server and a client for it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// `http://127.0.0.1:PORT` of `admin_listen`, when the configuration sets it.
    pub admin_url: Option<String>,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The effective configuration.
    pub config: Config,
    /// The store the server writes to.
    pub store: Option<Arc<dyn Store>>,
    /// Handler calls so far.
    pub calls: Arc<AtomicU32>,
    /// The data dir (removed when the last holder drops it).
    pub data_dir: Arc<tempfile::TempDir>,
    events: mpsc::UnboundedReceiver<Event>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body text.
    pub body: String,
}

impl TestApp {
    /// Starts a server for the vectors app `name`.
    pub async fn spawn(name: &str) -> Self {
        Self::spawn_with(&app_toml(name), Behavior::default()).await
    }

    /// Starts a server for the vectors app `name`, with `store_toml` appended to its config
    /// (empty for the SQLite inbox, [`pg_toml`] for PostgreSQL).
    pub async fn spawn_on(name: &str, store_toml: &str) -> Self {
        Self::spawn_with(
            &format!("{}{store_toml}", app_toml(name)),
            Behavior::default(),
        )
        .await
    }

    /// Starts a server from TOML over the defaults, in a fresh data dir.
    pub async fn spawn_with(toml: &str, behavior: Behavior) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::spawn_in(toml, behavior, dir).await
    }

    /// Starts a server from TOML over the defaults, on the data dir `dir`.
    pub async fn spawn_in(toml: &str, behavior: Behavior, dir: Arc<tempfile::TempDir>) -> Self {
        if std::env::var_os("TEST_LOG").is_some() {
            wxpush::telemetry::init(wxpush::config::LogFormat::Text);
        }
        let toml = format!("data_dir = \"{}\"\n{toml}", dir.path().display());
        let config = Config::from_toml(&toml).expect("test config is valid");
        let store = wxpush::service::open_store(&config)
            .await
            .expect("store opens");
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let admin = match config.admin_listen {
            Some(at) => Some(tokio::net::TcpListener::bind(at).await.expect("bind admin")),
            None => None,
        };
        let admin_url = admin
            .as_ref()
            .map(|l| format!("http://{}", l.local_addr().expect("admin addr")));
        let listeners = wxpush::server::Listeners {
            public: listener,
            admin,
        };
        let (tx, events) = mpsc::unbounded_channel();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let calls = Arc::new(AtomicU32::new(0));
        let routes: Routes = if behavior.config_routes {
            wxpush::service::routes(&config).expect("routes build")
        } else {
            match behavior.handler.clone() {
                Some(handler) => handler,
                None => BoxHandler::new(RecordingHandler {
                    tx,
                    behavior,
                    calls: Arc::clone(&calls),
                }),
            }
            .into()
        };
        let run_config = config.clone();
        let run_store = Arc::clone(&store);
        let task = tokio::spawn(async move {
            wxpush::service::run(&run_config, run_store, routes, listeners, async {
                let _ = shutdown_rx.await;
            })
            .await
        });
        Self {
            base_url: format!("http://{addr}"),
            admin_url,
            client: reqwest::Client::new(),
            config,
            store: Some(store),
            calls,
            data_dir: dir,
            events,
            shutdown: Some(shutdown_tx),
            task: Some(task),
        }
    }

    /// A client for a server started elsewhere (the real binary); it has no handler channel.
    pub fn client_for(base_url: &str) -> Self {
        let (_tx, events) = mpsc::unbounded_channel();
        Self {
            base_url: base_url.to_owned(),
            admin_url: None,
            client: reqwest::Client::new(),
            config: Config::from_toml("").expect("defaults are valid"),
            store: None,
            calls: Arc::new(AtomicU32::new(0)),
            data_dir: Arc::new(tempfile::tempdir().expect("temp dir")),
            events,
            shutdown: None,
            task: None,
        }
    }

    /// Replays a vector's request as recorded.
    pub async fn send_vector(&self, v: &Value) -> Answer {
        let req = &v["request"];
        let query: Vec<(String, String)> = req["query"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        let url = format!("{}{}", self.base_url, req["path"].as_str().unwrap_or("/"));
        let mut builder = if req["method"] == "GET" {
            self.client.get(url)
        } else {
            self.client
                .post(url)
                .body(req["body"].as_str().unwrap_or_default().to_owned())
        };
        for (k, v) in req["headers"].as_object().into_iter().flatten() {
            builder = builder.header(k.as_str(), v.as_str().unwrap_or_default());
        }
        answer(builder.query(&query).send().await).await
    }

    /// `GET path` on this server, as text.
    pub async fn get_text(&self, path: &str) -> String {
        self.client
            .get(format!("{}{path}", self.base_url))
            .send()
            .await
            .expect("request reached the server")
            .text()
            .await
            .expect("a text body")
    }

    /// The store, for assertions.
    pub fn store(&self) -> &dyn Store {
        self.store
            .as_deref()
            .expect("a server started by the harness")
    }

    /// Sends `message` as a fresh safe-mode push signed and encrypted with this server's app,
    /// timestamped now.
    pub async fn push_safe(&self, path: &str, message: &str) -> Answer {
        self.try_push_safe(path, message)
            .await
            .expect("request reached the server")
    }

    /// Like [`TestApp::push_safe`], but `None` when the request fails (server gone).
    pub async fn try_push_safe(&self, path: &str, message: &str) -> Option<Answer> {
        let (query, body) = signed_safe_push(&self.config.app, message);
        let res = self
            .client
            .post(format!("{}{path}?{query}", self.base_url))
            .header("Content-Type", "text/xml")
            .body(body)
            .send()
            .await
            .ok()?;
        let status = res.status().as_u16();
        let body = res.text().await.ok()?;
        Some(Answer { status, body })
    }

    /// The next event the handler received (fails after 10 s).
    pub async fn next_event(&mut self) -> Event {
        tokio::time::timeout(Duration::from_secs(10), self.events.recv())
            .await
            .expect("an event reached the handler within 10 s")
            .expect("the handler channel is open")
    }

    /// Events already received, without waiting.
    pub fn received_now(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }

    /// Stops the server (graceful shutdown) and returns every event delivered meanwhile.
    pub async fn stop(mut self) -> Vec<Event> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("server stops within 10 s")
                .expect("server task did not panic")
                .expect("server ran without I/O error");
        }
        self.received_now()
    }
}

async fn answer(res: reqwest::Result<reqwest::Response>) -> Answer {
    let res = res.expect("request reached the server");
    let status = res.status().as_u16();
    let body = res.text().await.unwrap_or_default();
    Answer { status, body }
}

/// Every key of `expected` has the same value in `actual` (objects compared recursively).
pub fn assert_subset(expected: &Value, actual: &Value, at: &str) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                assert_subset(ev, a.get(k).unwrap_or(&Value::Null), &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(expected, actual, "{at}"),
    }
}

/// A safe-mode push of `message` as the platform would make it for `app` now (envelope in
/// the message's format): the query string and the body.
pub fn signed_safe_push(app: &wxpush::App, message: &str) -> (String, String) {
    let push = wxpush::tools::simulate::build(app, message, wxpush::push::Mode::Safe);
    (push.query_string(), push.body)
}

/// The id the event of vector `id` gets when received by app `app`.
pub fn vector_event_id(id: &str, app: &str, authorizer: Option<&str>) -> String {
    Event::parse(
        vector(id)["plaintext"].as_str().unwrap_or_default(),
        app,
        authorizer,
    )
    .id
}

/// Waits (up to 10 s) until the stored event `id` has `status`.
pub async fn wait_for_status(
    app: &TestApp,
    id: &str,
    status: wxpush::store::Status,
) -> wxpush::store::Record {
    for _ in 0..200 {
        let records = app.store().get(id.to_owned()).await.expect("store reads");
        if let Some(record) = records.into_iter().next()
            && record.status == status
        {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("event {id} never reached {status:?}");
}

/// The PostgreSQL test database, from `WXPUSH_TEST_DATABASE_URL`. Without it the caller
/// skips (with a message saying so), except in CI (`CI` set), where it must be there.
pub fn database_url() -> Option<String> {
    match std::env::var("WXPUSH_TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => panic!(
            "CI is set but WXPUSH_TEST_DATABASE_URL is not: run the tests with `.ci/with-postgres cargo test`"
        ),
        _ => {
            eprintln!(
                "SKIPPED: PostgreSQL test (WXPUSH_TEST_DATABASE_URL is unset; `.ci/with-postgres cargo test` runs it)"
            );
            None
        }
    }
}

/// A schema name no other test uses.
pub fn fresh_schema() -> String {
    format!("t_{:016x}", rand::random::<u64>())
}

/// Config TOML (a `[postgres]` table, appended last) selecting the database in `schema`.
pub fn pg_toml(url: &str, schema: &str) -> String {
    format!("\n[postgres]\nurl = \"{url}\"\nschema = \"{schema}\"\n")
}

/// After the servers have stopped: a dispatcher's step over `store` finds nothing due, so
/// nothing stored is left to be delivered (again). Replaces waiting to see nothing happen.
pub async fn assert_nothing_left_to_deliver(store: Arc<dyn Store>) {
    struct Refuse;
    impl Handler for Refuse {
        async fn handle(&self, event: &Event) -> Result<(), BoxError> {
            Err(format!("{} was still due", event.id).into())
        }
    }
    let policy = wxpush::dispatch::DeliveryPolicy {
        attempt_timeout: Duration::from_secs(5),
        retry_schedule: vec![Duration::from_millis(10), Duration::from_millis(10)],
        ..wxpush::dispatch::DeliveryPolicy::default()
    };
    let dispatcher = wxpush::dispatch::Dispatcher::new(
        store,
        BoxHandler::new(Refuse),
        policy,
        wxpush::dispatch::Wake::default(),
    );
    let step = dispatcher.deliver_due().await.expect("the store answers");
    assert_eq!(
        step,
        wxpush::dispatch::Step::Empty,
        "an event was still due"
    );
}
