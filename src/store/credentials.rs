//! What the token service keeps: the latest ticket per component app id, every managed
//! token (with when to refresh it and its last error), and the authorizers (status, refresh
//! token, permission sets). Values are stored as the token service sealed them; the store
//! never sees them in the clear when `secrets_key` is set.

use futures_util::future::BoxFuture;

use super::StoreError;

/// The latest `component_verify_ticket` of a component app id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTicket {
    /// The component (third-party platform) app id.
    pub component_appid: String,
    /// The ticket, sealed.
    pub ticket: String,
    /// The push's `CreateTime` (unix seconds): a ticket replaces the stored one only when newer.
    pub create_time: i64,
    /// When wxpush received it (unix milliseconds).
    pub received_at: i64,
}

/// A managed token's state. A row can exist without a token: an app whose tokens could not
/// be had yet, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// The app id the token is for.
    pub appid: String,
    /// `component`, `authorizer` or `miniprogram`.
    pub kind: String,
    /// The token, sealed.
    pub access_token: Option<String>,
    /// When it expires (unix milliseconds).
    pub expires_at: Option<i64>,
    /// When it is to be refreshed (unix milliseconds): its expiry less the margin.
    pub refresh_at: Option<i64>,
    /// When it was last fetched (unix milliseconds).
    pub refreshed_at: Option<i64>,
    /// Why the last refresh failed, until one succeeds.
    pub last_error: Option<String>,
}

/// An authorizer of a third-party platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAuthorizer {
    /// The authorizer's app id.
    pub authorizer_appid: String,
    /// The component app id it authorized.
    pub component_appid: String,
    /// `authorized` or `unauthorized`.
    pub status: String,
    /// Its refresh token, sealed (none once unauthorized).
    pub refresh_token: Option<String>,
    /// The permission sets granted (`func_info`), as JSON.
    pub func_info: String,
    /// When what this row says happened (unix milliseconds): the authorization push's
    /// `CreateTime`, or the refresh. An older push does not overwrite a newer state.
    pub changed_at: i64,
}

/// One durable change: a token and/or an authorizer, written together, all or nothing, so
/// that a rotated refresh token is saved with the access token it came with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialWrite {
    /// The token row to write.
    pub token: Option<StoredToken>,
    /// The authorizer row to write.
    pub authorizer: Option<StoredAuthorizer>,
    /// A token row to delete (an authorizer that unauthorized).
    pub drop_token: Option<String>,
}

/// Held while one refresh of a credential runs, across processes (and replicas on
/// PostgreSQL); released when dropped.
pub struct RefreshLock(#[allow(dead_code)] pub(crate) Box<dyn Send + Sync>);

impl std::fmt::Debug for RefreshLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshLock")
    }
}

/// The token service's records.
pub trait Credentials: Send + Sync + 'static {
    /// Stores `ticket` unless a newer one (by `create_time`) is stored; returns whether it
    /// was stored.
    fn save_ticket(&self, ticket: StoredTicket) -> BoxFuture<'_, Result<bool, StoreError>>;

    /// The latest ticket of `component_appid`.
    fn ticket(
        &self,
        component_appid: String,
    ) -> BoxFuture<'_, Result<Option<StoredTicket>, StoreError>>;

    /// The token row of `appid`.
    fn token(&self, appid: String) -> BoxFuture<'_, Result<Option<StoredToken>, StoreError>>;

    /// Every token row.
    fn tokens(&self) -> BoxFuture<'_, Result<Vec<StoredToken>, StoreError>>;

    /// Writes `write` in one transaction.
    fn save(&self, write: CredentialWrite) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Records why a refresh of `appid` (a `kind` token) failed, keeping its token.
    fn token_error(
        &self,
        appid: String,
        kind: String,
        error: String,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The authorizer `authorizer_appid`.
    fn authorizer(
        &self,
        authorizer_appid: String,
    ) -> BoxFuture<'_, Result<Option<StoredAuthorizer>, StoreError>>;

    /// Every authorizer.
    fn authorizers(&self) -> BoxFuture<'_, Result<Vec<StoredAuthorizer>, StoreError>>;

    /// Waits for, and takes, the refresh lock of `key`.
    fn refresh_lock(&self, key: String) -> BoxFuture<'_, Result<RefreshLock, StoreError>>;
}

/// The credential tables, the same in both stores (migration 4 of each), and their columns
/// in the order both stores read them.
pub(crate) mod credentials_sql {
    /// A token row's columns.
    pub(crate) const TOKEN_COLUMNS: &str =
        "appid, kind, access_token, expires_at, refresh_at, refreshed_at, last_error";
    /// An authorizer row's columns.
    pub(crate) const AUTHORIZER_COLUMNS: &str =
        "authorizer_appid, component_appid, status, refresh_token, func_info, changed_at";

    /// Tickets, tokens and authorizers; sealed values are text.
    pub(crate) const TABLES: &str = "
CREATE TABLE IF NOT EXISTS tickets (
    component_appid text PRIMARY KEY,
    ticket          text NOT NULL,
    create_time     bigint NOT NULL,
    received_at     bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    appid        text PRIMARY KEY,
    kind         text NOT NULL,
    access_token text,
    expires_at   bigint,
    refresh_at   bigint,
    refreshed_at bigint,
    last_error   text
);
CREATE TABLE IF NOT EXISTS authorizers (
    authorizer_appid text PRIMARY KEY,
    component_appid  text NOT NULL,
    status           text NOT NULL,
    refresh_token    text,
    func_info        text NOT NULL,
    changed_at       bigint NOT NULL
);
";
}
