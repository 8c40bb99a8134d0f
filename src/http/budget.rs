//! The request budget shared by every task that uses one token (Bitbucket's, or Jira's own).
//!
//! Bitbucket allows a user API token about 1,000 requests in any rolling hour, shared with every
//! other tool using the same account, and answers 429 (usually without `Retry-After`) once the
//! allowance is spent. Rather than finding the limit by hitting it, the client asks this budget
//! for admission before *every* attempt, retries included:
//!
//! - **Pacing.** A GCRA (generic cell rate algorithm, a token bucket expressed as one timestamp)
//!   admits one request every `3600 s / limit` on average, with a small burst, so a large sync is
//!   spread over the hour instead of spending the allowance in the first minutes.
//! - **Hard ceiling.** A log of the admission times of the last hour guarantees that no rolling
//!   hour ever holds more than `limit = requests_per_hour - reserve` requests, whatever the burst.
//! - **Concurrency.** A semaphore keeps at most `max_in_flight` requests open at once.
//! - **Accounting.** Counters per endpoint template tell the sync what it spent, and
//!   [`Budget::available`] / [`Budget::try_reserve`] let it plan a run before starting it.
//! - **Other processes.** [`Budget::set_external_usage`] tells the budget how many requests
//!   other processes spent on the same token in the current rolling hour; they count against
//!   the ceiling until an hour after they were reported.
//! - **A run's cap.** [`Budget::cap_requests`] refuses every request past a fixed number
//!   (`sync --max-requests`), listings and retries included, with [`BudgetError`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

const HOUR: Duration = Duration::from_secs(3600);

/// How many requests one token may spend, as configured by the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSettings {
    /// Requests Bitbucket allows per rolling hour for the token (1,000 for user API tokens).
    pub requests_per_hour: u32,
    /// Requests per hour left for other tools using the same account.
    pub reserve: u32,
    /// Requests open at the same time, at most.
    pub max_in_flight: usize,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        BudgetSettings {
            requests_per_hour: 1000,
            reserve: 100,
            max_in_flight: 4,
        }
    }
}

impl BudgetSettings {
    /// Requests this connector may spend in any rolling hour (never less than one).
    pub fn limit(&self) -> u32 {
        self.requests_per_hour.saturating_sub(self.reserve).max(1)
    }
}

struct State {
    /// GCRA theoretical arrival time: when the bucket would be empty again.
    tat: Instant,
    /// Admission times inside the last rolling hour, oldest first.
    window: VecDeque<Instant>,
    /// Requests promised to planners through `try_reserve` and not yet spent.
    reserved: u64,
    /// Requests admitted since the budget was created, per `METHOD template`.
    counts: BTreeMap<String, u64>,
    total: u64,
    /// Requests other processes spent in the rolling hour, as last reported, and when.
    external: u64,
    external_at: Instant,
    /// No request is admitted once `total` reaches this.
    cap: Option<u64>,
}

/// The budget refused a request outright (rather than making it wait).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the run's request cap of {cap} requests is spent")]
pub struct BudgetError {
    /// The cap that was reached, in requests since the budget was created.
    pub cap: u64,
}

/// The shared budget; clone the `Arc` to share it between clients using one token.
pub struct Budget {
    settings: BudgetSettings,
    /// The rolling window the limit applies to (an hour outside tests).
    window: Duration,
    /// Average spacing between admissions.
    interval: Duration,
    /// How far ahead of the average pace a burst may run (`(burst - 1) * interval`).
    tolerance: Duration,
    burst: u32,
    in_flight: Arc<Semaphore>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("settings", &self.settings)
            .field("burst", &self.burst)
            .field("requests_used", &self.requests_used())
            .finish()
    }
}

/// Admission to send one request; holds a concurrency slot until dropped.
#[derive(Debug)]
pub struct Admission {
    _permit: OwnedSemaphorePermit,
}

impl Budget {
    /// A budget with the default burst: a twentieth of the hourly limit (at least one), so a
    /// short interactive command such as `doctor` is not slowed down while long runs are paced.
    pub fn new(settings: BudgetSettings) -> Self {
        let burst = (settings.limit() / 20).max(1);
        Self::with_burst(settings, burst)
    }

    /// A budget admitting at most `burst` requests ahead of the average pace.
    pub fn with_burst(settings: BudgetSettings, burst: u32) -> Self {
        Self::with_window(settings, burst, HOUR)
    }

    /// The budget over a window other than an hour, so tests can watch the ceiling work.
    fn with_window(settings: BudgetSettings, burst: u32, window: Duration) -> Self {
        let limit = settings.limit();
        let burst = burst.clamp(1, limit);
        let interval = window / limit;
        Budget {
            settings,
            window,
            interval,
            tolerance: interval * (burst - 1),
            burst,
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
            state: Mutex::new(State {
                tat: Instant::now(),
                window: VecDeque::new(),
                reserved: 0,
                counts: BTreeMap::new(),
                total: 0,
                external: 0,
                external_at: Instant::now(),
                cap: None,
            }),
        }
    }

    /// The settings this budget enforces.
    pub fn settings(&self) -> BudgetSettings {
        self.settings
    }

    /// The average spacing between requests once the burst is spent.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the counters inconsistent enough to
        // matter, so a poisoned lock is recovered rather than propagated.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until one more request fits the pace, the hourly ceiling and the concurrency limit,
    /// then counts it against `endpoint` (a `METHOD template` key). Fails at once, without
    /// counting, when the cap set by [`Budget::cap_requests`] is spent.
    pub async fn admit(&self, endpoint: &str) -> Result<Admission, BudgetError> {
        self.check_cap()?;
        let permit = Arc::clone(&self.in_flight)
            .acquire_owned()
            .await
            .unwrap_or_else(|_| unreachable!("the budget never closes its semaphore"));
        loop {
            let wait_until = {
                let mut state = self.lock();
                if let Some(cap) = state.cap.filter(|cap| state.total >= *cap) {
                    return Err(BudgetError { cap });
                }
                let now = Instant::now();
                prune(&mut state.window, now, self.window);
                let external = self.external_now(&state, now);
                let paced = state.tat.checked_sub(self.tolerance).unwrap_or(now);
                let ceiling =
                    if state.window.len() as u64 + external >= u64::from(self.settings.limit()) {
                        // The ceiling frees up when the oldest own request leaves the window or
                        // the reported external requests expire, whichever comes first.
                        let own = state.window.front().map(|t| *t + self.window);
                        let ext = (external > 0).then(|| state.external_at + self.window);
                        own.into_iter().chain(ext).min().unwrap_or(now)
                    } else {
                        now
                    };
                let earliest = paced.max(ceiling);
                if earliest <= now {
                    state.tat = state.tat.max(now) + self.interval;
                    state.window.push_back(now);
                    state.reserved = state.reserved.saturating_sub(1);
                    *state.counts.entry(endpoint.to_owned()).or_default() += 1;
                    state.total += 1;
                    None
                } else {
                    Some(earliest)
                }
            };
            match wait_until {
                None => return Ok(Admission { _permit: permit }),
                Some(at) => {
                    tracing::debug!(
                        wait_ms = at.saturating_duration_since(Instant::now()).as_millis() as u64,
                        "pacing request to stay inside the request budget"
                    );
                    tokio::time::sleep_until(at).await;
                }
            }
        }
    }

    /// Requests that may start right now without waiting (the unspent part of the burst,
    /// bounded by what the rolling hour still allows).
    pub fn remaining_now(&self) -> u64 {
        let mut state = self.lock();
        let now = Instant::now();
        prune(&mut state.window, now, self.window);
        let ahead = state.tat.saturating_duration_since(now);
        let used_burst = if ahead.is_zero() {
            0
        } else {
            ahead.as_nanos().div_ceil(self.interval.as_nanos().max(1)) as u64
        };
        let burst_left = u64::from(self.burst).saturating_sub(used_burst);
        burst_left.min(self.hour_left(&state))
    }

    fn hour_left(&self, state: &State) -> u64 {
        u64::from(self.settings.limit())
            .saturating_sub(state.window.len() as u64)
            .saturating_sub(self.external_now(state, Instant::now()))
            .saturating_sub(state.reserved)
    }

    /// The reported external usage, or zero once a whole window has passed since the report
    /// (every request it counted has then left the rolling hour).
    fn external_now(&self, state: &State, now: Instant) -> u64 {
        if now.saturating_duration_since(state.external_at) >= self.window {
            0
        } else {
            state.external
        }
    }

    fn check_cap(&self) -> Result<(), BudgetError> {
        let state = self.lock();
        match state.cap {
            Some(cap) if state.total >= cap => Err(BudgetError { cap }),
            _ => Ok(()),
        }
    }

    /// Records that other processes spent `n` requests on this token in the current rolling
    /// hour (the sync reads this from the store). They reduce what this budget admits until an
    /// hour after this call; a later call replaces the figure.
    pub fn set_external_usage(&self, n: u64) {
        let mut state = self.lock();
        state.external = n;
        state.external_at = Instant::now();
    }

    /// Requests this process sent in the current rolling hour (the window), retries included.
    pub fn used_in_window(&self) -> u64 {
        let mut state = self.lock();
        prune(&mut state.window, Instant::now(), self.window);
        state.window.len() as u64
    }

    /// Requests the cap still admits, `None` without a cap.
    pub fn cap_left(&self) -> Option<u64> {
        let state = self.lock();
        state.cap.map(|cap| cap.saturating_sub(state.total))
    }

    /// Admits at most `max` more requests from now on (every request: listings, pages and
    /// retries); later ones fail with [`BudgetError`]. `None` removes the cap.
    pub fn cap_requests(&self, max: Option<u64>) {
        let mut state = self.lock();
        state.cap = max.map(|m| state.total.saturating_add(m));
    }

    /// Requests still allowed in the current rolling hour, less those promised by
    /// [`Budget::try_reserve`].
    pub fn available(&self) -> u64 {
        let mut state = self.lock();
        prune(&mut state.window, Instant::now(), self.window);
        self.hour_left(&state)
    }

    /// Promises `n` of this hour's requests to the caller if they are still available, so two
    /// planners sharing the token do not both count on the same requests. The promise is used
    /// up as requests are admitted; give back what was not used with [`Budget::release`].
    pub fn try_reserve(&self, n: u64) -> bool {
        let mut state = self.lock();
        prune(&mut state.window, Instant::now(), self.window);
        if self.hour_left(&state) >= n {
            state.reserved += n;
            true
        } else {
            false
        }
    }

    /// Gives back `n` reserved requests that will not be spent.
    pub fn release(&self, n: u64) {
        let mut state = self.lock();
        state.reserved = state.reserved.saturating_sub(n);
    }

    /// Requests admitted since the budget was created, retries included.
    pub fn requests_used(&self) -> u64 {
        self.lock().total
    }

    /// Requests admitted per `METHOD template`, retries included.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.lock().counts.clone()
    }
}

fn prune(window: &mut VecDeque<Instant>, now: Instant, length: Duration) {
    while let Some(front) = window.front() {
        if now.saturating_duration_since(*front) >= length {
            window.pop_front();
        } else {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(per_hour: u32, in_flight: usize) -> BudgetSettings {
        BudgetSettings {
            requests_per_hour: per_hour,
            reserve: 0,
            max_in_flight: in_flight,
        }
    }

    #[tokio::test]
    async fn paces_after_the_burst() {
        // 72,000 per hour is one every 50 ms; a burst of 2 lets two through at once.
        let budget = Budget::with_burst(settings(72_000, 8), 2);
        let start = Instant::now();
        for _ in 0..5 {
            drop(budget.admit("GET /user").await.expect("admitted"));
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(145), "took {elapsed:?}");
        assert_eq!(budget.requests_used(), 5);
        assert_eq!(budget.request_counts()["GET /user"], 5);
    }

    #[tokio::test]
    async fn never_exceeds_the_ceiling_of_the_window() {
        // A burst as large as the limit would let GCRA admit more as soon as its credit
        // refills; the rolling window must still hold every window to the limit.
        let window = Duration::from_millis(400);
        let budget = Budget::with_window(settings(10, 8), 10, window);
        let start = Instant::now();
        for _ in 0..10 {
            drop(budget.admit("GET /user").await.expect("admitted"));
        }
        assert!(start.elapsed() < Duration::from_millis(100));
        assert_eq!(budget.available(), 0);
        drop(budget.admit("GET /user").await.expect("admitted"));
        assert!(start.elapsed() >= window);
    }

    #[tokio::test]
    async fn reservations_reduce_what_is_available() {
        let budget = Budget::with_burst(settings(100, 8), 5);
        assert_eq!(budget.available(), 100);
        assert!(budget.try_reserve(60));
        assert!(!budget.try_reserve(41));
        assert_eq!(budget.available(), 40);
        drop(budget.admit("GET /user").await.expect("admitted"));
        // The admitted request used one of the reserved ones.
        assert_eq!(budget.available(), 40);
        budget.release(59);
        assert_eq!(budget.available(), 99);
        assert_eq!(budget.remaining_now(), 4);
    }

    #[tokio::test]
    async fn external_usage_reduces_the_window_and_expires_with_it() {
        let window = Duration::from_millis(300);
        let budget = Budget::with_window(settings(10, 8), 10, window);
        budget.set_external_usage(8);
        assert_eq!(budget.available(), 2);
        let start = Instant::now();
        for _ in 0..2 {
            drop(budget.admit("GET /user").await.expect("admitted"));
        }
        assert!(start.elapsed() < Duration::from_millis(100));
        assert_eq!(budget.used_in_window(), 2);
        // The third request must wait for the window to pass: the external eight and the own
        // two fill the limit of ten.
        drop(budget.admit("GET /user").await.expect("admitted"));
        assert!(
            start.elapsed() >= Duration::from_millis(250),
            "{:?}",
            start.elapsed()
        );
        // After the window, only the request just made remains in it.
        assert_eq!(budget.used_in_window(), 1);
        assert_eq!(budget.available(), 9);
    }

    #[tokio::test]
    async fn used_in_window_forgets_requests_older_than_the_window() {
        let window = Duration::from_millis(200);
        let budget = Budget::with_window(settings(100, 8), 100, window);
        for _ in 0..3 {
            drop(budget.admit("GET /user").await.expect("admitted"));
        }
        assert_eq!(budget.used_in_window(), 3);
        tokio::time::sleep(window).await;
        assert_eq!(budget.used_in_window(), 0);
        assert_eq!(budget.requests_used(), 3);
    }

    #[tokio::test]
    async fn the_cap_refuses_requests_past_it() {
        let budget = Budget::with_burst(settings(100_000, 8), 100);
        drop(budget.admit("GET /user").await.expect("admitted"));
        budget.cap_requests(Some(2));
        for _ in 0..2 {
            drop(budget.admit("GET /user").await.expect("admitted"));
        }
        let refused = budget
            .admit("GET /user")
            .await
            .expect_err("the cap is spent");
        assert_eq!(refused.cap, 3);
        assert_eq!(budget.requests_used(), 3);
        budget.cap_requests(None);
        assert!(budget.admit("GET /user").await.is_ok());
    }
}
