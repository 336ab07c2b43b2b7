//! Per-operation cost of the request path's CPU work for a typical push (~1 KiB body):
//! signature, key decode, decrypt, parse (well-formed and the malformed sample), event id
//! (dedup key), and all of it together. `cargo bench` runs it.

use std::hint::black_box;

use wxpush::push::cipher::{self, AesKey};
use wxpush::push::{self, Mode, PushQuery};
use wxpush::tools::simulate::{self, SEED_SAMPLE};
use wxpush::{App, Event, Secret};

/// The allocator the `wxpush` binary runs with, so that allocation costs match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KEY: &str = "FqRfJtSZ1eTemafkXIDruAmV0cJPssQEyOyi7ODadSB";

fn main() {
    divan::main();
}

fn app() -> App {
    App {
        name: "demo".into(),
        token: Secret::new("wxpushDemoToken".into()),
        aes_key: Secret::new(AesKey::parse(KEY).unwrap_or_else(|_| AesKey::from_bytes([1; 32]))),
        appid: "wx5a1b2c3d4e5f6a7b".into(),
        previous_token: None,
        previous_aes_key: None,
        require_encryption: false,
    }
}

/// A typical audit message, padded with a realistic reason to make the body ~1 KiB.
fn message() -> String {
    let reason = "资质证明不清晰，请重新上传营业执照".repeat(8);
    format!(
        "<xml><ToUserName><![CDATA[gh_fxxxxxxxa4b2]]></ToUserName><FromUserName><![CDATA[odxxxxM-xxxxxxxx-trm4a7apsU8]]></FromUserName><CreateTime>1764287991</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[wxa_category_audit]]></Event><ret>2</ret><first>8</first><second>39</second><reason><![CDATA[{reason}]]></reason></xml>"
    )
}

fn push() -> (PushQuery, String) {
    let p = simulate::build(&app(), &message(), Mode::Safe);
    let query = PushQuery::from_map(
        p.query
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    );
    (query, p.body)
}

#[divan::bench]
fn signature_verify(bencher: divan::Bencher) {
    let (query, body) = push();
    let encrypt = wxpush::event::fields::Fields::parse_detected(&body)
        .0
        .get("Encrypt")
        .unwrap_or_default()
        .to_owned();
    let parts = [
        "wxpushDemoToken",
        query.timestamp.as_deref().unwrap_or_default(),
        query.nonce.as_deref().unwrap_or_default(),
        encrypt.as_str(),
    ];
    let given = query.msg_signature.clone().unwrap_or_default();
    bencher.bench_local(|| wxpush::push::signature::verify(black_box(&given), black_box(&parts)));
}

#[divan::bench]
fn key_decode() -> Result<AesKey, cipher::KeyError> {
    AesKey::parse(black_box(KEY))
}

#[divan::bench]
fn decrypt(bencher: divan::Bencher) {
    let app = app();
    let encrypt = cipher::encrypt(
        app.aes_key.expose(),
        message().as_bytes(),
        &app.appid,
        [7; 16],
    );
    bencher.bench_local(|| cipher::decrypt(app.aes_key.expose(), black_box(&encrypt), &app.appid));
}

#[divan::bench]
fn parse_well_formed(bencher: divan::Bencher) {
    let text = message();
    bencher.bench_local(|| Event::parse(black_box(&text), "demo", None));
}

#[divan::bench]
fn parse_seed_sample() -> Event {
    Event::parse(black_box(SEED_SAMPLE), "demo", None)
}

#[divan::bench]
fn dedup_key(bencher: divan::Bencher) {
    let event = Event::parse(&message(), "demo", None);
    bencher.bench_local(|| black_box(&event).dedup_key());
}

#[divan::bench]
fn envelope_and_fields(bencher: divan::Bencher) {
    let (_, body) = push();
    bencher.bench_local(|| wxpush::event::fields::Fields::parse_detected(black_box(&body)));
}

/// Everything the request path computes for one push except HTTP and the store:
/// envelope, signature, decrypt, app id, parse, event id.
#[divan::bench]
fn whole_request_path(bencher: divan::Bencher) {
    let app = app();
    let (query, body) = push();
    bencher.bench_local(|| {
        let message = push::receive(&app, black_box(&query), black_box(body.as_bytes()));
        message.map(|m| Event::from_message(m.text, &app.name, None))
    });
}
