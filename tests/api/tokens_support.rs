//! What the token tests share: the managed platform's configuration, the platform's pushes,
//! and the token API's calls.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fake_platform::{COMPONENT, COMPONENT_SECRET, FakePlatform};
use crate::helpers::{TestApp, app_toml};

pub(crate) const API_TOKEN: &str = "operator-api-token-0123456789";
pub(crate) const AUTHORIZER: &str = "wxa0000000000000a1";

/// Config TOML: the vectors' `platform` app as a managed third-party platform calling
/// `fake`, the operator API on a random port, refreshes `margin` seconds early.
pub(crate) fn platform_toml(fake: &FakePlatform, margin: u64) -> String {
    format!(
        "admin_listen = \"127.0.0.1:0\"\napi_base = \"{}\"\n{}component_appsecret = \"{COMPONENT_SECRET}\"\n[tokens]\nrefresh_margin_secs = {margin}\n[admin]\napi_token = \"{API_TOKEN}\"\n",
        fake.url,
        app_toml("platform")
    )
}

fn now_secs() -> i64 {
    wxpush::clock::now_ms() / 1000
}

/// The platform's ticket push.
pub(crate) fn ticket_push(ticket: &str) -> String {
    format!(
        "<xml><AppId><![CDATA[{COMPONENT}]]></AppId><CreateTime>{}</CreateTime><InfoType><![CDATA[component_verify_ticket]]></InfoType><ComponentVerifyTicket><![CDATA[{ticket}]]></ComponentVerifyTicket></xml>",
        now_secs()
    )
}

/// The platform's authorization push (`authorized`, `updateauthorized` or `unauthorized`).
pub(crate) fn authorization_push(kind: &str, authorizer: &str, code: &str) -> String {
    format!(
        "<xml><AppId><![CDATA[{COMPONENT}]]></AppId><CreateTime>{}</CreateTime><InfoType><![CDATA[{kind}]]></InfoType><AuthorizerAppid><![CDATA[{authorizer}]]></AuthorizerAppid><AuthorizationCode><![CDATA[{code}]]></AuthorizationCode><AuthorizationCodeExpiredTime>{}</AuthorizationCodeExpiredTime><PreAuthCode><![CDATA[preauthcode@@@x]]></PreAuthCode></xml>",
        now_secs(),
        now_secs() + 600
    )
}

/// `GET /v1/tokens/{appid}` with the bearer token: status and JSON body.
pub(crate) async fn get_token(admin: &str, appid: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .get(format!("{admin}/v1/tokens/{appid}"))
        .bearer_auth(API_TOKEN)
        .send()
        .await;
    status_and_json(res).await
}

/// `POST /v1/tokens/{appid}/invalidate` with the token that failed.
pub(crate) async fn invalidate(admin: &str, appid: &str, failed: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{admin}/v1/tokens/{appid}/invalidate"))
        .bearer_auth(API_TOKEN)
        .header("content-type", "application/json")
        .body(serde_json::json!({"access_token": failed}).to_string())
        .send()
        .await;
    status_and_json(res).await
}

/// An answer's status and JSON body.
async fn status_and_json(res: reqwest::Result<reqwest::Response>) -> (u16, Value) {
    let res = res.expect("admin answers");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

/// Waits (up to 10 s) until `GET /v1/tokens/{appid}` answers 200; returns the body.
pub(crate) async fn wait_for_token(admin: &str, appid: &str) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = get_token(admin, appid).await;
        if status == 200 {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no token for {appid}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The environment for the CLI on `app`'s inbox and configuration.
pub(crate) fn cli_env(app: &TestApp, fake: &FakePlatform) -> Vec<(&'static str, String)> {
    let platform = &crate::helpers::vectors()["apps"][1];
    [
        ("WXPUSH_DATA_DIR", app.data_dir.path().display().to_string()),
        ("WXPUSH_APP_NAME", "platform".into()),
        (
            "WXPUSH_TOKEN",
            platform["token"].as_str().unwrap_or_default().into(),
        ),
        (
            "WXPUSH_ENCODING_AES_KEY",
            platform["encoding_aes_key"]
                .as_str()
                .unwrap_or_default()
                .into(),
        ),
        ("WXPUSH_APPID", COMPONENT.into()),
        ("WXPUSH_COMPONENT_APPSECRET", COMPONENT_SECRET.into()),
        ("WXPUSH_API_BASE", fake.url.clone()),
    ]
    .into_iter()
    .chain(store_env(app))
    .collect()
}

/// The store settings of `app`, for a CLI on the same inbox.
fn store_env(app: &TestApp) -> Vec<(&'static str, String)> {
    match &app.config.store {
        wxpush::store::StoreKind::Postgres(pg) => vec![
            ("WXPUSH_DATABASE_URL", pg.url.expose().clone()),
            ("WXPUSH_POSTGRES_SCHEMA", pg.schema.clone()),
        ],
        wxpush::store::StoreKind::Sqlite => Vec::new(),
    }
}

/// A ticket push, then `AUTHORIZER` authorizes the platform; waits until its token is served.
pub(crate) async fn authorize(app: &TestApp, fake: &FakePlatform, admin: &str) {
    app.push_safe("/wechat", &ticket_push(&fake.new_ticket()))
        .await;
    wait_for_token(admin, COMPONENT).await;
    let code = fake.authorize(AUTHORIZER);
    let push = authorization_push("authorized", AUTHORIZER, &code);
    app.push_safe("/wechat", &push).await;
    wait_for_token(admin, AUTHORIZER).await;
}
