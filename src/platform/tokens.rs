//! The token APIs: a third-party platform's `component_access_token` (from the latest
//! `component_verify_ticket`), its authorizers' tokens (from an authorization code, then
//! from refresh tokens), the authorizer list (the recovery path for lost refresh tokens),
//! and a Mini Program's own stable token.

use serde::Deserialize;
use serde_json::json;

use super::client::{ApiClient, ApiError};
use crate::secret::Secret;

/// A token the platform issued.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The token.
    pub access_token: Secret<String>,
    /// Seconds it is valid for, from now.
    pub expires_in: i64,
}

/// What an authorization (`api_query_auth`) or a refresh (`api_authorizer_token`) gives.
#[derive(Debug, Clone)]
pub struct AuthorizerGrant {
    /// The authorizer's access token.
    pub token: Issued,
    /// The refresh token, when the platform sent one (a rotation replaces the old one).
    pub refresh_token: Option<Secret<String>>,
}

/// One authorization, from `api_query_auth`.
#[derive(Debug, Clone)]
pub struct Authorization {
    /// The authorizer's app id.
    pub authorizer_appid: String,
    /// Its tokens.
    pub grant: AuthorizerGrant,
    /// The permission sets granted, as the platform lists them.
    pub func_info: serde_json::Value,
}

/// One authorizer from `api_get_authorizer_list`.
#[derive(Debug, Clone)]
pub struct ListedAuthorizer {
    /// Its app id.
    pub authorizer_appid: String,
    /// Its current refresh token.
    pub refresh_token: Secret<String>,
    /// When it authorized (unix seconds).
    pub auth_time: i64,
}

#[derive(Deserialize)]
struct ComponentAnswer {
    component_access_token: String,
    expires_in: i64,
}

/// `api_component_token`: the component access token for `ticket`.
///
/// # Errors
/// [`ApiError`] (61005 / 61006 for an expired or invalid ticket).
pub async fn component_token(
    client: &ApiClient,
    component_appid: &str,
    appsecret: &Secret<String>,
    ticket: &Secret<String>,
) -> Result<Issued, ApiError> {
    let body = json!({
        "component_appid": component_appid,
        "component_appsecret": appsecret.expose(),
        "component_verify_ticket": ticket.expose(),
    });
    let answer: ComponentAnswer = client
        .post(
            "api_component_token",
            "/cgi-bin/component/api_component_token",
            None,
            &body,
        )
        .await?;
    Ok(Issued {
        access_token: Secret::new(answer.component_access_token),
        expires_in: answer.expires_in,
    })
}

/// `api_start_push_ticket`: asks the platform to push a ticket again (within 10 minutes).
///
/// # Errors
/// [`ApiError`].
pub async fn start_push_ticket(
    client: &ApiClient,
    component_appid: &str,
    appsecret: &Secret<String>,
) -> Result<(), ApiError> {
    let body = json!({"component_appid": component_appid, "component_secret": appsecret.expose()});
    let _: serde_json::Value = client
        .post(
            "api_start_push_ticket",
            "/cgi-bin/component/api_start_push_ticket",
            None,
            &body,
        )
        .await?;
    Ok(())
}

#[derive(Deserialize)]
struct QueryAuthAnswer {
    authorization_info: AuthorizationInfo,
}

#[derive(Deserialize)]
struct AuthorizationInfo {
    authorizer_appid: String,
    authorizer_access_token: String,
    expires_in: i64,
    #[serde(default)]
    authorizer_refresh_token: String,
    #[serde(default)]
    func_info: serde_json::Value,
}

/// `api_query_auth`: what an authorization code grants.
///
/// # Errors
/// [`ApiError`].
pub async fn query_auth(
    client: &ApiClient,
    component_token: &Secret<String>,
    component_appid: &str,
    authorization_code: &str,
) -> Result<Authorization, ApiError> {
    let body =
        json!({"component_appid": component_appid, "authorization_code": authorization_code});
    let answer: QueryAuthAnswer = client
        .post(
            "api_query_auth",
            "/cgi-bin/component/api_query_auth",
            Some(("component_access_token", component_token)),
            &body,
        )
        .await?;
    let info = answer.authorization_info;
    Ok(Authorization {
        authorizer_appid: info.authorizer_appid,
        grant: AuthorizerGrant {
            token: Issued {
                access_token: Secret::new(info.authorizer_access_token),
                expires_in: info.expires_in,
            },
            refresh_token: non_empty(info.authorizer_refresh_token),
        },
        func_info: info.func_info,
    })
}

#[derive(Deserialize)]
struct AuthorizerTokenAnswer {
    authorizer_access_token: String,
    expires_in: i64,
    #[serde(default)]
    authorizer_refresh_token: String,
}

/// `api_authorizer_token`: a new access token for an authorizer, from its refresh token.
///
/// # Errors
/// [`ApiError`] (61023 for an invalid refresh token).
pub async fn authorizer_token(
    client: &ApiClient,
    component_token: &Secret<String>,
    component_appid: &str,
    authorizer_appid: &str,
    refresh_token: &Secret<String>,
) -> Result<AuthorizerGrant, ApiError> {
    let body = json!({
        "component_appid": component_appid,
        "authorizer_appid": authorizer_appid,
        "authorizer_refresh_token": refresh_token.expose(),
    });
    let answer: AuthorizerTokenAnswer = client
        .post(
            "api_authorizer_token",
            "/cgi-bin/component/api_authorizer_token",
            Some(("component_access_token", component_token)),
            &body,
        )
        .await?;
    Ok(AuthorizerGrant {
        token: Issued {
            access_token: Secret::new(answer.authorizer_access_token),
            expires_in: answer.expires_in,
        },
        refresh_token: non_empty(answer.authorizer_refresh_token),
    })
}

#[derive(Deserialize)]
struct ListAnswer {
    total_count: usize,
    #[serde(default)]
    list: Vec<ListEntry>,
}

#[derive(Deserialize)]
struct ListEntry {
    authorizer_appid: String,
    refresh_token: String,
    #[serde(default)]
    auth_time: i64,
}

/// `api_get_authorizer_list`: one page (at most 500) from `offset`, and the total.
///
/// # Errors
/// [`ApiError`].
pub async fn authorizer_list(
    client: &ApiClient,
    component_token: &Secret<String>,
    component_appid: &str,
    offset: usize,
    count: usize,
) -> Result<(Vec<ListedAuthorizer>, usize), ApiError> {
    let body =
        json!({"component_appid": component_appid, "offset": offset, "count": count.min(500)});
    let answer: ListAnswer = client
        .post(
            "api_get_authorizer_list",
            "/cgi-bin/component/api_get_authorizer_list",
            Some(("component_access_token", component_token)),
            &body,
        )
        .await?;
    let list = answer
        .list
        .into_iter()
        .map(|e| ListedAuthorizer {
            authorizer_appid: e.authorizer_appid,
            refresh_token: Secret::new(e.refresh_token),
            auth_time: e.auth_time,
        })
        .collect();
    Ok((list, answer.total_count))
}

#[derive(Deserialize)]
struct StableAnswer {
    access_token: String,
    expires_in: i64,
}

/// `stable_token`: a Mini Program's own token. In normal mode the platform answers the
/// token still valid (renewed 5 minutes before it expires); `force_refresh` invalidates it
/// and is limited (20 a day, 30 s apart).
///
/// # Errors
/// [`ApiError`].
pub async fn stable_token(
    client: &ApiClient,
    appid: &str,
    appsecret: &Secret<String>,
    force_refresh: bool,
) -> Result<Issued, ApiError> {
    let body = json!({
        "grant_type": "client_credential",
        "appid": appid,
        "secret": appsecret.expose(),
        "force_refresh": force_refresh,
    });
    let answer: StableAnswer = client
        .post("stable_token", "/cgi-bin/stable_token", None, &body)
        .await?;
    Ok(Issued {
        access_token: Secret::new(answer.access_token),
        expires_in: answer.expires_in,
    })
}

fn non_empty(text: String) -> Option<Secret<String>> {
    (!text.is_empty()).then(|| Secret::new(text))
}
