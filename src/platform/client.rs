//! The one client for the platform's HTTP APIs: JSON in and out, `errcode` turned into
//! [`ApiError`] with the fix for each code wxpush knows, "system busy" (-1) retried with
//! doubling delays, and no token or secret in any error (the URL, which carries the access
//! token, is never printed).

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::escape::printable;
use crate::secret::Secret;

/// The platform's API host.
pub const DEFAULT_API_BASE: &str = "https://api.weixin.qq.com";

/// Why a call to the platform failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The platform answered with a non-zero `errcode`.
    #[error("{api}: errcode {errcode} ({}): {}", printable(errmsg), fix(*errcode))]
    Platform {
        /// The API called (e.g. `api_component_token`).
        api: &'static str,
        /// The platform's code.
        errcode: i64,
        /// The platform's message, as sent.
        errmsg: String,
    },
    /// -1 on every attempt.
    #[error("{api}: errcode -1 (system busy) on all {attempts} attempts; try again later")]
    Busy {
        /// The API called.
        api: &'static str,
        /// How many attempts were made.
        attempts: u32,
    },
    /// No answer, or not a JSON one.
    #[error("{api}: {detail}")]
    Http {
        /// The API called.
        api: &'static str,
        /// What went wrong, without the URL.
        detail: String,
    },
}

impl ApiError {
    /// The platform's code, when it answered with one.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            Self::Platform { errcode, .. } => Some(*errcode),
            Self::Busy { .. } => Some(-1),
            Self::Http { .. } => None,
        }
    }

    /// Whether the access token used was refused as invalid or expired (40001, 40014,
    /// 42001): a managed token is then refreshed once, if still the one that failed.
    pub fn is_bad_token(&self) -> bool {
        matches!(self.errcode(), Some(40001 | 40014 | 42001))
    }
}

/// What to do about an error code.
pub fn fix(errcode: i64) -> &'static str {
    match errcode {
        40001 | 40014 | 42001 => {
            "the access token is invalid or expired; a token wxpush manages is refreshed once and the call retried; a hand-given one must be fetched again"
        }
        40013 => "invalid app id: check the app's appid against the platform's console",
        40125 | 41004 => {
            "invalid or missing app secret: check component_appsecret (third-party platform) or appsecret (Mini Program) against the console; it changes when reset there"
        }
        40164 | 61004 => {
            "this server's outbound IP address is not on the API IP whitelist: add it in the platform's console"
        }
        45009 => "the API's daily quota is used up: it resets at midnight (Beijing time)",
        48001 => {
            "this token cannot call this API: a third-party platform calls Mini Program APIs with the authorizer's token (--authorizer APPID), a Mini Program with its own (appsecret)"
        }
        61005 => {
            "component_verify_ticket expired: wxpush asks the platform to push a new one (api_start_push_ticket); it arrives at the message push URL within 10 minutes"
        }
        61006 => {
            "component_verify_ticket invalid: the stored ticket is not the latest for this component app id; check that the platform's ticket pushes reach wxpush (`wxpush tokens list` shows the ticket's age)"
        }
        61007 => {
            "the Mini Program has not granted this third-party platform the permission set this API needs: it must authorize again with that permission set"
        }
        61023 => {
            "the authorizer's refresh token is invalid: wxpush recovers it with `wxpush authorizers import` (api_get_authorizer_list); if it is not listed, the Mini Program must authorize again"
        }
        40007 => {
            "invalid media_id: a media id is unknown, expired (temporary media last 3 days) or from another account; upload the file again with `wxpush media upload FILE --authorizer APPID` (or `--cert NAME=@FILE`)"
        }
        40004 | 40005 | 40006 | 40009 => {
            "the file is not accepted as an image: upload a JPG or PNG of at most 10 MB"
        }
        53300 => "the account's category changes for this month are used up: try next month",
        53301 => "the account already has the most categories it may set: delete one first",
        53302 => {
            "this account's type (its subject) may not set this category: pick another from `wxpush categories settable`"
        }
        53303 => {
            "the request's parameters are invalid: check first/second against `wxpush categories settable` (ids are numbers; a category may have been replaced by a newer one)"
        }
        53304 => "the category is already set on the account (see `wxpush categories current`)",
        53305 => {
            "the request includes a category that failed the platform's checks: remove it and submit the others"
        }
        53306 => "modifycategory only changes qualifications, not the category ids",
        53307 => {
            "only a rejected category can be modified: see its state with `wxpush categories current`"
        }
        53308 => "a category in review cannot be deleted: wait for its result",
        53309 => "this category (social red packets) cannot be deleted",
        53310 => {
            "the account is at its category limit; more can be asked for only through the platform's console"
        }
        53311 => {
            "this category needs qualifications: give each document `wxpush categories settable` names, as --cert NAME=MEDIA_ID or NAME=@FILE"
        }
        -1 => "system busy: retried; try again later",
        _ => "see the platform's error code list",
    }
}

/// A client of the platform's APIs at one base URL.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    busy_attempts: u32,
    busy_backoff: Duration,
}

impl ApiClient {
    /// A client of the APIs at `base` (e.g. [`DEFAULT_API_BASE`]), with a 15 s timeout per
    /// request and "system busy" tried 4 times, 500 ms apart and doubling.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(base: &str) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| ApiError::Http {
                api: "client",
                detail: e.to_string(),
            })?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            busy_attempts: 4,
            busy_backoff: Duration::from_millis(500),
        })
    }

    /// How "system busy" is retried: `attempts` in all, waiting `backoff` then doubling.
    pub fn with_busy_retries(mut self, attempts: u32, backoff: Duration) -> Self {
        self.busy_attempts = attempts.max(1);
        self.busy_backoff = backoff;
        self
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// POSTs `body` as JSON to `path`, with the token (if any) as the query parameter
    /// `token.0`, and reads the answer as `T` once `errcode` is 0 or absent.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn post<T: DeserializeOwned>(
        &self,
        api: &'static str,
        path: &str,
        token: Option<(&'static str, &Secret<String>)>,
        body: &impl serde::Serialize,
    ) -> Result<T, ApiError> {
        let body = serde_json::to_vec(body).map_err(|e| ApiError::Http {
            api,
            detail: format!("the request body: {e}"),
        })?;
        self.post_raw(api, path, token, &[], ("application/json", body))
            .await
    }

    /// POSTs `body` as it is, of `content_type`, with the token (if any) and `query`.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn post_raw<T: DeserializeOwned>(
        &self,
        api: &'static str,
        path: &str,
        token: Option<(&'static str, &Secret<String>)>,
        query: &[(&str, &str)],
        (content_type, body): (&str, Vec<u8>),
    ) -> Result<T, ApiError> {
        self.call(
            api,
            token,
            |url| {
                self.http
                    .post(url)
                    .query(query)
                    .header("content-type", content_type)
                    .body(body.clone())
            },
            path,
        )
        .await
    }

    /// GETs `path` with the token (if any) as the query parameter `token.0` and `query`.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn get<T: DeserializeOwned>(
        &self,
        api: &'static str,
        path: &str,
        token: Option<(&'static str, &Secret<String>)>,
        query: &[(&str, &str)],
    ) -> Result<T, ApiError> {
        self.call(api, token, |url| self.http.get(url).query(query), path)
            .await
    }

    /// Sends a request `build` makes, retrying "system busy".
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        api: &'static str,
        token: Option<(&'static str, &Secret<String>)>,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
        path: &str,
    ) -> Result<T, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut delay = self.busy_backoff;
        for attempt in 1..=self.busy_attempts {
            let mut request = build(&url);
            if let Some((name, value)) = token {
                request = request.query(&[(name, value.expose().as_str())]);
            }
            let answer = self.send(api, request).await?;
            match answer_errcode(&answer) {
                0 => return read(api, answer),
                -1 if attempt < self.busy_attempts => {
                    tracing::warn!(api, attempt, "system busy (-1), retrying");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
                -1 => break,
                errcode => {
                    let errmsg = answer["errmsg"].as_str().unwrap_or_default().to_owned();
                    return Err(ApiError::Platform {
                        api,
                        errcode,
                        errmsg,
                    });
                }
            }
        }
        Err(ApiError::Busy {
            api,
            attempts: self.busy_attempts,
        })
    }

    async fn send(
        &self,
        api: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, ApiError> {
        let http = |detail: String| ApiError::Http { api, detail };
        let response = request
            .send()
            .await
            .map_err(|e| http(unreachable(&self.base, e)))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| http(e.without_url().to_string()))?;
        serde_json::from_str(&text).map_err(|_| {
            http(format!(
                "HTTP {status}, not a JSON answer: {}",
                printable(&text.chars().take(200).collect::<String>())
            ))
        })
    }
}

fn answer_errcode(answer: &serde_json::Value) -> i64 {
    answer["errcode"].as_i64().unwrap_or(0)
}

fn read<T: DeserializeOwned>(api: &'static str, answer: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(answer).map_err(|e| ApiError::Http {
        api,
        detail: format!("unexpected answer: {e}"),
    })
}

/// Says which host could not be reached and why, from the error's whole chain of causes
/// (the URL, which holds the access token, is left out).
fn unreachable(base: &str, error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = format!("cannot reach {base}: {error}");
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
    fn every_code_the_category_and_token_apis_document_has_its_own_fix() {
        let generic = fix(99_999);
        let codes = (53300..=53311).chain([
            40001, 40014, 42001, 40007, 48001, 61007, 61005, 61006, 61023, -1, 40125, 40164,
        ]);
        for code in codes {
            assert_ne!(fix(code), generic, "{code}");
        }
    }

    #[test]
    fn an_error_shows_the_code_the_platforms_message_and_the_fix() {
        let error = ApiError::Platform {
            api: "addcategory",
            errcode: 53308,
            errmsg: "in review\r\nforged line".into(),
        };
        let text = error.to_string();
        assert!(
            text.starts_with("addcategory: errcode 53308 (in review"),
            "{text}"
        );
        assert!(
            text.contains("wait for its result") && !text.contains('\n'),
            "{text}"
        );
        assert!(
            !ApiError::Busy {
                api: "x",
                attempts: 4
            }
            .is_bad_token()
        );
        assert!(
            ApiError::Platform {
                api: "x",
                errcode: 42001,
                errmsg: String::new()
            }
            .is_bad_token()
        );
    }
}
