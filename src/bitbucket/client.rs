//! The client struct, its settings, and the Bitbucket side of the one request loop: the
//! access-token check before sending, and the mapping of [`crate::http::Failure`] to
//! [`ApiError`]. The loop itself (budget, deadlines, retries, limits, scrubbing) is
//! [`crate::http::Transport`].

use super::error::{ApiError, AuthMethod, ErrorKind};
use crate::http::budget::{Budget, BudgetSettings, RequestClass};
use crate::http::retry::RetryPolicy;
use crate::http::{
    Credentials, Failure, HttpError, Limits, Request, Scrubber, Transport, TransportSettings,
};
use reqwest::Method;
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
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

    fn credentials(&self) -> Credentials {
        match self {
            Auth::ApiToken { email, token } => Credentials::Basic {
                user: email.clone(),
                secret: token.clone(),
            },
            Auth::AccessToken(token) => Credentials::Bearer(token.clone()),
        }
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

/// Optional parts of a client: the retry policy, a budget shared with other clients, the
/// response limits and further secrets to scrub.
#[derive(Debug)]
pub struct ClientBuilder {
    settings: ClientSettings,
    retry: RetryPolicy,
    budget: Option<Arc<Budget>>,
    limits: Limits,
    scrubber: Scrubber,
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

    /// Replaces the default [`Limits`] (body size, attempt and request deadlines).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Further secrets (the Jira key, say) to remove from anything the server says.
    pub fn scrubber(mut self, scrubber: Scrubber) -> Self {
        self.scrubber = scrubber;
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
        let budget = self.budget.unwrap_or_else(|| Arc::new(Budget::new(budget)));
        let transport = Transport::new(TransportSettings {
            service: "Bitbucket",
            base_url,
            credentials: auth.credentials(),
            connect_timeout,
            read_timeout,
            retry: self.retry,
            budget,
            limits: self.limits,
            scrubber: self.scrubber,
        })
        .map_err(|failure| {
            map_failure(
                HttpError::local("(client settings)", Method::GET, failure),
                auth.method(),
            )
        })?;
        Ok(BitbucketClient {
            inner: Arc::new(Inner {
                transport,
                auth_method: auth.method(),
            }),
            class: RequestClass::Sync,
        })
    }
}

/// The Bitbucket Cloud client: cheap to clone, every clone shares one connection pool and one
/// request budget.
#[derive(Clone)]
pub struct BitbucketClient {
    pub(crate) inner: Arc<Inner>,
    /// The budget class of every request of this handle (see [`BitbucketClient::for_grants`]).
    class: RequestClass,
}

pub(crate) struct Inner {
    transport: Transport,
    auth_method: AuthMethod,
}

impl fmt::Debug for BitbucketClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BitbucketClient")
            .field("auth", &self.inner.auth_method)
            .field("transport", &self.inner.transport)
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
            limits: Limits::default(),
            scrubber: Scrubber::new(),
        }
    }

    /// A handle on the same client whose requests are admitted as [`RequestClass::Grant`]: they
    /// may use the budget's reserve and have their own concurrency slots, so a running sync
    /// never delays a grant or a restore.
    pub fn for_grants(&self) -> BitbucketClient {
        BitbucketClient {
            inner: Arc::clone(&self.inner),
            class: RequestClass::Grant,
        }
    }

    /// The budget this client (and its clones) spends.
    pub fn budget(&self) -> &Arc<Budget> {
        self.inner.transport.budget()
    }

    /// Requests sent so far (all attempts), per `METHOD template`.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.inner.transport.budget().request_counts()
    }

    /// Requests sent so far, all attempts included.
    pub fn requests_used(&self) -> u64 {
        self.inner.transport.budget().requests_used()
    }

    /// The kind of credential configured.
    pub fn auth_method(&self) -> AuthMethod {
        self.inner.auth_method
    }

    /// The base URL (`https://api.bitbucket.org`).
    pub fn base_url(&self) -> &Url {
        self.inner.transport.base_url()
    }

    /// Builds `{base}/{2.0|1.0}/{segments...}`, percent-encoding each segment (braces of UUIDs
    /// included), so callers never concatenate user input into paths.
    pub(crate) fn url(
        &self,
        api: Api,
        endpoint: &'static str,
        segments: &[&str],
    ) -> Result<Url, ApiError> {
        let version = match api {
            Api::V2 => "2.0",
            Api::V1 => "1.0",
        };
        self.inner
            .transport
            .url(
                std::iter::once(version).chain(segments.iter().copied()),
                &[],
            )
            .map_err(|failure| self.fail(HttpError::local(endpoint, Method::GET, failure)))
    }

    /// Whether `url` points at the configured API host (same scheme, host and port).
    pub(crate) fn same_origin(&self, url: &Url) -> bool {
        self.inner.transport.same_origin(url)
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
        self.decode(endpoint, &answer.body)
    }

    /// Decodes a JSON body, naming the failing field in the (scrubbed) error.
    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        body: &[u8],
    ) -> Result<T, ApiError> {
        self.inner
            .transport
            .decode(body)
            .map_err(|failure| self.fail(HttpError::local(endpoint, Method::GET, failure)))
    }

    /// A local failure of `endpoint` of the given kind, scrubbed like every other error (its
    /// message may quote the server, as decoder messages do).
    pub(crate) fn local_error(
        &self,
        kind: ErrorKind,
        endpoint: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        let scrubber = self.inner.transport.scrubber();
        ApiError::local(kind, endpoint, scrubber.scrub(&message.into()))
    }

    /// Gives a failed request Bitbucket's words and hint, with every secret scrubbed.
    pub(crate) fn fail(&self, error: HttpError) -> ApiError {
        map_failure(error, self.inner.auth_method).scrubbed(self.inner.transport.scrubber())
    }

    /// Sends one logical request through the transport (budget, deadlines, retries).
    pub(crate) async fn send(&self, call: Call) -> Result<Answer, ApiError> {
        if self.inner.auth_method == AuthMethod::AccessToken && needs_user_api_token(call.endpoint)
        {
            return Err(ApiError::local(
                ErrorKind::UnsupportedAuth,
                call.endpoint,
                "access tokens cannot use this endpoint (Bitbucket does not let them read or change \
                 permissions or list workspaces across the account); the request was not sent",
            ));
        }
        let request = Request {
            method: call.method,
            endpoint: call.endpoint,
            url: call.url,
            body: call.body,
            class: self.class,
        };
        match self.inner.transport.send(request).await {
            Ok(body) => Ok(Answer { body }),
            Err(error) => Err(self.fail(error)),
        }
    }
}

/// Bitbucket's view of a failed request: the kind, its words and its hint.
fn map_failure(error: HttpError, auth: AuthMethod) -> ApiError {
    let endpoint = error.endpoint;
    let message = error.describe();
    let kind = match error.failure {
        Failure::Status {
            status,
            body,
            redirect_to,
        } => {
            let mut err = ApiError::from_response(
                status,
                body.as_bytes(),
                error.method.as_str(),
                endpoint,
                auth,
                error.attempts,
            );
            if (300..400).contains(&status) {
                err.message = format!(
                    "redirected to {}; not followed with credentials",
                    redirect_to.as_deref().unwrap_or("an unknown location")
                );
            }
            return err;
        }
        Failure::Timeout { .. } => ErrorKind::Timeout,
        Failure::Transport { .. } => ErrorKind::Transport,
        Failure::CutShort { .. } => ErrorKind::Incomplete,
        Failure::TooLarge { .. } => ErrorKind::TooLarge,
        Failure::CrossOrigin { .. } => ErrorKind::Redirect,
        Failure::Budget { .. } => ErrorKind::Budget,
        Failure::Decode { .. } => ErrorKind::Decode,
        Failure::Config { .. } => ErrorKind::Config,
    };
    ApiError::local(kind, endpoint, message)
}

/// Templates an access token may not call: Bitbucket refuses them permission data and
/// cross-workspace listings, so the client refuses first with a clear error.
pub fn needs_user_api_token(endpoint: &str) -> bool {
    endpoint.contains("/permissions-config/")
        || endpoint.starts_with("/workspaces/{workspace}/permissions")
        || endpoint.starts_with("/user/workspaces")
}
