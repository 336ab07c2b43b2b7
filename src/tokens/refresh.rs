//! Refreshing one credential: at most one refresh per credential at a time — a mutex per
//! credential in this process, then the store's refresh lock across processes and
//! replicas, re-reading the stored token after each, so that whoever waited uses the token
//! the first one fetched. Then each kind's platform calls, and saving what they return
//! before it is handed out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use subtle::ConstantTimeEq;

use super::{Kind, Token, TokenError, TokenService};
use crate::clock;
use crate::observe;
use crate::platform::ApiError;
use crate::platform::tokens::{self as api, Issued};
use crate::secret::Secret;
use crate::store::{CredentialWrite, StoredToken};

/// A ticket older than this is expired (the platform's tickets last 12 hours).
pub(super) const TICKET_LIFETIME_MS: i64 = 12 * 3600 * 1000;
/// `api_start_push_ticket` at most this often per component.
const TICKET_ASK_EVERY: Duration = Duration::from_secs(600);
/// Forced stable-token refreshes at most this often (the platform's limit is 30 s).
const FORCE_EVERY: Duration = Duration::from_secs(31);
/// The platform renews a stable token this long before it expires; asking earlier gives
/// the same token back.
const STABLE_RENEWAL_MS: i64 = 240_000;

impl TokenService {
    /// A token for `appid` usable now, refreshing it (once, everywhere) when it is due or
    /// when it is still the `failed` one.
    pub(super) fn fresh<'a>(
        &'a self,
        appid: &'a str,
        kind: Kind,
        failed: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Token, TokenError>> {
        Box::pin(async move {
            if let Some(token) = self.usable(appid, kind, failed).await? {
                return Ok(token);
            }
            let flight = self.flight(appid);
            let _in_process = flight.lock().await;
            if let Some(token) = self.usable(appid, kind, failed).await? {
                return Ok(token);
            }
            let _everywhere = self
                .inner
                .store
                .refresh_lock(format!("token:{appid}"))
                .await?;
            if let Some(token) = self.usable(appid, kind, failed).await? {
                return Ok(token);
            }
            let current = self.stored(appid, kind).await?;
            match self.refresh(appid, kind, failed).await {
                Ok(token) => {
                    self.count(kind, "ok");
                    Ok(token)
                }
                Err(reason) => {
                    self.count(kind, "error");
                    tracing::warn!(appid = %appid, kind = kind.as_str(), "token refresh failed: {reason}");
                    let _ = self
                        .inner
                        .store
                        .token_error(appid.to_owned(), kind.as_str().to_owned(), reason.clone())
                        .await;
                    // A token that is still valid (and not the one that failed) serves until
                    // it expires.
                    match current {
                        Some(token)
                            if token.expires_at > clock::now_ms()
                                && failed.is_none_or(|f| !same(f, &token.access_token)) =>
                        {
                            Ok(token)
                        }
                        _ => Err(TokenError::Unavailable {
                            appid: appid.to_owned(),
                            reason,
                        }),
                    }
                }
            }
        })
    }

    /// The stored token, if it needs no refresh: valid, not due, not the `failed` one.
    async fn usable(
        &self,
        appid: &str,
        kind: Kind,
        failed: Option<&str>,
    ) -> Result<Option<Token>, TokenError> {
        let Some(row) = self.inner.store.token(appid.to_owned()).await? else {
            return Ok(None);
        };
        let now = clock::now_ms();
        if row.refresh_at.is_none_or(|at| at <= now) {
            return Ok(None);
        }
        let Some(token) = self.open_row(&row, kind) else {
            return Ok(None);
        };
        if token.expires_at <= now || failed.is_some_and(|f| same(f, &token.access_token)) {
            return Ok(None);
        }
        Ok(Some(token))
    }

    /// The stored token, whatever its state.
    async fn stored(&self, appid: &str, kind: Kind) -> Result<Option<Token>, TokenError> {
        let row = self.inner.store.token(appid.to_owned()).await?;
        Ok(row.and_then(|row| self.open_row(&row, kind)))
    }

    /// The token a row holds, if it holds one that opens (one that does not is refreshed).
    pub(super) fn open_row(&self, row: &StoredToken, kind: Kind) -> Option<Token> {
        let sealed = row.access_token.as_deref()?;
        match self
            .inner
            .sealer
            .open(&format!("token:{}", row.appid), sealed)
        {
            Ok(access_token) => Some(Token {
                appid: row.appid.clone(),
                kind,
                access_token,
                expires_at: row.expires_at.unwrap_or(0),
            }),
            Err(error) => {
                tracing::warn!(appid = %row.appid, "stored token unreadable, fetching a new one: {error}");
                None
            }
        }
    }

    fn flight(&self, appid: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self
            .inner
            .flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(flights.entry(appid.to_owned()).or_default())
    }

    fn count(&self, kind: Kind, outcome: &'static str) {
        if let Some(metrics) = &self.inner.metrics {
            metrics.record(|| {
                metrics::counter!(observe::TOKEN_REFRESHES, "kind" => kind.as_str(), "outcome" => outcome)
                    .increment(1);
            });
        }
    }

    /// Fetches a new token of `kind` and saves it; the message says why not, with the fix.
    async fn refresh(
        &self,
        appid: &str,
        kind: Kind,
        failed: Option<&str>,
    ) -> Result<Token, String> {
        match kind {
            Kind::Component => self.refresh_component(appid).await,
            Kind::Authorizer => self.refresh_authorizer(appid).await,
            Kind::MiniProgram => self.refresh_miniprogram(appid, failed).await,
        }
    }

    async fn refresh_component(&self, appid: &str) -> Result<Token, String> {
        let app = self.inner.config.app(appid).ok_or("not configured")?;
        let ticket = self
            .inner
            .store
            .ticket(appid.to_owned())
            .await
            .map_err(|e| e.to_string())?;
        let Some(ticket) = ticket else {
            let asked = self.ask_for_ticket(appid).await;
            return Err(format!(
                "no component_verify_ticket has been pushed for {appid} yet; the platform pushes one every 10 minutes to the message push URL once the platform is set up. {asked}"
            ));
        };
        let age = clock::now_ms().saturating_sub(ticket.create_time.saturating_mul(1000));
        if age > TICKET_LIFETIME_MS {
            let asked = self.ask_for_ticket(appid).await;
            return Err(format!(
                "the latest component_verify_ticket is {} h old (tickets last 12 h): pushes are not reaching wxpush. {asked}",
                age / 3_600_000
            ));
        }
        let value = self
            .inner
            .sealer
            .open(&format!("ticket:{appid}"), &ticket.ticket)
            .map_err(|e| e.to_string())?;
        let issued = api::component_token(&self.inner.client, appid, &app.secret, &value)
            .await
            .map_err(|e| self.after_ticket_error(appid, e))?;
        self.save_issued(appid, Kind::Component, issued, None).await
    }

    /// The message for a failed `api_component_token`; a refused ticket asks for a new one.
    fn after_ticket_error(&self, appid: &str, error: ApiError) -> String {
        if matches!(error.errcode(), Some(61005 | 61006)) {
            let service = self.clone();
            let appid = appid.to_owned();
            tokio::spawn(async move {
                service.ask_for_ticket(&appid).await;
            });
        }
        error.to_string()
    }

    /// Asks the platform to push the ticket again (at most every 10 minutes); says what
    /// happened.
    pub(super) async fn ask_for_ticket(&self, appid: &str) -> String {
        {
            let mut asked = self
                .inner
                .ticket_asked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if asked
                .get(appid)
                .is_some_and(|at| at.elapsed() < TICKET_ASK_EVERY)
            {
                return "wxpush asked the platform to push one again (api_start_push_ticket) less than 10 minutes ago.".into();
            }
            asked.insert(appid.to_owned(), Instant::now());
        }
        let Some(app) = self.inner.config.app(appid) else {
            return String::new();
        };
        match api::start_push_ticket(&self.inner.client, appid, &app.secret).await {
            Ok(()) => {
                tracing::warn!(component = %appid, "asked the platform to push component_verify_ticket again (api_start_push_ticket)");
                "wxpush asked the platform to push one again (api_start_push_ticket); it arrives within 10 minutes.".into()
            }
            Err(error) => format!("Asking the platform to push one again failed: {error}"),
        }
    }

    async fn refresh_miniprogram(
        &self,
        appid: &str,
        failed: Option<&str>,
    ) -> Result<Token, String> {
        let app = self.inner.config.app(appid).ok_or("not configured")?;
        let client = &self.inner.client;
        let issued = api::stable_token(client, appid, &app.secret, false)
            .await
            .map_err(|e| e.to_string())?;
        // Normal mode answers the token still valid: if that is the one that failed, only a
        // forced refresh (limited by the platform) replaces it.
        let issued = match failed {
            Some(f) if same(f, &issued.access_token) && self.may_force(appid) => {
                api::stable_token(client, appid, &app.secret, true)
                    .await
                    .map_err(|e| e.to_string())?
            }
            _ => issued,
        };
        self.save_issued(appid, Kind::MiniProgram, issued, None)
            .await
    }

    fn may_force(&self, appid: &str) -> bool {
        let mut forced = self
            .inner
            .forced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if forced
            .get(appid)
            .is_some_and(|at| at.elapsed() < FORCE_EVERY)
        {
            return false;
        }
        forced.insert(appid.to_owned(), Instant::now());
        true
    }

    /// Saves a new token (with the authorizer's new refresh token, in the same write) and
    /// returns it: nothing is handed out before it is durable.
    pub(super) async fn save_issued(
        &self,
        appid: &str,
        kind: Kind,
        issued: Issued,
        authorizer: Option<crate::store::StoredAuthorizer>,
    ) -> Result<Token, String> {
        let now = clock::now_ms();
        let row = self.token_row(appid, kind, &issued, now);
        let expires_at = row.expires_at.unwrap_or(now);
        let write = CredentialWrite {
            token: Some(row),
            authorizer,
            drop_token: None,
        };
        self.inner
            .store
            .save(write)
            .await
            .map_err(|e| format!("the new token could not be saved: {e}"))?;
        Ok(Token {
            appid: appid.to_owned(),
            kind,
            access_token: issued.access_token,
            expires_at,
        })
    }

    /// The row for a token issued `now`: sealed, with when to refresh it — the margin
    /// before expiry (at most 4 minutes for stable tokens, which the platform renews only
    /// in their last 5), or halfway there when it is already closer.
    pub(super) fn token_row(
        &self,
        appid: &str,
        kind: Kind,
        issued: &Issued,
        now: i64,
    ) -> StoredToken {
        let expires_at = now.saturating_add(issued.expires_in.max(0).saturating_mul(1000));
        let mut margin =
            i64::try_from(self.inner.config.refresh_margin.as_millis()).unwrap_or(i64::MAX / 4);
        if kind == Kind::MiniProgram {
            margin = margin.min(STABLE_RENEWAL_MS);
        }
        let mut refresh_at = expires_at.saturating_sub(margin);
        if refresh_at <= now {
            refresh_at = now + (expires_at - now) / 2;
        }
        StoredToken {
            appid: appid.to_owned(),
            kind: kind.as_str().to_owned(),
            access_token: Some(
                self.inner
                    .sealer
                    .seal(&format!("token:{appid}"), issued.access_token.expose()),
            ),
            expires_at: Some(expires_at),
            refresh_at: Some(refresh_at),
            refreshed_at: Some(now),
            last_error: None,
        }
    }

    /// Seals a value for the store.
    pub(super) fn seal(&self, what: &str, value: &Secret<String>) -> String {
        self.inner.sealer.seal(what, value.expose())
    }
}

/// Whether `a` is the token `b`, compared in constant time.
pub(super) fn same(a: &str, b: &Secret<String>) -> bool {
    a.as_bytes().ct_eq(b.expose().as_bytes()).into()
}
