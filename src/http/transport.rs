//! The one request loop of the Bitbucket and Jira clients.
//!
//! [`Transport`] owns the reqwest client (built once, with the configured connect timeout and
//! a redirect policy that stays on the base URL's origin), the `Authorization` header, the
//! retry policy, the request budget, the response limits and the [`Scrubber`]. For every
//! attempt of a request it:
//!
//! 1. asks the budget for admission (every attempt counts, retries included);
//! 2. sends the request and reads the whole answer under one **attempt deadline** that covers
//!    connecting, the headers and the entire body, so a server that trickles one byte every
//!    few seconds cannot hold the request past it;
//! 3. reads the body as a stream and stops once it passes `max_body_bytes`, so memory stays
//!    bounded whatever the server sends;
//! 4. scrubs every server-provided text (error bodies, transport messages) of the configured
//!    secrets before it can reach an error.
//!
//! An attempt that passes its deadline is retried once at most, and only while the attempts
//! that timed out stay within [`SLOW_SERVER_CEILING`] (a minute). The attempts of one request,
//! and the waits between them, share a **total deadline**
//! (`request_timeout`); time spent waiting for budget admission does not count against it,
//! because pacing a long sync is the budget's job, not a failure. A URL on another scheme, host
//! or port than the base URL is refused before anything is sent.

use super::auth::Credentials;
use super::budget::{Budget, RequestClass};
use super::error::{Failure, HttpError};
use super::retry::{parse_retry_after, RetryPolicy};
use super::scrub::Scrubber;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

/// The longest a request may spend on attempts that time out: a server that holds a
/// connection open without answering must not hold a run for minutes.
pub const SLOW_SERVER_CEILING: Duration = Duration::from_secs(60);
use tokio::time::Instant;
use tracing::Instrument;
use url::Url;

/// The default bound on a response body: far above any page Bitbucket or Jira sends.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How much of an error answer's body is read: enough for any JSON error document.
const ERROR_BODY_BYTES: usize = 64 * 1024;

/// Bounds on one request, beyond the connect and read timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest response body accepted; a longer one fails the request.
    pub max_body_bytes: usize,
    /// The deadline of one attempt (connect, headers and body together). `None` means the
    /// configured read timeout (the config's "whole-response timeout"), or the connect
    /// timeout when that is longer.
    pub attempt_timeout: Option<Duration>,
    /// The deadline of a whole request: every attempt and every wait between them.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            attempt_timeout: None,
            request_timeout: Duration::from_secs(300),
        }
    }
}

/// Everything a [`Transport`] is built from.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// The API's name in logs ("Bitbucket", "Jira").
    pub service: &'static str,
    /// The base URL; requests must stay on its scheme, host and port.
    pub base_url: Url,
    /// The credential sent with every request.
    pub credentials: Credentials,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for any single read (the attempt deadline bounds them together).
    pub read_timeout: Duration,
    /// When to try again.
    pub retry: RetryPolicy,
    /// The budget every attempt is admitted by.
    pub budget: Arc<Budget>,
    /// Body size and deadlines.
    pub limits: Limits,
    /// Further secrets to remove from server text (those of the other API, say); the
    /// credential's own forms are always added.
    pub scrubber: Scrubber,
}

/// One logical request (which may take several attempts).
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path template, e.g. `/repositories/{workspace}`; the only thing logged.
    pub endpoint: &'static str,
    /// The full URL.
    pub url: Url,
    /// A JSON body, if any.
    pub body: Option<serde_json::Value>,
    /// The budget class it is admitted as (grants and restores may use the reserve).
    pub class: RequestClass,
}

impl Request {
    /// A GET of `url`.
    pub fn get(endpoint: &'static str, url: Url) -> Self {
        Request {
            method: Method::GET,
            endpoint,
            url,
            body: None,
            class: RequestClass::Sync,
        }
    }
}

/// The HTTP layer one API client holds; cheap to share behind an `Arc`.
pub struct Transport {
    service: &'static str,
    http: reqwest::Client,
    base: Url,
    auth_header: HeaderValue,
    retry: RetryPolicy,
    budget: Arc<Budget>,
    limits: Limits,
    attempt_timeout: Duration,
    scrubber: Scrubber,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("service", &self.service)
            .field("base_url", &self.base.as_str())
            .field("retry", &self.retry)
            .field("budget", &self.budget)
            .field("limits", &self.limits)
            .finish()
    }
}

/// The outcome of one attempt that got an answer.
enum Answer {
    Success(StatusCode, Vec<u8>),
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
        body: String,
        redirect_to: Option<String>,
    },
}

impl Transport {
    /// Builds the HTTP client once; fails on a base URL that cannot hold paths or a
    /// credential that cannot go in a header.
    pub fn new(settings: TransportSettings) -> Result<Self, Failure> {
        let base = settings.base_url;
        if base.cannot_be_a_base()
            || base.host_str().is_none()
            || !matches!(base.scheme(), "http" | "https")
        {
            return Err(Failure::Config {
                message: format!(
                    "the {} base URL must be an absolute http(s) URL",
                    settings.service
                ),
            });
        }
        let auth_header = settings.credentials.header().map_err(|e| Failure::Config {
            message: e.to_string(),
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.read_timeout)
            .redirect(same_origin_redirects())
            .user_agent(concat!("bitbucket-access/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Config {
                message: format!("could not build the HTTP client: {}", e.without_url()),
            })?;
        let attempt_timeout = settings
            .limits
            .attempt_timeout
            .unwrap_or(settings.read_timeout.max(settings.connect_timeout));
        let scrubber = settings.credentials.scrubber().merge(&settings.scrubber);
        Ok(Transport {
            service: settings.service,
            http,
            base,
            auth_header,
            retry: settings.retry,
            budget: settings.budget,
            limits: settings.limits,
            attempt_timeout,
            scrubber,
        })
    }

    /// The base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The budget every attempt is admitted by.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// The retry policy.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The scrubber applied to server text.
    pub fn scrubber(&self) -> &Scrubber {
        &self.scrubber
    }

    /// Whether `url` is on the base URL's scheme, host and port.
    pub fn same_origin(&self, url: &Url) -> bool {
        same_origin(&self.base, url)
    }

    /// `{base}/{segments...}` with `query`, percent-encoding each segment (so callers never
    /// concatenate input into paths); an empty segment is refused.
    pub fn url<'a>(
        &self,
        segments: impl IntoIterator<Item = &'a str>,
        query: &[(&str, &str)],
    ) -> Result<Url, Failure> {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        {
            let mut path = url.path_segments_mut().map_err(|_| Failure::Config {
                message: "the base URL cannot hold a path".to_owned(),
            })?;
            path.pop_if_empty();
            for segment in segments {
                if segment.is_empty() {
                    return Err(Failure::Config {
                        message: "an empty workspace, slug, key or id was given".to_owned(),
                    });
                }
                path.push(segment);
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Decodes a JSON body; the error names the failing place and is scrubbed.
    pub fn decode<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, Failure> {
        serde_json::from_slice(body).map_err(|e| Failure::Decode {
            message: self
                .scrubber
                .scrub(&format!("could not read the answer: {e}")),
        })
    }

    /// Whether a request whose attempt ran out of time gets another attempt. A server that
    /// could not deliver a whole answer within the deadline twice will not do better a third
    /// time, so there is one retry at most, and only when it still fits within
    /// [`SLOW_SERVER_CEILING`]: a silent or trickling server ends the request within a minute.
    fn may_retry_slow(&self, attempt: u32, spent: Duration) -> bool {
        attempt == 1 && spent + self.attempt_timeout < SLOW_SERVER_CEILING
    }

    /// Sends one logical request through the budget, the deadlines and the retry policy and
    /// returns the body of its 2xx answer.
    pub async fn send(&self, request: Request) -> Result<Vec<u8>, HttpError> {
        let span = tracing::info_span!(
            "http_request",
            service = self.service,
            endpoint = request.endpoint,
            method = %request.method,
            status = tracing::field::Empty,
            attempts = tracing::field::Empty,
        );
        self.send_inner(&request).instrument(span).await
    }

    async fn send_inner(&self, request: &Request) -> Result<Vec<u8>, HttpError> {
        let error = |attempts: u32, failure: Failure| HttpError {
            endpoint: request.endpoint,
            method: request.method.clone(),
            attempts,
            failure,
        };
        if !self.same_origin(&request.url) {
            let host = request.url.host_str().unwrap_or("none").to_owned();
            return Err(error(0, Failure::CrossOrigin { host }));
        }
        let key = format!("{} {}", request.method, request.endpoint);
        // Every method the clients use (GET, and PUT/DELETE on permissions and group members)
        // is idempotent; anything else is retried only on 429, which was not processed.
        let idempotent = matches!(
            request.method,
            Method::GET | Method::PUT | Method::DELETE | Method::HEAD
        );
        let total = self.limits.request_timeout;
        let mut attempt: u32 = 0;
        let mut spent = Duration::ZERO;
        let mut waited = Duration::ZERO;
        loop {
            let admission = self
                .budget
                .admit_as(&key, request.class)
                .await
                .map_err(|e| {
                    error(
                        attempt,
                        Failure::Budget {
                            message: e.to_string(),
                        },
                    )
                })?;
            attempt += 1;
            let limit = self.attempt_timeout.min(total.saturating_sub(spent));
            let started = Instant::now();
            let outcome = tokio::time::timeout(limit, self.attempt(request)).await;
            drop(admission);
            spent += started.elapsed();
            let current = tracing::Span::current();
            current.record("attempts", attempt);
            self.budget.record_outcome(&key, &outcome_label(&outcome));
            let (failure, retryable, retry_after) = match outcome {
                Err(_) => {
                    let message = if limit < self.attempt_timeout {
                        format!(
                            "no complete answer within the request's total deadline of {}",
                            seconds(total)
                        )
                    } else {
                        format!(
                            "no complete answer (connect, headers and body) within the attempt \
                             deadline of {}",
                            seconds(self.attempt_timeout)
                        )
                    };
                    (
                        Failure::Timeout { message },
                        idempotent && self.may_retry_slow(attempt, spent),
                        None,
                    )
                }
                Ok(Ok(Answer::Success(_, body))) => {
                    current.record("status", 200u16);
                    return Ok(body);
                }
                Ok(Ok(Answer::Status {
                    status,
                    retry_after,
                    body,
                    redirect_to,
                })) => {
                    current.record("status", status.as_u16());
                    let retryable = status == StatusCode::TOO_MANY_REQUESTS
                        || (status.is_server_error() && idempotent);
                    let failure = Failure::Status {
                        status: status.as_u16(),
                        body,
                        redirect_to,
                    };
                    (failure, retryable, retry_after)
                }
                Ok(Err(failure)) => {
                    let retryable = idempotent
                        && match failure {
                            Failure::Timeout { .. } => self.may_retry_slow(attempt, spent),
                            Failure::Transport { .. } | Failure::CutShort { .. } => true,
                            _ => false,
                        };
                    (failure, retryable, None)
                }
            };
            if !retryable {
                return Err(error(attempt, failure));
            }
            match self.retry.next_delay(attempt, waited, retry_after) {
                Some(delay) if spent + delay < total => {
                    tracing::warn!(
                        service = self.service,
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        "retrying a request after a transient failure"
                    );
                    waited += delay;
                    spent += delay;
                    tokio::time::sleep(delay).await;
                }
                _ => return Err(error(attempt, failure)),
            }
        }
    }

    /// One attempt: send, then read the whole body within the limits.
    async fn attempt(&self, request: &Request) -> Result<Answer, Failure> {
        let mut builder = self
            .http
            .request(request.method.clone(), request.url.clone())
            .header(AUTHORIZATION, self.auth_header.clone())
            .header(ACCEPT, "application/json");
        builder = match &request.body {
            Some(body) => builder.json(body),
            // Bitbucket answers 411 to a body-less PUT without Content-Length.
            None if request.method == Method::PUT => builder.header(CONTENT_LENGTH, "0"),
            None => builder,
        };
        let mut response = builder.send().await.map_err(|e| self.failure_of(&e))?;
        let status = response.status();
        if status.is_success() {
            let limit = self.limits.max_body_bytes;
            if response.content_length().is_some_and(|n| n > limit as u64) {
                return Err(Failure::TooLarge { limit });
            }
            // A body of announced length is allocated once: grown by doubling, a large body
            // (the group-privileges sweep's is megabytes) would briefly need up to three times
            // its size, and that peak stays in the process's resident memory.
            let announced = response.content_length().map_or(0, |n| n as usize);
            let mut body = Vec::with_capacity(announced);
            while let Some(chunk) = response.chunk().await.map_err(|e| self.failure_of(&e))? {
                if body.len() + chunk.len() > limit {
                    return Err(Failure::TooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            return Ok(Answer::Success(status, body));
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let redirect_to = status
            .is_redirection()
            .then(|| {
                response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| request.url.join(l).ok())
                    .and_then(|u| u.host_str().map(str::to_owned))
            })
            .flatten();
        // An error body is read only as far as a JSON error document needs; what a broken
        // connection leaves of it is still worth showing.
        let mut body = Vec::new();
        while body.len() < ERROR_BODY_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        body.truncate(ERROR_BODY_BYTES);
        Ok(Answer::Status {
            status,
            retry_after,
            body: self.scrubber.scrub_bytes(&body),
            redirect_to,
        })
    }

    fn failure_of(&self, e: &reqwest::Error) -> Failure {
        let message = self.scrubber.scrub(&describe_transport(e));
        if e.is_timeout() {
            Failure::Timeout { message }
        } else if e.is_body() || e.is_decode() {
            Failure::CutShort { message }
        } else {
            Failure::Transport { message }
        }
    }
}

/// How an attempt ended, as `serve`'s request metrics label it: the HTTP status code of an
/// answer, else the kind of failure.
fn outcome_label(outcome: &Result<Result<Answer, Failure>, tokio::time::error::Elapsed>) -> String {
    match outcome {
        Err(_) => "timeout".to_owned(),
        Ok(Ok(Answer::Success(status, _))) | Ok(Ok(Answer::Status { status, .. })) => {
            status.as_u16().to_string()
        }
        Ok(Err(Failure::Timeout { .. })) => "timeout".to_owned(),
        Ok(Err(_)) => "error".to_owned(),
    }
}

/// Whether `b` is on `a`'s scheme, host and port.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Follows redirects only within the same scheme, host and port (a few hops at most), so the
/// `Authorization` header never travels to another host; anything else is returned as the 3xx
/// answer and becomes an error.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same = attempt
            .previous()
            .last()
            .is_some_and(|prev| same_origin(prev, attempt.url()));
        if same && attempt.previous().len() < 4 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
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

/// `1.5 s`, `30 s`: how deadlines are named in messages.
fn seconds(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{secs:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_compares_scheme_host_and_port() {
        let base = Url::parse("https://api.bitbucket.org").expect("url");
        for (other, same) in [
            ("https://api.bitbucket.org/2.0/x?page=2", true),
            ("https://api.bitbucket.org:443/2.0/x", true),
            ("http://api.bitbucket.org/2.0/x", false),
            ("https://api.bitbucket.org:8443/2.0/x", false),
            ("https://evil.example/2.0/x", false),
        ] {
            let other = Url::parse(other).expect("url");
            assert_eq!(same_origin(&base, &other), same, "{other}");
        }
    }

    #[tokio::test]
    async fn a_url_on_another_origin_is_refused_before_anything_is_sent() {
        let budget = Arc::new(Budget::new(super::super::BudgetSettings::default()));
        let transport = Transport::new(TransportSettings {
            service: "Test",
            base_url: Url::parse("https://api.bitbucket.org").expect("url"),
            credentials: Credentials::Bearer("t0ken".to_owned().into()),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            retry: RetryPolicy::immediate(1),
            budget: Arc::clone(&budget),
            limits: Limits::default(),
            scrubber: Scrubber::new(),
        })
        .expect("transport");
        let url = Url::parse("https://evil.example/2.0/user").expect("url");
        let err = transport
            .send(Request::get("/user", url))
            .await
            .expect_err("refused");
        assert_eq!(err.attempts, 0);
        assert_eq!(
            err.failure,
            Failure::CrossOrigin {
                host: "evil.example".to_owned()
            }
        );
        assert_eq!(budget.requests_used(), 0);
    }

    #[test]
    fn deadlines_are_named_in_seconds() {
        assert_eq!(seconds(Duration::from_secs(30)), "30 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
    }
}
