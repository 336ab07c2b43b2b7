//! The token service's settings: which apps have a secret, `api_base`, `secrets_key`,
//! `[tokens]`, and `[admin] api_token`.

use std::time::Duration;

use super::ConfigError;
use super::numbers::positive;
use super::raw::{RawAdmin, RawApp, RawTokens};
use crate::push::app::App;
use crate::secret::Secret;
use crate::server::console::ConsoleConfig;
use crate::tokens::{AppKind, ManagedApp, TokensConfig};

/// Each app's secrets as read, keyed like its table (`app`, `apps[0]`, …), taken before
/// the apps are validated.
pub(super) struct AppSecrets(Vec<(String, String, String)>);

impl AppSecrets {
    pub(super) fn take(first: &mut RawApp, more: &mut [RawApp]) -> Self {
        let mut out = vec![(
            "app".to_owned(),
            std::mem::take(&mut first.component_appsecret),
            std::mem::take(&mut first.appsecret),
        )];
        for (i, app) in more.iter_mut().enumerate() {
            out.push((
                format!("apps[{i}]"),
                std::mem::take(&mut app.component_appsecret),
                std::mem::take(&mut app.appsecret),
            ));
        }
        Self(out)
    }
}

/// The token service's configuration, from the apps (in table order) and their secrets.
pub(super) fn validate_tokens(
    apps: &[&App],
    secrets: AppSecrets,
    api_base: &str,
    secrets_key: &str,
    raw: &RawTokens,
) -> Result<TokensConfig, ConfigError> {
    let mut managed = Vec::new();
    for (app, (key, component, own)) in apps.iter().zip(secrets.0) {
        let (component, own) = (component.trim().to_owned(), own.trim().to_owned());
        let (secret, kind) = match (component.is_empty(), own.is_empty()) {
            (true, true) => continue,
            (false, false) => {
                return Err(ConfigError::new(
                    format!("{key}.appsecret"),
                    "set component_appsecret (a third-party platform) or appsecret (a Mini Program's own token), not both",
                ));
            }
            (false, true) => (component, AppKind::Component),
            (true, false) => (own, AppKind::MiniProgram),
        };
        if managed.iter().any(|m: &ManagedApp| m.appid == app.appid) {
            return Err(ConfigError::new(
                format!("{key}.appid"),
                format!("{} has a secret in two apps: give it in one", app.appid),
            ));
        }
        managed.push(ManagedApp {
            name: app.name.clone(),
            appid: app.appid.clone(),
            secret: Secret::new(secret),
            kind,
        });
    }
    let api_base = api_base.trim().trim_end_matches('/').to_owned();
    if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
        return Err(ConfigError::new(
            "api_base",
            format!("expected an http(s):// URL, got '{api_base}'"),
        ));
    }
    let secrets_key = match secrets_key.trim() {
        "" => None,
        text => Some(
            crate::tokens::sealed::parse_key(text)
                .map_err(|problem| ConfigError::new("secrets_key", problem))?,
        ),
    };
    let margin = positive(raw.refresh_margin_secs, "tokens.refresh_margin_secs", 0)?;
    Ok(TokensConfig {
        api_base,
        refresh_margin: Duration::from_secs(margin as u64),
        secrets_key,
        apps: managed,
    })
}

/// `[admin]`: the API token (none when empty, else at least 16 characters) and the
/// console's settings (off without a password or an API token).
pub(super) fn validate_admin(
    raw: RawAdmin,
) -> Result<(Option<Secret<String>>, Option<ConsoleConfig>), ConfigError> {
    let api_token = secret(&raw.api_token, "admin.api_token", 16)?;
    let password = secret(&raw.console_password, "admin.console_password", 12)?;
    let console = password
        .or_else(|| api_token.clone())
        .map(|s| ConsoleConfig {
            secrets: vec![s],
            secure_cookies: raw.secure_cookies,
            session_ttl: Duration::from_secs(8 * 3600),
        });
    Ok((api_token, console))
}

/// A secret of at least `min` characters, or none when empty.
fn secret(text: &str, key: &str, min: usize) -> Result<Option<Secret<String>>, ConfigError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let len = text.chars().count();
    if len < min {
        return Err(ConfigError::new(
            key,
            format!(
                "expected at least {min} characters (e.g. from `openssl rand -hex 24`), got {len}"
            ),
        ));
    }
    Ok(Some(Secret::new(text.to_owned())))
}
