//! Credentials at rest: sealed with AES-256-GCM under `secrets_key` when it is set, each
//! value bound to what it is (`token:wx…`, `refresh:wx…`) so that values cannot be swapped
//! between rows; stored as they are, marked plain, without a key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::secret::Secret;

/// Prefix of a value sealed with the key.
const SEALED: &str = "gcm1:";
/// Prefix of a value stored without a key.
const PLAIN: &str = "plain:";

/// Why a stored credential cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsealError {
    /// Sealed, and no key is configured.
    #[error(
        "{0} is encrypted, and secrets_key (WXPUSH_SECRETS_KEY) is not set: set the key it was written with"
    )]
    NoKey(String),
    /// The key does not open it (another key, or the value was altered).
    #[error(
        "{0} cannot be decrypted with the configured secrets_key: it was written with another key, or altered"
    )]
    WrongKey(String),
    /// Not a value wxpush wrote.
    #[error("{0} is not in a form wxpush writes")]
    Unknown(String),
}

/// Seals and opens stored credentials.
#[derive(Clone)]
pub struct Sealer {
    cipher: Option<Aes256Gcm>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("encrypts", &self.encrypts())
            .finish()
    }
}

/// Reads `secrets_key`: 32 bytes, base64 (standard alphabet, padding optional).
///
/// # Errors
/// A message saying what was wrong, never the value.
pub fn parse_key(text: &str) -> Result<Secret<[u8; 32]>, String> {
    let text = text.trim();
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .map_err(|_| {
            "expected 32 bytes in base64 (make one with `openssl rand -base64 32`), got text that is not base64".to_owned()
        })?;
    let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        format!(
            "expected 32 bytes in base64 (make one with `openssl rand -base64 32`), got {} bytes",
            bytes.len()
        )
    })?;
    Ok(Secret::new(key))
}

impl Sealer {
    /// A sealer with `key`, or one that stores values plain without it.
    pub fn new(key: Option<&Secret<[u8; 32]>>) -> Self {
        Self {
            cipher: key.map(|k| Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(k.expose()))),
        }
    }

    /// Whether values are encrypted.
    pub fn encrypts(&self) -> bool {
        self.cipher.is_some()
    }

    /// The stored form of `value`, which is the `what` (e.g. `token:wx…`).
    pub fn seal(&self, what: &str, value: &str) -> String {
        let Some(cipher) = &self.cipher else {
            return format!("{PLAIN}{value}");
        };
        let nonce: [u8; 12] = rand::random();
        let payload = Payload {
            msg: value.as_bytes(),
            aad: what.as_bytes(),
        };
        // Encryption with a valid key and a 12-byte nonce does not fail (the length limit is
        // 64 GiB); an empty ciphertext would not open, and be refreshed.
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{SEALED}{}", STANDARD.encode(bytes))
    }

    /// The value of a stored form `what` was sealed as.
    ///
    /// # Errors
    /// [`UnsealError`], naming `what` only.
    pub fn open(&self, what: &str, stored: &str) -> Result<Secret<String>, UnsealError> {
        if let Some(plain) = stored.strip_prefix(PLAIN) {
            return Ok(Secret::new(plain.to_owned()));
        }
        let Some(sealed) = stored.strip_prefix(SEALED) else {
            return Err(UnsealError::Unknown(what.to_owned()));
        };
        let Some(cipher) = &self.cipher else {
            return Err(UnsealError::NoKey(what.to_owned()));
        };
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|_| UnsealError::Unknown(what.to_owned()))?;
        if bytes.len() < 12 {
            return Err(UnsealError::Unknown(what.to_owned()));
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let payload = Payload {
            msg: ciphertext,
            aad: what.as_bytes(),
        };
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| UnsealError::WrongKey(what.to_owned()))?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| UnsealError::Unknown(what.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Secret<[u8; 32]> {
        Secret::new([byte; 32])
    }

    #[test]
    fn sealed_values_open_with_the_key_and_name_they_were_sealed_with() {
        let sealer = Sealer::new(Some(&key(7)));
        let stored = sealer.seal("token:wx1", "ACCESS");
        assert!(stored.starts_with(SEALED) && !stored.contains("ACCESS"));
        assert_eq!(
            sealer
                .open("token:wx1", &stored)
                .map(|s| s.expose().clone()),
            Ok("ACCESS".into())
        );
        assert_eq!(
            sealer.open("token:wx2", &stored).map(|_| ()),
            Err(UnsealError::WrongKey("token:wx2".into()))
        );
        let other = Sealer::new(Some(&key(8)));
        assert!(matches!(
            other.open("token:wx1", &stored),
            Err(UnsealError::WrongKey(_))
        ));
        let none = Sealer::new(None);
        assert!(matches!(
            none.open("token:wx1", &stored),
            Err(UnsealError::NoKey(_))
        ));
    }

    #[test]
    fn without_a_key_values_are_marked_plain_and_still_open_with_one() {
        let stored = Sealer::new(None).seal("refresh:wx1", "R1");
        assert_eq!(stored, "plain:R1");
        let sealer = Sealer::new(Some(&key(1)));
        assert_eq!(
            sealer
                .open("refresh:wx1", &stored)
                .map(|s| s.expose().clone()),
            Ok("R1".into())
        );
        assert!(matches!(
            sealer.open("x", "R1"),
            Err(UnsealError::Unknown(_))
        ));
    }

    #[test]
    fn the_key_is_32_bytes_of_base64_and_errors_never_echo_it() {
        let good = STANDARD.encode([3u8; 32]);
        assert!(parse_key(&good).is_ok());
        let short = STANDARD.encode([3u8; 16]);
        let error = parse_key(&short).err().unwrap_or_default();
        assert!(
            error.contains("got 16 bytes") && !error.contains(&short),
            "{error}"
        );
        let error = parse_key("not base64 at all!").err().unwrap_or_default();
        assert!(!error.contains("at all"), "{error}");
    }
}
