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
//! Every request goes through the same HTTP layer as the Bitbucket client
//! ([`crate::http::Transport`]): the configured timeouts, the retry policy (see
//! [`crate::http::retry`]; Jira does send `Retry-After`), its **own** request budget (Jira's
//! limits are separate from Bitbucket's), bounded bodies, same-origin requests only, and
//! every configured secret scrubbed from what Jira says. Credentials never appear in errors,
//! `Debug` output or logs; spans name the endpoint template only.

mod error;
mod gateway;

pub use error::{JiraError, JiraErrorKind};
pub use gateway::{connect, JiraRoute, DEFAULT_GATEWAY, TENANT_INFO};

use crate::http::{
    Budget, BudgetSettings, Credentials, HttpError, Limits, Request, RetryPolicy, Scrubber,
    Transport, TransportSettings,
};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use reqwest::Method;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
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

/// Pages `users/search` may take: ten million users, far beyond any site.
pub const MAX_USER_PAGES: u64 = 10_000;

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
    /// Longest wait for any read; with the connect timeout, the deadline of one attempt.
    pub read_timeout: Duration,
    /// Jira's own request budget (its limits are separate from Bitbucket's).
    pub budget: BudgetSettings,
    /// Body size and deadlines.
    pub limits: Limits,
}

impl JiraSettings {
    /// Settings with default timeouts, budget and limits.
    pub fn new(base_url: Url, user: impl Into<String>, key: SecretString) -> Self {
        JiraSettings {
            base_url,
            user: user.into(),
            key,
            connect_timeout: crate::config::DEFAULT_CONNECT_TIMEOUT,
            read_timeout: crate::config::DEFAULT_READ_TIMEOUT,
            budget: BudgetSettings::default(),
            limits: Limits::default(),
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

/// The Jira client; cheap to clone (clones share the connection pool and the budget).
#[derive(Clone)]
pub struct JiraClient {
    inner: Arc<Transport>,
}

impl fmt::Debug for JiraClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JiraClient")
            .field("transport", &self.inner)
            .finish()
    }
}

impl JiraClient {
    /// A client with the default retry policy and its own budget.
    pub fn new(settings: JiraSettings) -> Result<Self, JiraError> {
        Self::with_retry(settings, RetryPolicy::default())
    }

    /// A client with a custom retry policy and its own budget.
    pub fn with_retry(settings: JiraSettings, retry: RetryPolicy) -> Result<Self, JiraError> {
        let budget = Arc::new(Budget::new(settings.budget));
        Self::with_parts(settings, retry, budget, Scrubber::new())
    }

    /// A client with a custom retry policy, a given budget and further secrets to scrub (the
    /// Bitbucket token, say).
    pub fn with_parts(
        settings: JiraSettings,
        retry: RetryPolicy,
        budget: Arc<Budget>,
        scrubber: Scrubber,
    ) -> Result<Self, JiraError> {
        let site = settings.base_url.clone();
        let transport = Transport::new(TransportSettings {
            service: "Jira",
            base_url: settings.base_url,
            credentials: Credentials::Basic {
                user: settings.user,
                secret: settings.key,
            },
            connect_timeout: settings.connect_timeout,
            read_timeout: settings.read_timeout,
            retry,
            budget,
            limits: settings.limits,
            scrubber,
        })
        .map_err(|failure| {
            JiraError::from_http(
                HttpError::local("(jira_credentials)", Method::GET, failure),
                &site,
                &Scrubber::new(),
            )
        })?;
        Ok(JiraClient {
            inner: Arc::new(transport),
        })
    }

    /// Jira's budget, which this client and its clones spend.
    pub fn budget(&self) -> &Arc<Budget> {
        self.inner.budget()
    }

    /// Requests sent so far (all attempts) per `METHOD template`.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.inner.budget().request_counts()
    }

    fn fail(&self, error: HttpError) -> JiraError {
        JiraError::from_http(error, self.inner.base_url(), self.inner.scrubber())
    }

    fn url(&self, endpoint: &'static str, query: &[(&str, &str)]) -> Result<Url, JiraError> {
        self.inner
            .url(endpoint.trim_start_matches('/').split('/'), query)
            .map_err(|failure| self.fail(HttpError::local(endpoint, Method::GET, failure)))
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
                    client.local(
                        JiraErrorKind::Incomplete,
                        USERS_SEARCH,
                        format!("a page of users was cut short or is not a JSON array ({e})"),
                    )
                })?;
                let next = if users.is_empty() || users.len() < page_size as usize {
                    None
                } else if start / u64::from(page_size) + 1 >= MAX_USER_PAGES {
                    return Err(client.local(
                        JiraErrorKind::Incomplete,
                        USERS_SEARCH,
                        format!(
                            "the user listing still had full pages after {MAX_USER_PAGES} pages"
                        ),
                    ));
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
                    self.local(
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
                    if !self.inner.same_origin(&link) || pages > chunk.len() + 1 {
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
        self.inner
            .decode(&body)
            .map_err(|failure| self.fail(HttpError::local(endpoint, Method::GET, failure)))
    }

    async fn send(&self, endpoint: &'static str, url: Url) -> Result<Vec<u8>, JiraError> {
        self.inner
            .send(Request::get(endpoint, url))
            .await
            .map_err(|e| self.fail(e))
    }

    /// A local failure whose message may quote Jira (decoder messages do), scrubbed.
    fn local(
        &self,
        kind: JiraErrorKind,
        endpoint: &'static str,
        message: impl Into<String>,
    ) -> JiraError {
        JiraError::local(kind, endpoint, self.inner.scrubber().scrub(&message.into()))
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
