//! Every shared vector through the request path's stages (no HTTP).
use std::collections::HashMap;

use serde_json::Value;

use super::*;
use crate::event::Event;
use crate::push::cipher::AesKey;
use crate::secret::Secret;

const VECTORS: &str = include_str!("../../tests/fixtures/vectors.json");

fn apps(doc: &Value) -> HashMap<String, App> {
    doc["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let key = AesKey::parse(a["encoding_aes_key"].as_str()?).ok()?;
            Some((
                a["name"].as_str()?.to_owned(),
                App {
                    name: a["name"].as_str()?.to_owned(),
                    token: Secret::new(a["token"].as_str()?.to_owned()),
                    aes_key: Secret::new(key),
                    appid: a["appid"].as_str()?.to_owned(),
                    previous_token: None,
                    previous_aes_key: None,
                    require_encryption: false,
                },
            ))
        })
        .collect()
}

fn query(v: &Value) -> PushQuery {
    let map = v["request"]["query"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    PushQuery::from_map(map)
}

/// Every key of `expected` has the same value in `actual` (objects compared recursively).
fn assert_subset(expected: &Value, actual: &Value, id: &str) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                assert_subset(ev, a.get(k).unwrap_or(&Value::Null), &format!("{id}.{k}"));
            }
        }
        _ => assert_eq!(expected, actual, "{id}"),
    }
}

#[test]
fn every_shared_vector_gets_its_expected_outcome() -> Result<(), serde_json::Error> {
    let doc: Value = serde_json::from_str(VECTORS)?;
    let apps = apps(&doc);
    let mut checked = 0;
    for v in doc["vectors"].as_array().into_iter().flatten() {
        let id = v["id"].as_str().unwrap_or("?");
        let app = &apps[v["app"].as_str().unwrap_or("demo")];
        let q = query(v);
        let body = v["request"]["body"].as_str().unwrap_or_default();
        let expect = &v["expect"];
        if v["request"]["method"] == "GET" {
            let outcome = url_check(app, &q);
            match expect["status"].as_u64() {
                Some(200) => assert_eq!(outcome.ok(), expect["body"].as_str(), "{id}"),
                Some(401) => assert!(
                    matches!(outcome, Err(PushError::BadSignature { .. })),
                    "{id}"
                ),
                _ => assert!(matches!(outcome, Err(PushError::MissingParam(_))), "{id}"),
            }
            checked += 1;
            continue;
        }
        let outcome = receive(app, &q, body.as_bytes());
        match (&expect["status"], outcome) {
            (Value::String(s), Err(PushError::Undecryptable { .. })) if s == "operator-error" => {}
            (status, Err(PushError::BadSignature { .. })) if status == 401 => {}
            (
                status,
                Err(PushError::MissingParam(_) | PushError::EmptyBody | PushError::NoEncrypt),
            ) if status == 400 => {}
            (status, _) if status == 413 => {} // the body cap is the HTTP layer's
            (status, Ok(message)) if status == 200 => {
                let path = v["request"]["path"].as_str().unwrap_or_default();
                let authorizer = path
                    .strip_prefix("/wechat/")
                    .and_then(|p| p.strip_suffix("/callback"));
                let event = Event::parse(&message.text, &app.name, authorizer);
                assert_eq!(Some(message.text.as_str()), v["plaintext"].as_str(), "{id}");
                assert_subset(&expect["event"], &serde_json::to_value(&event)?, id);
            }
            (status, other) => panic!("{id}: expected {status}, got {other:?}"),
        }
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} vectors");
    Ok(())
}

/// `serve` (this module) and `wxpush decrypt` (the diagnosis) reach the same verdict on
/// every vector, and on a plain push whose body holds an `Encrypt` element.
#[test]
fn serve_and_the_decrypt_explainer_agree_on_every_request() -> Result<(), serde_json::Error> {
    let doc: Value = serde_json::from_str(VECTORS)?;
    let apps = apps(&doc);
    let all: Vec<App> = apps.values().cloned().collect();
    let mut checked = 0;
    for v in doc["vectors"].as_array().into_iter().flatten() {
        if v["request"]["method"] == "GET" {
            continue;
        }
        let id = v["id"].as_str().unwrap_or("?");
        let app = &apps[v["app"].as_str().unwrap_or("demo")];
        let (q, body) = (query(v), v["request"]["body"].as_str().unwrap_or_default());
        let served = receive(app, &q, body.as_bytes()).is_ok();
        let explained =
            crate::tools::diagnose::diagnose(std::slice::from_ref(app), &q, body.as_bytes(), None);
        assert_eq!(
            served,
            explained[0].passed(),
            "{id}: {:?}",
            explained[0].steps
        );
        // Among all apps too: the explainer's best app passes exactly when this one does.
        let best = crate::tools::diagnose::diagnose(&all, &q, body.as_bytes(), None);
        assert_eq!(served, best[0].passed(), "{id} (all apps)");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} vectors");
    let app = &apps["demo"];
    let (ts, nonce) = ("1764000000", "42");
    let signature = signature::sign(&[app.token.expose(), ts, nonce]);
    let q = PushQuery {
        signature: Some(signature),
        timestamp: Some(ts.into()),
        nonce: Some(nonce.into()),
        ..PushQuery::default()
    };
    let body = "<xml><ToUserName>gh_x</ToUserName><Encrypt>bm90IHJlYWxseQ==</Encrypt><Event>x</Event></xml>";
    let served = receive(app, &q, body.as_bytes()).map(|m| m.mode);
    assert_eq!(served, Ok(Mode::Plain));
    let explained =
        crate::tools::diagnose::diagnose(std::slice::from_ref(app), &q, body.as_bytes(), None);
    assert!(explained[0].passed(), "{:?}", explained[0].steps);
    Ok(())
}

#[test]
fn timestamps_outside_the_window_are_named_with_their_skew() {
    let max = Some(std::time::Duration::from_secs(300));
    assert!(check_timestamp("1000", 1200, max).is_ok());
    let err = check_timestamp("1000", 2000, max).err().unwrap_or_default();
    assert!(err.contains("1000 s behind"), "{err}");
    assert!(check_timestamp("5000", 1000, max).is_err());
    assert!(check_timestamp("x", 1000, max).is_err());
    assert!(check_timestamp("1", 1_000_000, None).is_ok());
}

#[test]
fn compat_and_plain_modes_are_told_apart() -> Result<(), serde_json::Error> {
    let doc: Value = serde_json::from_str(VECTORS)?;
    let apps = apps(&doc);
    let mode_of = |wanted: &str| {
        doc["vectors"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["id"] == wanted)
            .and_then(|v| {
                let body = v["request"]["body"].as_str().unwrap_or_default();
                receive(&apps["demo"], &query(v), body.as_bytes())
                    .ok()
                    .map(|m| m.mode)
            })
    };
    assert_eq!(mode_of("compat-xml"), Some(Mode::Compat));
    assert_eq!(mode_of("plain-xml"), Some(Mode::Plain));
    assert_eq!(mode_of("safe-xml-passed"), Some(Mode::Safe));
    assert_eq!(mode_of("safe-json"), Some(Mode::Safe));
    Ok(())
}
