//! Request signatures: `hex(sha1(concat(sort(parts))))`.
//!
//! The URL check and plain-mode pushes sign `[token, timestamp, nonce]` (the `signature` query
//! parameter); safe-mode pushes sign `[token, timestamp, nonce, Encrypt]` (`msg_signature`).
//! This module computes and compares them; it does not know where the parts come from.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// The signature in a request did not match the one computed from the configured token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signature mismatch (-40001): the request was not signed with the configured token")]
pub struct Mismatch;

/// Computes the platform's signature over `parts`: sort byte-wise ascending, concatenate,
/// SHA-1, lowercase hex.
pub fn sign(parts: &[&str]) -> String {
    let mut sorted: Vec<&str> = parts.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for part in &sorted {
        hasher.update(part.as_bytes());
    }
    crate::hex::encode(&hasher.finalize())
}

/// Checks `given` (a hex signature from the query) against the signature of `parts`.
///
/// The comparison is constant-time in the content of the signatures; upper-case hex is
/// accepted.
///
/// # Errors
/// [`Mismatch`] when the signatures differ.
pub fn verify(given: &str, parts: &[&str]) -> Result<(), Mismatch> {
    let expected = sign(parts);
    let given = given.trim().to_ascii_lowercase();
    if given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_check_signature_matches_the_shared_vector() {
        // url-check-ok: token wxpushDemoToken, timestamp 1764288000, nonce 1850351432
        let sig = sign(&["wxpushDemoToken", "1764288000", "1850351432"]);
        assert_eq!(sig, "14327c7365e50a63b7fb8b665bd80a9196ea3865");
    }

    #[test]
    fn order_of_parts_does_not_matter() {
        assert_eq!(sign(&["b", "a", "c"]), sign(&["c", "b", "a"]));
    }

    #[test]
    fn verify_accepts_uppercase_and_rejects_others() {
        let parts = ["wxpushDemoToken", "1764288000", "1850351432"];
        assert!(verify("14327C7365E50A63B7FB8B665BD80A9196EA3865", &parts).is_ok());
        assert_eq!(verify("0000", &parts), Err(Mismatch));
        assert_eq!(
            verify("0000000000000000000000000000000000000000", &parts),
            Err(Mismatch)
        );
    }
}
