//! A fake of the platform's token and category APIs on loopback, with the real semantics:
//! tickets it pushed are the only valid ones (61006 otherwise), tokens expire, issuing a
//! token invalidates the previous one of the same app (40001 for the old one), refresh
//! tokens rotate with the old one valid for a grace period (61023 after), authorization
//! codes work once, and every call is counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

/// The component app id (the vectors' `platform` app) and secret the fake knows.
pub const COMPONENT: &str = "wxc0ffee0000000001";
pub const COMPONENT_SECRET: &str = "component-secret-VALUE-1";

/// What the fake platform knows and has done.
#[derive(Default)]
pub struct Platform {
    /// Calls per API name.
    pub calls: HashMap<String, u32>,
    /// Tickets pushed, newest last.
    pub tickets: Vec<String>,
    /// The ticket each `api_component_token` call used.
    pub tickets_used: Vec<String>,
    /// Current token per app id, with its expiry.
    pub tokens: HashMap<String, (String, Instant)>,
    /// Every token ever issued (to check none leaks).
    pub issued: Vec<String>,
    /// Current refresh token per authorizer, and the previous with when it stops working.
    pub refresh: HashMap<String, (String, Option<(String, Instant)>)>,
    /// Authorization codes not used yet, and their authorizer.
    pub codes: HashMap<String, String>,
    /// Lifetime of new tokens.
    pub expires_in: Duration,
    /// How long an old refresh token keeps working after a rotation.
    pub grace: Duration,
    /// Hold the answer of the next `api_authorizer_token` (after rotating) for this long.
    pub hold_authorizer_token: Option<Duration>,
    /// Categories added: the account and the request body exactly as received.
    pub added: Vec<(String, String)>,
    /// Categories set, per account: `{first, first_name, second, second_name,
    /// audit_status, audit_reason}`.
    pub categories: HashMap<String, Vec<Value>>,
    /// Media uploaded: id → (account, file name, when it expires).
    pub media: HashMap<String, (String, String, Instant)>,
    /// Lifetime of uploaded media.
    pub media_lifetime: Duration,
    /// How old new uploads claim to be (`created_at` in the past), in ms.
    pub media_age_ms: i64,
    counter: u64,
}

/// A running fake platform.
#[derive(Clone)]
pub struct FakePlatform {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its state.
    pub state: Arc<Mutex<Platform>>,
}

impl FakePlatform {
    /// Starts one on a random loopback port.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(Platform {
            expires_in: Duration::from_secs(7200),
            grace: Duration::from_secs(300),
            media_lifetime: Duration::from_secs(3 * 24 * 3600),
            ..Platform::default()
        }));
        let app = Router::new()
            .route("/cgi-bin/component/{api}", post(component))
            .route("/cgi-bin/stable_token", post(stable))
            .merge(crate::fake_categories::routes())
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    /// Locks the state.
    pub fn with<T>(&self, f: impl FnOnce(&mut Platform) -> T) -> T {
        f(&mut self.state.lock().expect("fake platform lock"))
    }

    /// Calls of `api` so far.
    pub fn calls(&self, api: &str) -> u32 {
        self.with(|p| p.calls.get(api).copied().unwrap_or(0))
    }

    /// A new ticket, as the platform pushes every 10 minutes.
    pub fn new_ticket(&self) -> String {
        self.with(|p| {
            let ticket = format!("ticket@@@{}", p.next());
            p.tickets.push(ticket.clone());
            ticket
        })
    }

    /// A Mini Program authorizes the platform: the code its `authorized` push carries.
    pub fn authorize(&self, authorizer: &str) -> String {
        self.with(|p| {
            let code = format!("queryauthcode@@@{}", p.next());
            p.codes.insert(code.clone(), authorizer.to_owned());
            code
        })
    }

    /// The platform invalidates `appid`'s current token (as a refresh elsewhere would).
    pub fn revoke(&self, appid: &str) {
        self.with(|p| p.tokens.remove(appid));
    }

    /// The current token of `appid`.
    pub fn token(&self, appid: &str) -> Option<String> {
        self.with(|p| p.tokens.get(appid).map(|t| t.0.clone()))
    }
}

impl Platform {
    pub(crate) fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    pub(crate) fn count(&mut self, api: &str) {
        *self.calls.entry(api.to_owned()).or_default() += 1;
    }

    /// Issues a new token for `appid`; the previous one stops working.
    fn issue(&mut self, appid: &str, prefix: &str) -> Value {
        let token = format!("{prefix}-{}-{}", appid, self.next());
        self.tokens.insert(
            appid.to_owned(),
            (token.clone(), Instant::now() + self.expires_in),
        );
        self.issued.push(token.clone());
        json!({"token": token, "expires_in": self.expires_in.as_secs()})
    }

    /// Whether `token` is `appid`'s current, unexpired token: the errcode if not.
    pub(crate) fn check(&self, appid: &str, token: &str) -> Option<i64> {
        match self.tokens.get(appid) {
            Some((current, until)) if current == token && *until > Instant::now() => None,
            Some((current, _)) if current == token => Some(42001),
            _ => Some(40001),
        }
    }

    fn new_refresh(&mut self, authorizer: &str) -> String {
        let fresh = format!("refreshtoken@@@{}", self.next());
        let grace = self.grace;
        let previous = self
            .refresh
            .get(authorizer)
            .map(|(old, _)| (old.clone(), Instant::now() + grace));
        self.refresh
            .insert(authorizer.to_owned(), (fresh.clone(), previous));
        self.issued.push(fresh.clone());
        fresh
    }

    fn refresh_ok(&self, authorizer: &str, given: &str) -> bool {
        match self.refresh.get(authorizer) {
            Some((current, _)) if current == given => true,
            Some((_, Some((previous, until)))) => previous == given && *until > Instant::now(),
            _ => false,
        }
    }
}

pub(crate) fn err(code: i64) -> Json<Value> {
    Json(json!({"errcode": code, "errmsg": format!("fake error {code}")}))
}

pub(crate) type Shared = State<Arc<Mutex<Platform>>>;

async fn component(
    State(state): Shared,
    Path(api): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let hold = {
        let mut p = state.lock().expect("lock");
        p.count(&api);
        let s = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
        if api != "api_component_token" && api != "api_start_push_ticket" {
            let given = query
                .get("component_access_token")
                .cloned()
                .unwrap_or_default();
            if let Some(code) = p.check(COMPONENT, &given) {
                return err(code);
            }
        }
        match api.as_str() {
            "api_component_token" => {
                if s("component_appsecret") != COMPONENT_SECRET {
                    return err(40125);
                }
                let ticket = s("component_verify_ticket");
                p.tickets_used.push(ticket.clone());
                if !p.tickets.contains(&ticket) {
                    return err(61006);
                }
                let t = p.issue(COMPONENT, "componenttoken");
                return Json(
                    json!({"component_access_token": t["token"], "expires_in": t["expires_in"]}),
                );
            }
            "api_start_push_ticket" => return Json(json!({"errcode": 0, "errmsg": "ok"})),
            "api_query_auth" => {
                let Some(authorizer) = p.codes.remove(&s("authorization_code")) else {
                    return err(61010);
                };
                let t = p.issue(&authorizer, "authorizertoken");
                let refresh = p.new_refresh(&authorizer);
                return Json(json!({"authorization_info": {
                    "authorizer_appid": authorizer,
                    "authorizer_access_token": t["token"],
                    "expires_in": t["expires_in"],
                    "authorizer_refresh_token": refresh,
                    "func_info": [{"funcscope_category": {"id": 18}}],
                }}));
            }
            "api_authorizer_token" => {
                let authorizer = s("authorizer_appid");
                if !p.refresh_ok(&authorizer, &s("authorizer_refresh_token")) {
                    return err(61023);
                }
                let t = p.issue(&authorizer, "authorizertoken");
                let refresh = p.new_refresh(&authorizer);
                let answer = json!({
                    "authorizer_access_token": t["token"],
                    "expires_in": t["expires_in"],
                    "authorizer_refresh_token": refresh,
                });
                match p.hold_authorizer_token.take() {
                    None => return Json(answer),
                    Some(hold) => hold,
                }
            }
            "api_get_authorizer_list" => {
                let list: Vec<Value> = p
                    .refresh
                    .iter()
                    .map(|(a, (r, _))| json!({"authorizer_appid": a, "refresh_token": r, "auth_time": 1}))
                    .collect();
                return Json(json!({"total_count": list.len(), "list": list}));
            }
            _ => return err(40066),
        }
    };
    // The rotation happened; its answer never arrives in time (the caller is killed).
    tokio::time::sleep(hold).await;
    err(-1)
}

async fn stable(State(state): Shared, Json(body): Json<Value>) -> Json<Value> {
    let mut p = state.lock().expect("lock");
    p.count("stable_token");
    let appid = body["appid"].as_str().unwrap_or_default().to_owned();
    let force = body["force_refresh"].as_bool().unwrap_or(false);
    let valid = p
        .tokens
        .get(&appid)
        .filter(|(_, until)| *until > Instant::now() + Duration::from_secs(300))
        .cloned();
    match valid {
        Some((token, until)) if !force => Json(json!({
            "access_token": token,
            "expires_in": until.saturating_duration_since(Instant::now()).as_secs(),
        })),
        _ => {
            let t = p.issue(&appid, "stabletoken");
            Json(json!({"access_token": t["token"], "expires_in": t["expires_in"]}))
        }
    }
}
