//! The one error type of the Bitbucket client, with a hint for the person who has to fix it.
//!
//! Every non-2xx answer, transport failure and malformed body becomes an [`ApiError`] that names
//! the endpoint *template* (never the raw URL, which may carry e-mail addresses in its query) and
//! says in one sentence what to do next. No credential ever reaches this type: it is built from
//! the status, Bitbucket's JSON error body and the template only.

use serde::Deserialize;
use std::collections::BTreeSet;

/// What went wrong, coarse enough for callers to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// 400: Bitbucket refused the request as malformed (or, for grants, the user is not a member).
    BadRequest,
    /// 401: the credentials were rejected.
    Unauthorized,
    /// 402: the workspace's plan has no free seat left.
    PaymentRequired,
    /// 403: a scope is missing or the token's user lacks the administrator role.
    Forbidden,
    /// 404: the workspace, project, repository, user or group does not exist (or is invisible).
    NotFound,
    /// 410: the endpoint or the authentication method was removed by Atlassian.
    Gone,
    /// 429 after every allowed retry.
    RateLimited,
    /// Any other 4xx answer.
    ClientError,
    /// 5xx after every allowed retry.
    Server,
    /// The connection failed or was reset (after every allowed retry).
    Transport,
    /// Connecting or reading took longer than the configured timeout (after every retry).
    Timeout,
    /// The body was not the JSON the client expected.
    Decode,
    /// A paginated listing could not be read to its end: a page was cut short, lacked `values`,
    /// pointed its `next` link somewhere unsafe, or the total disagreed with `size`.
    Incomplete,
    /// The configured authentication method cannot use this endpoint (access tokens and
    /// permissions); the request was not sent.
    UnsupportedAuth,
    /// Bitbucket answered with a redirect the client will not follow with credentials.
    Redirect,
    /// The request budget could not admit the request (the run's `--max-requests` cap is
    /// spent); the request was not sent.
    Budget,
    /// The answer was larger than the client accepts; reading stopped at the limit.
    TooLarge,
    /// The client was configured with something unusable (such as a base URL that cannot hold a
    /// path); the request was not sent.
    Config,
}

/// Bitbucket's `error.detail`, which the spec types as a string but which scope failures send as
/// an object listing the scopes the token has and the scopes the endpoint needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ErrorDetail {
    /// The usual free-text detail.
    Text(String),
    /// The scope-failure detail: `{"granted": [...], "required": [...]}`.
    Scopes {
        /// Scopes the presented token carries.
        #[serde(default)]
        granted: Vec<String>,
        /// Scopes the endpoint requires, all together.
        #[serde(default)]
        required: Vec<String>,
    },
}

/// A failed call to Bitbucket, with everything a person needs to act on it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{endpoint}: {}{message}. {hint}", status.map(|s| format!("HTTP {s}: ")).unwrap_or_default())]
pub struct ApiError {
    /// The HTTP status, when an answer arrived.
    pub status: Option<u16>,
    /// Bitbucket's own message, or a description of the local failure.
    pub message: String,
    /// Bitbucket's `error.detail`, when it sent one.
    pub detail: Option<ErrorDetail>,
    /// The endpoint template, e.g. `/repositories/{workspace}/{repo_slug}/permissions-config/users`.
    pub endpoint: &'static str,
    /// What kind of failure this is.
    pub kind: ErrorKind,
    /// One sentence telling the person what to do.
    pub hint: String,
    /// For a 410: what Atlassian removed, when the answer says.
    pub removed: Option<Removal>,
}

/// What a 410 answer says Atlassian removed, so callers branch on a value, not on a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Removal {
    /// App passwords no longer authenticate (CHANGE-3222).
    AppPasswords,
    /// A cross-workspace endpoint was removed (CHANGE-2770).
    CrossWorkspaceEndpoint,
}

impl ApiError {
    /// A failure that happened on this side (no HTTP status); the hint is derived from the kind.
    pub fn local(kind: ErrorKind, endpoint: &'static str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut err = ApiError {
            status: None,
            message,
            detail: None,
            endpoint,
            kind,
            hint: String::new(),
            removed: None,
        };
        err.hint = local_hint(&err);
        err
    }

    /// Builds the error for a non-2xx answer from its status and raw body.
    pub fn from_response(
        status: u16,
        body: &[u8],
        method: &str,
        endpoint: &'static str,
        auth: AuthMethod,
        attempts: u32,
    ) -> Self {
        let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
        let (message, detail, announcement) = match parsed.and_then(|b| b.error) {
            Some(inner) => {
                let announcement = inner
                    .data
                    .as_ref()
                    .and_then(|d| d.get("announcement_url"))
                    .and_then(|u| u.as_str())
                    .map(str::to_owned);
                (
                    inner.message.unwrap_or_default(),
                    inner.detail,
                    announcement,
                )
            }
            None => (plain_text_message(body), None, None),
        };
        let message = if message.is_empty() {
            default_message(status).to_owned()
        } else {
            message
        };
        let kind = kind_for_status(status);
        // The one place Bitbucket's words decide something: a 410 names its change notice.
        let removed = match status {
            410 if message.contains("CHANGE-3222") => Some(Removal::AppPasswords),
            410 if message.contains("CHANGE-2770") => Some(Removal::CrossWorkspaceEndpoint),
            _ => None,
        };
        let mut err = ApiError {
            status: Some(status),
            message,
            detail,
            endpoint,
            kind,
            hint: String::new(),
            removed,
        };
        err.hint = status_hint(&err, method, auth, attempts, announcement.as_deref());
        err
    }

    /// The scopes Bitbucket said the endpoint needs but the token lacks (`required - granted`),
    /// sorted; empty when the answer did not list scopes.
    pub fn missing_scopes(&self) -> Vec<String> {
        match &self.detail {
            Some(ErrorDetail::Scopes { granted, required }) => {
                let granted: BTreeSet<&String> = granted.iter().collect();
                let missing: BTreeSet<&String> =
                    required.iter().filter(|s| !granted.contains(s)).collect();
                missing.into_iter().cloned().collect()
            }
            _ => Vec::new(),
        }
    }

    /// The error with every configured secret removed from the server's words (message,
    /// detail and the hint that may quote them).
    pub fn scrubbed(mut self, scrubber: &crate::http::Scrubber) -> Self {
        self.message = scrubber.scrub(&self.message);
        self.hint = scrubber.scrub(&self.hint);
        self.detail = self.detail.map(|detail| match detail {
            ErrorDetail::Text(text) => ErrorDetail::Text(scrubber.scrub(&text)),
            ErrorDetail::Scopes { granted, required } => ErrorDetail::Scopes {
                granted: granted.iter().map(|s| scrubber.scrub(s)).collect(),
                required: required.iter().map(|s| scrubber.scrub(s)).collect(),
            },
        });
        self
    }

    /// Whether a retry of the same request could succeed (used by the retry loop's callers).
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::RateLimited | ErrorKind::Server | ErrorKind::Transport | ErrorKind::Timeout
        )
    }
}

/// Which authentication the client used, so hints can speak about the right credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Basic `email:api_token`.
    ApiToken,
    /// Bearer repository, project or workspace access token.
    AccessToken,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<ErrorInner>,
}

#[derive(Deserialize)]
struct ErrorInner {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    detail: Option<ErrorDetail>,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

/// A plain-text body (Bitbucket's 429 is `text/plain`) trimmed to a readable length.
fn plain_text_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.starts_with('<') {
        // An HTML error page from a proxy says nothing useful in one line.
        return String::new();
    }
    text.chars().take(200).collect()
}

fn default_message(status: u16) -> &'static str {
    match status {
        400 => "Bad request",
        401 => "Unauthorized",
        402 => "Payment required",
        403 => "Forbidden",
        404 => "Not found",
        410 => "Gone",
        429 => "Rate limit exceeded",
        500..=599 => "Server error",
        _ => "Unexpected answer",
    }
}

fn kind_for_status(status: u16) -> ErrorKind {
    match status {
        300..=399 => ErrorKind::Redirect,
        400 => ErrorKind::BadRequest,
        401 => ErrorKind::Unauthorized,
        402 => ErrorKind::PaymentRequired,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        410 => ErrorKind::Gone,
        429 => ErrorKind::RateLimited,
        500..=599 => ErrorKind::Server,
        _ => ErrorKind::ClientError,
    }
}

/// Names what a template addresses, so 403/404 hints can say which slug or role to check.
fn resource_words(endpoint: &str) -> (&'static str, &'static str) {
    if endpoint.contains("{repo_slug}") {
        (
            "the workspace slug and repository slug",
            "an administrator of the repository",
        )
    } else if endpoint.contains("{project_key}") {
        (
            "the workspace slug and project key",
            "an administrator of the project",
        )
    } else if endpoint.contains("{group_slug}") || endpoint.starts_with("/1.0/groups") {
        (
            "the workspace slug and group slug",
            "an administrator of the workspace",
        )
    } else if endpoint.contains("{selected_user}") || endpoint.contains("{member}") {
        (
            "the workspace slug and the user's account ID or {UUID}",
            "a member of the workspace",
        )
    } else {
        ("the workspace slug", "an administrator of the workspace")
    }
}

fn status_hint(
    err: &ApiError,
    method: &str,
    auth: AuthMethod,
    attempts: u32,
    announcement: Option<&str>,
) -> String {
    let status = err.status.unwrap_or(0);
    let (what_to_check, role) = resource_words(err.endpoint);
    match status {
        300..=399 => "Bitbucket answered with a redirect, which the client does not follow with \
            credentials; check that the API base URL is https://api.bitbucket.org (or your proxy)."
            .to_owned(),
        400 => format!(
            "Bitbucket refused the request as invalid; for a grant, the user must already be a \
             member of the workspace and must not be its owner ({}).",
            err.message
        ),
        401 => match auth {
            AuthMethod::ApiToken => "Bitbucket rejected the credentials: check that the API token \
                is correct, not expired or revoked, and that `email` is the Atlassian account \
                e-mail address of the token's owner (not the Bitbucket username)."
                .to_owned(),
            AuthMethod::AccessToken => "Bitbucket rejected the access token: it is wrong, expired \
                or revoked; create a new one or use an Atlassian API token with your account e-mail."
                .to_owned(),
        },
        402 => "The workspace has reached its plan's user limit, so Bitbucket will not give \
            access to another user; free a seat or upgrade the plan, then retry the grant."
            .to_owned(),
        403 => {
            let missing = err.missing_scopes();
            if !missing.is_empty() {
                format!(
                    "The API token lacks the scope{} {} that {} needs; create a new API token \
                     with {} added (scopes cannot be edited after creation).",
                    if missing.len() == 1 { "" } else { "s" },
                    missing.join(", "),
                    err.endpoint,
                    if missing.len() == 1{ "it" } else { "them" },
                )
            } else if err
                .message
                .contains("not accessible by this authentication mechanism")
            {
                "This endpoint does not accept the configured kind of token; use an Atlassian API \
                 token (Basic e-mail:token) of a workspace administrator."
                    .to_owned()
            } else {
                // Without Bitbucket's list, name the scopes the official spec documents.
                let scopes = crate::endpoints::scopes(method, err.endpoint);
                let scopes = if scopes.is_empty() {
                    "the scopes this endpoint needs".to_owned()
                } else {
                    scopes.join(", ")
                };
                format!(
                    "Bitbucket refused access to {}: the token's user must be {role}, and the \
                     token must carry {scopes}.",
                    err.endpoint
                )
            }
        }
        404 => format!(
            "Nothing was found at {}: check {what_to_check} (use slugs, not display names), and \
             that the token's user can see it.",
            err.endpoint
        ),
        410 => {
            if err.removed == Some(Removal::AppPasswords) {
                "App passwords were switched off by Atlassian in 2026 (CHANGE-3222); create an \
                 Atlassian API token with scopes and configure it as `app_token` with your \
                 Atlassian account `email`."
                    .to_owned()
            } else if err.removed == Some(Removal::CrossWorkspaceEndpoint) {
                "This cross-workspace endpoint was removed by Atlassian on 14 April 2026 \
                 (CHANGE-2770); list workspaces with /2.0/user/workspaces and repositories per \
                 workspace with /2.0/repositories/{workspace} instead."
                    .to_owned()
            } else {
                format!(
                    "Atlassian removed this endpoint or feature; see {} for what replaces it.",
                    announcement.unwrap_or("https://developer.atlassian.com/cloud/bitbucket/changelog")
                )
            }
        }
        429 => format!(
            "Bitbucket's rate limit (about 1,000 requests per hour per user) was still exceeded \
             after {attempts} attempt{}; lower `requests_per_hour` in the budget, stop other tools \
             using this account, or try again later.",
            if attempts == 1 { "" } else { "s" }
        ),
        500..=599 => format!(
            "Bitbucket failed on its side after {attempts} attempt{}; try again later and check \
             https://bitbucket.status.atlassian.com.",
            if attempts == 1 { "" } else { "s" }
        ),
        _ => format!("Bitbucket answered HTTP {status} to {}.", err.endpoint),
    }
}

fn local_hint(err: &ApiError) -> String {
    match err.kind {
        ErrorKind::Transport => "Could not talk to Bitbucket: check the network, proxy settings \
            and the configured API base URL."
            .to_owned(),
        ErrorKind::Timeout => "Bitbucket did not answer within the configured timeout; try again \
            later or raise the timeout."
            .to_owned(),
        ErrorKind::Decode => "Bitbucket's answer did not have the expected shape; this is a bug \
            or an API change, please report it with the endpoint named above."
            .to_owned(),
        ErrorKind::Incomplete => "The listing could not be read to its end, so nothing was \
            concluded from it; run again (partial listings are never treated as complete)."
            .to_owned(),
        ErrorKind::UnsupportedAuth => "Access tokens cannot read or change permissions, nor list \
            workspaces across the account; configure an Atlassian API token (Basic e-mail:token) \
            of a workspace administrator."
            .to_owned(),
        ErrorKind::Redirect => "The client refuses to carry credentials to another host; check \
            that the API base URL is https://api.bitbucket.org (or your proxy)."
            .to_owned(),
        ErrorKind::Budget => "The run's request cap (`--max-requests`) is spent, so nothing more \
            was sent; raise the cap, or run again to continue where this run stopped."
            .to_owned(),
        ErrorKind::TooLarge => "The answer was far larger than any page Bitbucket sends, so it \
            was not read; check that the API base URL points at Bitbucket (or your proxy)."
            .to_owned(),
        ErrorKind::Config => "Fix the Bitbucket client settings named above.".to_owned(),
        _ => "Try again later.".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_detail_names_missing_scopes() {
        let body = br#"{"type":"error","error":{"message":"Your credentials lack one or more required privilege scopes.","detail":{"granted":["read:repository:bitbucket"],"required":["admin:repository:bitbucket","write:permission:bitbucket","read:repository:bitbucket"]}}}"#;
        let err = ApiError::from_response(
            403,
            body,
            "PUT",
            "/repositories/{workspace}/{repo_slug}/permissions-config/users/{selected_user_id}",
            AuthMethod::ApiToken,
            1,
        );
        assert_eq!(err.kind, ErrorKind::Forbidden);
        assert_eq!(
            err.missing_scopes(),
            vec!["admin:repository:bitbucket", "write:permission:bitbucket"]
        );
        assert!(err.hint.contains("write:permission:bitbucket"));
        assert!(!err.hint.contains("read:repository:bitbucket"));
    }

    #[test]
    fn string_detail_and_unknown_fields_are_tolerated() {
        let body = br#"{"type":"error","error":{"message":"Bad request","fields":{"src":["x"]},"detail":"text","id":"abc","data":{"extra":1}}}"#;
        let err = ApiError::from_response(
            400,
            body,
            "GET",
            "/repositories/{workspace}",
            AuthMethod::ApiToken,
            1,
        );
        assert_eq!(err.detail, Some(ErrorDetail::Text("text".into())));
        assert_eq!(err.message, "Bad request");
    }

    #[test]
    fn plain_text_429_keeps_its_message() {
        let err = ApiError::from_response(
            429,
            b"Rate limit for this resource has been exceeded",
            "GET",
            "/user",
            AuthMethod::ApiToken,
            5,
        );
        assert_eq!(err.kind, ErrorKind::RateLimited);
        assert!(err.message.starts_with("Rate limit"));
        assert!(err.hint.contains("5 attempts"));
    }
}
