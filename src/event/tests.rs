use super::*;

#[test]
fn the_documentation_sample_reads_with_placeholder_ids_kept() {
    let raw = "<xml>\n\t<ToUserName><![CDATA[gh_fxxxxxxxa4b2]]></ToUserName>\n\t<FromUserName><![CDATA[odxxxxM-xxxxxxxx-trm4a7apsU8]]></FromUserName>\n\t<CreateTime>1488800000</CreateTime>\n\t<MsgType><![CDATA[event]]></MsgType>\n\t<Event><![CDATA[wxa_category_audit]]></Event>\n\t<ret>2</ret>\n\t<first>First class id</nickname>\n\t<second>Secondary category id</reason>\n      <reason>Reasons for dismissal</reason>\n</xml>";
    let e = Event::parse(raw, "demo", None);
    let audit = e.category_audit().cloned();
    assert_eq!(
        audit,
        Some(CategoryAudit {
            first: Some(Scalar::Text("First class id".into())),
            second: Some(Scalar::Text("Secondary category id".into())),
            ret: Some(Scalar::Int(2)),
            result: AuditResult::Rejected,
            reason: "Reasons for dismissal".into(),
        })
    );
    assert_eq!(e.create_time, Some(1_488_800_000));
}

#[test]
fn missing_optional_fields_and_unknown_ret_are_kept() {
    let e = Event::parse(
        "<xml><Event>wxa_category_audit</Event><ret>7</ret></xml>",
        "demo",
        None,
    );
    let audit = e.category_audit().cloned();
    assert_eq!(audit.as_ref().map(|a| a.result), Some(AuditResult::Unknown));
    assert_eq!(audit.and_then(|a| a.first), None);
    assert_eq!(e.to_user_name, None);
}

#[test]
fn verify_ticket_is_typed_and_other_events_are_generic() {
    let t = Event::parse(
        "<xml><AppId>wxc</AppId><InfoType>component_verify_ticket</InfoType><ComponentVerifyTicket>t@@@1</ComponentVerifyTicket></xml>",
        "platform",
        None,
    );
    assert_eq!(
        t.kind,
        EventKind::ComponentVerifyTicket {
            ticket: "t@@@1".into()
        }
    );
    let o = Event::parse(
        "<xml><Event>weapp_audit_success</Event></xml>",
        "demo",
        None,
    );
    assert_eq!(o.kind, EventKind::Other);
    assert_eq!(o.name(), "weapp_audit_success");
}

#[test]
fn ids_match_for_retries_and_differ_for_different_results() {
    let audit = |second: u32, extra: &str| {
        Event::parse(
            &format!("<xml>{extra}<ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime><Event>wxa_category_audit</Event><ret>3</ret><first>8</first><second>{second}</second></xml>"),
            "demo",
            None,
        )
        .id
    };
    assert_eq!(audit(39, ""), audit(39, "\n  "));
    assert_ne!(audit(39, ""), audit(40, ""));
    let other = |app: &str, ticket: &str| {
        Event::parse(&format!("<xml><AppId>wx</AppId><CreateTime>1</CreateTime><InfoType>component_verify_ticket</InfoType><ComponentVerifyTicket>{ticket}</ComponentVerifyTicket></xml>"), app, None).id
    };
    assert_ne!(other("a", "t1"), other("a", "t2"));
    assert_ne!(other("a", "t1"), other("b", "t1"));
    assert_eq!(audit(39, "").len(), 28);
}

#[test]
fn dedup_key_recomputes_the_id_and_ignores_later_state() {
    let mut e = Event::parse(
        "<xml><ToUserName>gh</ToUserName><CreateTime>7</CreateTime><Event>x</Event><a>1</a></xml>",
        "demo",
        Some("wxauth"),
    );
    assert_eq!(e.dedup_key(), e.id);
    e.attempts = 3;
    e.last_error = Some("down".into());
    assert_eq!(e.dedup_key(), e.id);
    let elsewhere = Event::parse(&e.raw, "demo", None);
    assert_ne!(
        elsewhere.dedup_key(),
        e.id,
        "the authorizer is part of the key"
    );
}

#[test]
fn ids_start_with_the_creation_time_and_sort_by_it() {
    let at = |create_time: &str| {
        Event::parse(
            &format!("<xml><ToUserName>gh</ToUserName><CreateTime>{create_time}</CreateTime><Event>wxa_category_audit</Event><ret>3</ret></xml>"),
            "demo",
            None,
        )
        .id
    };
    assert!(
        at("1488800000").starts_with("evt_58bd4900"),
        "{}",
        at("1488800000")
    );
    assert!(at("1764000000") < at("1764000001"));
    assert!(at("1764000001") < at("1764000016"));
    // Without a numeric time the id is all hash, of the same length.
    for id in [at("soon"), at("")] {
        assert_eq!(id.len(), 28, "{id}");
        assert!(id[4..].bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    let raw = Event::parse("not xml", "demo", None).id;
    assert_eq!(raw.len(), 28, "{raw}");
}

#[test]
fn json_form_has_integer_ids_and_null_audit_for_other_events() -> serde_json::Result<()> {
    let e = Event::parse(
        r#"{"Event":"wxa_category_audit","ret":3,"first":8,"second":"39","reason":""}"#,
        "demo",
        Some("wx1"),
    );
    let v = serde_json::to_value(&e)?;
    assert_eq!(v["category_audit"]["first"], 8);
    assert_eq!(v["category_audit"]["second"], 39);
    assert_eq!(v["category_audit"]["result"], "passed");
    assert_eq!(v["authorizer_appid"], "wx1");
    let o = serde_json::to_value(Event::parse("<xml/>", "demo", None))?;
    assert!(o["category_audit"].is_null());
    Ok(())
}
