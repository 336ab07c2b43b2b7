//! Authorizers: what an authorization push grants (`api_query_auth`), refreshing an
//! authorizer's token from its refresh token (a rotated refresh token is saved with the
//! access token it came with), and the recovery path for a refresh token the platform no
//! longer accepts (61023): the authorizer list.

use super::{Kind, Token, TokenCallError, TokenService};
use crate::platform::tokens as api;
use crate::secret::Secret;
use crate::store::{CredentialWrite, StoredAuthorizer};

/// Authorizers asked per page of `api_get_authorizer_list` (the platform's maximum).
const PAGE: usize = 500;

impl TokenService {
    /// Refreshes an authorizer's token from its stored refresh token.
    pub(super) async fn refresh_authorizer(&self, appid: &str) -> Result<Token, String> {
        let store = &self.inner.store;
        let stored = store
            .authorizer(appid.to_owned())
            .await
            .map_err(|e| e.to_string())?
            .ok_or("not an authorizer")?;
        let refresh = self.refresh_token_of(&stored)?;
        let component = stored.component_appid.clone();
        let client = &self.inner.client;
        let call = |refresh: Secret<String>| {
            let component = component.clone();
            async move {
                self.with_token(&component, |token| {
                    let refresh = refresh.clone();
                    let component = component.clone();
                    async move {
                        api::authorizer_token(client, &token, &component, appid, &refresh).await
                    }
                })
                .await
            }
        };
        let grant = match call(refresh).await {
            Err(TokenCallError::Api(e)) if e.errcode() == Some(61023) => {
                tracing::warn!(authorizer = %appid, "refresh token refused (61023): recovering it from api_get_authorizer_list");
                let recovered = self.recover_refresh_token(&component, appid).await?;
                call(recovered).await
            }
            other => other,
        }
        .map_err(|e| e.to_string())?;
        // The rotated refresh token (if any) goes in the same write as the access token.
        let current = store
            .authorizer(appid.to_owned())
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or(stored);
        let rotated = grant.refresh_token.map(|new| StoredAuthorizer {
            refresh_token: Some(self.seal(&format!("refresh:{appid}"), &new)),
            ..current
        });
        self.save_issued(appid, Kind::Authorizer, grant.token, rotated)
            .await
    }

    fn refresh_token_of(&self, stored: &StoredAuthorizer) -> Result<Secret<String>, String> {
        let appid = &stored.authorizer_appid;
        if stored.status != "authorized" {
            return Err("the Mini Program cancelled its authorization (unauthorized); it must authorize the platform again".into());
        }
        let sealed = stored.refresh_token.as_deref().ok_or(
            "no refresh token is stored for this authorizer: run `wxpush authorizers import`",
        )?;
        self.inner
            .sealer
            .open(&format!("refresh:{appid}"), sealed)
            .map_err(|e| e.to_string())
    }

    /// Finds `appid`'s current refresh token in the authorizer list and saves it.
    async fn recover_refresh_token(
        &self,
        component: &str,
        appid: &str,
    ) -> Result<Secret<String>, String> {
        let mut offset = 0;
        loop {
            let (page, total) = self.authorizer_page(component, offset).await?;
            if let Some(found) = page.iter().find(|a| a.authorizer_appid == appid) {
                self.save_listed(component, found).await?;
                return Ok(found.refresh_token.clone());
            }
            offset += page.len();
            if page.is_empty() || offset >= total {
                return Err(format!(
                    "{appid} is not in the platform's authorizer list of {component}: the Mini Program must authorize the platform again"
                ));
            }
        }
    }

    async fn authorizer_page(
        &self,
        component: &str,
        offset: usize,
    ) -> Result<(Vec<api::ListedAuthorizer>, usize), String> {
        let client = &self.inner.client;
        self.with_token(component, |token| async move {
            api::authorizer_list(client, &token, component, offset, PAGE).await
        })
        .await
        .map_err(|e| e.to_string())
    }

    async fn save_listed(
        &self,
        component: &str,
        listed: &api::ListedAuthorizer,
    ) -> Result<(), String> {
        let appid = &listed.authorizer_appid;
        let existing = self
            .inner
            .store
            .authorizer(appid.clone())
            .await
            .map_err(|e| e.to_string())?;
        let authorizer = StoredAuthorizer {
            authorizer_appid: appid.clone(),
            component_appid: component.to_owned(),
            status: "authorized".into(),
            refresh_token: Some(self.seal(&format!("refresh:{appid}"), &listed.refresh_token)),
            func_info: existing
                .as_ref()
                .map_or_else(|| "[]".to_owned(), |a| a.func_info.clone()),
            changed_at: listed
                .auth_time
                .saturating_mul(1000)
                .max(existing.map_or(0, |a| a.changed_at)),
        };
        self.inner
            .store
            .save(CredentialWrite {
                authorizer: Some(authorizer),
                ..CredentialWrite::default()
            })
            .await
            .map_err(|e| e.to_string())
    }

    /// Imports every authorizer of `component` from `api_get_authorizer_list`, with their
    /// refresh tokens; `progress(done, total)` after each page. Returns how many.
    ///
    /// # Errors
    /// Why the list could not be read, with the fix.
    pub async fn import_authorizers(
        &self,
        component: &str,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<usize, String> {
        let mut done = 0;
        loop {
            let (page, total) = self.authorizer_page(component, done).await?;
            for listed in &page {
                self.save_listed(component, listed).await?;
            }
            done += page.len();
            progress(done, total);
            if page.is_empty() || done >= total {
                return Ok(done);
            }
        }
    }

    /// An `authorized` or `updateauthorized` push: exchanges its code for the authorizer's
    /// tokens and saves them with its status and permission sets. A push older than what
    /// is stored (a replay) changes nothing.
    pub(super) async fn authorized(
        &self,
        component: &str,
        authorizer: &str,
        code: &str,
        changed_at: i64,
    ) -> Result<(), String> {
        let store = &self.inner.store;
        let existing = store
            .authorizer(authorizer.to_owned())
            .await
            .map_err(|e| e.to_string())?;
        if existing.is_some_and(|a| a.changed_at >= changed_at) {
            tracing::info!(authorizer = %authorizer, "authorization push older than the stored state: nothing to do");
            return Ok(());
        }
        let client = &self.inner.client;
        let granted = self
            .with_token(component, |token| async move {
                api::query_auth(client, &token, component, code).await
            })
            .await
            .map_err(|e| e.to_string())?;
        let appid = granted.authorizer_appid.clone();
        let record = StoredAuthorizer {
            authorizer_appid: appid.clone(),
            component_appid: component.to_owned(),
            status: "authorized".into(),
            refresh_token: granted
                .grant
                .refresh_token
                .as_ref()
                .map(|r| self.seal(&format!("refresh:{appid}"), r)),
            func_info: granted.func_info.to_string(),
            changed_at,
        };
        self.save_issued(&appid, Kind::Authorizer, granted.grant.token, Some(record))
            .await?;
        tracing::info!(component = %component, authorizer = %crate::escape::printable(&appid), "authorizer authorized: its token is managed");
        self.report().await;
        Ok(())
    }

    /// An `unauthorized` push: the authorizer's tokens are dropped and its status kept.
    pub(super) async fn unauthorized(
        &self,
        component: &str,
        authorizer: &str,
        changed_at: i64,
    ) -> Result<(), String> {
        let store = &self.inner.store;
        let existing = store
            .authorizer(authorizer.to_owned())
            .await
            .map_err(|e| e.to_string())?;
        if existing.as_ref().is_some_and(|a| a.changed_at > changed_at) {
            return Ok(());
        }
        let record = StoredAuthorizer {
            authorizer_appid: authorizer.to_owned(),
            component_appid: component.to_owned(),
            status: "unauthorized".into(),
            refresh_token: None,
            func_info: existing.map_or_else(|| "[]".to_owned(), |a| a.func_info),
            changed_at,
        };
        store
            .save(CredentialWrite {
                token: None,
                authorizer: Some(record),
                drop_token: Some(authorizer.to_owned()),
            })
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(component = %component, authorizer = %crate::escape::printable(authorizer), "authorizer unauthorized: its tokens are dropped");
        Ok(())
    }
}
