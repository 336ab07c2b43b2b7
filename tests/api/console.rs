//! The console over HTTP: sign-in and sessions, CSRF on every state change, escaping of
//! everything from a push, the security headers, and its absence from `listen`.

use reqwest::redirect::Policy;

use crate::helpers::{Behavior, TestApp, app_toml};

pub(crate) const PASSWORD: &str = "console-password-0123";

/// A server with the console on `admin_listen`, and the demo app.
pub(crate) async fn console_app(extra: &str) -> TestApp {
    let toml = format!(
        "admin_listen = \"127.0.0.1:0\"\n{}[admin]\nconsole_password = \"{PASSWORD}\"\n{extra}",
        app_toml("demo")
    );
    TestApp::spawn_with(&toml, Behavior::default()).await
}

/// A browser-like client of the console: no redirects followed, cookies kept by hand.
pub(crate) struct Operator {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

/// An answer: status, headers, body.
pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: String,
}

impl Operator {
    pub(crate) fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .expect("client"),
            base: base.to_owned(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, res: reqwest::Response) -> Page {
        for value in res.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap_or_default();
            if let Some((pair, _)) = text.split_once(';')
                && let Some((k, v)) = pair.split_once('=')
            {
                self.cookies.retain(|(name, _)| name != k);
                if !v.is_empty() {
                    self.cookies.push((k.to_owned(), v.to_owned()));
                }
            }
        }
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.text().await.unwrap_or_default();
        Page {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("answers");
        self.keep(res).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("answers");
        self.keep(res).await
    }

    /// Signs in; returns the session's CSRF token (from the overview's forms).
    pub(crate) async fn login(&mut self, secret: &str) -> Page {
        let form = self.get("/console/login").await;
        let csrf = hidden_csrf(&form.body);
        self.post("/console/login", &[("secret", secret), ("csrf", &csrf)])
            .await
    }
}

fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The first CSRF hidden field's value in `html`.
pub(crate) fn hidden_csrf(html: &str) -> String {
    html.split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn without_a_session_every_page_sends_to_the_login_and_the_console_is_not_on_listen() {
    let app = console_app("").await;
    let admin = app.admin_url.clone().expect("admin");
    let mut op = Operator::new(&admin);
    for path in [
        "/console/",
        "/console/events",
        "/console/quarantine",
        "/console/categories",
        "/console/events/x",
    ] {
        let page = op.get(path).await;
        assert_eq!(page.status, 303, "{path}");
        assert_eq!(page.headers["location"], "/console/login");
    }
    let login = op.get("/console/login").await;
    assert_eq!(login.status, 200);
    let csp = login.headers["content-security-policy"]
        .to_str()
        .unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("style-src 'self'")
            && !csp.contains("unsafe"),
        "{csp}"
    );
    let cookie = login.headers["set-cookie"].to_str().unwrap_or_default();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let mut public = Operator::new(&app.base_url);
    assert_eq!(public.get("/console/").await.status, 404, "not on listen");
    assert_eq!(public.get("/console/login").await.status, 404);
    app.stop().await;
}

#[tokio::test]
async fn logins_need_the_secret_and_the_form_token_and_failures_are_counted() {
    let app = console_app("").await;
    let admin = app.admin_url.clone().expect("admin");
    let mut op = Operator::new(&admin);
    let forged = op
        .post("/console/login", &[("secret", PASSWORD), ("csrf", "guess")])
        .await;
    assert_eq!(forged.status, 403, "a login without its form's token");
    let wrong = op.login("not-the-password").await;
    assert_eq!(wrong.status, 200);
    assert!(wrong.body.contains("wrong password or token"));
    let metrics = Operator::new(&admin).get("/metrics").await.body;
    assert!(
        metrics.contains("wxpush_console_login_failures_total 1"),
        "{metrics}"
    );
    let ok = op.login(PASSWORD).await;
    assert_eq!(ok.status, 303);
    assert_eq!(ok.headers["location"], "/console/");
    let session = ok.headers["set-cookie"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        session.starts_with("wxpush_session=")
            && session.contains("HttpOnly")
            && session.contains("SameSite=Strict")
            && session.contains("Max-Age="),
        "{session}"
    );
    assert!(!session.contains("Secure"), "not configured for HTTPS");
    let overview = op.get("/console/").await;
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains("Inbox"));

    // Logging out is a POST with the token; without it, 403 and the session stays.
    assert_eq!(op.post("/console/logout", &[]).await.status, 403);
    assert_eq!(op.get("/console/").await.status, 200);
    let csrf = hidden_csrf(&overview.body);
    assert_eq!(
        op.post("/console/logout", &[("csrf", &csrf)]).await.status,
        303
    );
    assert_eq!(op.get("/console/").await.status, 303, "signed out");
    app.stop().await;
}

#[tokio::test]
async fn text_from_a_push_is_shown_as_text_and_state_changes_need_the_token() {
    let app = console_app("").await;
    let admin = app.admin_url.clone().expect("admin");
    let message = "<xml><ToUserName><![CDATA[<script>alert(1)</script>]]></ToUserName><FromUserName><![CDATA[\"><img src=x onerror=alert(2)>]]></FromUserName><CreateTime>1764000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_category_audit]]></Event><ret>2</ret><first>8</first><second>40</second><reason><![CDATA[bad\u{1b}[31m\r\nforged]]></reason></xml>";
    assert_eq!(app.push_safe("/wechat", message).await.body, "success");
    let id = wxpush::Event::parse(message, "demo", None).id;
    crate::helpers::wait_for_status(&app, &id, wxpush::store::Status::Delivered).await;
    let mut op = Operator::new(&admin);
    op.login(PASSWORD).await;
    for path in [
        "/console/events".to_owned(),
        format!("/console/events/{id}"),
        "/console/".to_owned(),
    ] {
        let page = op.get(&path).await;
        assert_eq!(page.status, 200, "{path}");
        for raw in ["<script>alert", "<img src=x", "\u{1b}", "\r\nforged"] {
            assert!(!page.body.contains(raw), "{path} shows {raw:?} raw");
        }
    }
    let event = op.get(&format!("/console/events/{id}")).await;
    assert!(
        event.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        event.body
    );
    assert!(
        event
            .body
            .contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;")
    );
    assert!(event.body.contains("bad\\u{1b}[31m\\r\\nforged"));

    // A state change without the token, or with another one: 403, nothing changes.
    let replay = format!("/console/events/{id}/replay");
    assert_eq!(op.post(&replay, &[("route", "default")]).await.status, 403);
    assert_eq!(
        op.post(&replay, &[("route", "default"), ("csrf", "0000")])
            .await
            .status,
        403
    );
    let csrf = hidden_csrf(&event.body);
    let done = op
        .post(&replay, &[("route", "default"), ("csrf", &csrf)])
        .await;
    assert_eq!(done.status, 303);
    assert!(
        done.headers["location"]
            .to_str()
            .unwrap_or_default()
            .contains("notice=replayed")
    );
    app.stop().await;
}

#[tokio::test]
async fn without_a_secret_the_console_is_off_and_says_so() {
    let toml = format!("admin_listen = \"127.0.0.1:0\"\n{}", app_toml("demo"));
    let app = TestApp::spawn_with(&toml, Behavior::default()).await;
    let mut op = Operator::new(&app.admin_url.clone().expect("admin"));
    let page = op.get("/console/").await;
    assert_eq!(page.status, 404);
    assert!(page.body.contains("The console is off"), "{}", page.body);
    app.stop().await;
}

#[tokio::test]
async fn the_overview_shows_a_paused_route() {
    let toml = format!(
        "admin_listen = \"127.0.0.1:0\"\n{}[admin]\nconsole_password = \"{PASSWORD}\"\n[[routes]]\nname = \"hook\"\nhandler = \"webhook\"\nwebhook = {{ url = \"http://127.0.0.1:9/refused\" }}\n",
        app_toml("demo").replace("breaker_failures = 0", "breaker_failures = 1")
    );
    let behavior = Behavior {
        config_routes: true,
        ..Behavior::default()
    };
    let app = TestApp::spawn_with(&toml, behavior).await;
    let message = "<xml><CreateTime>1764000001</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_category_audit]]></Event><ret>3</ret><first>1</first><second>2</second></xml>";
    app.push_safe("/wechat", message).await;
    let mut op = Operator::new(&app.admin_url.clone().expect("admin"));
    op.login(PASSWORD).await;
    let started = std::time::Instant::now();
    loop {
        let page = op.get("/console/").await;
        if page
            .body
            .contains("<td>hook</td><td><span class=\"dead\">paused (probing)</span></td>")
        {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{}",
            page.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.stop().await;
}

/// Bulk actions: 403 without the token; a confirmation page with the count first; done only
/// when confirmed with that count.
#[tokio::test]
async fn bulk_replay_confirms_the_count_first() {
    let app = console_app("").await;
    for n in 0..3 {
        let message = format!(
            "<xml><CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_category_audit]]></Event><ret>3</ret><first>1</first><second>{n}</second></xml>",
            1_764_000_000 + n
        );
        app.push_safe("/wechat", &message).await;
        let id = wxpush::Event::parse(&message, "demo", None).id;
        crate::helpers::wait_for_status(&app, &id, wxpush::store::Status::Delivered).await;
    }
    let mut op = Operator::new(&app.admin_url.clone().expect("admin"));
    op.login(PASSWORD).await;
    let events = op.get("/console/events?status=delivered").await;
    assert!(events.body.contains("3 matching"), "{}", events.body);
    let csrf = hidden_csrf(&events.body);
    let form = [
        ("action", "replay"),
        ("status", "delivered"),
        ("csrf", csrf.as_str()),
    ];
    assert_eq!(op.post("/console/bulk", &form[..2]).await.status, 403);
    let confirm = op.post("/console/bulk", &form).await;
    assert_eq!(confirm.status, 200);
    assert!(
        confirm
            .body
            .contains("This will replay <strong>3</strong> deliveries"),
        "{}",
        confirm.body
    );
    let wrong = op
        .post(
            "/console/bulk",
            &[form[0], form[1], form[2], ("confirm", "2")],
        )
        .await;
    assert!(
        wrong.body.contains("The count changed"),
        "a stale count asks again"
    );
    let done = op
        .post(
            "/console/bulk",
            &[form[0], form[1], form[2], ("confirm", "3")],
        )
        .await;
    assert_eq!(done.status, 303);
    assert!(
        done.headers["location"]
            .to_str()
            .unwrap_or_default()
            .contains("replay%3A%203%20deliveries"),
        "{:?}",
        done.headers["location"]
    );
    app.stop().await;
}
