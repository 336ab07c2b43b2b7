//! The platform's URL check (GET).

use crate::helpers::{TestApp, vector};

/// A correctly signed check is answered with echostr, unchanged, as plain text.
#[tokio::test]
async fn url_check_with_the_right_signature_echoes_echostr() {
    let app = TestApp::spawn("demo").await;
    let answer = app.send_vector(&vector("url-check-ok")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "7139658310231475832");
    app.stop().await;
}

/// A wrong signature is refused with 401 and no echostr.
#[tokio::test]
async fn url_check_with_a_wrong_signature_is_rejected_with_401() {
    let app = TestApp::spawn("demo").await;
    let answer = app.send_vector(&vector("url-check-bad-signature")).await;
    assert_eq!(answer.status, 401);
    assert!(!answer.body.contains("42"));
    app.stop().await;
}

/// A check without echostr is a malformed request: 400 naming the parameter.
#[tokio::test]
async fn url_check_without_echostr_is_rejected_with_400() {
    let app = TestApp::spawn("demo").await;
    let answer = app.send_vector(&vector("url-check-missing-echostr")).await;
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("echostr"), "{}", answer.body);
    app.stop().await;
}

/// The third-party route answers the check too.
#[tokio::test]
async fn url_check_works_on_the_authorizer_route() {
    let app = TestApp::spawn("demo").await;
    let mut v = vector("url-check-ok");
    v["request"]["path"] = "/wechat/wx1111222233334444/callback".into();
    let answer = app.send_vector(&v).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "7139658310231475832")
    );
    app.stop().await;
}
