//! What the HTTP layer reports when a request fails: a [`Failure`] (what went wrong, with any
//! server text already scrubbed) inside an [`HttpError`] (which endpoint, how many attempts).
//! The clients turn it into their own error type with their own words and hints.

use reqwest::Method;

/// What went wrong with a request, before an API gives it its own words and hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A non-2xx answer, with its body (scrubbed, at most 64 KiB, read as UTF-8).
    Status {
        /// The HTTP status.
        status: u16,
        /// The scrubbed body.
        body: String,
        /// For a redirect not followed: the host it pointed to.
        redirect_to: Option<String>,
    },
    /// An attempt or the whole request passed its deadline.
    Timeout {
        /// Which deadline, and how long it was.
        message: String,
    },
    /// The connection failed or was reset.
    Transport {
        /// The scrubbed description, without the URL.
        message: String,
    },
    /// The answer ended before its body did.
    CutShort {
        /// The scrubbed description.
        message: String,
    },
    /// The body was longer than the limit; reading stopped there.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The URL is on another scheme, host or port than the base URL; nothing was sent.
    CrossOrigin {
        /// The other host.
        host: String,
    },
    /// The budget refused the request (the run's cap is spent); nothing was sent.
    Budget {
        /// Why.
        message: String,
    },
    /// The body was not the JSON expected.
    Decode {
        /// The scrubbed decoder message.
        message: String,
    },
    /// The client's settings are unusable; nothing was sent.
    Config {
        /// What is wrong.
        message: String,
    },
}

/// A failed request: the failure, the endpoint template and how many attempts were made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// The endpoint template (never the URL, whose query may hold e-mail addresses).
    pub endpoint: &'static str,
    /// The request's method.
    pub method: Method,
    /// Attempts sent (0 when nothing was sent).
    pub attempts: u32,
    /// What went wrong.
    pub failure: Failure,
}

impl HttpError {
    /// A failure of a request nothing was sent for (or whose answer could not be read).
    pub fn local(endpoint: &'static str, method: Method, failure: Failure) -> Self {
        HttpError {
            endpoint,
            method,
            attempts: 0,
            failure,
        }
    }
}

impl HttpError {
    /// What happened, in one sentence that both APIs use as their error message for a failure
    /// without an HTTP answer (an answer's status is given its API's own words instead).
    pub fn describe(&self) -> String {
        match &self.failure {
            Failure::Status { status, .. } => format!("HTTP {status}"),
            Failure::Timeout { message } => format!(
                "{message} (after {} attempt{})",
                self.attempts,
                if self.attempts == 1 { "" } else { "s" }
            ),
            Failure::CutShort { message } => format!("the answer was cut short: {message}"),
            Failure::TooLarge { limit } => format!(
                "the answer is larger than the limit of {limit} bytes ({} MiB); reading stopped \
                 there",
                limit / (1024 * 1024)
            ),
            Failure::CrossOrigin { host } => {
                format!("refusing to send the request and its credentials to another host ({host})")
            }
            Failure::Transport { message }
            | Failure::Budget { message }
            | Failure::Decode { message }
            | Failure::Config { message } => message.clone(),
        }
    }
}
