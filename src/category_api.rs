//! The `addcategory` API client: submit categories for review, with the platform's error
//! codes turned into clear messages and "system busy" retried.
//!
//! `POST {api_base}/cgi-bin/wxopen/addcategory?access_token=…` with
//! `{"categories":[{"first":8,"second":39,"certicates":[{"key":"…","value":"media_id"}]}]}`
//! (the field really is spelled `certicates`). The review result arrives later as a
//! `wxa_category_audit` push.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The platform's API host.
pub const DEFAULT_API_BASE: &str = "https://api.weixin.qq.com";

/// The request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddCategoryRequest {
    /// The categories to add.
    pub categories: Vec<Category>,
}

/// One category to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    /// First-level category id.
    pub first: i64,
    /// Second-level category id.
    pub second: i64,
    /// Qualification documents, as uploaded media ids (`certicates` on the wire).
    #[serde(default)]
    pub certicates: Vec<Certificate>,
}

/// A qualification document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// The document's name, as the category requires it.
    pub key: String,
    /// The media id of the uploaded file.
    pub value: String,
}

/// Why `addcategory` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddCategoryError {
    /// 40001: the access token is invalid or expired.
    #[error(
        "errcode 40001 (invalid credential): the access token is invalid or expired; fetch a fresh one (authorizer_access_token for a third-party platform) and pass it with --access-token or WXPUSH_ACCESS_TOKEN"
    )]
    InvalidCredential,
    /// 40007: a media id is invalid.
    #[error(
        "errcode 40007 (invalid media_id): a certificate's media id is unknown or expired; upload the file again as temporary media and use the new media_id"
    )]
    InvalidMediaId,
    /// -1 on every attempt.
    #[error("errcode -1 (system busy) on all {0} attempts; try again later")]
    Busy(u32),
    /// Any other error code, verbatim.
    #[error("errcode {errcode}: {errmsg}")]
    Other {
        /// The platform's code.
        errcode: i64,
        /// The platform's message.
        errmsg: String,
    },
    /// The request did not get a JSON answer.
    #[error("request failed: {0}")]
    Http(String),
}

#[derive(Deserialize)]
struct ApiAnswer {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
}

/// Submits `request`. Retries errcode -1 up to `attempts` times in all, with doubling
/// delays from `backoff`.
///
/// # Errors
/// [`AddCategoryError`]; the access token never appears in it.
pub async fn add_category(
    client: &reqwest::Client,
    api_base: &str,
    access_token: &Secret<String>,
    request: &AddCategoryRequest,
    attempts: u32,
    backoff: Duration,
) -> Result<(), AddCategoryError> {
    let url = format!(
        "{}/cgi-bin/wxopen/addcategory",
        api_base.trim_end_matches('/')
    );
    let attempts = attempts.max(1);
    let body = serde_json::to_string(request).map_err(|e| AddCategoryError::Http(e.to_string()))?;
    let mut delay = backoff;
    for attempt in 1..=attempts {
        let response = client
            .post(&url)
            .query(&[("access_token", access_token.expose())])
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .map_err(|e| AddCategoryError::Http(e.without_url().to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| AddCategoryError::Http(e.without_url().to_string()))?;
        let answer: ApiAnswer = serde_json::from_str(&text).map_err(|_| {
            AddCategoryError::Http(format!(
                "HTTP {status}, not a JSON answer: {}",
                text.chars().take(200).collect::<String>()
            ))
        })?;
        match answer.errcode {
            0 => return Ok(()),
            -1 if attempt < attempts => {
                tracing::warn!(attempt, "addcategory: system busy (-1), retrying");
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2);
            }
            -1 => return Err(AddCategoryError::Busy(attempts)),
            40001 => return Err(AddCategoryError::InvalidCredential),
            40007 => return Err(AddCategoryError::InvalidMediaId),
            errcode => {
                return Err(AddCategoryError::Other {
                    errcode,
                    errmsg: answer.errmsg,
                });
            }
        }
    }
    Err(AddCategoryError::Busy(attempts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_uses_the_documented_field_names() -> serde_json::Result<()> {
        let body = AddCategoryRequest {
            categories: vec![Category {
                first: 8,
                second: 39,
                certicates: vec![Certificate {
                    key: "营业执照".into(),
                    value: "media_1".into(),
                }],
            }],
        };
        assert_eq!(
            serde_json::to_string(&body)?,
            r#"{"categories":[{"first":8,"second":39,"certicates":[{"key":"营业执照","value":"media_1"}]}]}"#
        );
        Ok(())
    }
}
