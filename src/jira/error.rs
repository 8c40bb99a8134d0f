//! The Jira client's error: Jira's words and hints for a failed [`crate::http`] request.

use crate::http::{Failure, HttpError, Scrubber};
use serde::Deserialize;
use std::collections::BTreeMap;
use url::Url;

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
    /// Jira's request budget refused the request (the cap is spent); nothing was sent.
    Budget,
    /// The answer was larger than the client accepts.
    TooLarge,
    /// A redirect or link to another host, which is never followed with credentials.
    Redirect,
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
    pub(crate) fn local(
        kind: JiraErrorKind,
        endpoint: &'static str,
        message: impl Into<String>,
    ) -> Self {
        let hint = match kind {
            JiraErrorKind::Transport => "Could not reach Jira: check `jira_credentials.url`, the network and proxy settings.",
            JiraErrorKind::Timeout => "Jira did not answer in time; try again later.",
            JiraErrorKind::Decode => "Jira's answer did not have the expected shape; please report it with the endpoint named above.",
            JiraErrorKind::Incomplete => "The user listing could not be read to its end, so nothing was concluded from it; run again.",
            JiraErrorKind::Config => "Fix `jira_credentials` (url, user, key).",
            JiraErrorKind::Budget => "Jira's request budget for this run is spent; run again later.",
            JiraErrorKind::TooLarge => "Jira's answer was far larger than any user page; check that `jira_credentials.url` is the Jira site.",
            JiraErrorKind::Redirect => "Jira redirected to another host, where the credentials are never sent; set `jira_credentials.url` to the final site URL.",
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

    pub(crate) fn from_response(
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

impl JiraError {
    /// Jira's view of a failed request, scrubbed of every configured secret.
    pub(crate) fn from_http(error: HttpError, site: &Url, scrubber: &Scrubber) -> Self {
        let endpoint = error.endpoint;
        let message = error.describe();
        let kind = match error.failure {
            // A redirect's body says nothing worth keeping; where it pointed does.
            Failure::Status {
                status,
                redirect_to,
                ..
            } if (300..400).contains(&status) => {
                let where_to = redirect_to.as_deref().unwrap_or("an unknown location");
                let message = format!(
                    "HTTP {status}: redirected to {where_to}; not followed with credentials"
                );
                return JiraError::local(JiraErrorKind::Redirect, endpoint, message);
            }
            Failure::Status { status, body, .. } => {
                let err = JiraError::from_response(
                    status,
                    body.as_bytes(),
                    endpoint,
                    site,
                    error.attempts,
                );
                return err.scrubbed(scrubber);
            }
            Failure::Timeout { .. } => JiraErrorKind::Timeout,
            Failure::Transport { .. } => JiraErrorKind::Transport,
            Failure::CutShort { .. } => JiraErrorKind::Incomplete,
            Failure::TooLarge { .. } => JiraErrorKind::TooLarge,
            Failure::CrossOrigin { .. } => JiraErrorKind::Redirect,
            Failure::Budget { .. } => JiraErrorKind::Budget,
            Failure::Decode { .. } => JiraErrorKind::Decode,
            Failure::Config { .. } => JiraErrorKind::Config,
        };
        JiraError::local(kind, endpoint, message).scrubbed(scrubber)
    }

    /// The error with every configured secret removed from its words.
    fn scrubbed(mut self, scrubber: &Scrubber) -> Self {
        self.message = scrubber.scrub(&self.message);
        self.hint = scrubber.scrub(&self.hint);
        self
    }
}
