//! The category workflow: the categories an account may set (cached a day), what it has
//! set, qualification pictures uploaded as temporary media, submitting with checks made
//! before any call, and no missed review result ([`reconcile`]).
//!
//! Every call uses the account's managed token: an authorizer's for a third-party platform,
//! a Mini Program's own with `appsecret` ([`crate::tokens`]); a refused token is refreshed
//! once and the call retried.

mod check;
pub mod reconcile;

use std::sync::Arc;

use crate::clock;
use crate::platform::category::{self, AddCategoryRequest, Category, CurrentCategories};
use crate::platform::media::{self, MEDIA_LIFETIME_MS};
use crate::platform::{ApiClient, ApiError};
use crate::store::{MediaRecord, Store, StoreError, Submission};
use crate::tokens::{TokenCallError, TokenError, TokenService};

pub use check::{Settable, SettablePair};

/// How long the settable list is kept before it is fetched again.
pub const SETTABLE_TTL_MS: i64 = 24 * 3600 * 1000;

/// Why a category operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CategoryError {
    /// Refused before any call: what is wrong and how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// No token.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The platform refused.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TokenCallError> for CategoryError {
    fn from(e: TokenCallError) -> Self {
        match e {
            TokenCallError::Token(t) => Self::Token(t),
            TokenCallError::Api(a) => Self::Api(a),
        }
    }
}

/// The category workflow's service. Cheap to clone.
#[derive(Clone)]
pub struct CategoryService {
    tokens: TokenService,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for CategoryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CategoryService").finish_non_exhaustive()
    }
}

/// A submission as made: who it is for.
#[derive(Debug, Clone)]
pub struct Target {
    /// The configured app the result will arrive for.
    pub app: String,
    /// The account whose token is used: the authorizer, or the Mini Program itself.
    pub appid: String,
    /// The authorizer, when a third-party platform submits for it.
    pub authorizer: Option<String>,
}

impl CategoryService {
    /// The service over `tokens` and `store`.
    pub fn new(tokens: TokenService, store: Arc<dyn Store>) -> Self {
        Self { tokens, store }
    }

    fn client(&self) -> &ApiClient {
        self.tokens.client()
    }

    /// The categories `appid` may set: cached for a day, fetched when older or `refresh`.
    ///
    /// # Errors
    /// [`CategoryError`].
    pub async fn settable(&self, appid: &str, refresh: bool) -> Result<Settable, CategoryError> {
        let now = clock::now_ms();
        if !refresh
            && let Some((body, at)) = self.store.settable(appid.to_owned()).await?
            && now - at < SETTABLE_TTL_MS
            && let Ok(nodes) = serde_json::from_str(&body)
        {
            return Ok(Settable::from_nodes(nodes, at));
        }
        let client = self.client();
        let nodes = self
            .tokens
            .with_token(appid, |token| async move {
                category::settable(client, &token).await
            })
            .await?;
        let body = serde_json::to_string(&nodes).unwrap_or_default();
        self.store
            .cache_settable(appid.to_owned(), body, now)
            .await?;
        Ok(Settable::from_nodes(nodes, now))
    }

    /// The categories settable by accounts of `verify_type` (not cached).
    ///
    /// # Errors
    /// [`CategoryError`].
    pub async fn settable_by_type(
        &self,
        appid: &str,
        verify_type: i64,
    ) -> Result<Settable, CategoryError> {
        let client = self.client();
        let nodes = self
            .tokens
            .with_token(appid, |token| async move {
                category::settable_by_type(client, &token, verify_type).await
            })
            .await?;
        Ok(Settable::from_nodes(nodes, clock::now_ms()))
    }

    /// What `appid` has set, with review states and quotas.
    ///
    /// # Errors
    /// [`CategoryError`].
    pub async fn current(&self, appid: &str) -> Result<CurrentCategories, CategoryError> {
        let client = self.client();
        Ok(self
            .tokens
            .with_token(appid, |token| async move {
                category::current(client, &token).await
            })
            .await?)
    }

    /// Checks `request` against the settable list and the media ids wxpush knows, then
    /// submits it and records a pending submission per category; returns their ids and the
    /// warnings (a media id uploaded for another account).
    ///
    /// # Errors
    /// [`CategoryError::Invalid`] before any call; else as the call fails.
    pub async fn add(
        &self,
        target: &Target,
        request: &AddCategoryRequest,
    ) -> Result<(Vec<Submission>, Vec<String>), CategoryError> {
        let warnings = self.preflight(&target.appid, &request.categories).await?;
        let client = self.client();
        self.tokens
            .with_token(&target.appid, |token| async move {
                category::add_category(client, &token, request).await
            })
            .await?;
        let mut submissions = Vec::new();
        for c in &request.categories {
            let submission = Submission::pending(
                "sub",
                &target.app,
                target.authorizer.as_deref(),
                c.first,
                c.second,
            );
            self.store.record_submission(submission.clone()).await?;
            submissions.push(submission);
        }
        Ok((submissions, warnings))
    }

    /// The checks [`CategoryService::add`] makes before its call, without the call: what
    /// would be refused ([`CategoryError::Invalid`]), and the warnings (a media id uploaded
    /// for another account), to show before the call is made.
    ///
    /// # Errors
    /// [`CategoryError`].
    pub async fn preflight(
        &self,
        appid: &str,
        categories: &[Category],
    ) -> Result<Vec<String>, CategoryError> {
        let settable = self.settable(appid, false).await?;
        let mut warnings = Vec::new();
        for c in categories {
            settable.check(c)?;
            warnings.extend(self.check_media(appid, c).await?);
        }
        Ok(warnings)
    }

    /// `deletecategory`, after checking the category is set.
    ///
    /// # Errors
    /// [`CategoryError`].
    pub async fn delete(&self, appid: &str, first: i64, second: i64) -> Result<(), CategoryError> {
        let current = self.current(appid).await?;
        if !current
            .categories
            .iter()
            .any(|c| c.first == first && c.second == second)
        {
            return Err(CategoryError::Invalid(format!(
                "{first}/{second} is not set on {appid} (see `wxpush categories current`)"
            )));
        }
        let client = self.client();
        Ok(self
            .tokens
            .with_token(appid, |token| async move {
                category::delete(client, &token, first, second).await
            })
            .await?)
    }

    /// `modifycategory`, with the same checks as [`CategoryService::add`].
    ///
    /// # Errors
    /// [`CategoryError`].
    pub async fn modify(&self, appid: &str, c: &Category) -> Result<Vec<String>, CategoryError> {
        let warnings = self.preflight(appid, std::slice::from_ref(c)).await?;
        let client = self.client();
        self.tokens
            .with_token(appid, |token| async move {
                category::modify(client, &token, c).await
            })
            .await?;
        Ok(warnings)
    }

    /// The submission `id`.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn submission(&self, id: &str) -> Result<Option<Submission>, CategoryError> {
        Ok(self.store.submission(id.to_owned()).await?)
    }

    /// Uploads an image as temporary media for `target.appid` and remembers its expiry.
    ///
    /// # Errors
    /// [`CategoryError`].
    pub async fn upload(
        &self,
        target: &Target,
        file: &str,
        bytes: &[u8],
    ) -> Result<MediaRecord, CategoryError> {
        let client = self.client();
        let uploaded = self
            .tokens
            .with_token(&target.appid, |token| async move {
                media::upload_image(client, &token, file, bytes).await
            })
            .await?;
        let created_at = if uploaded.created_at > 0 {
            uploaded.created_at.saturating_mul(1000)
        } else {
            clock::now_ms()
        };
        let record = MediaRecord {
            media_id: uploaded.media_id,
            app: target.app.clone(),
            appid: target.appid.clone(),
            file: file.to_owned(),
            created_at,
            expires_at: created_at.saturating_add(MEDIA_LIFETIME_MS),
        };
        self.store.record_media(record.clone()).await?;
        Ok(record)
    }

    /// Refuses an expired media id wxpush uploaded; warns for one uploaded for another
    /// account.
    async fn check_media(&self, appid: &str, c: &Category) -> Result<Vec<String>, CategoryError> {
        let now = clock::now_ms();
        let mut warnings = Vec::new();
        for cert in &c.certicates {
            let Some(m) = self.store.media(cert.value.clone()).await? else {
                continue;
            };
            if m.expires_at <= now {
                return Err(CategoryError::Invalid(format!(
                    "the media id of '{}' ({}) expired at {}: temporary media last 3 days. Upload {} again (--cert '{}=@FILE')",
                    crate::escape::printable(&cert.key),
                    cert.value,
                    clock::rfc3339(m.expires_at),
                    crate::escape::printable(&m.file),
                    crate::escape::printable(&cert.key),
                )));
            }
            if m.appid != appid {
                warnings.push(format!(
                    "the media id of '{}' was uploaded for {}, not {appid}: the platform refuses another account's media (40007)",
                    crate::escape::printable(&cert.key),
                    m.appid
                ));
            }
        }
        Ok(warnings)
    }
}
