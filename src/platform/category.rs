//! The category group of the platform's APIs, all called with the authorizer's (or a Mini
//! Program's own) token: the settable categories (`getallcategories`,
//! `getcategoriesbytype`), the categories set (`getcategory`), `addcategory`,
//! `deletecategory` and `modifycategory`.
//!
//! `addcategory` takes
//! `{"categories":[{"first":8,"second":39,"certicates":[{"key":"…","value":"media_id"}]}]}`
//! (the field really is spelled `certicates`). The review result arrives later as a
//! `wxa_category_audit` push.

use serde::{Deserialize, Serialize};
use serde_json::json;

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

/// One node of the settable-category tree, as `getallcategories` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettableNode {
    /// The category id (0 is the root, whose children are the first-level categories).
    pub id: i64,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// 1 for first-level, 2 for second-level.
    #[serde(default)]
    pub level: i64,
    /// The parent's id.
    #[serde(default)]
    pub father: i64,
    /// The children's ids.
    #[serde(default)]
    pub children: Vec<i64>,
    /// 1: a sensitive category, which needs qualifications.
    #[serde(default)]
    pub sensitive_type: i64,
    /// The qualifications a sensitive category needs.
    #[serde(default)]
    pub qualify: Qualify,
}

/// The qualifications a category needs: groups of documents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Qualify {
    /// The groups.
    #[serde(default)]
    pub exter_list: Vec<QualifyGroup>,
    /// A note.
    #[serde(default)]
    pub remark: String,
}

/// A group of qualification documents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualifyGroup {
    /// The documents of the group.
    #[serde(default)]
    pub inner_list: Vec<QualifyDocument>,
}

/// One qualification document: its name (the `key` of a certificate) and an example.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualifyDocument {
    /// The document's name.
    #[serde(default)]
    pub name: String,
    /// An example's URL.
    #[serde(default)]
    pub url: String,
}

#[derive(Deserialize)]
struct AllAnswer {
    categories_list: CategoriesList,
}

#[derive(Deserialize)]
struct CategoriesList {
    #[serde(default)]
    categories: Vec<SettableNode>,
}

/// `getallcategories`: every category the account may set, as a tree of nodes.
///
/// # Errors
/// [`ApiError`].
pub async fn settable(
    client: &ApiClient,
    token: &Secret<String>,
) -> Result<Vec<SettableNode>, ApiError> {
    let answer: AllAnswer = client
        .get(
            "getallcategories",
            "/cgi-bin/wxopen/getallcategories",
            Some(("access_token", token)),
            &[],
        )
        .await?;
    Ok(answer.categories_list.categories)
}

/// `getcategoriesbytype`: the categories settable by an account of `verify_type`.
///
/// # Errors
/// [`ApiError`].
pub async fn settable_by_type(
    client: &ApiClient,
    token: &Secret<String>,
    verify_type: i64,
) -> Result<Vec<SettableNode>, ApiError> {
    let answer: AllAnswer = client
        .post(
            "getcategoriesbytype",
            "/cgi-bin/wxopen/getcategoriesbytype",
            Some(("access_token", token)),
            &json!({"verify_type": verify_type}),
        )
        .await?;
    Ok(answer.categories_list.categories)
}

/// One category set on the account, with its review state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentCategory {
    /// First-level id.
    pub first: i64,
    /// Its name.
    #[serde(default)]
    pub first_name: String,
    /// Second-level id.
    pub second: i64,
    /// Its name.
    #[serde(default)]
    pub second_name: String,
    /// 1 in review, 2 rejected, 3 passed.
    #[serde(default)]
    pub audit_status: i64,
    /// Why it was rejected.
    #[serde(default)]
    pub audit_reason: String,
}

/// What `getcategory` answers: the categories set and the quotas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentCategories {
    /// The categories set.
    #[serde(default)]
    pub categories: Vec<CurrentCategory>,
    /// Additions allowed per change period.
    #[serde(default)]
    pub limit: i64,
    /// Additions left in this period.
    #[serde(default)]
    pub quota: i64,
    /// Most categories the account may set.
    #[serde(default)]
    pub category_limit: i64,
}

/// `getcategory`: the categories set, with review status and reason.
///
/// # Errors
/// [`ApiError`].
pub async fn current(
    client: &ApiClient,
    token: &Secret<String>,
) -> Result<CurrentCategories, ApiError> {
    client
        .get(
            "getcategory",
            "/cgi-bin/wxopen/getcategory",
            Some(("access_token", token)),
            &[],
        )
        .await
}

/// `deletecategory`.
///
/// # Errors
/// [`ApiError`] (53308: one in review cannot be deleted).
pub async fn delete(
    client: &ApiClient,
    token: &Secret<String>,
    first: i64,
    second: i64,
) -> Result<(), ApiError> {
    let _: serde_json::Value = client
        .post(
            "deletecategory",
            "/cgi-bin/wxopen/deletecategory",
            Some(("access_token", token)),
            &json!({"first": first, "second": second}),
        )
        .await?;
    Ok(())
}

/// `modifycategory`: new qualifications for a category (one that was rejected).
///
/// # Errors
/// [`ApiError`] (53306, 53307).
pub async fn modify(
    client: &ApiClient,
    token: &Secret<String>,
    category: &Category,
) -> Result<(), ApiError> {
    let _: serde_json::Value = client
        .post(
            "modifycategory",
            "/cgi-bin/wxopen/modifycategory",
            Some(("access_token", token)),
            category,
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
