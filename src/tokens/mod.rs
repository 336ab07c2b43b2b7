//! The central token service: wxpush keeps the latest `component_verify_ticket` each
//! third-party platform pushes, and from it the component token, every authorizer's token
//! (with its refresh token) and Mini Programs' own tokens — durably, sealed at rest, and
//! refreshed by one caller at a time across threads, processes and replicas, so that no
//! second refresher invalidates the token another one hands out.
//!
//! - `refresh.rs`: the single-flight refresh and each kind's platform calls;
//! - `authorizers.rs`: authorizations, authorizers' refresh tokens, the recovery from the
//!   authorizer list, importing;
//! - `events.rs`: what ticket and authorization pushes change (the built-in route `tokens`);
//! - `status.rs`: what is managed and how it stands (CLI, metrics), the proactive refresh;
//! - [`sealed`]: AES-256-GCM at rest.

mod authorizers;
mod events;
mod refresh;
pub mod sealed;
mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::observe::Metrics;
use crate::platform::{ApiClient, ApiError};
use crate::secret::Secret;
use crate::store::{Store, StoreError};

pub use events::{TOKENS_ROUTE, TokenEvents, token_events};
pub use sealed::Sealer;
pub use status::{ManagedStatus, TicketStatus};

/// Which apps' tokens wxpush manages, and how.
#[derive(Debug, Clone)]
pub struct TokensConfig {
    /// The platform's API host (`api_base`).
    pub api_base: String,
    /// Refresh this long before a token expires (`tokens.refresh_margin_secs`).
    pub refresh_margin: Duration,
    /// The key sealing credentials at rest (`secrets_key`).
    pub secrets_key: Option<Secret<[u8; 32]>>,
    /// The apps with a secret configured.
    pub apps: Vec<ManagedApp>,
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            api_base: crate::platform::DEFAULT_API_BASE.to_owned(),
            refresh_margin: Duration::from_secs(600),
            secrets_key: None,
            apps: Vec::new(),
        }
    }
}

impl TokensConfig {
    /// Whether any app's tokens are managed.
    pub fn manages_any(&self) -> bool {
        !self.apps.is_empty()
    }

    /// The managed app with app id `appid`.
    pub fn app(&self, appid: &str) -> Option<&ManagedApp> {
        self.apps.iter().find(|a| a.appid == appid)
    }

    /// The managed app named `name` (its configured name).
    pub fn app_named(&self, name: &str) -> Option<&ManagedApp> {
        self.apps.iter().find(|a| a.name == name)
    }
}

/// An app whose tokens wxpush manages.
#[derive(Debug, Clone)]
pub struct ManagedApp {
    /// Its configured name.
    pub name: String,
    /// Its app id (the component app id for a third-party platform).
    pub appid: String,
    /// `component_appsecret` or `appsecret`.
    pub secret: Secret<String>,
    /// A third-party platform or a Mini Program.
    pub kind: AppKind,
}

/// What a managed app is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// A third-party platform (`component_appsecret`).
    Component,
    /// A Mini Program with its own token (`appsecret`).
    MiniProgram,
}

/// Which kind of token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `component_access_token`.
    Component,
    /// An authorizer's `authorizer_access_token`.
    Authorizer,
    /// A Mini Program's own (stable) `access_token`.
    #[serde(rename = "miniprogram")]
    MiniProgram,
}

impl Kind {
    /// As stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Component => "component",
            Self::Authorizer => "authorizer",
            Self::MiniProgram => "miniprogram",
        }
    }
}

/// A valid token.
#[derive(Debug, Clone)]
pub struct Token {
    /// The app id it is for.
    pub appid: String,
    /// Its kind.
    pub kind: Kind,
    /// The token.
    pub access_token: Secret<String>,
    /// When it expires (unix milliseconds).
    pub expires_at: i64,
}

/// Why no token can be given.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// No managed app or authorizer has this app id.
    #[error(
        "{0} is not an app id whose tokens wxpush manages (a configured app with component_appsecret or appsecret, or an authorizer of one)"
    )]
    UnknownApp(String),
    /// It is known, and no valid token can be had now: why, and what to do.
    #[error("no valid token for {appid}: {reason}")]
    Unavailable {
        /// The app id.
        appid: String,
        /// Why, with the fix.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The token service. Cheap to clone; one per process.
#[derive(Clone)]
pub struct TokenService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService").finish_non_exhaustive()
    }
}

struct Inner {
    config: TokensConfig,
    store: Arc<dyn Store>,
    client: ApiClient,
    sealer: Sealer,
    metrics: Option<Metrics>,
    /// One refresh per credential in this process at a time.
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// When each component last asked the platform to push its ticket again.
    ticket_asked: Mutex<HashMap<String, Instant>>,
    /// When each Mini Program's token was last force-refreshed.
    forced: Mutex<HashMap<String, Instant>>,
}

impl TokenService {
    /// The service for `config`, keeping its records in `store`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(config: TokensConfig, store: Arc<dyn Store>) -> Result<Self, ApiError> {
        let client = ApiClient::new(&config.api_base)?;
        Ok(Self::with_client(config, store, client))
    }

    /// Like [`TokenService::new`], calling the platform with `client`.
    pub fn with_client(config: TokensConfig, store: Arc<dyn Store>, client: ApiClient) -> Self {
        let sealer = Sealer::new(config.secrets_key.as_ref());
        Self {
            inner: Arc::new(Inner {
                config,
                store,
                client,
                sealer,
                metrics: None,
                flights: Mutex::default(),
                ticket_asked: Mutex::default(),
                forced: Mutex::default(),
            }),
        }
    }

    /// Counts refreshes and reports token expiries in `metrics`.
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.metrics = Some(metrics);
                Self {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => Self { inner },
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TokensConfig {
        &self.inner.config
    }

    /// The client of the platform's APIs the service uses.
    pub fn client(&self) -> &ApiClient {
        &self.inner.client
    }

    /// A valid token for `appid`: the stored one while it is not due for refresh, else a
    /// refreshed one (one refresh at a time, everywhere).
    ///
    /// # Errors
    /// [`TokenError`].
    pub async fn token(&self, appid: &str) -> Result<Token, TokenError> {
        let kind = self.kind_of(appid).await?;
        self.fresh(appid, kind, None).await
    }

    /// The caller's `failed` token was refused by the platform: refreshes only if it is
    /// still the current token (another caller may have refreshed already); answers the
    /// current token either way.
    ///
    /// # Errors
    /// [`TokenError`].
    pub async fn invalidate(&self, appid: &str, failed: &str) -> Result<Token, TokenError> {
        let kind = self.kind_of(appid).await?;
        self.fresh(appid, kind, Some(failed)).await
    }

    /// Calls `call` with `appid`'s token; when the platform refuses the token as invalid or
    /// expired, compares and refreshes once, and calls again.
    ///
    /// # Errors
    /// The call's [`ApiError`], or why no token could be had (as an [`ApiError::Http`]-free
    /// message in `TokenCallError`).
    pub async fn with_token<T, F, Fut>(&self, appid: &str, call: F) -> Result<T, TokenCallError>
    where
        F: Fn(Secret<String>) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let token = self.token(appid).await?;
        match call(token.access_token.clone()).await {
            Err(error) if error.is_bad_token() => {
                tracing::info!(appid = %appid, %error, "the platform refused the token: refreshing it once");
                let token = self.invalidate(appid, token.access_token.expose()).await?;
                Ok(call(token.access_token).await?)
            }
            other => Ok(other?),
        }
    }

    /// The managed component `authorizer` authorized, if it is a known authorizer.
    pub async fn component_of(&self, authorizer: &str) -> Option<String> {
        let stored = self
            .inner
            .store
            .authorizer(authorizer.to_owned())
            .await
            .ok()??;
        self.inner
            .config
            .app(&stored.component_appid)
            .map(|a| a.appid.clone())
    }

    /// What `appid` is: a managed app, or an authorizer of a managed component.
    async fn kind_of(&self, appid: &str) -> Result<Kind, TokenError> {
        if let Some(app) = self.inner.config.app(appid) {
            return Ok(match app.kind {
                AppKind::Component => Kind::Component,
                AppKind::MiniProgram => Kind::MiniProgram,
            });
        }
        match self.inner.store.authorizer(appid.to_owned()).await? {
            Some(a) if self.inner.config.app(&a.component_appid).is_some() => {
                if a.status == "authorized" {
                    Ok(Kind::Authorizer)
                } else {
                    Err(TokenError::Unavailable {
                        appid: appid.to_owned(),
                        reason: "the Mini Program cancelled its authorization (unauthorized); it must authorize the platform again".into(),
                    })
                }
            }
            _ => Err(TokenError::UnknownApp(appid.to_owned())),
        }
    }
}

/// Why a call made with a managed token failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenCallError {
    /// No token could be had.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The platform refused the call.
    #[error(transparent)]
    Api(#[from] ApiError),
}
