//! The token service in the real binary, killed (SIGKILL) in the middle of a refresh-token
//! rotation: the old refresh token is kept until the new one is saved, the new one is
//! saved before the new access token is handed out, and a refresh token the platform no
//! longer accepts is recovered from the authorizer list. Logged at every level, no secret
//! appears; stored, they are encrypted.

use std::time::{Duration, Instant};

use crate::cli::Served;
use crate::fake_platform::{COMPONENT, COMPONENT_SECRET, FakePlatform};
use crate::helpers::{TestApp, app_toml};
use crate::tokens_support::{
    API_TOKEN, AUTHORIZER, authorization_push, get_token, invalidate, ticket_push, wait_for_token,
};

const SECRETS_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Where the binary keeps its inbox: the data dir, or a PostgreSQL schema (then without
/// `secrets_key`: the logs must not show the unencrypted values either).
#[derive(Clone)]
struct Inbox {
    data_dir: String,
    postgres: Option<(String, String)>,
}

/// Starts the binary on `inbox` as the managed platform; returns it and its admin URL.
fn start(inbox: &Inbox, fake: &FakePlatform) -> (Served, String) {
    let data_dir = inbox.data_dir.as_str();
    let platform = &crate::helpers::vectors()["apps"][1];
    let mut envs = vec![
        ("RUST_LOG", "trace"),
        ("WXPUSH_DATA_DIR", data_dir),
        ("WXPUSH_ADMIN_LISTEN", "127.0.0.1:0"),
        ("WXPUSH_ADMIN_API_TOKEN", API_TOKEN),
        ("WXPUSH_API_BASE", fake.url.as_str()),
        ("WXPUSH_MAX_CLOCK_SKEW_SECS", "0"),
        ("WXPUSH_APP_NAME", "platform"),
        (
            "WXPUSH_TOKEN",
            platform["token"].as_str().unwrap_or_default(),
        ),
        (
            "WXPUSH_ENCODING_AES_KEY",
            platform["encoding_aes_key"].as_str().unwrap_or_default(),
        ),
        ("WXPUSH_APPID", COMPONENT),
        ("WXPUSH_COMPONENT_APPSECRET", COMPONENT_SECRET),
        ("WXPUSH_DELIVERY_RETRY_SCHEDULE_SECS", "0.05,0.05,0.05"),
    ];
    match &inbox.postgres {
        None => envs.push(("WXPUSH_SECRETS_KEY", SECRETS_KEY)),
        Some((url, schema)) => {
            envs.push(("WXPUSH_DATABASE_URL", url));
            envs.push(("WXPUSH_POSTGRES_SCHEMA", schema));
        }
    }
    let mut served = Served::start(&envs);
    let admin = served.admin_url();
    (served, admin)
}

/// Kills `served` and returns every line it logged.
fn kill(mut served: Served) -> Vec<String> {
    served.child.kill().expect("SIGKILL");
    served.child.wait().expect("reaped");
    served.terminate_collected().1
}

/// Waits until the fake has received `n` calls of `api`.
async fn wait_calls(fake: &FakePlatform, api: &str, n: u32) {
    let started = Instant::now();
    while fake.calls(api) < n {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{api} not called {n} times"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Makes the next refresh rotate the refresh token and never answer, then asks for it.
async fn rotate_and_hold(fake: &FakePlatform, admin: &str, calls: u32) {
    fake.with(|p| p.hold_authorizer_token = Some(Duration::from_secs(60)));
    let current = fake.token(AUTHORIZER).unwrap_or_default();
    fake.revoke(AUTHORIZER);
    let admin = admin.to_owned();
    // Its answer never comes: the server is killed while it waits.
    tokio::spawn(async move {
        let _ = reqwest::Client::new()
            .post(format!("{admin}/v1/tokens/{AUTHORIZER}/invalidate"))
            .bearer_auth(API_TOKEN)
            .header("content-type", "application/json")
            .body(serde_json::json!({"access_token": current}).to_string())
            .send()
            .await;
    });
    wait_calls(fake, "api_authorizer_token", calls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_rotation_survives_a_crash_at_any_point() {
    let dir = tempfile::tempdir().expect("dir");
    let inbox = Inbox {
        data_dir: dir.path().display().to_string(),
        postgres: None,
    };
    rotation_survives_crashes(&inbox).await;
    // Sealed at rest: no token the platform issued is in the inbox files. (The ticket
    // push itself is kept as an event, like every push.)
    for entry in std::fs::read_dir(dir.path()).expect("data dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("read");
            let text = String::from_utf8_lossy(&bytes);
            for forbidden in ["authorizertoken-", "componenttoken-", "refreshtoken@@@"] {
                assert!(
                    !text.contains(forbidden),
                    "{forbidden}… stored in the clear in {path:?}"
                );
            }
        }
    }
}

/// The same on PostgreSQL, without `secrets_key`: nothing logged at trace level shows a
/// value (the PostgreSQL client's statement parameters would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_rotation_survives_a_crash_on_postgres() {
    let Some(url) = crate::helpers::database_url() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let inbox = Inbox {
        data_dir: dir.path().display().to_string(),
        postgres: Some((url, crate::helpers::fresh_schema())),
    };
    rotation_survives_crashes(&inbox).await;
}

async fn rotation_survives_crashes(inbox: &Inbox) {
    let fake = FakePlatform::start().await;
    let mut logs = Vec::new();
    let (served, admin) = start(inbox, &fake);
    let mut client = TestApp::client_for(&served.base_url);
    client.config = wxpush::Config::from_toml(&app_toml("platform")).expect("config");
    client
        .push_safe("/wechat", &ticket_push(&fake.new_ticket()))
        .await;
    wait_for_token(&admin, COMPONENT).await;
    let code = fake.authorize(AUTHORIZER);
    client
        .push_safe(
            "/wechat",
            &authorization_push("authorized", AUTHORIZER, &code),
        )
        .await;
    let first = wait_for_token(&admin, AUTHORIZER).await;

    // Killed after the platform rotated the refresh token, before its answer arrived: the
    // old refresh token (still valid for the grace period) is what is stored.
    rotate_and_hold(&fake, &admin, 1).await;
    logs.extend(kill(served));
    let (served, admin) = start(inbox, &fake);
    let refused = first["access_token"].as_str().unwrap_or_default();
    let (status, token) = invalidate(&admin, AUTHORIZER, refused).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(
        token["access_token"].as_str(),
        fake.token(AUTHORIZER).as_deref()
    );
    assert_eq!(fake.calls("api_authorizer_token"), 2);

    // Killed right after a token was handed out, and every older refresh token made
    // invalid: the refresh token that came with it was saved before it was handed out.
    logs.extend(kill(served));
    fake.with(|p| p.grace = Duration::ZERO);
    fake.revoke(AUTHORIZER);
    let (served, admin) = start(inbox, &fake);
    let (status, stored) = get_token(&admin, AUTHORIZER).await;
    assert_eq!(
        (status, &stored["access_token"]),
        (200, &token["access_token"]),
        "kept"
    );
    let stale = token["access_token"].as_str().unwrap_or_default();
    let (status, fresh) = invalidate(&admin, AUTHORIZER, stale).await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(
        fresh["access_token"].as_str(),
        fake.token(AUTHORIZER).as_deref()
    );
    assert_eq!(
        fake.calls("api_get_authorizer_list"),
        0,
        "no recovery needed"
    );

    // Killed mid-rotation with no grace: the stored refresh token is refused (61023), and
    // wxpush recovers the current one from the authorizer list.
    rotate_and_hold(&fake, &admin, 4).await;
    logs.extend(kill(served));
    let (served, admin) = start(inbox, &fake);
    let stale = fresh["access_token"].as_str().unwrap_or_default();
    let (status, recovered) = invalidate(&admin, AUTHORIZER, stale).await;
    assert_eq!(status, 200, "{recovered}");
    assert_eq!(
        recovered["access_token"].as_str(),
        fake.token(AUTHORIZER).as_deref()
    );
    assert_eq!(fake.calls("api_get_authorizer_list"), 1);
    logs.extend(kill(served));

    // No secret in any log line, at trace level; none in the inbox files either.
    let mut secrets = fake.with(|p| {
        let mut all = p.issued.clone();
        all.extend(p.tickets.clone());
        all
    });
    secrets.extend([
        COMPONENT_SECRET.to_owned(),
        API_TOKEN.to_owned(),
        SECRETS_KEY.to_owned(),
    ]);
    assert!(logs.len() > 50, "trace logging ran: {} lines", logs.len());
    for line in &logs {
        for secret in &secrets {
            assert!(
                !line.contains(secret.as_str()),
                "a secret in the log: {line}"
            );
        }
    }
}
