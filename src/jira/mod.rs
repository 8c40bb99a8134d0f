//! The Jira Cloud user API client, used only to match Bitbucket accounts to e-mail addresses.
//!
//! It authenticates with Basic `user:key` against `jira_credentials.url` (a classic API token;
//! scoped tokens only work through `https://api.atlassian.com/ex/jira/{cloudId}`, and a 401 that
//! looks like a scoped token on a `*.atlassian.net` URL is explained as such). It reads:
//! [`JiraClient::myself`], every user through [`JiraClient::users_search`] (bare arrays of up
//! to 1,000), chosen users through [`JiraClient::users_bulk`] (chunks of 50), one user, and
//! users matching an e-mail address. Jira hides e-mail addresses by privacy setting; a hidden
//! address becomes `None`, never an empty string.
//!
//! Retries follow the same policy as the Bitbucket client (see [`crate::bitbucket::retry`]):
//! 429, 5xx, connection errors and timeouts are retried with full-jitter exponential backoff
//! (honouring `Retry-After`, which Jira does send), other 4xx never. Credentials never appear
//! in errors, `Debug` output or logs; spans name the endpoint template only.

use crate::bitbucket::retry::{parse_retry_after, RetryPolicy};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, RETRY_AFTER};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;
use url::Url;

/// `GET /rest/api/3/myself`.
pub const MYSELF: &str = "/rest/api/3/myself";
/// `GET /rest/api/3/users/search`.
pub const USERS_SEARCH: &str = "/rest/api/3/users/search";
/// `GET /rest/api/3/user/bulk`.
pub const USER_BULK: &str = "/rest/api/3/user/bulk";
/// `GET /rest/api/3/user`.
pub const USER: &str = "/rest/api/3/user";
/// `GET /rest/api/3/user/search`.
pub const USER_SEARCH: &str = "/rest/api/3/user/search";

/// Page size of `users/search` (Jira's maximum).
pub const USERS_SEARCH_PAGE: u32 = 1000;
/// Account IDs per `user/bulk` request; longer query strings risk 414 answers.
pub const BULK_CHUNK: usize = 50;

/// Jira account types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountType {
    /// A person with an Atlassian account.
    Atlassian,
    /// An app (bot) user.
    App,
    /// A Jira Service Management customer.
    Customer,
    /// Anything else.
    #[serde(other)]
    Unknown,
}

/// A Jira user, as far as identity matching needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JiraUser {
    /// The Atlassian account ID (shared with Bitbucket).
    pub account_id: String,
    /// The kind of account.
    pub account_type: AccountType,
    /// The e-mail address, or `None` when the user's privacy settings hide it.
    pub email: Option<String>,
    /// Display name.
    pub display_name: String,
    /// Whether the account is active.
    pub active: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawUser {
    account_id: String,
    #[serde(default)]
    account_type: Option<AccountType>,
    #[serde(default)]
    email_address: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    active: Option<bool>,
}

impl<'de> Deserialize<'de> for JiraUser {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawUser::deserialize(d)?;
        Ok(JiraUser {
            account_id: raw.account_id,
            account_type: raw.account_type.unwrap_or(AccountType::Unknown),
            // Jira sends an empty string (or nothing) for hidden addresses.
            email: raw
                .email_address
                .map(|e| e.trim().to_owned())
                .filter(|e| !e.is_empty()),
            display_name: raw.display_name.unwrap_or_default(),
            active: raw.active.unwrap_or(false),
        })
    }
}

/// What went wrong with a Jira call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JiraErrorKind {
    /// 401: wrong user or key.
    Unauthorized,
    /// 401 that Jira attributes to token scopes: a scoped token used on the site URL.
    ScopedToken,
    /// 403: the account lacks the *Browse users and groups* permission.
    Forbidden,
    /// 404.
    NotFound,
    /// 429 after every retry.
    RateLimited,
    /// Other 4xx.
    ClientError,
    /// 5xx after every retry.
    Server,
    /// Connection failure after every retry.
    Transport,
    /// Timeout after every retry.
    Timeout,
    /// Unexpected body.
    Decode,
    /// A listing could not be read to its end.
    Incomplete,
    /// Unusable settings; nothing was sent.
    Config,
}

/// A failed Jira call, with a hint for the person who has to fix it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Jira {endpoint}: {}{message}. {hint}", status.map(|s| format!("HTTP {s}: ")).unwrap_or_default())]
pub struct JiraError {
    /// HTTP status when an answer arrived.
    pub status: Option<u16>,
    /// Jira's message or a description of the local failure.
    pub message: String,
    /// The endpoint template.
    pub endpoint: &'static str,
    /// The kind of failure.
    pub kind: JiraErrorKind,
    /// What to do about it.
    pub hint: String,
}

impl JiraError {
    fn local(kind: JiraErrorKind, endpoint: &'static str, message: impl Into<String>) -> Self {
        let hint = match kind {
            JiraErrorKind::Transport => "Could not reach Jira: check `jira_credentials.url`, the network and proxy settings.",
            JiraErrorKind::Timeout => "Jira did not answer in time; try again later.",
            JiraErrorKind::Decode => "Jira's answer did not have the expected shape; please report it with the endpoint named above.",
            JiraErrorKind::Incomplete => "The user listing could not be read to its end, so nothing was concluded from it; run again.",
            JiraErrorKind::Config => "Fix `jira_credentials` (url, user, key).",
            _ => "Try again later.",
        };
        JiraError {
            status: None,
            message: message.into(),
            endpoint,
            kind,
            hint: hint.to_owned(),
        }
    }

    fn from_response(
        status: u16,
        body: &[u8],
        endpoint: &'static str,
        site: &Url,
        attempts: u32,
    ) -> Self {
        let message = jira_message(body);
        // A scoped token sent to the site URL gets a 401 that mentions scopes; the gateway host
        // is the one place where the scoped-token advice would be wrong.
        let via_gateway = site.host_str() == Some("api.atlassian.com");
        let scope_words = message.to_ascii_lowercase().contains("scope");
        let (kind, hint) = match status {
            401 if scope_words && !via_gateway => (
                JiraErrorKind::ScopedToken,
                format!(
                    "`jira_credentials.key` looks like a scoped API token: {}",
                    scoped_hint(site)
                ),
            ),
            401 if !via_gateway => (
                JiraErrorKind::Unauthorized,
                format!(
                    "Jira rejected `jira_credentials`: check that `user` is the Atlassian account e-mail \
                     and `key` a valid, unexpired classic API token; {}",
                    scoped_hint(site)
                ),
            ),
            401 => (
                JiraErrorKind::Unauthorized,
                "Jira rejected `jira_credentials`: check that `user` is the Atlassian account e-mail \
                 and `key` a valid, unexpired API token."
                    .to_owned(),
            ),
            403 => (
                JiraErrorKind::Forbidden,
                "The Jira account lacks the 'Browse users and groups' global permission; grant it \
                 (or use an account that has it) so users and their e-mail addresses can be read."
                    .to_owned(),
            ),
            404 => (
                JiraErrorKind::NotFound,
                "Nothing was found: check that `jira_credentials.url` is the site URL \
                 (https://your-site.atlassian.net) and that the account ID exists."
                    .to_owned(),
            ),
            429 => (
                JiraErrorKind::RateLimited,
                format!("Jira's rate limit was still exceeded after {attempts} attempts; try again later."),
            ),
            500..=599 => (
                JiraErrorKind::Server,
                format!("Jira failed on its side after {attempts} attempts; try again later."),
            ),
            _ => (
                JiraErrorKind::ClientError,
                format!("Jira answered HTTP {status}; check `jira_credentials`."),
            ),
        };
        JiraError {
            status: Some(status),
            message,
            endpoint,
            kind,
            hint,
        }
    }
}

fn scoped_hint(site: &Url) -> String {
    format!(
        "scoped tokens only work through https://api.atlassian.com/ex/jira/{{cloudId}}, so a \
         site URL such as {} (*.atlassian.net) needs a classic API token (created without \
         scopes at https://id.atlassian.com/manage-profile/security/api-tokens).",
        site.host_str().unwrap_or("the site URL")
    )
}

/// Jira's error bodies: `{"errorMessages": [...], "errors": {...}}` or `{"message": "..."}`.
fn jira_message(body: &[u8]) -> String {
    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct Body {
        error_messages: Vec<String>,
        errors: BTreeMap<String, serde_json::Value>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(b) => {
            let mut parts = b.error_messages;
            parts.extend(b.errors.into_iter().map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            }));
            parts.extend(b.message);
            if parts.is_empty() {
                "no message".to_owned()
            } else {
                parts.join("; ")
            }
        }
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() || text.starts_with('<') {
                "no message".to_owned()
            } else {
                text.chars().take(200).collect()
            }
        }
    }
}

/// Settings of a [`JiraClient`], from `jira_credentials`.
#[derive(Clone)]
pub struct JiraSettings {
    /// The site URL, e.g. `https://acme.atlassian.net`.
    pub base_url: Url,
    /// The account e-mail.
    pub user: String,
    /// The API token.
    pub key: SecretString,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for any read.
    pub read_timeout: Duration,
}

impl JiraSettings {
    /// Settings with default timeouts.
    pub fn new(base_url: Url, user: impl Into<String>, key: SecretString) -> Self {
        JiraSettings {
            base_url,
            user: user.into(),
            key,
            connect_timeout: crate::config::DEFAULT_CONNECT_TIMEOUT,
            read_timeout: crate::config::DEFAULT_READ_TIMEOUT,
        }
    }
}

impl fmt::Debug for JiraSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JiraSettings")
            .field("base_url", &self.base_url.as_str())
            .field("user", &self.user)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

/// The Jira client; cheap to clone.
#[derive(Clone)]
pub struct JiraClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    auth_header: HeaderValue,
    retry: RetryPolicy,
    counts: Mutex<BTreeMap<String, u64>>,
}

impl fmt::Debug for JiraClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JiraClient")
            .field("base_url", &self.inner.base.as_str())
            .field("retry", &self.inner.retry)
            .finish()
    }
}

impl JiraClient {
    /// A client with the default retry policy.
    pub fn new(settings: JiraSettings) -> Result<Self, JiraError> {
        Self::with_retry(settings, RetryPolicy::default())
    }

    /// A client with a custom retry policy.
    pub fn with_retry(settings: JiraSettings, retry: RetryPolicy) -> Result<Self, JiraError> {
        use base64::Engine as _;
        if settings.base_url.cannot_be_a_base() || settings.base_url.host_str().is_none() {
            return Err(JiraError::local(
                JiraErrorKind::Config,
                "(url)",
                "`jira_credentials.url` must be an absolute URL such as https://acme.atlassian.net",
            ));
        }
        let pair = format!("{}:{}", settings.user, settings.key.expose_secret());
        let mut auth_header = HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
        .map_err(|_| {
            JiraError::local(
                JiraErrorKind::Config,
                "(credentials)",
                "the user or key contains characters that cannot be sent in an HTTP header",
            )
        })?;
        auth_header.set_sensitive(true);
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.read_timeout)
            // Credentials must never follow a redirect; Jira's REST API does not redirect.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("bitbucket-access/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                JiraError::local(
                    JiraErrorKind::Config,
                    "(http client)",
                    format!("could not build the HTTP client: {}", e.without_url()),
                )
            })?;
        Ok(JiraClient {
            inner: Arc::new(Inner {
                http,
                base: settings.base_url,
                auth_header,
                retry,
                counts: Mutex::new(BTreeMap::new()),
            }),
        })
    }

    /// Requests sent so far (all attempts) per endpoint template.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.inner
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn url(&self, endpoint: &'static str, query: &[(&str, &str)]) -> Result<Url, JiraError> {
        let mut url = self.inner.base.clone();
        url.set_query(None);
        {
            let mut path = url.path_segments_mut().map_err(|_| {
                JiraError::local(
                    JiraErrorKind::Config,
                    endpoint,
                    "the Jira URL cannot hold a path",
                )
            })?;
            path.pop_if_empty();
            for segment in endpoint.trim_start_matches('/').split('/') {
                path.push(segment);
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// The account the credentials belong to; the cheapest check that they work.
    pub async fn myself(&self) -> Result<JiraUser, JiraError> {
        let url = self.url(MYSELF, &[])?;
        self.get_json(MYSELF, url).await
    }

    /// One user by account ID.
    pub async fn user(&self, account_id: &str) -> Result<JiraUser, JiraError> {
        let url = self.url(USER, &[("accountId", account_id)])?;
        self.get_json(USER, url).await
    }

    /// Users whose e-mail address or display name starts with `query` (up to 100).
    pub async fn search_by_email(&self, query: &str) -> Result<Vec<JiraUser>, JiraError> {
        let url = self.url(USER_SEARCH, &[("query", query), ("maxResults", "100")])?;
        self.get_json(USER_SEARCH, url).await
    }

    /// Every user of the site (active, inactive and deleted), in pages of 1,000.
    pub fn users_search(&self) -> BoxStream<'static, Result<JiraUser, JiraError>> {
        self.users_search_paged(USERS_SEARCH_PAGE)
    }

    /// Like [`Self::users_search`] with another page size. The listing ends at the first empty
    /// page or the first page shorter than `page_size`.
    pub fn users_search_paged(
        &self,
        page_size: u32,
    ) -> BoxStream<'static, Result<JiraUser, JiraError>> {
        let page_size = page_size.max(1);
        let client = self.clone();
        stream::try_unfold(Some(0u64), move |start| {
            let client = client.clone();
            async move {
                let Some(start) = start else {
                    return Ok(None);
                };
                let url = client.url(
                    USERS_SEARCH,
                    &[
                        ("startAt", &start.to_string()),
                        ("maxResults", &page_size.to_string()),
                    ],
                )?;
                let answer = client.send(USERS_SEARCH, url).await?;
                let users: Vec<JiraUser> = serde_json::from_slice(&answer).map_err(|e| {
                    JiraError::local(
                        JiraErrorKind::Incomplete,
                        USERS_SEARCH,
                        format!("a page of users was cut short or is not a JSON array ({e})"),
                    )
                })?;
                let next = if users.is_empty() || users.len() < page_size as usize {
                    None
                } else {
                    Some(start + users.len() as u64)
                };
                Ok(Some((stream::iter(users.into_iter().map(Ok)), next)))
            }
        })
        .try_flatten()
        .boxed()
    }

    /// The users with these account IDs, asked for in chunks of [`BULK_CHUNK`]. IDs Jira does
    /// not know are absent from the result.
    pub async fn users_bulk(&self, account_ids: &[String]) -> Result<Vec<JiraUser>, JiraError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct PageBeanUser {
            #[serde(default)]
            values: Option<Vec<JiraUser>>,
            #[serde(default)]
            is_last: Option<bool>,
            #[serde(default)]
            next_page: Option<String>,
        }
        let mut users = Vec::with_capacity(account_ids.len());
        for chunk in account_ids.chunks(BULK_CHUNK) {
            let max = BULK_CHUNK.to_string();
            let mut query: Vec<(&str, &str)> = vec![("startAt", "0"), ("maxResults", &max)];
            query.extend(chunk.iter().map(|id| ("accountId", id.as_str())));
            let mut next = Some(self.url(USER_BULK, &query)?);
            let mut pages = 0;
            while let Some(url) = next.take() {
                pages += 1;
                let answer = self.send(USER_BULK, url.clone()).await?;
                let page: PageBeanUser = serde_json::from_slice(&answer).map_err(|e| {
                    JiraError::local(
                        JiraErrorKind::Incomplete,
                        USER_BULK,
                        format!("a page of users was cut short or is not JSON ({e})"),
                    )
                })?;
                let Some(values) = page.values else {
                    return Err(JiraError::local(
                        JiraErrorKind::Incomplete,
                        USER_BULK,
                        "a page of users has no `values`",
                    ));
                };
                users.extend(values);
                if page.is_last == Some(false) {
                    let link = page.next_page.ok_or_else(|| {
                        JiraError::local(
                            JiraErrorKind::Incomplete,
                            USER_BULK,
                            "a page says it is not the last but gives no `nextPage`",
                        )
                    })?;
                    let link = url.join(&link).map_err(|_| {
                        JiraError::local(
                            JiraErrorKind::Incomplete,
                            USER_BULK,
                            "`nextPage` is not a URL",
                        )
                    })?;
                    let base = &self.inner.base;
                    if link.host_str() != base.host_str()
                        || link.port_or_known_default() != base.port_or_known_default()
                        || pages > account_ids.len() + 1
                    {
                        return Err(JiraError::local(
                            JiraErrorKind::Incomplete,
                            USER_BULK,
                            "refusing to follow `nextPage` to another host or in a loop",
                        ));
                    }
                    next = Some(link);
                }
            }
        }
        Ok(users)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &'static str,
        url: Url,
    ) -> Result<T, JiraError> {
        let body = self.send(endpoint, url).await?;
        serde_json::from_slice(&body).map_err(|e| {
            JiraError::local(
                JiraErrorKind::Decode,
                endpoint,
                format!("could not read the answer: {e}"),
            )
        })
    }

    async fn send(&self, endpoint: &'static str, url: Url) -> Result<Vec<u8>, JiraError> {
        let span = tracing::info_span!(
            "jira_request",
            endpoint,
            status = tracing::field::Empty,
            attempts = tracing::field::Empty
        );
        self.send_inner(endpoint, url).instrument(span).await
    }

    async fn send_inner(&self, endpoint: &'static str, url: Url) -> Result<Vec<u8>, JiraError> {
        let inner = &self.inner;
        let mut attempt = 0u32;
        let mut waited = Duration::ZERO;
        loop {
            attempt += 1;
            *inner
                .counts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(format!("GET {endpoint}"))
                .or_default() += 1;
            let result = inner
                .http
                .get(url.clone())
                .header(AUTHORIZATION, inner.auth_header.clone())
                .header(ACCEPT, "application/json")
                .send()
                .await;
            let outcome = match result {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    response
                        .bytes()
                        .await
                        .map(|b| (status, retry_after, b.to_vec()))
                }
                Err(e) => Err(e),
            };
            let span = tracing::Span::current();
            span.record("attempts", attempt);
            let (error, retry_after) = match outcome {
                Ok((status, _, body)) if status.is_success() => {
                    span.record("status", status.as_u16());
                    return Ok(body);
                }
                Ok((status, retry_after, body)) => {
                    span.record("status", status.as_u16());
                    let error = JiraError::from_response(
                        status.as_u16(),
                        &body,
                        endpoint,
                        &inner.base,
                        attempt,
                    );
                    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
                        return Err(error);
                    }
                    (error, retry_after)
                }
                Err(e) => {
                    let kind = if e.is_timeout() {
                        JiraErrorKind::Timeout
                    } else {
                        JiraErrorKind::Transport
                    };
                    (
                        JiraError::local(kind, endpoint, e.without_url().to_string()),
                        None,
                    )
                }
            };
            match inner.retry.next_delay(attempt, waited, retry_after) {
                Some(delay) => {
                    tracing::warn!(
                        status = error.status,
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        "retrying Jira request after a transient failure"
                    );
                    waited += delay;
                    tokio::time::sleep(delay).await;
                }
                None => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_or_empty_email_is_none() {
        let users: Vec<JiraUser> = serde_json::from_str(
            r#"[{"accountId":"a","accountType":"atlassian","active":true,"displayName":"A","emailAddress":""},
                {"accountId":"b","accountType":"app","active":true,"displayName":"B"},
                {"accountId":"c","accountType":"robot","displayName":"C","emailAddress":"c@x.com"}]"#,
        )
        .expect("users decode");
        assert_eq!(users[0].email, None);
        assert_eq!(users[1].email, None);
        assert_eq!(users[1].account_type, AccountType::App);
        assert_eq!(users[2].email.as_deref(), Some("c@x.com"));
        assert_eq!(users[2].account_type, AccountType::Unknown);
        assert!(!users[2].active);
    }

    #[test]
    fn settings_debug_hides_the_key() {
        let settings = JiraSettings::new(
            Url::parse("https://acme.atlassian.net").expect("url"),
            "svc@acme.com",
            SecretString::from("jira-secret-key".to_owned()),
        );
        assert!(!format!("{settings:?}").contains("jira-secret-key"));
    }
}
