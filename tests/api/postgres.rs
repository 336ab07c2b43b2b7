//! The PostgreSQL store, on a real server (`.ci/with-postgres` starts one): the shared
//! vectors, several replicas on one database, leases, migrations, the events CLI, and
//! connection errors. Each test uses a schema of its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use wxpush::config::StoreKind;
use wxpush::store::{Admin, Inbox, PostgresStore, Recorded, Status};
use wxpush::{Config, Event};

use crate::cli::{Served, wxpush};
use crate::helpers::{
    TestApp, assert_nothing_left_to_deliver, database_url, fresh_schema, pg_toml, signed_safe_push,
    vector, vectors, wait_for_status,
};
use crate::push::post_vector_suite;

fn audit(n: u32) -> Event {
    Event::parse(
        &format!(
            "<xml><CreateTime>{n}</CreateTime><Event>wxa_category_audit</Event><ret>3</ret><first>1</first><second>{n}</second></xml>"
        ),
        "demo",
        None,
    )
}

/// A store on `schema`, as a server would open it.
pub(crate) async fn open_store(
    url: &str,
    schema: &str,
) -> Result<PostgresStore, wxpush::store::StoreError> {
    let config = Config::from_toml(&pg_toml(url, schema)).expect("test config is valid");
    let StoreKind::Postgres(pg) = &config.store else {
        panic!("a URL selects the PostgreSQL store");
    };
    PostgresStore::open(pg).await
}

/// A direct connection for checks the store does not offer.
pub(crate) async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("test database reachable");
    tokio::spawn(connection);
    client
}

/// Every shared vector, POST and GET, gets the same answer and event on PostgreSQL as on
/// SQLite.
#[tokio::test]
async fn shared_vector_suite_passes_on_postgres() {
    let Some(url) = database_url() else { return };
    post_vector_suite(|| pg_toml(&url, &fresh_schema())).await;
    let app = TestApp::spawn_on("demo", &pg_toml(&url, &fresh_schema())).await;
    for v in vectors()["vectors"].as_array().into_iter().flatten() {
        if v["request"]["method"] != "GET" {
            continue;
        }
        let answer = app.send_vector(v).await;
        assert_eq!(
            Some(u64::from(answer.status)),
            v["expect"]["status"].as_u64(),
            "{}",
            v["id"]
        );
        if let Some(body) = v["expect"]["body"].as_str() {
            assert_eq!(answer.body, body, "{}", v["id"]);
        }
    }
    app.stop().await;
}

/// The same push sent to two replicas (a platform retry landing on the other one), at the
/// same moment and again later: every copy is acknowledged, one event is stored, and it is
/// delivered once.
#[tokio::test]
async fn a_push_sent_to_two_replicas_is_stored_and_delivered_once() {
    let Some(url) = database_url() else { return };
    let toml = pg_toml(&url, &fresh_schema());
    let first = TestApp::spawn_on("demo", &toml).await;
    let second = TestApp::spawn_on("demo", &toml).await;
    let message = vector("safe-xml-passed")["plaintext"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (query, body) = signed_safe_push(&first.config.app, &message);
    let send = |app: &TestApp| {
        app.client
            .post(format!("{}/wechat?{query}", app.base_url))
            .body(body.clone())
            .send()
    };
    let (a, b) = tokio::join!(send(&first), send(&second));
    for answer in [a, b] {
        let answer = answer.expect("request reached a replica");
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.unwrap_or_default(), "success");
    }
    let later = send(&second).await.expect("request reached a replica");
    assert_eq!(later.status(), 200);
    let id = Event::parse(&message, "demo", None).id;
    let record = wait_for_status(&first, &id, Status::Delivered).await;
    assert_eq!(record.duplicates, 2);
    assert_eq!(record.attempts, 1);
    let store = Arc::clone(first.store.as_ref().expect("store"));
    let delivered: Vec<Event> = [first.stop().await, second.stop().await].concat();
    assert_nothing_left_to_deliver(store).await;
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0].id, id);
}

/// Two replicas receiving every push twice (once each) share the queue: each event is
/// delivered exactly once, and both dispatchers take part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_the_queue_without_double_delivery() {
    let Some(url) = database_url() else { return };
    let toml = pg_toml(&url, &fresh_schema());
    let mut first = TestApp::spawn_on("demo", &toml).await;
    let mut second = TestApp::spawn_on("demo", &toml).await;
    const N: u32 = 150;
    let mut sends = Vec::new();
    for n in 0..N {
        let message = format!(
            "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_category_audit]]></Event><ret>3</ret><first>{n}</first><second>{n}</second><reason><![CDATA[]]></reason></xml>",
            1_700_000_000 + n
        );
        let (query, body) = signed_safe_push(&first.config.app, &message);
        for app in [&first, &second] {
            let request = app
                .client
                .post(format!("{}/wechat?{query}", app.base_url))
                .body(body.clone())
                .send();
            sends.push(tokio::spawn(request));
        }
    }
    for send in sends {
        let answer = send
            .await
            .expect("task")
            .expect("request reached a replica");
        assert_eq!(answer.status(), 200);
    }
    let mut by_replica = [0usize; 2];
    let mut seen: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < N as usize && Instant::now() < deadline {
        for (i, app) in [&mut first, &mut second].into_iter().enumerate() {
            for event in app.received_now() {
                by_replica[i] += 1;
                *seen.entry(event.id).or_default() += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = Arc::clone(first.store.as_ref().expect("store"));
    for (i, app) in [first, second].into_iter().enumerate() {
        for event in app.stop().await {
            by_replica[i] += 1;
            *seen.entry(event.id).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), N as usize, "every event delivered");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(by_replica.iter().sum::<usize>(), N as usize);
    assert_nothing_left_to_deliver(store).await;
    eprintln!("deliveries per replica: {by_replica:?}");
}

/// A replica killed (SIGKILL) in the middle of a delivery: its leased event is delivered by
/// another replica once the lease has expired, not before; its other events too.
#[tokio::test]
async fn a_killed_replicas_events_are_delivered_by_another_after_the_lease() {
    let Some(url) = database_url() else { return };
    let schema = fresh_schema();
    let dir = tempfile::tempdir().expect("temp dir");
    // Each attempt leaves the event it got in a file of its own.
    let attempts = dir.path().join("attempts");
    std::fs::create_dir(&attempts).expect("attempts dir");
    let script = format!(
        "cat > {0}/.$$ && mv {0}/.$$ {0}/$$.json && sleep 20",
        attempts.display()
    );
    let data_dir = dir.path().join("data");
    let data_dir = data_dir.to_string_lossy();
    const LEASE_SECS: u64 = 4;
    let served = Served::start(&[
        ("WXPUSH_DATA_DIR", data_dir.as_ref()),
        ("WXPUSH_DATABASE_URL", url.as_str()),
        ("WXPUSH_POSTGRES_SCHEMA", schema.as_str()),
        ("WXPUSH_POSTGRES_LEASE_SECS", "4"),
        ("WXPUSH_DELIVERY_ATTEMPT_TIMEOUT_SECS", "3"),
        ("WXPUSH_HANDLER", "command"),
        ("WXPUSH_COMMAND_SHELL", "true"),
        ("WXPUSH_COMMAND", script.as_str()),
    ]);
    let client = TestApp::client_for(&served.base_url);
    let mut ids = Vec::new();
    for n in 1..=4 {
        let event = audit(n);
        let answer = client.push_safe("/wechat", &event.raw).await;
        assert_eq!((answer.status, answer.body.as_str()), (200, "success"));
        ids.push(Event::parse(&event.raw, "demo", None).id);
    }
    // Wait until the replica's handler holds the last event pushed, then kill the replica.
    // (The earlier ones may have started long before on a loaded machine, and timed out.)
    let last = ids.last().cloned().expect("events pushed");
    let started = Instant::now();
    let in_flight = loop {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no delivery of the last event started"
        );
        if attempted_ids(&attempts).contains(&last) {
            break last;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let claimed_by = Instant::now();
    let mut served = served;
    served.child.kill().expect("SIGKILL");
    served.child.wait().expect("reaped");

    let store = open_store(&url, &schema).await.expect("store opens");
    let record = store
        .get(in_flight.clone())
        .await
        .expect("reads")
        .into_iter()
        .next()
        .expect("stored");
    let lease = record
        .lease
        .expect("the killed replica still holds its lease");
    assert_ne!(lease.owner, store.owner());
    assert_eq!(record.status, Status::Pending);

    let mut other = TestApp::spawn_on("demo", &pg_toml(&url, &schema)).await;
    let mut delivered_at = HashMap::new();
    while delivered_at.len() < ids.len() {
        let event = other.next_event().await;
        assert!(
            delivered_at
                .insert(event.id.clone(), claimed_by.elapsed())
                .is_none(),
            "{} delivered twice",
            event.id
        );
    }
    let waited = delivered_at[&in_flight];
    assert!(
        waited >= Duration::from_secs(LEASE_SECS - 1),
        "the in-flight event was taken after {waited:?}, before its {LEASE_SECS} s lease expired"
    );
    let mut sorted: Vec<_> = delivered_at.keys().cloned().collect();
    sorted.sort();
    ids.sort();
    assert_eq!(sorted, ids);
    for id in &ids {
        wait_for_status(&other, id, Status::Delivered).await;
    }
    assert!(other.stop().await.is_empty(), "nothing delivered twice");
}

/// The ids of the events that attempts left in `dir` (one `PID.json` file each).
fn attempted_ids(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "json"))
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .map(|text| {
            let json: Value = serde_json::from_str(&text).expect("the handler got event JSON");
            json["id"].as_str().expect("an id").to_owned()
        })
        .collect()
}

/// Leases at the store's level: a leased event is invisible to other instances until the
/// lease expires; then another instance takes it, and the late outcome of the first
/// instance no longer counts. Released events are due at once.
#[tokio::test]
async fn leases_hand_events_to_one_instance_at_a_time() {
    let Some(url) = database_url() else { return };
    let schema = fresh_schema();
    let one = open_store(&url, &schema).await.expect("opens");
    let two = open_store(&url, &schema).await.expect("opens");
    assert_eq!(
        one.record(audit(1), None).await.expect("records"),
        Recorded::New
    );
    assert_eq!(
        two.record(audit(1), None).await.expect("records"),
        Recorded::Duplicate
    );
    let now = wxpush::clock::now_ms();
    let taken = one
        .due(now, wxpush::store::DueQuery::any(10))
        .await
        .expect("due");
    assert_eq!(taken.len(), 1);
    let lease = taken[0].lease.clone().expect("leased");
    assert_eq!(lease.owner, one.owner());
    assert!(
        two.due(now, wxpush::store::DueQuery::any(10))
            .await
            .expect("due")
            .is_empty()
    );
    let after = lease.until + 1;
    let retaken = two
        .due(after, wxpush::store::DueQuery::any(10))
        .await
        .expect("due");
    assert_eq!(retaken.len(), 1, "taken over after the lease expired");
    let id = audit(1).id;
    one.mark_failed(
        wxpush::store::DeliveryKey::new(id.clone(), "default"),
        "late".into(),
        None,
    )
    .await
    .expect("writes");
    let record = two
        .get(id.clone())
        .await
        .expect("reads")
        .into_iter()
        .next()
        .expect("stored");
    assert_eq!(
        record.status,
        Status::Pending,
        "the stale owner's failure is ignored"
    );
    assert_eq!(record.lease.map(|l| l.owner), Some(two.owner().to_owned()));
    assert_eq!(one.replay(vec![id.clone()]).await.expect("replays"), 1);
    let record = two
        .get(id.clone())
        .await
        .expect("reads")
        .into_iter()
        .next()
        .expect("stored");
    assert_eq!(
        record.lease.map(|l| l.owner),
        Some(two.owner().to_owned()),
        "a replay leaves an event being delivered with its holder"
    );
    two.release(vec![wxpush::store::DeliveryKey::new(id.clone(), "default")])
        .await
        .expect("releases");
    let again = one
        .due(wxpush::clock::now_ms(), wxpush::store::DueQuery::any(10))
        .await
        .expect("due");
    assert_eq!(again.len(), 1, "released events are due at once");
    one.mark_delivered(wxpush::store::DeliveryKey::new(id.clone(), "default"))
        .await
        .expect("writes");
    let record = two
        .get(id)
        .await
        .expect("reads")
        .into_iter()
        .next()
        .expect("stored");
    assert_eq!(
        (record.status, record.attempts, record.duplicates),
        (Status::Delivered, 1, 1)
    );
}

/// Concurrent writes share transactions (group commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_share_commits() {
    let Some(url) = database_url() else { return };
    let store = Arc::new(open_store(&url, &fresh_schema()).await.expect("opens"));
    let tasks: Vec<_> = (0..400)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.record(audit(n), None).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("task").expect("records"), Recorded::New);
    }
    let (commits, writes) = store.commit_counts();
    assert_eq!(writes, 400);
    assert!(
        commits < 400,
        "{commits} commits for 400 writes: no group commit"
    );
    assert_eq!(store.stats().await.expect("stats").pending, 400);
}

/// Instances starting together migrate the schema once; a schema from a newer wxpush is
/// refused with a message saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_under_concurrent_starts_and_refuse_newer_schemas() {
    let Some(url) = database_url() else { return };
    let schema = fresh_schema();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let (url, schema) = (url.clone(), schema.clone());
            tokio::spawn(async move { open_store(&url, &schema).await.map(|_| ()) })
        })
        .collect();
    for start in starts {
        start.await.expect("task").expect("every instance starts");
    }
    let client = connect(&url).await;
    let versions: Vec<i32> = client
        .query(
            &format!("SELECT version FROM {schema}.wxpush_migrations ORDER BY version"),
            &[],
        )
        .await
        .expect("migrations table")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        versions,
        (1..=PostgresStore::schema_version()).collect::<Vec<_>>(),
        "each migration once"
    );
    client
        .execute(
            &format!(
                "INSERT INTO {schema}.wxpush_migrations (version, name) VALUES (9999, 'future')"
            ),
            &[],
        )
        .await
        .expect("insert");
    let err = open_store(&url, &schema)
        .await
        .expect_err("refused")
        .to_string();
    assert!(err.contains("newer wxpush"), "{err}");
}

/// The events CLI works against the database: list, show, stats, replay.
#[tokio::test]
async fn events_cli_works_against_postgres() {
    let Some(url) = database_url() else { return };
    let schema = fresh_schema();
    let store = open_store(&url, &schema).await.expect("opens");
    store.record(audit(7), None).await.expect("records");
    store.record(audit(8), None).await.expect("records");
    let dead = audit(7).id;
    store
        .mark_failed(
            wxpush::store::DeliveryKey::new(dead.clone(), "default"),
            "handler said no".into(),
            None,
        )
        .await
        .expect("writes");
    let env = [
        ("WXPUSH_DATABASE_URL", url.as_str()),
        ("WXPUSH_POSTGRES_SCHEMA", schema.as_str()),
    ];
    let (ok, out, err) = wxpush(&["events", "stats", "--json"], &env);
    assert!(ok, "{err}");
    let stats: Value = serde_json::from_str(&out).expect("stats JSON");
    assert_eq!(
        (stats["pending"].as_u64(), stats["dead"].as_u64()),
        (Some(1), Some(1)),
        "{out}"
    );
    let (ok, out, err) = wxpush(&["events", "list", "--status", "dead"], &env);
    assert!(ok, "{err}");
    assert!(out.contains(&dead), "{out}");
    let (ok, out, err) = wxpush(&["events", "show", &dead], &env);
    assert!(ok, "{err}");
    assert!(out.contains("handler said no"), "{out}");
    let (ok, _, err) = wxpush(&["events", "replay", "--dead"], &env);
    assert!(ok, "{err}");
    let record = store
        .get(dead)
        .await
        .expect("reads")
        .into_iter()
        .next()
        .expect("stored");
    assert_eq!((record.status, record.attempts), (Status::Pending, 0));
    assert!(!err.contains(url.as_str()));
}

/// An unreachable database, or a wrong password, stops `serve` with a message that names
/// the database and the cause, and never the password.
#[test]
fn database_connection_errors_are_clear_and_hide_the_password() {
    let (ok, _, err) = wxpush(
        &["serve"],
        &[
            ("WXPUSH_LISTEN", "127.0.0.1:0"),
            (
                "WXPUSH_DATABASE_URL",
                "postgres://app:hunter2pw@127.0.0.1:1/inbox",
            ),
        ],
    );
    assert!(!ok);
    assert!(err.contains("app@127.0.0.1:1/inbox"), "{err}");
    assert!(err.to_lowercase().contains("connect"), "{err}");
    assert!(!err.contains("hunter2pw"), "{err}");
    let Some(url) = database_url() else { return };
    let Some(wrong) = url
        .split_once("://")
        .and_then(|(scheme, rest)| {
            rest.split_once('@')
                .map(|(cred, host)| (scheme, cred, host))
        })
        .map(|(scheme, cred, host)| {
            let user = cred.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:not-the-password@{host}")
        })
    else {
        panic!("test URL has credentials");
    };
    let (ok, _, err) = wxpush(
        &["serve"],
        &[
            ("WXPUSH_LISTEN", "127.0.0.1:0"),
            ("WXPUSH_DATABASE_URL", wrong.as_str()),
        ],
    );
    assert!(!ok);
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
}

/// New events wait in memory for the instance that stored them, leased to it; when its
/// dispatcher falls behind (thousands waiting), further events are stored without a lease
/// so that any instance can take them at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_beyond_memory_is_left_to_any_instance() {
    let Some(url) = database_url() else { return };
    let schema = fresh_schema();
    let busy = Arc::new(open_store(&url, &schema).await.expect("opens"));
    let idle = open_store(&url, &schema).await.expect("opens");
    let mut n = 0;
    while n < 5000 {
        let tasks: Vec<_> = (n..n + 500)
            .map(|i| {
                let store = Arc::clone(&busy);
                tokio::spawn(async move { store.record(audit(i), None).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("task").expect("records");
        }
        n += 500;
    }
    let taken = idle
        .due(
            wxpush::clock::now_ms(),
            wxpush::store::DueQuery::any(10_000),
        )
        .await
        .expect("due");
    assert!(
        !taken.is_empty() && taken.len() < 5000,
        "the other instance took {} of 5000",
        taken.len()
    );
    assert!(
        taken
            .iter()
            .all(|r| r.lease.as_ref().map(|l| l.owner.as_str()) == Some(idle.owner()))
    );
    let own = busy
        .due(
            wxpush::clock::now_ms(),
            wxpush::store::DueQuery::any(10_000),
        )
        .await
        .expect("due");
    assert_eq!(
        own.len() + taken.len(),
        5000,
        "every event with exactly one instance"
    );
}

/// A TCP relay to the test database that can be cut, as a network failure would.
struct Relay {
    addr: std::net::SocketAddr,
    cut: Arc<std::sync::atomic::AtomicBool>,
    links: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn to(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let links = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (accept_cut, accept_links) = (Arc::clone(&cut), Arc::clone(&links));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if accept_cut.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                accept_links.lock().expect("links").push(link);
            }
        });
        Self { addr, cut, links }
    }

    /// Closes every relayed connection and refuses new ones.
    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The database becoming unreachable mid-run: pushes are refused with 503 (so the platform
/// retries), `/readyz` says why, nothing unacknowledged is delivered; once the database is
/// back, the same instance recovers without a restart.
#[tokio::test]
async fn losing_the_database_answers_503_and_recovers() {
    let Some(url) = database_url() else { return };
    let (head, tail) = url.split_once('@').expect("test URL has credentials");
    let (host, db) = tail.split_once('/').expect("test URL names a database");
    let relay = Relay::to(host.to_owned()).await;
    let relayed = format!("{head}@{}/{db}", relay.addr);
    let mut app = TestApp::spawn_on("demo", &pg_toml(&relayed, &fresh_schema())).await;
    assert_eq!(app.push_safe("/wechat", &audit(1).raw).await.status, 200);
    assert_eq!(app.next_event().await.id, audit(1).id);

    relay.cut();
    let refused = app.push_safe("/wechat", &audit(2).raw).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    let ready = app
        .client
        .get(format!("{}/readyz", app.base_url))
        .send()
        .await
        .expect("readyz answers");
    assert_eq!(ready.status(), 503);
    let why = ready.text().await.unwrap_or_default();
    assert!(why.contains("not ready"), "{why}");
    let password = head.rsplit(':').next().unwrap_or(head);
    assert!(!why.contains(password), "{why}");

    relay.restore();
    let mut status = 0;
    for _ in 0..50 {
        status = app.push_safe("/wechat", &audit(3).raw).await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "recovered once the database is back");
    assert_eq!(app.next_event().await.id, audit(3).id);
    let delivered = app.stop().await;
    assert!(
        delivered.iter().all(|e| e.id != audit(2).id),
        "the refused push was never delivered"
    );
}

/// With `sslmode=require` the connection is encrypted and the server's certificate is
/// verified: against the configured CA it connects (and the server sees TLS); without that
/// CA the self-signed test certificate is refused with a message saying so.
#[tokio::test]
async fn sslmode_require_encrypts_and_verifies_the_server() {
    let Some(url) = database_url() else { return };
    let Some(ca) = std::env::var("WXPUSH_TEST_DATABASE_CA")
        .ok()
        .filter(|ca| !ca.is_empty())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but WXPUSH_TEST_DATABASE_CA is not: .ci/with-postgres sets it"
        );
        eprintln!("SKIPPED: the test server has no TLS (WXPUSH_TEST_DATABASE_CA unset)");
        return;
    };
    let app_name = format!("wxpush_tls_{:08x}", rand::random::<u32>());
    let tls_url = format!("{url}?sslmode=require&application_name={app_name}");
    let schema = fresh_schema();
    let toml = format!("{}ca_file = \"{ca}\"\n", pg_toml(&tls_url, &schema));
    let config = Config::from_toml(&toml).expect("valid config");
    let StoreKind::Postgres(pg) = &config.store else {
        panic!("postgres store");
    };
    let store = PostgresStore::open(pg).await.expect("connects over TLS");
    assert_eq!(
        store.record(audit(1), None).await.expect("records"),
        Recorded::New
    );
    let client = connect(&url).await;
    let row = client
        .query_one(
            "SELECT count(*), coalesce(bool_and(s.ssl), false) FROM pg_stat_ssl s
             JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
            &[&app_name],
        )
        .await
        .expect("query");
    let (connections, all_tls): (i64, bool) = (row.get(0), row.get(1));
    assert!(
        connections >= 1 && all_tls,
        "{connections} connections, TLS: {all_tls}"
    );

    let config = Config::from_toml(&pg_toml(&tls_url, &schema)).expect("valid config");
    let StoreKind::Postgres(pg) = &config.store else {
        panic!("postgres store");
    };
    let err = PostgresStore::open(pg)
        .await
        .expect_err("unknown CA")
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}
