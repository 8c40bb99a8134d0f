//! The client struct, its settings, and the one request loop every handler goes through
//! (access-token check, budget admission, retries, error mapping, tracing).

use super::budget::{Budget, BudgetSettings};
use super::error::{ApiError, AuthMethod, ErrorKind};
use super::retry::{parse_retry_after, RetryPolicy};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;
use url::Url;

/// How the client authenticates.
#[derive(Clone)]
pub enum Auth {
    /// An Atlassian API token, sent as Basic `email:token` (the normal case).
    ApiToken {
        /// The Atlassian account e-mail of the token's owner.
        email: String,
        /// The API token.
        token: SecretString,
    },
    /// A repository, project or workspace access token, sent as Bearer. It cannot read or
    /// change permissions, nor list workspaces across the account.
    AccessToken(SecretString),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::ApiToken { email, .. } => f
                .debug_struct("ApiToken")
                .field("email", email)
                .field("token", &"[REDACTED]")
                .finish(),
            Auth::AccessToken(_) => f.debug_tuple("AccessToken").field(&"[REDACTED]").finish(),
        }
    }
}

impl Auth {
    /// The kind of credential, for hints.
    pub fn method(&self) -> AuthMethod {
        match self {
            Auth::ApiToken { .. } => AuthMethod::ApiToken,
            Auth::AccessToken(_) => AuthMethod::AccessToken,
        }
    }

    fn header(&self) -> Result<HeaderValue, ApiError> {
        use base64::Engine as _;
        let raw = match self {
            Auth::ApiToken { email, token } => {
                let pair = format!("{email}:{}", token.expose_secret());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }
            Auth::AccessToken(token) => format!("Bearer {}", token.expose_secret()),
        };
        let mut value = HeaderValue::from_str(&raw).map_err(|_| {
            ApiError::local(
                ErrorKind::Config,
                "(credentials)",
                "the e-mail or token contains characters that cannot be sent in an HTTP header",
            )
        })?;
        // Marks the header so that reqwest/hyper never print it.
        value.set_sensitive(true);
        Ok(value)
    }
}

/// Everything needed to build a [`BitbucketClient`].
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The API host, e.g. `https://api.bitbucket.org`; the client appends `/2.0` and `/1.0`.
    pub base_url: Url,
    /// Credentials.
    pub auth: Auth,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for any read of an answer.
    pub read_timeout: Duration,
    /// The request budget of the token.
    pub budget: BudgetSettings,
}

impl ClientSettings {
    /// Settings for `https://api.bitbucket.org` with default timeouts and budget.
    pub fn new(base_url: Url, auth: Auth) -> Self {
        ClientSettings {
            base_url,
            auth,
            connect_timeout: crate::config::DEFAULT_CONNECT_TIMEOUT,
            read_timeout: crate::config::DEFAULT_READ_TIMEOUT,
            budget: BudgetSettings::default(),
        }
    }
}

/// Optional parts of a client: the retry policy and a budget shared with other clients.
#[derive(Debug)]
pub struct ClientBuilder {
    settings: ClientSettings,
    retry: RetryPolicy,
    budget: Option<Arc<Budget>>,
}

impl ClientBuilder {
    /// Replaces the default [`RetryPolicy`].
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Shares an existing budget (for several clients using one token) instead of creating one
    /// from `settings.budget`.
    pub fn budget(mut self, budget: Arc<Budget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<BitbucketClient, ApiError> {
        let ClientSettings {
            base_url,
            auth,
            connect_timeout,
            read_timeout,
            budget,
        } = self.settings;
        if base_url.cannot_be_a_base() || base_url.host_str().is_none() {
            return Err(ApiError::local(
                ErrorKind::Config,
                "(base_url)",
                "the Bitbucket base URL must be an absolute http(s) URL such as https://api.bitbucket.org",
            ));
        }
        let auth_header = auth.header()?;
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .read_timeout(read_timeout)
            .redirect(same_origin_redirects())
            .user_agent(concat!("bitbucket-access/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                ApiError::local(
                    ErrorKind::Config,
                    "(http client)",
                    format!("could not build the HTTP client: {}", e.without_url()),
                )
            })?;
        let budget = self.budget.unwrap_or_else(|| Arc::new(Budget::new(budget)));
        Ok(BitbucketClient {
            inner: Arc::new(Inner {
                http,
                base: base_url,
                auth_method: auth.method(),
                auth_header,
                retry: self.retry,
                budget,
            }),
        })
    }
}

/// Follows redirects only within the same scheme, host and port (a few hops at most), so the
/// `Authorization` header never travels to another host; anything else is returned as the 3xx
/// answer and becomes an [`ErrorKind::Redirect`] error.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt.previous().last().is_some_and(|prev| {
            prev.scheme() == attempt.url().scheme()
                && prev.host_str() == attempt.url().host_str()
                && prev.port_or_known_default() == attempt.url().port_or_known_default()
        });
        if same_origin && attempt.previous().len() < 4 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// The Bitbucket Cloud client: cheap to clone, every clone shares one connection pool and one
/// request budget.
#[derive(Clone)]
pub struct BitbucketClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    http: reqwest::Client,
    base: Url,
    auth_method: AuthMethod,
    auth_header: HeaderValue,
    retry: RetryPolicy,
    budget: Arc<Budget>,
}

impl fmt::Debug for BitbucketClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BitbucketClient")
            .field("base_url", &self.inner.base.as_str())
            .field("auth", &self.inner.auth_method)
            .field("retry", &self.inner.retry)
            .field("budget", &self.inner.budget)
            .finish()
    }
}

/// The API generation a path belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Api {
    V2,
    V1,
}

/// One logical request (which may take several attempts).
pub(crate) struct Call {
    pub method: Method,
    /// The path template, e.g. `/repositories/{workspace}`; the only thing logged.
    pub endpoint: &'static str,
    pub url: Url,
    pub body: Option<serde_json::Value>,
}

/// A 2xx answer.
pub(crate) struct Answer {
    pub body: Vec<u8>,
}

impl BitbucketClient {
    /// A client with the default retry policy and its own budget.
    pub fn new(settings: ClientSettings) -> Result<Self, ApiError> {
        Self::builder(settings).build()
    }

    /// A builder for a client with a custom retry policy or a shared budget.
    pub fn builder(settings: ClientSettings) -> ClientBuilder {
        ClientBuilder {
            settings,
            retry: RetryPolicy::default(),
            budget: None,
        }
    }

    /// The budget this client (and its clones) spends.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.inner.budget
    }

    /// Requests sent so far (all attempts), per `METHOD template`.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.inner.budget.request_counts()
    }

    /// Requests sent so far, all attempts included.
    pub fn requests_used(&self) -> u64 {
        self.inner.budget.requests_used()
    }

    /// The kind of credential configured.
    pub fn auth_method(&self) -> AuthMethod {
        self.inner.auth_method
    }

    /// The base URL (`https://api.bitbucket.org`).
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// Builds `{base}/{2.0|1.0}/{segments...}`, percent-encoding each segment (braces of UUIDs
    /// included), so callers never concatenate user input into paths.
    pub(crate) fn url(
        &self,
        api: Api,
        endpoint: &'static str,
        segments: &[&str],
    ) -> Result<Url, ApiError> {
        let mut url = self.inner.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        {
            let mut path = url.path_segments_mut().map_err(|_| {
                ApiError::local(
                    ErrorKind::Config,
                    endpoint,
                    "the base URL cannot hold a path",
                )
            })?;
            path.pop_if_empty();
            path.push(match api {
                Api::V2 => "2.0",
                Api::V1 => "1.0",
            });
            for segment in segments {
                if segment.is_empty() {
                    return Err(ApiError::local(
                        ErrorKind::Config,
                        endpoint,
                        "an empty workspace, slug, key or id was given",
                    ));
                }
                path.push(segment);
            }
        }
        Ok(url)
    }

    /// Whether `url` points at the configured API host (same scheme, host and port).
    pub(crate) fn same_origin(&self, url: &Url) -> bool {
        let base = &self.inner.base;
        base.scheme() == url.scheme()
            && base.host_str() == url.host_str()
            && base.port_or_known_default() == url.port_or_known_default()
    }

    /// GETs `url` and decodes the JSON body as `T`.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        url: Url,
    ) -> Result<T, ApiError> {
        let answer = self
            .send(Call {
                method: Method::GET,
                endpoint,
                url,
                body: None,
            })
            .await?;
        decode(endpoint, &answer.body)
    }

    /// Sends one logical request through the budget and the retry policy.
    pub(crate) async fn send(&self, call: Call) -> Result<Answer, ApiError> {
        let span = tracing::info_span!(
            "bitbucket_request",
            endpoint = call.endpoint,
            method = %call.method,
            status = tracing::field::Empty,
            attempts = tracing::field::Empty,
        );
        self.send_inner(call).instrument(span).await
    }

    async fn send_inner(&self, call: Call) -> Result<Answer, ApiError> {
        let inner = &self.inner;
        if inner.auth_method == AuthMethod::AccessToken && needs_user_api_token(call.endpoint) {
            return Err(ApiError::local(
                ErrorKind::UnsupportedAuth,
                call.endpoint,
                "access tokens cannot use this endpoint (Bitbucket does not let them read or change \
                 permissions or list workspaces across the account); the request was not sent",
            ));
        }
        let key = format!("{} {}", call.method, call.endpoint);
        // Every method used by this client (GET, and PUT/DELETE on permissions and group
        // members) is idempotent; anything else would only be retried on 429.
        let idempotent = matches!(
            call.method,
            Method::GET | Method::PUT | Method::DELETE | Method::HEAD
        );
        let mut attempt: u32 = 0;
        let mut waited = Duration::ZERO;
        loop {
            attempt += 1;
            let admission = inner.budget.admit(&key).await;
            let mut request = inner
                .http
                .request(call.method.clone(), call.url.clone())
                .header(AUTHORIZATION, inner.auth_header.clone())
                .header(ACCEPT, "application/json");
            request = match &call.body {
                Some(body) => request.json(body),
                // Bitbucket answers 411 to a body-less PUT without Content-Length.
                None if call.method == Method::PUT => request.header(CONTENT_LENGTH, "0"),
                None => request,
            };
            let outcome = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    let location_host = response
                        .headers()
                        .get(reqwest::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|l| call.url.join(l).ok())
                        .and_then(|u| u.host_str().map(str::to_owned));
                    match response.bytes().await {
                        Ok(body) => Ok((status, retry_after, location_host, body.to_vec())),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            drop(admission);
            let current = tracing::Span::current();
            current.record("attempts", attempt);
            let (error, retryable, retry_after) = match outcome {
                Ok((status, _, _, body)) if status.is_success() => {
                    current.record("status", status.as_u16());
                    return Ok(Answer { body });
                }
                Ok((status, retry_after, location_host, body)) => {
                    current.record("status", status.as_u16());
                    let mut err = ApiError::from_response(
                        status.as_u16(),
                        &body,
                        call.method.as_str(),
                        call.endpoint,
                        inner.auth_method,
                        attempt,
                    );
                    if status.is_redirection() {
                        err.message = format!(
                            "redirected to {}; not followed with credentials",
                            location_host.as_deref().unwrap_or("an unknown location")
                        );
                    }
                    let retryable = status == StatusCode::TOO_MANY_REQUESTS
                        || (status.is_server_error() && idempotent);
                    (err, retryable, retry_after)
                }
                Err(e) => {
                    let kind = if e.is_timeout() {
                        ErrorKind::Timeout
                    } else if e.is_decode() || e.is_body() {
                        ErrorKind::Incomplete
                    } else {
                        ErrorKind::Transport
                    };
                    let err = ApiError::local(kind, call.endpoint, describe_transport(&e));
                    (err, idempotent, None)
                }
            };
            if !retryable {
                return Err(error);
            }
            match inner.retry.next_delay(attempt, waited, retry_after) {
                Some(delay) => {
                    tracing::warn!(
                        status = error.status,
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        "retrying Bitbucket request after a transient failure"
                    );
                    waited += delay;
                    tokio::time::sleep(delay).await;
                }
                None => {
                    // The hint names the number of attempts made; rebuild it for the final count.
                    return Err(finalize(
                        error,
                        call.method.as_str(),
                        attempt,
                        inner.auth_method,
                    ));
                }
            }
        }
    }
}

/// Recomputes a status error's hint with the final attempt count.
fn finalize(error: ApiError, method: &str, attempts: u32, auth: AuthMethod) -> ApiError {
    match error.status {
        Some(status) if error.kind == ErrorKind::RateLimited || error.kind == ErrorKind::Server => {
            let mut rebuilt =
                ApiError::from_response(status, b"", method, error.endpoint, auth, attempts);
            rebuilt.message = error.message;
            rebuilt.detail = error.detail;
            rebuilt
        }
        _ => error,
    }
}

/// A one-line description of a transport error without its URL (which may hold query values).
fn describe_transport(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = String::new();
    let mut source: Option<&dyn std::error::Error> = e.source();
    while let Some(s) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&s.to_string());
        source = s.source();
    }
    if text.is_empty() {
        text = if e.is_timeout() {
            "timed out".to_owned()
        } else {
            "request failed".to_owned()
        };
    }
    text
}

/// Templates an access token may not call: Bitbucket refuses them permission data and
/// cross-workspace listings, so the client refuses first with a clear error.
pub fn needs_user_api_token(endpoint: &str) -> bool {
    endpoint.contains("/permissions-config/")
        || endpoint.starts_with("/workspaces/{workspace}/permissions")
        || endpoint.starts_with("/user/workspaces")
}

/// Decodes a JSON body, naming the failing field in the error.
pub(crate) fn decode<T: DeserializeOwned>(
    endpoint: &'static str,
    body: &[u8],
) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::local(
            ErrorKind::Decode,
            endpoint,
            format!("could not read the answer: {e}"),
        )
    })
}
