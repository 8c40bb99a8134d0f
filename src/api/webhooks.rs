//! `POST /webhooks/bitbucket`: Bitbucket's repository and project events, signed with the
//! configured `server.webhook_secret`, each scheduling a targeted refresh of what it names.
//!
//! A delivery is refused (401) when it carries no `X-Hub-Signature`, or one that is not the
//! HMAC-SHA256 of its body under the secret (compared in constant time); refused (409) when its
//! `X-Request-UUID` was seen before, or when its `X-Event-Time` is older than [`MAX_AGE`]: a
//! captured delivery cannot be played again. Accepted deliveries answer 202 at once; the
//! refresh runs behind [`TargetedRefresh`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{ApiError, ApiState};
use crate::bitbucket::webhook_subject;
pub use crate::bitbucket::WebhookSubject as RefreshTarget;

/// The oldest delivery accepted, by its `X-Event-Time`; delivery ids are remembered this long.
pub const MAX_AGE: Duration = Duration::minutes(10);

/// The most delivery ids remembered; beyond it the oldest are forgotten first.
const MAX_REMEMBERED: usize = 100_000;

/// Where accepted deliveries send their refresh: the targeted refresh of a repository or
/// project (`src/sync/targeted.rs`, wired when it lands).
pub trait TargetedRefresh: Send + Sync {
    /// Schedules a refresh of `target`; returns at once.
    fn schedule(&self, target: RefreshTarget);
}

/// The delivery ids seen within [`MAX_AGE`].
#[derive(Debug, Default)]
pub struct Deliveries {
    seen: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl Deliveries {
    /// Records `id` at `now`; false when it was already seen.
    pub fn first_time(&self, id: &str, now: DateTime<Utc>) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, at| now - *at < MAX_AGE);
        }
        if seen.len() >= MAX_REMEMBERED {
            if let Some(oldest) = seen
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, _)| k.clone())
            {
                seen.remove(&oldest);
            }
        }
        seen.insert(id.to_owned(), now).is_none()
    }
}

/// The signature Bitbucket sends for `body` under `secret` (the simulator signs with it).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Whether `signature` (`sha256=HEX`) is the HMAC-SHA256 of `body` under `secret`, compared in
/// constant time.
pub fn signature_matches(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let expected = sign(secret, body);
    bool::from(
        expected
            .as_bytes()
            .ct_eq(signature.to_ascii_lowercase().as_bytes()),
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn refused(status: StatusCode, code: &'static str, message: &str) -> ApiError {
    ApiError::new(status, code, message)
}

/// Receives one delivery.
pub async fn receive(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let Some(secret) = state.config.server.webhook_secret.as_ref() else {
        return Err(ApiError::not_found(
            "webhooks are off: set server.webhook_secret and run `bitbucket-access webhook install`",
        ));
    };
    let Some(signature) = header(&headers, "x-hub-signature") else {
        return Err(refused(
            StatusCode::UNAUTHORIZED,
            "unsigned",
            "the delivery has no X-Hub-Signature; register the webhook with a secret",
        ));
    };
    if !signature_matches(secret.expose_secret().as_bytes(), &body, signature) {
        return Err(refused(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "X-Hub-Signature does not match the body under server.webhook_secret",
        ));
    }
    let now = state.clock.now();
    if let Some(sent) = header(&headers, "x-event-time") {
        let at = DateTime::parse_from_rfc3339(sent)
            .or_else(|_| DateTime::parse_from_rfc2822(sent))
            .map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "X-Event-Time is not a time",
                )
            })?;
        if now - at.with_timezone(&Utc) > MAX_AGE {
            return Err(refused(
                StatusCode::CONFLICT,
                "replayed",
                "the delivery is older than ten minutes and is not accepted again",
            ));
        }
    }
    let Some(id) = header(&headers, "x-request-uuid") else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the delivery has no X-Request-UUID",
        ));
    };
    if !state.deliveries.first_time(id, now) {
        return Err(refused(
            StatusCode::CONFLICT,
            "replayed",
            "this delivery (X-Request-UUID) was received before",
        ));
    }
    let target = webhook_subject(&body)
        .map_err(|m| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", m))?;
    tracing::info!(event = header(&headers, "x-event-key").unwrap_or("unknown"), target = ?target, "webhook: refresh scheduled");
    state.refresh.schedule(target);
    Ok(StatusCode::ACCEPTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_secrets_signature_matches() {
        let signature = sign(b"s3cret", b"{\"a\":1}");
        assert!(signature_matches(b"s3cret", b"{\"a\":1}", &signature));
        assert!(!signature_matches(b"other", b"{\"a\":1}", &signature));
        assert!(!signature_matches(b"s3cret", b"{\"a\":2}", &signature));
        assert!(!signature_matches(
            b"s3cret",
            b"{\"a\":1}",
            signature.trim_start_matches("sha256=")
        ));
    }

    #[test]
    fn a_delivery_id_is_accepted_once() {
        let d = Deliveries::default();
        let now = Utc::now();
        assert!(d.first_time("a", now));
        assert!(!d.first_time("a", now));
        assert!(d.first_time("b", now));
    }
}
