//! Temporary media: `POST /cgi-bin/media/upload?type=image` (multipart field `media`) gives
//! a `media_id`, valid 3 days, for the account whose token uploaded it. Qualification
//! documents are sent to the category APIs as such media ids.

use serde::Deserialize;

use super::client::{ApiClient, ApiError};
use crate::secret::Secret;

/// How long temporary media last.
pub const MEDIA_LIFETIME_MS: i64 = 3 * 24 * 3600 * 1000;

/// An uploaded file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Uploaded {
    /// The media id.
    pub media_id: String,
    /// When the platform created it (unix seconds).
    #[serde(default)]
    pub created_at: i64,
}

/// Uploads `bytes` (an image named `file`) with `token`.
///
/// # Errors
/// [`ApiError`].
pub async fn upload_image(
    client: &ApiClient,
    token: &Secret<String>,
    file: &str,
    bytes: &[u8],
) -> Result<Uploaded, ApiError> {
    let boundary = format!("wxpush{:016x}", rand::random::<u64>());
    let name: String = file
        .chars()
        .map(|c| if c == '"' || c.is_control() { '_' } else { c })
        .collect();
    let content_type = if name.to_ascii_lowercase().ends_with(".png") {
        "image/png"
    } else {
        "image/jpeg"
    };
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"media\"; filename=\"{name}\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    client
        .post_raw(
            "media/upload",
            "/cgi-bin/media/upload",
            Some(("access_token", token)),
            &[("type", "image")],
            (&format!("multipart/form-data; boundary={boundary}"), body),
        )
        .await
}
