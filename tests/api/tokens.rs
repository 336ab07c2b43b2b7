//! The token service end to end, against the fake platform on loopback: ticket pushes, the
//! component token, authorizations, the token API on admin_listen, compare-and-refresh,
//! single flight across replicas, and a Mini Program's own token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::wxpush;
use crate::fake_platform::{COMPONENT, FakePlatform};
use crate::helpers::{Behavior, TestApp, app_toml, database_url, fresh_schema, pg_toml};
use crate::integrations::metric;
use crate::tokens_support::authorize;
use crate::tokens_support::{
    API_TOKEN, AUTHORIZER, authorization_push, cli_env, get_token, invalidate, platform_toml,
    ticket_push, wait_for_token,
};

/// A ticket push makes wxpush fetch the component token with exactly that ticket; the
/// token survives a restart without another call; the push still reaches the handler.
/// Without a ticket, the API says why (503) and wxpush asks the platform for one.
#[tokio::test]
async fn a_pushed_ticket_gives_the_component_token_which_survives_a_restart() {
    let fake = FakePlatform::start().await;
    let toml = platform_toml(&fake, 600);
    let mut app = TestApp::spawn_with(&toml, Behavior::default()).await;
    let admin = app.admin_url.clone().expect("admin_listen");
    let (status, body) = get_token(&admin, COMPONENT).await;
    assert_eq!(status, 503, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("no component_verify_ticket"), "{error}");
    assert!(error.contains("api_start_push_ticket"), "{error}");
    assert_eq!(
        fake.calls("api_start_push_ticket"),
        1,
        "asked once, not per request"
    );

    let ticket = fake.new_ticket();
    let answer = app.push_safe("/wechat", &ticket_push(&ticket)).await;
    assert_eq!(answer.body, "success");
    let token = wait_for_token(&admin, COMPONENT).await;
    assert_eq!(token["kind"], "component");
    assert_eq!(token["appid"], COMPONENT);
    assert_eq!(
        token["access_token"].as_str(),
        fake.token(COMPONENT).as_deref()
    );
    assert!(
        token["expires_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(fake.with(|p| p.tickets_used.clone()), vec![ticket.clone()]);
    let event = app.next_event().await;
    assert_eq!(
        event.name(),
        "component_verify_ticket",
        "handlers still get the push"
    );
    let metrics = reqwest::get(format!("{admin}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    let expires_in = metric(
        &metrics,
        &format!("wxpush_token_expires_in_seconds{{appid=\"{COMPONENT}\",kind=\"component\"}}"),
    );
    assert!((7000.0..=7200.0).contains(&expires_in), "{expires_in}");
    let ok = metric(
        &metrics,
        "wxpush_token_refresh_total{kind=\"component\",outcome=\"ok\"}",
    );
    let failed = metric(
        &metrics,
        "wxpush_token_refresh_total{kind=\"component\",outcome=\"error\"}",
    );
    assert_eq!(ok, 1.0, "one refresh, with the ticket");
    assert!(
        failed >= 1.0,
        "the refreshes before the ticket failed: {failed}"
    );
    let age = metric(
        &metrics,
        &format!("wxpush_ticket_age_seconds{{component=\"{COMPONENT}\"}}"),
    );
    assert!((0.0..5.0).contains(&age), "{age}");
    assert!(
        !metrics.contains("componenttoken-"),
        "no token in the metrics"
    );

    let dir = Arc::clone(&app.data_dir);
    app.stop().await;
    let app = TestApp::spawn_in(&toml, Behavior::default(), dir).await;
    let admin = app.admin_url.clone().expect("admin_listen");
    let (status, again) = get_token(&admin, COMPONENT).await;
    assert_eq!(status, 200);
    assert_eq!(again["access_token"], token["access_token"]);
    assert_eq!(
        fake.calls("api_component_token"),
        1,
        "kept across the restart"
    );

    // The API refuses requests without the bearer token, or with a wrong one.
    let client = reqwest::Client::new();
    let url = format!("{admin}/v1/tokens/{COMPONENT}");
    let none = client.get(&url).send().await.expect("answers");
    assert_eq!(none.status().as_u16(), 401);
    let wrong = client
        .get(&url)
        .bearer_auth("operator-api-token-0123456780")
        .send()
        .await
        .expect("answers");
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(
        !wrong
            .text()
            .await
            .unwrap_or_default()
            .contains("componenttoken")
    );
    let (status, _) = get_token(&admin, "wx99999999999999ff").await;
    assert_eq!(status, 404);
    // The API is not on the public port.
    let public = client
        .get(format!("{}/v1/tokens/{COMPONENT}", app.base_url))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("answers");
    assert_eq!(public.status().as_u16(), 404);
    app.stop().await;
}

/// An `authorized` push is exchanged (api_query_auth, with its code) for the authorizer's
/// token, which the API then serves; `unauthorized` drops it.
// The CLI blocks its thread: the fake platform answers from another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_push_gives_the_authorizers_token() {
    let fake = FakePlatform::start().await;
    let app = TestApp::spawn_with(&platform_toml(&fake, 600), Behavior::default()).await;
    let admin = app.admin_url.clone().expect("admin_listen");
    authorize(&app, &fake, &admin).await;
    let token = get_token(&admin, AUTHORIZER).await.1;
    assert_eq!(token["kind"], "authorizer");
    assert_eq!(
        token["access_token"].as_str(),
        fake.token(AUTHORIZER).as_deref()
    );
    assert_eq!(fake.calls("api_query_auth"), 1);

    let envs = cli_env(&app, &fake);
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (ok, out, err) = wxpush(&["tokens", "list", "--json"], &envs);
    assert!(ok, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[1]["appid"], AUTHORIZER);
    assert_eq!(lines[1]["kind"], "authorizer");
    assert!(
        !out.contains("token-") && !out.contains("refreshtoken"),
        "{out}"
    );
    let (ok, out, _) = wxpush(&["tokens", "get", AUTHORIZER], &envs);
    assert!(ok);
    assert_eq!(Some(out.trim()), token["access_token"].as_str());
    let (ok, out, err) = wxpush(&["authorizers", "import"], &envs);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("{COMPONENT}: imported 1 authorizers")),
        "{out}"
    );
    assert_eq!(fake.calls("api_get_authorizer_list"), 1);
    let (ok, out, _) = wxpush(&["authorizers", "list", "--json"], &envs);
    assert!(
        ok && out.contains("\"status\":\"authorized\"") && !out.contains("refreshtoken"),
        "{out}"
    );

    app.push_safe(
        "/wechat",
        &authorization_push("unauthorized", AUTHORIZER, ""),
    )
    .await;
    let started = Instant::now();
    loop {
        let (status, body) = get_token(&admin, AUTHORIZER).await;
        if status == 503 {
            assert!(
                body["error"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("cancelled"),
                "{body}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still served: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

/// A 40001 from `addcategory` (the platform invalidated the token): one compare-and-
/// refresh, one retry, success. An invalidation with an old token refreshes nothing; one
/// with the current token refreshes once.
// The CLI blocks its thread: the fake platform answers from another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_refreshed_once_and_only_if_still_current() {
    let fake = FakePlatform::start().await;
    let app = TestApp::spawn_with(&platform_toml(&fake, 600), Behavior::default()).await;
    let admin = app.admin_url.clone().expect("admin_listen");
    authorize(&app, &fake, &admin).await;
    let first = get_token(&admin, AUTHORIZER).await.1;
    let envs = cli_env(&app, &fake);
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The settable list is cached first, so that addcategory is the call that is refused.
    let (ok, _, err) = wxpush(
        &["categories", "settable", "--authorizer", AUTHORIZER],
        &envs,
    );
    assert!(ok, "{err}");
    fake.revoke(AUTHORIZER);
    let (ok, out, err) = wxpush(
        &[
            "add-category",
            "--authorizer",
            AUTHORIZER,
            "--first",
            "8",
            "--second",
            "40",
        ],
        &envs,
    );
    assert!(ok, "{out}{err}");
    assert_eq!(
        fake.calls("addcategory"),
        2,
        "the refused call and its retry"
    );
    assert_eq!(fake.calls("api_authorizer_token"), 1, "one refresh");
    assert_eq!(fake.with(|p| p.added.len()), 1);

    let (status, current) = get_token(&admin, AUTHORIZER).await;
    assert_eq!(status, 200);
    assert_ne!(current["access_token"], first["access_token"]);
    let old = first["access_token"].as_str().unwrap_or_default();
    let (status, answer) = invalidate(&admin, AUTHORIZER, old).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["access_token"], current["access_token"],
        "the current token, unchanged"
    );
    assert_eq!(
        fake.calls("api_authorizer_token"),
        1,
        "a stale invalidation refreshes nothing"
    );
    let now = current["access_token"].as_str().unwrap_or_default();
    let (status, newer) = invalidate(&admin, AUTHORIZER, now).await;
    assert_eq!(status, 200);
    assert_ne!(newer["access_token"], current["access_token"]);
    assert_eq!(
        newer["access_token"].as_str(),
        fake.token(AUTHORIZER).as_deref()
    );
    assert_eq!(fake.calls("api_authorizer_token"), 2);
    app.stop().await;
}

/// Two replicas on PostgreSQL, 100 concurrent requests each for a token that has just
/// expired: exactly one refresh call, and every answer is the new token.
#[tokio::test]
async fn replicas_refresh_an_expired_token_exactly_once() {
    let Some(url) = database_url() else { return };
    let schema = fresh_schema();
    let fake = FakePlatform::start().await;
    let toml = format!("{}{}", platform_toml(&fake, 0), pg_toml(&url, &schema));
    let one = TestApp::spawn_with(&toml, Behavior::default()).await;
    let two = TestApp::spawn_with(&toml, Behavior::default()).await;
    let admins = [
        one.admin_url.clone().expect("admin"),
        two.admin_url.clone().expect("admin"),
    ];
    one.push_safe("/wechat", &ticket_push(&fake.new_ticket()))
        .await;
    wait_for_token(&admins[1], COMPONENT).await;
    fake.with(|p| p.expires_in = Duration::from_secs(2));
    let code = fake.authorize(AUTHORIZER);
    two.push_safe(
        "/wechat",
        &authorization_push("authorized", AUTHORIZER, &code),
    )
    .await;
    let first = wait_for_token(&admins[0], AUTHORIZER).await;
    fake.with(|p| p.expires_in = Duration::from_secs(7200));
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let requests = (0..200).map(|i| get_token(&admins[i % 2], AUTHORIZER));
    let answers = futures_util::future::join_all(requests).await;
    let fresh = fake.token(AUTHORIZER);
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["access_token"].as_str(), fresh.as_deref());
    }
    assert_ne!(fresh.as_deref(), first["access_token"].as_str());
    assert_eq!(
        fake.calls("api_authorizer_token"),
        1,
        "one refresh for 200 requests on 2 replicas"
    );
    assert_eq!(fake.calls("api_component_token"), 1);
    one.stop().await;
    two.stop().await;
}

/// A Mini Program's own token (appsecret): stable_token in normal mode, and a forced
/// refresh when the current token is reported bad.
#[tokio::test]
async fn a_mini_programs_own_token_is_managed() {
    let fake = FakePlatform::start().await;
    let toml = format!(
        "admin_listen = \"127.0.0.1:0\"\napi_base = \"{}\"\n{}appsecret = \"mp-secret-VALUE\"\n[admin]\napi_token = \"{API_TOKEN}\"\n",
        fake.url,
        app_toml("demo")
    );
    let app = TestApp::spawn_with(&toml, Behavior::default()).await;
    let admin = app.admin_url.clone().expect("admin");
    let demo = "wx5a1b2c3d4e5f6a7b";
    let token = wait_for_token(&admin, demo).await;
    assert_eq!(token["kind"], "miniprogram");
    let calls = fake.calls("stable_token");
    let (_, again) = get_token(&admin, demo).await;
    assert_eq!(again["access_token"], token["access_token"]);
    assert_eq!(fake.calls("stable_token"), calls, "served from the store");
    let current = token["access_token"].as_str().unwrap_or_default();
    let (status, forced) = invalidate(&admin, demo, current).await;
    assert_eq!(status, 200);
    assert_ne!(forced["access_token"], token["access_token"]);
    assert_eq!(forced["access_token"].as_str(), fake.token(demo).as_deref());
    app.stop().await;
}
