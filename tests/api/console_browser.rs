//! The console in a real browser (headless Chromium) against the real binary: log in,
//! filter the events, open one, replay a dead event and see it delivered, discard a
//! quarantined push, log out. Screenshots of each page are kept in
//! `target/tmp/console-screenshots/` for review.

use std::time::{Duration, Instant};

use crate::browser::Browser;
use crate::cli::Served;
use crate::helpers::TestApp;

const PASSWORD: &str = "console-password-4567";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_repairs_the_inbox_in_a_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let ok_flag = dir.path().join("ok");
    let data = dir.path().join("data").display().to_string();
    let command = format!("test -f {}", ok_flag.display());
    let mut served = Served::start(&[
        ("WXPUSH_DATA_DIR", data.as_str()),
        ("WXPUSH_ADMIN_LISTEN", "127.0.0.1:0"),
        ("WXPUSH_ADMIN_CONSOLE_PASSWORD", PASSWORD),
        ("WXPUSH_HANDLER", "command"),
        ("WXPUSH_COMMAND_SHELL", "true"),
        ("WXPUSH_COMMAND", command.as_str()),
        ("WXPUSH_DELIVERY_RETRY_SCHEDULE_SECS", "0.05"),
        ("WXPUSH_DELIVERY_BREAKER_FAILURES", "0"),
        ("WXPUSH_MAX_CLOCK_SKEW_SECS", "0"),
    ]);
    let admin = served.admin_url();
    let client = TestApp::client_for(&served.base_url);
    // A category audit the handler refuses (twice: dead), and a push encrypted with
    // another key (quarantined).
    let audit = "<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[o_platform]]></FromUserName><CreateTime>1764000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_category_audit]]></Event><ret>2</ret><first>8</first><second>40</second><reason><![CDATA[<b>blurred</b> licence]]></reason></xml>";
    assert_eq!(client.push_safe("/wechat", audit).await.body, "success");
    let id = wxpush::Event::parse(audit, "demo", None).id;
    let mut wrong_key = TestApp::client_for(&served.base_url);
    wrong_key.config = wxpush::Config::from_toml(
        "[app]\nencoding_aes_key = \"Uw5ivvPr4xBUYFrca8hu62mO8LtaK66OKHIvIVOaPHJ\"\n",
    )
    .expect("config");
    assert_eq!(
        wrong_key.push_safe("/wechat", audit).await.body,
        "success",
        "quarantined, answered success"
    );
    served.wait_for("the delivery is dead");

    browser.open(&format!("{admin}/console/")).await;
    assert!(
        browser.url().await.ends_with("/console/login"),
        "sent to the login page"
    );
    browser.screenshot("login").await;
    browser.type_into("input[name=secret]", PASSWORD).await;
    browser.click("button[type=submit]").await;
    let overview = browser.wait_for("Inbox").await;
    assert!(
        overview.contains("Inbox") && overview.contains(">1</a>"),
        "{overview}"
    );
    browser.screenshot("overview").await;

    browser.open(&format!("{admin}/console/events")).await;
    browser.type_into("input[name=status]", "dead").await;
    browser
        .type_into("input[name=event]", "wxa_category_audit")
        .await;
    browser.click("form.filters button").await;
    let events = browser.wait_for("matching").await;
    assert!(
        events.contains("1 matching") && events.contains(&id),
        "{events}"
    );
    browser.screenshot("events").await;

    browser
        .click(&format!("a[href='/console/events/{id}']"))
        .await;
    let event = browser.wait_for("Raw message").await;
    assert!(
        event.contains("&lt;b&gt;blurred&lt;/b&gt;") && !event.contains("<b>blurred"),
        "shown as text"
    );
    assert!(
        event.contains("Raw message") && event.contains("class=\"dead\""),
        "{event}"
    );
    browser.screenshot("event").await;
    std::fs::write(&ok_flag, b"").expect("the handler accepts from now on");
    browser.click("form[action$='/replay'] button").await;
    browser.wait_for("replayed to route default").await;
    let started = Instant::now();
    loop {
        browser.open(&format!("{admin}/console/events/{id}")).await;
        let page = browser.source().await;
        // Delivered, and its attempt's record kept (written beside the outcome).
        if page.contains("class=\"delivered\"")
            && page.contains("<td class=\"wrap\">delivered</td>")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not delivered after the replay"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let delivered = browser.source().await;
    assert_eq!(
        delivered
            .matches("command exited with exit status: 1")
            .count(),
        3,
        "two failed attempts and the last error: {delivered}"
    );
    browser.screenshot("event-delivered").await;

    browser.open(&format!("{admin}/console/quarantine")).await;
    let quarantine = browser.source().await;
    assert!(
        quarantine.contains("padding") || quarantine.contains("-40008"),
        "{quarantine}"
    );
    assert!(
        quarantine.contains("msg_signature="),
        "the raw request's query"
    );
    browser.screenshot("quarantine").await;
    browser.click("form[action$='/discard'] button").await;
    let after = browser.wait_for("discarded q_").await;
    assert!(
        after.contains("discarded q_") && after.contains("Nothing in quarantine"),
        "{after}"
    );

    browser.open(&format!("{admin}/console/categories")).await;
    browser.screenshot("categories").await;
    browser.click("form[action='/console/logout'] button").await;
    browser.wait_for("Password or API token").await;
    browser.open(&format!("{admin}/console/events")).await;
    assert!(
        browser.url().await.ends_with("/console/login"),
        "signed out"
    );
    let (_, lines) = served.terminate();
    assert!(
        !lines.iter().any(|l| l.contains(PASSWORD)),
        "the password is never logged"
    );
}
