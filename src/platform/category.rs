//! The `addcategory` API client: submit categories for review, with the platform's error
//! codes turned into clear messages and "system busy" retried.
//!
//! `POST {api_base}/cgi-bin/wxopen/addcategory?access_token=…` with
//! `{"categories":[{"first":8,"second":39,"certicates":[{"key":"…","value":"media_id"}]}]}`
//! (the field really is spelled `certicates`). The review result arrives later as a
//! `wxa_category_audit` push.

use serde::{Deserialize, Serialize};

use super::client::{ApiClient, ApiError};
use crate::secret::Secret;

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

/// Submits `request` with `access_token` (the authorizer's, for a third-party platform).
/// "System busy" is retried as the client is set to.
///
/// # Errors
/// [`ApiError`]; the access token never appears in it.
pub async fn add_category(
    client: &ApiClient,
    access_token: &Secret<String>,
    request: &AddCategoryRequest,
) -> Result<(), ApiError> {
    let _: serde_json::Value = client
        .post(
            "addcategory",
            "/cgi-bin/wxopen/addcategory",
            Some(("access_token", access_token)),
            request,
        )
        .await?;
    Ok(())
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
