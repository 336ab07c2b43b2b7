//! AES-256-CBC as the platform uses it: key and IV from the EncodingAESKey, PKCS#7 padding to
//! 32 bytes, and the frame `random(16) | len (u32 BE) | message | receive id`.
//!
//! This module owns the key type and both directions (decrypt for the server, encrypt for
//! tests and for simulating the platform). It does not know about envelopes or signatures.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;
type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;

/// Base64 that accepts what other platforms' decoders accept: stray low bits in the last
/// character (many real EncodingAESKeys have them) and missing or present padding.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Canonical, padded base64 for what we produce.
const STANDARD_BASE64: GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The platform pads plaintext to a multiple of this many bytes.
const PAD_BLOCK: usize = 32;

/// Length of the random prefix in the frame.
const RANDOM_LEN: usize = 16;

/// A decoded EncodingAESKey: 32 bytes of AES-256 key, whose first 16 bytes are the IV.
///
/// `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKey([u8; 32]);

impl std::fmt::Debug for AesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesKey([redacted])")
    }
}

/// Why an EncodingAESKey could not be decoded. Never contains the key itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key does not have 43 characters.
    #[error("expected 43 base64 characters, got {0}")]
    Length(usize),
    /// A character outside `A-Z a-z 0-9 + /`.
    #[error("expected 43 base64 characters (A-Z, a-z, 0-9, + and /), found '{0}' at position {1}")]
    Alphabet(char, usize),
}

impl AesKey {
    /// Decodes a 43-character EncodingAESKey (`base64_decode(key + "=")`), accepting
    /// non-canonical final characters.
    ///
    /// # Errors
    /// [`KeyError`] when the text is not 43 characters of the base64 alphabet.
    pub fn parse(encoding_aes_key: &str) -> Result<Self, KeyError> {
        let text = encoding_aes_key.trim();
        let count = text.chars().count();
        if count != 43 {
            return Err(KeyError::Length(count));
        }
        if let Some((pos, c)) = text
            .chars()
            .enumerate()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '+' || *c == '/'))
        {
            // A non-alphabet character is not secret-bearing on its own, but keep it printable.
            let shown = if c.is_ascii_graphic() { c } else { '?' };
            return Err(KeyError::Alphabet(shown, pos + 1));
        }
        let bytes = LENIENT_BASE64
            .decode(text)
            .map_err(|_| KeyError::Length(count))?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Length(count))?;
        Ok(Self(key))
    }

    /// Builds a key from raw bytes (tests, simulation).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key in its 43-character EncodingAESKey form (canonical encoding).
    pub fn to_encoding_aes_key(&self) -> String {
        let mut text = STANDARD_BASE64.encode(self.0);
        text.truncate(43);
        text
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.0[..16]);
        iv
    }
}

/// Why a signed `Encrypt` value could not be turned into a message with this configuration.
///
/// The codes in the messages are those of the platform's sample library, so operators can
/// match them with its documentation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    /// `Encrypt` is not base64.
    #[error("base64 decode of Encrypt failed (-40010)")]
    Base64,
    /// The ciphertext is empty or not a multiple of the AES block size.
    #[error(
        "AES decryption failed (-40007): ciphertext length {0} is not a positive multiple of 16"
    )]
    Length(usize),
    /// The last byte is not a PKCS#7 pad length in 1..=32 that fits the buffer; most often
    /// the EncodingAESKey is wrong.
    #[error(
        "decrypted buffer invalid (-40008): padding byte {0} is not in 1..=32 (is encoding_aes_key right?)"
    )]
    Padding(u8),
    /// The length field claims more bytes than the buffer holds; most often the key is wrong.
    #[error(
        "decrypted buffer invalid (-40008): length field says {claimed} bytes but only {available} follow (is encoding_aes_key right?)"
    )]
    Frame {
        /// What the length field says.
        claimed: u64,
        /// What the buffer holds after the header.
        available: usize,
    },
    /// The receive id at the end of the frame is not the configured app id.
    #[error("appid check failed (-40005): expected {expected}, the message carries {got}")]
    AppId {
        /// The configured app id.
        expected: String,
        /// What the message carries (printable characters only, at most 64).
        got: String,
    },
}

/// Decrypts an `Encrypt` value and checks the receive id.
///
/// Returns the message bytes (XML or JSON text as the platform sent them).
///
/// # Errors
/// [`CipherError`] naming the first check that failed.
pub fn decrypt(key: &AesKey, encrypt: &str, expected_appid: &str) -> Result<Vec<u8>, CipherError> {
    let (message, receive_id) = open(key, encrypt)?;
    if receive_id != expected_appid.as_bytes() {
        return Err(CipherError::AppId {
            expected: expected_appid.to_owned(),
            got: printable(&receive_id),
        });
    }
    Ok(message)
}

/// Decrypts an `Encrypt` value without checking the receive id: returns the message and the
/// receive id found. Used by diagnostics that report what the message carries.
///
/// # Errors
/// [`CipherError`] naming the first check that failed (never [`CipherError::AppId`]).
pub fn decrypt_any(key: &AesKey, encrypt: &str) -> Result<(Vec<u8>, String), CipherError> {
    let (message, receive_id) = open(key, encrypt)?;
    Ok((message, printable(&receive_id)))
}

/// Strips base64, AES, padding and the frame; returns the message and the receive id.
fn open(key: &AesKey, encrypt: &str) -> Result<(Vec<u8>, Vec<u8>), CipherError> {
    // Wrapped base64 (line breaks) is accepted; the usual single line is not copied.
    let compact: std::borrow::Cow<'_, str> = if encrypt.bytes().any(|b| b.is_ascii_whitespace()) {
        encrypt
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect::<String>()
            .into()
    } else {
        encrypt.into()
    };
    let mut buf = LENIENT_BASE64
        .decode(compact.as_bytes())
        .map_err(|_| CipherError::Base64)?;
    if buf.is_empty() || buf.len() % 16 != 0 {
        return Err(CipherError::Length(buf.len()));
    }
    let len = buf.len();
    Aes256CbcDec::new(&key.0.into(), &key.iv().into())
        .decrypt_padded_mut::<NoPadding>(&mut buf)
        .map_err(|_| CipherError::Length(len))?;

    let pad = buf[len - 1];
    let pad_len = usize::from(pad);
    if pad_len == 0 || pad_len > PAD_BLOCK || pad_len > len {
        return Err(CipherError::Padding(pad));
    }
    let content = &buf[..len - pad_len];
    let header = RANDOM_LEN + 4;
    if content.len() < header {
        return Err(CipherError::Frame {
            claimed: 0,
            available: content.len().saturating_sub(header),
        });
    }
    let mut len_bytes = [0u8; 4];
    len_bytes.copy_from_slice(&content[RANDOM_LEN..header]);
    let claimed = u32::from_be_bytes(len_bytes);
    let available = content.len() - header;
    let msg_len = usize::try_from(claimed).unwrap_or(usize::MAX);
    if msg_len > available {
        return Err(CipherError::Frame {
            claimed: u64::from(claimed),
            available,
        });
    }
    // Reuse the buffer for the message: cut the padding and the receive id off the end,
    // then the header off the front.
    buf.truncate(len - pad_len);
    let receive_id = buf.split_off(header + msg_len);
    buf.drain(..header);
    Ok((buf, receive_id))
}

/// Encrypts `message` for `appid` as the platform does: fresh `random` prefix, PKCS#7 padding
/// to a multiple of 32 bytes, base64.
pub fn encrypt(key: &AesKey, message: &[u8], appid: &str, random: [u8; 16]) -> String {
    encrypt_padded(key, message, appid, random, PAD_BLOCK)
}

/// Like [`encrypt`] with a chosen pad block (16 to imitate libraries that pad to the AES
/// block size). `block` must be 16 or 32.
pub fn encrypt_padded(
    key: &AesKey,
    message: &[u8],
    appid: &str,
    random: [u8; 16],
    block: usize,
) -> String {
    let block = if block == 16 { 16 } else { PAD_BLOCK };
    let msg_len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    let mut buf = Vec::with_capacity(RANDOM_LEN + 4 + message.len() + appid.len() + block);
    buf.extend_from_slice(&random);
    buf.extend_from_slice(&msg_len.to_be_bytes());
    buf.extend_from_slice(message);
    buf.extend_from_slice(appid.as_bytes());
    let pad = block - buf.len() % block;
    let pad_byte = u8::try_from(pad).unwrap_or(32);
    buf.resize(buf.len() + pad, pad_byte);
    let len = buf.len();
    let encrypted = Aes256CbcEnc::new(&key.0.into(), &key.iv().into())
        .encrypt_padded_mut::<NoPadding>(&mut buf, len)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    STANDARD_BASE64.encode(encrypted)
}

/// Printable form of untrusted bytes for error messages: at most 64 characters.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO_KEY: &str = "FqRfJtSZ1eTemafkXIDruAmV0cJPssQEyOyi7ODadSB";

    #[test]
    fn key_parse_reports_the_length_without_the_value() {
        let err = AesKey::parse("abc").err();
        assert_eq!(err, Some(KeyError::Length(3)));
        let text = format!("{}", KeyError::Length(41));
        assert_eq!(text, "expected 43 base64 characters, got 41");
    }

    #[test]
    fn key_parse_rejects_characters_outside_the_alphabet() {
        let bad = format!("{}-", &DEMO_KEY[..42]);
        assert_eq!(AesKey::parse(&bad).err(), Some(KeyError::Alphabet('-', 43)));
    }

    #[test]
    fn non_canonical_keys_are_accepted() {
        // The last character carries stray low bits: 'B' and 'A'..'P' variants decode alike
        // in lenient decoders; canonical decoding would reject some of them.
        let key = AesKey::parse(DEMO_KEY);
        assert!(key.is_ok());
        let mut odd = DEMO_KEY.to_owned();
        odd.pop();
        odd.push('C');
        assert!(AesKey::parse(&odd).is_ok());
    }

    #[test]
    fn round_trip_with_32_and_16_byte_padding() -> Result<(), CipherError> {
        let key = AesKey::from_bytes([7u8; 32]);
        for block in [16, 32] {
            let ct = encrypt_padded(&key, b"<xml>hi</xml>", "wxapp", [1u8; 16], block);
            assert_eq!(decrypt(&key, &ct, "wxapp")?, b"<xml>hi</xml>");
        }
        Ok(())
    }

    #[test]
    fn wrong_app_id_is_named() {
        let key = AesKey::from_bytes([7u8; 32]);
        let ct = encrypt(&key, b"m", "wxother", [0u8; 16]);
        assert_eq!(
            decrypt(&key, &ct, "wxmine"),
            Err(CipherError::AppId {
                expected: "wxmine".into(),
                got: "wxother".into()
            })
        );
    }

    #[test]
    fn truncated_and_non_base64_ciphertexts_fail_cleanly() {
        let key = AesKey::from_bytes([7u8; 32]);
        assert_eq!(decrypt(&key, "!!!", "a"), Err(CipherError::Base64));
        assert_eq!(decrypt(&key, "AAAA", "a"), Err(CipherError::Length(3)));
        assert_eq!(decrypt(&key, "", "a"), Err(CipherError::Length(0)));
    }
}
