//! Signing in to the console: a login form that takes `admin.console_password` (or
//! `admin.api_token`), then a session cookie (`HttpOnly`, `SameSite=Strict`, `Secure` when
//! configured, expiring). Every form carries the session's CSRF token in a hidden field; the
//! login form, before any session, a token paired with a cookie. Failed logins are slowed
//! (one a second, for everyone) and counted.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::html::{csrf_field, esc, page};
use super::{Console, Signed};
use crate::observe;
use crate::secret::Secret;

/// The session cookie.
const SESSION: &str = "wxpush_session";
/// The login form's cookie, paired with its hidden field.
const LOGIN: &str = "wxpush_login";
/// How long a failed login holds back the next one.
const FAILURE_DELAY: Duration = Duration::from_secs(1);

/// Sessions of this instance.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, (String, Instant)>>,
}

fn random_token() -> String {
    crate::hex::encode(&rand::random::<[u8; 24]>())
}

impl Sessions {
    /// A new session: its id and CSRF token.
    fn create(&self, ttl: Duration) -> (String, String) {
        let (id, csrf) = (random_token(), random_token());
        if let Ok(mut map) = self.map.lock() {
            let now = Instant::now();
            map.retain(|_, (_, until)| *until > now);
            map.insert(id.clone(), (csrf.clone(), now + ttl));
        }
        (id, csrf)
    }

    /// The CSRF token of the live session `id`.
    fn csrf(&self, id: &str) -> Option<String> {
        let mut map = self.map.lock().ok()?;
        match map.get(id) {
            Some((csrf, until)) if *until > Instant::now() => Some(csrf.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    fn remove(&self, id: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(id);
        }
    }
}

/// A cookie's value from the request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Equal, in constant time (digests of equal length).
pub(crate) fn same(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes())
        .ct_eq(&Sha256::digest(b.as_bytes()))
        .into()
}

fn set_cookie(console: &Console, name: &str, value: &str, max_age: u64) -> String {
    let secure = if console.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// Lets a request through with its session, or sends it to the login page.
pub(crate) async fn require_session(
    State(console): State<Console>,
    mut req: Request,
    next: Next,
) -> Response {
    let session = cookie(req.headers(), SESSION)
        .and_then(|id| console.sessions().csrf(&id).map(|csrf| Signed { id, csrf }));
    match session {
        Some(signed) => {
            req.extensions_mut().insert(signed);
            next.run(req).await
        }
        None => Redirect::to("/console/login").into_response(),
    }
}

/// `GET /console/login`.
pub(crate) async fn login_form(State(console): State<Console>, headers: HeaderMap) -> Response {
    login_page(&console, &headers, None)
}

/// The login form. Its token is the one the browser's login cookie already holds, if any:
/// a second load of the page (a browser may load it twice) keeps the first one valid.
fn login_page(console: &Console, headers: &HeaderMap, error: Option<&str>) -> Response {
    let token = cookie(headers, LOGIN)
        .filter(|t| t.len() == 48 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(random_token);
    let error = error
        .map(|e| format!(r#"<p class="error">{}</p>"#, esc(e)))
        .unwrap_or_default();
    let body = format!(
        r#"{error}<form method="post" action="/console/login">{}<label>Password or API token <input type="password" name="secret" autocomplete="current-password" autofocus></label> <button type="submit">Log in</button></form>"#,
        csrf_field(&token)
    );
    (
        [(header::SET_COOKIE, set_cookie(console, LOGIN, &token, 600))],
        axum::response::Html(page("Log in", None, &body)),
    )
        .into_response()
}

/// The login form's fields.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    secret: String,
    csrf: String,
}

/// `POST /console/login`.
pub(crate) async fn login(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let paired = cookie(&headers, LOGIN).is_some_and(|c| same(&c, &form.csrf));
    if !paired {
        return forbidden();
    }
    let accepted = console
        .config
        .secrets
        .iter()
        .any(|s: &Secret<String>| same(s.expose(), &form.secret));
    if !accepted {
        console.metrics.record(|| {
            metrics::counter!(observe::CONSOLE_LOGIN_FAILURES).increment(1);
        });
        tracing::warn!("console: a failed login");
        // One failure a second, whoever sends them.
        let _gate = console.0.failures.lock().await;
        tokio::time::sleep(FAILURE_DELAY).await;
        return login_page(&console, &headers, Some("wrong password or token"));
    }
    let (id, _) = console.sessions().create(console.config.session_ttl);
    tracing::info!("console: a login");
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                set_cookie(&console, SESSION, &id, console.config.session_ttl.as_secs()),
            ),
            (header::LOCATION, "/console/".to_owned()),
        ],
    )
        .into_response()
}

/// A form that only carries the CSRF token.
#[derive(Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/logout`.
pub(crate) async fn logout(
    State(console): State<Console>,
    axum::Extension(signed): axum::Extension<Signed>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if !same(&signed.csrf, &form.csrf) {
        return forbidden();
    }
    console.sessions().remove(&signed.id);
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, set_cookie(&console, SESSION, "", 0)),
            (header::LOCATION, "/console/login".to_owned()),
        ],
    )
        .into_response()
}

/// 403 for a state change without the right CSRF token.
pub(crate) fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        axum::response::Html(page("Forbidden", None, "<p class=\"error\">The form's security token is missing or wrong: reload the page and try again.</p>")),
    )
        .into_response()
}
