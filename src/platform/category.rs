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

/// The request body. Reading one refuses unknown keys (a misspelt `certificates` is an
/// error naming it, never a silently empty list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddCategoryRequest {
    /// The categories to add.
    pub categories: Vec<Category>,
}

/// One category to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// The document's name, as the category requires it.
    pub key: String,
    /// The media id of the uploaded file.
    pub value: String,
    /// When the qualification expires (unix seconds), when the category asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<i64>,
    /// Whether the qualification never expires (`1`) or not (`0`), when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_permanent: Option<i64>,
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
    let api_base = api_base.trim_end_matches('/');
    let url = format!("{api_base}/cgi-bin/wxopen/addcategory");
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
            .map_err(|e| AddCategoryError::Http(unreachable(api_base, e)))?;
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

/// Says which host could not be reached and why, from the error's whole chain of causes
/// (the URL, which holds the access token, is left out).
fn unreachable(api_base: &str, error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = format!("cannot reach {api_base}: {error}");
    let mut cause = std::error::Error::source(&error);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
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
                    expire_time: None,
                    is_permanent: None,
                }],
            }],
        };
        assert_eq!(
            serde_json::to_string(&body)?,
            r#"{"categories":[{"first":8,"second":39,"certicates":[{"key":"营业执照","value":"media_1"}]}]}"#
        );
        Ok(())
    }

    #[test]
    fn expiry_fields_are_read_and_sent_as_given() -> serde_json::Result<()> {
        let text = r#"{"categories":[{"first":8,"second":39,"certicates":[{"key":"k","value":"m","expire_time":1767225600,"is_permanent":0}]}]}"#;
        let request: AddCategoryRequest = serde_json::from_str(text)?;
        assert_eq!(
            request.categories[0].certicates[0].expire_time,
            Some(1_767_225_600)
        );
        assert_eq!(serde_json::to_string(&request)?, text);
        Ok(())
    }

    #[test]
    fn a_misspelt_key_is_an_error_naming_it() {
        let text = r#"{"categories":[{"first":8,"second":39,"certificates":[]}]}"#;
        let error = serde_json::from_str::<AddCategoryRequest>(text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("unknown field `certificates`"), "{error}");
    }
}
