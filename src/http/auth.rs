//! The `Authorization` header both APIs send, built once per client and marked sensitive.

use super::scrub::Scrubber;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// A credential as it goes on the wire.
#[derive(Clone)]
pub enum Credentials {
    /// Basic `user:secret` (Atlassian API tokens for Bitbucket and Jira).
    Basic {
        /// The account e-mail.
        user: String,
        /// The API token.
        secret: SecretString,
    },
    /// Bearer `token` (Bitbucket repository, project and workspace access tokens).
    Bearer(SecretString),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("secret", &"[REDACTED]")
                .finish(),
            Credentials::Bearer(_) => f.debug_tuple("Bearer").field(&"[REDACTED]").finish(),
        }
    }
}

/// The credential cannot be sent in an HTTP header (a control or non-visible character).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the user or secret contains characters that cannot be sent in an HTTP header")]
pub struct InvalidCredentials;

impl Credentials {
    /// The header value, flagged sensitive so that reqwest and hyper never print it.
    pub fn header(&self) -> Result<HeaderValue, InvalidCredentials> {
        use base64::Engine as _;
        let raw = match self {
            Credentials::Basic { user, secret } => {
                let pair = format!("{user}:{}", secret.expose_secret());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }
            Credentials::Bearer(token) => format!("Bearer {}", token.expose_secret()),
        };
        let mut value = HeaderValue::from_str(&raw).map_err(|_| InvalidCredentials)?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// A scrubber that knows every form in which this credential travels.
    pub fn scrubber(&self) -> Scrubber {
        match self {
            Credentials::Basic { user, secret } => {
                Scrubber::new().with_basic(user, secret.expose_secret())
            }
            Credentials::Bearer(token) => Scrubber::new().with_bearer(token.expose_secret()),
        }
    }
}
