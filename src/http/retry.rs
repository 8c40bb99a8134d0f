//! When and how long the clients wait before trying a request again.
//!
//! The policy (shared by the Bitbucket and Jira clients):
//! - **429** is retried for every method (the request was not processed), with exponential
//!   backoff and full jitter: before retry `n` (1-based) the client sleeps a uniformly random time
//!   in `[0, min(max_delay, base_delay * 2^(n-1))]`. A `Retry-After` header (seconds or HTTP
//!   date), which Bitbucket usually omits, replaces that delay when present.
//! - **5xx, connection errors and timeouts** are retried the same way, but only for requests that
//!   are safe to repeat: reads, and the permission `PUT`/`DELETE` calls, which are idempotent
//!   (putting the same level twice, or deleting an absent grant, leaves the same state).
//! - **Any other 4xx is never retried**: the same request would get the same answer.
//! - Bounds: at most `max_attempts` attempts in all, and the client gives up early rather than
//!   sleep past `max_total_wait` summed over the retries of one request.

use rand::Rng;
use std::time::Duration;

/// Limits and delays for retries; every attempt also passes through the request budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (1 disables retries).
    pub max_attempts: u32,
    /// The backoff ceiling before the first retry; it doubles for each further retry.
    pub base_delay: Duration,
    /// The largest ceiling any single backoff may reach.
    pub max_delay: Duration,
    /// The most time one request may spend sleeping between its attempts.
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
            max_total_wait: Duration::from_secs(180),
        }
    }
}

impl RetryPolicy {
    /// The policy of interactive commands such as `doctor`: two attempts in all and at most a
    /// few seconds of waiting, so a person is told about a rate limit instead of kept waiting
    /// for minutes.
    pub fn interactive() -> Self {
        RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(2),
            max_total_wait: Duration::from_secs(3),
        }
    }

    /// A policy with no waiting at all, for tests.
    pub fn immediate(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            max_total_wait: Duration::ZERO,
        }
    }

    /// The full-jitter delay before retry number `retry` (1-based).
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(30);
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        if ceiling.is_zero() {
            return Duration::ZERO;
        }
        let nanos =
            rand::thread_rng().gen_range(0..=ceiling.as_nanos().min(u64::MAX as u128) as u64);
        Duration::from_nanos(nanos)
    }

    /// The delay before retry `retry`, given the `Retry-After` value the server sent (if any),
    /// or `None` when the policy's bounds say to stop after `waited` so far.
    pub fn next_delay(
        &self,
        retry: u32,
        waited: Duration,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if retry >= self.max_attempts {
            return None;
        }
        let delay = retry_after.unwrap_or_else(|| self.backoff(retry));
        if waited + delay > self.max_total_wait && !delay.is_zero() {
            return None;
        }
        Some(delay)
    }
}

/// Parses a `Retry-After` value: delta seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = when.signed_duration_since(chrono::Utc::now());
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_within_its_ceiling() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            max_total_wait: Duration::from_secs(10),
        };
        for retry in 1..10 {
            let ceiling =
                Duration::from_millis(100 * (1 << (retry - 1))).min(Duration::from_millis(500));
            for _ in 0..50 {
                assert!(policy.backoff(retry) <= ceiling);
            }
        }
    }

    #[test]
    fn bounds_stop_retries() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(1),
            max_total_wait: Duration::from_secs(5),
        };
        assert!(policy.next_delay(1, Duration::ZERO, None).is_some());
        assert!(policy.next_delay(3, Duration::ZERO, None).is_none());
        // A Retry-After longer than the remaining total wait ends the retries.
        assert!(policy
            .next_delay(1, Duration::from_secs(4), Some(Duration::from_secs(2)))
            .is_none());
        assert_eq!(
            policy.next_delay(1, Duration::ZERO, Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn the_interactive_policy_gives_up_within_seconds() {
        let policy = RetryPolicy::interactive();
        // Bitbucket's usual long Retry-After is not honoured: the person is told instead.
        assert_eq!(
            policy.next_delay(1, Duration::ZERO, Some(Duration::from_secs(60))),
            None
        );
        assert!(policy.next_delay(1, Duration::ZERO, None).is_some());
        assert_eq!(policy.next_delay(2, Duration::ZERO, None), None);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
