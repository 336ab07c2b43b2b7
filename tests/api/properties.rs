//! Property tests: encryption round trips; the parser and the decryptor never panic.

use proptest::prelude::*;
use wxpush::Event;
use wxpush::event::fields::{Fields, Format};
use wxpush::push::cipher::{self, AesKey};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the message and app id, decrypt(encrypt(m)) gives m back.
    #[test]
    fn encrypt_then_decrypt_round_trips(
        key in any::<[u8; 32]>(),
        random in any::<[u8; 16]>(),
        message in proptest::collection::vec(any::<u8>(), 0..2048),
        appid in "[a-zA-Z0-9]{1,40}",
        block in prop_oneof![Just(16usize), Just(32usize)],
    ) {
        let key = AesKey::from_bytes(key);
        let ct = cipher::encrypt_padded(&key, &message, &appid, random, block);
        prop_assert_eq!(cipher::decrypt(&key, &ct, &appid), Ok(message));
    }

    /// The EncodingAESKey text form round-trips through parse.
    #[test]
    fn key_text_round_trips(key in any::<[u8; 32]>()) {
        let key = AesKey::from_bytes(key);
        prop_assert_eq!(AesKey::parse(&key.to_encoding_aes_key()), Ok(key));
    }

    /// Arbitrary bytes as Encrypt never panic the decryptor.
    #[test]
    fn decrypt_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), key in any::<[u8; 32]>()) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = cipher::decrypt(&AesKey::from_bytes(key), &text, "wx");
        let b64 = base64_of(&bytes);
        let _ = cipher::decrypt(&AesKey::from_bytes(key), &b64, "wx");
    }

    /// Arbitrary text never panics the parser, in either format.
    #[test]
    fn parser_never_panics(text in "\\PC{0,400}", bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Event::parse(&text, "demo", None);
        let lossy = String::from_utf8_lossy(&bytes);
        let _ = Event::parse(&lossy, "demo", None);
        let _ = Fields::parse(&lossy, Format::Json);
    }

    /// XML-ish noise built from the tokens real messages use never panics and keeps
    /// well-formed leaf fields that follow.
    #[test]
    fn xml_noise_never_panics(parts in proptest::collection::vec(prop_oneof![
        Just("<xml>"), Just("</xml>"), Just("<a>"), Just("</b>"), Just("<![CDATA["), Just("]]>"),
        Just("&amp;"), Just("&#x;"), Just("<?x?>"), Just("<!--"), Just("-->"), Just("\u{feff}"), Just("<c/>"), Just("text"),
    ], 0..40)) {
        let text: String = parts.concat();
        let event = Event::parse(&text, "demo", None);
        // Whatever the noise: the message is kept as received, the id is of the documented
        // form and the same for the same text, and the JSON shape serializes.
        proptest::prop_assert_eq!(&event.raw, &text);
        proptest::prop_assert!(event.id.starts_with("evt_") && event.id.len() > 20, "{}", event.id);
        proptest::prop_assert_eq!(&Event::parse(&text, "demo", None).id, &event.id);
        proptest::prop_assert!(serde_json::to_string(&event).is_ok());
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
