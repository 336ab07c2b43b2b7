//! An app: one receiver identity (token, EncodingAESKey, app id) that pushes are checked
//! against.

use crate::push::cipher::AesKey;
use crate::secret::Secret;

/// One configured receiver identity.
///
/// For a Mini Program, `appid` is its app id; for a third-party platform it is the
/// component app id, shared by every authorizer it serves.
#[derive(Debug, Clone)]
pub struct App {
    /// Short name, recorded on every event it receives (e.g. `demo`).
    pub name: String,
    /// The token set in the platform's console (3–32 letters or digits).
    pub token: Secret<String>,
    /// The decoded EncodingAESKey.
    pub aes_key: Secret<AesKey>,
    /// The app id the encrypted messages must carry.
    pub appid: String,
    /// The token before the last change in the console, still accepted while pushes signed
    /// with it may arrive.
    pub previous_token: Option<Secret<String>>,
    /// The EncodingAESKey before the last change, tried after the current one.
    pub previous_aes_key: Option<Secret<AesKey>>,
    /// Refuse plain-mode pushes (401): only encrypted pushes are stored.
    pub require_encryption: bool,
}

/// Whether `text` has the form of the platform's app ids: `wx` and 16 ASCII letters or
/// digits. Mini Programs, official accounts and third-party platforms (component app ids)
/// all use it.
pub fn is_appid(text: &str) -> bool {
    text.len() == 18
        && text.starts_with("wx")
        && text.bytes().skip(2).all(|b| b.is_ascii_alphanumeric())
}

impl App {
    /// The tokens to try, current first, with whether each is the previous one.
    pub fn tokens(&self) -> impl Iterator<Item = (&str, bool)> {
        std::iter::once((self.token.expose().as_str(), false)).chain(
            self.previous_token
                .iter()
                .map(|t| (t.expose().as_str(), true)),
        )
    }

    /// The keys to try, current first, with whether each is the previous one.
    pub fn aes_keys(&self) -> impl Iterator<Item = (&AesKey, bool)> {
        std::iter::once((self.aes_key.expose(), false))
            .chain(self.previous_aes_key.iter().map(|k| (k.expose(), true)))
    }
}
