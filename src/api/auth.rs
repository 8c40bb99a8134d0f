//! Bearer tokens and roles: who is calling and what they may do.
//!
//! Tokens come from the config (`server.tokens`, and `server.api_token` as a granter named
//! `api_token`). A presented token is compared with every configured one in constant time
//! (`subtle`) over SHA-256 digests, so neither the position of the first differing byte nor
//! the length of a configured token shows in the time an answer takes.
//!
//! - no `Authorization: Bearer` header, or an unknown token: 401;
//! - a `reader` calling anything but GET: 403.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::errors::ApiError;
use crate::config::{ApiRole, ApiToken};

/// The caller a request was authenticated as (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name: the requester of the grants it makes.
    pub name: String,
    /// What it may do.
    pub role: ApiRole,
}

/// The configured tokens, kept as digests.
#[derive(Clone, Default)]
pub struct Tokens {
    known: Vec<([u8; 32], Caller)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.known.iter().map(|(_, c)| c.name.as_str()).collect();
        f.debug_struct("Tokens").field("names", &names).finish()
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Tokens {
    /// The tokens of a config.
    pub fn new(tokens: &[ApiToken]) -> Self {
        Tokens {
            known: tokens
                .iter()
                .map(|t| {
                    (
                        digest(t.token.expose_secret().as_bytes()),
                        Caller {
                            name: t.name.clone(),
                            role: t.role,
                        },
                    )
                })
                .collect(),
        }
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// The caller a presented token belongs to. Every configured token is compared, found or
    /// not, so the time does not say which one matched.
    pub fn find(&self, presented: &str) -> Option<Caller> {
        let presented = digest(presented.as_bytes());
        let mut found = None;
        for (known, caller) in &self.known {
            if bool::from(known.ct_eq(&presented)) {
                found = Some(caller.clone());
            }
        }
        found
    }
}

/// The middleware in front of `/v1`: authenticates, then checks the role for the method.
pub async fn require(
    State(tokens): State<Arc<Tokens>>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let caller = match presented {
        None if tokens.is_empty() => {
            return unauthorized(
                "the HTTP API has no tokens configured; add server.tokens to the config",
            )
        }
        None => {
            return unauthorized("send a token of server.tokens as `Authorization: Bearer TOKEN`")
        }
        Some(token) => match tokens.find(token) {
            Some(caller) => caller,
            None => return unauthorized("the bearer token is not one of server.tokens"),
        },
    };
    let reading = matches!(*request.method(), Method::GET | Method::HEAD);
    if !reading && caller.role != ApiRole::Granter {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "the token {:?} is a reader: it may only read (GET); this call needs a granter token",
                caller.name
            ),
        )
        .into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn unauthorized(message: &str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn token(name: &str, value: &str, role: ApiRole) -> ApiToken {
        ApiToken {
            name: name.to_owned(),
            token: SecretString::from(value.to_owned()),
            role,
        }
    }

    #[test]
    fn a_token_finds_its_caller_and_no_other() {
        let tokens = Tokens::new(&[
            token("portal", "secret-one", ApiRole::Granter),
            token("dashboards", "secret-two", ApiRole::Reader),
        ]);
        assert_eq!(
            tokens.find("secret-two").map(|c| c.name),
            Some("dashboards".to_owned())
        );
        assert_eq!(
            tokens.find("secret-one").map(|c| c.role),
            Some(ApiRole::Granter)
        );
        assert_eq!(tokens.find("secret-on"), None);
        assert_eq!(tokens.find(""), None);
        assert!(!format!("{tokens:?}").contains("secret"));
    }
}
