//! An app: one receiver identity (token, EncodingAESKey, app id) that pushes are checked
//! against.

use crate::cipher::AesKey;
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
}
