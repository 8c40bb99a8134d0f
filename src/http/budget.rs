//! The request budget shared by every task that uses one token (Bitbucket's, or Jira's own).
//!
//! Bitbucket allows a user API token about 1,000 requests in any rolling hour, shared with every
//! other tool using the same account, and answers 429 (usually without `Retry-After`) once the
//! allowance is spent. Rather than finding the limit by hitting it, the client asks this budget
//! for admission before *every* attempt, retries included:
//!
//! - **Spend what is free at once.** A log of the admission times of the last window (an hour
//!   outside tests) tells how much of the rolling hour is still free. A request is admitted at
//!   once while the window has room for it, so a run that fits in the free allowance goes at
//!   network speed. Only a request beyond it waits: until the oldest request in the window
//!   leaves it, or the usage reported by other processes expires. No window ever holds more
//!   than the limit.
//! - **Classes.** A [`RequestClass::Sync`] request may use `requests_per_hour - reserve`; a
//!   [`RequestClass::Grant`] request may use the reserve too and has concurrency slots of its
//!   own, so a grant never waits behind a sync.
//! - **Optional pacing.** [`Budget::with_burst`] adds a GCRA (a token bucket expressed as one
//!   timestamp) that spreads sync requests evenly over the window, for callers that want a
//!   steady rate rather than the allowance at once.
//! - **Concurrency.** A semaphore per class keeps at most `max_in_flight` requests open.
//! - **Accounting.** Counters per endpoint template tell the sync what it spent;
//!   [`Budget::available`], [`Budget::try_reserve`] and [`Budget::time_until_available`] let it
//!   plan a run; [`Budget::stats`] tells how many admissions waited for the window, and how long;
//!   [`Budget::outcome_counts`] tells how the attempts ended, by endpoint and status (the
//!   transport records each one), for `serve`'s metrics.
//! - **Other processes.** [`Budget::set_external_usage`] tells the budget how many requests
//!   other processes spent on the same token in the current rolling hour; they count against
//!   the limits until a window after they were reported.
//! - **A run's cap.** [`Budget::cap_requests`] refuses every request past a fixed number
//!   (`sync --max-requests`), listings and retries included, with [`BudgetError`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The rolling window Bitbucket counts requests in.
pub const HOUR: Duration = Duration::from_secs(3600);

/// How many requests one token may spend, as configured by the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSettings {
    /// Requests Bitbucket allows per rolling hour for the token (1,000 for user API tokens).
    pub requests_per_hour: u32,
    /// Requests per hour kept for grants and for other tools using the same account.
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
    /// Requests a sync may spend in any rolling hour (never less than one).
    pub fn limit(&self) -> u32 {
        self.requests_per_hour.saturating_sub(self.reserve).max(1)
    }
}

/// Which share of the window a request may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequestClass {
    /// Reading: up to the limit, leaving the reserve alone.
    #[default]
    Sync,
    /// Applying or revoking a grant: may use the reserve, and never queues behind sync requests.
    Grant,
}

/// How admissions went since the budget was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BudgetStats {
    /// Requests admitted.
    pub admitted: u64,
    /// Of those, the ones that had to wait for the window (or the pace) before admission.
    pub delayed: u64,
    /// Time spent waiting for the window or the pace, summed over the delayed admissions.
    /// Waits for a concurrency slot are not counted: they are `max_in_flight` at work.
    pub waited: Duration,
}

/// Even spacing of sync requests, for budgets built with [`Budget::with_burst`].
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// Average spacing between admissions.
    interval: Duration,
    /// How far ahead of the average pace a burst may run (`(burst - 1) * interval`).
    tolerance: Duration,
}

struct State {
    /// GCRA theoretical arrival time (used only with a [`Pace`]).
    tat: Instant,
    /// Admission times inside the last window, oldest first. Pruned at every look, so it holds
    /// at most `requests_per_hour` entries however long the process lives.
    window: VecDeque<Instant>,
    /// Requests promised to planners through `try_reserve` and not yet spent.
    reserved: u64,
    /// Requests admitted since the budget was created, per `METHOD template`.
    counts: BTreeMap<String, u64>,
    /// Attempts that ended, per (`METHOD template`, status or failure kind).
    outcomes: BTreeMap<(String, String), u64>,
    stats: BudgetStats,
    /// Requests other processes spent in the rolling hour, as last reported, and when.
    external: u64,
    external_at: Instant,
    /// No request is admitted once `stats.admitted` reaches this.
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
    /// The rolling window the limits apply to (an hour outside tests).
    window: Duration,
    pace: Option<Pace>,
    in_flight: Arc<Semaphore>,
    grant_in_flight: Arc<Semaphore>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("settings", &self.settings)
            .field("window", &self.window)
            .field("paced", &self.pace.is_some())
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
    /// A budget that admits at once whatever the rolling hour still allows.
    pub fn new(settings: BudgetSettings) -> Self {
        Self::with_window(settings, HOUR)
    }

    /// The same over a window other than an hour, so that tests can watch requests leave the
    /// window in seconds.
    pub fn with_window(settings: BudgetSettings, window: Duration) -> Self {
        let slots = settings.max_in_flight.max(1);
        Budget {
            settings,
            window: window.max(Duration::from_millis(1)),
            pace: None,
            in_flight: Arc::new(Semaphore::new(slots)),
            grant_in_flight: Arc::new(Semaphore::new(slots)),
            state: Mutex::new(State {
                tat: Instant::now(),
                window: VecDeque::new(),
                reserved: 0,
                counts: BTreeMap::new(),
                outcomes: BTreeMap::new(),
                stats: BudgetStats::default(),
                external: 0,
                external_at: Instant::now(),
                cap: None,
            }),
        }
    }

    /// A budget that also spaces sync requests evenly, one every `window / limit` on average
    /// with at most `burst` ahead of that pace, instead of spending the free allowance at once.
    pub fn with_burst(settings: BudgetSettings, burst: u32) -> Self {
        Self::paced(settings, burst, HOUR)
    }

    fn paced(settings: BudgetSettings, burst: u32, window: Duration) -> Self {
        let mut budget = Self::with_window(settings, window);
        let limit = settings.limit();
        let interval = budget.window / limit;
        budget.pace = Some(Pace {
            interval,
            tolerance: interval * (burst.clamp(1, limit) - 1),
        });
        budget
    }

    /// The settings this budget enforces.
    pub fn settings(&self) -> BudgetSettings {
        self.settings
    }

    /// The rolling window the limits apply to.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The average spacing between sync requests of a paced budget; zero when the budget
    /// spends its free allowance at once.
    pub fn interval(&self) -> Duration {
        self.pace.map_or(Duration::ZERO, |p| p.interval)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the counters inconsistent enough to
        // matter, so a poisoned lock is recovered rather than propagated.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The requests a class may have in one window, this process and others together.
    fn ceiling(&self, class: RequestClass) -> u64 {
        match class {
            RequestClass::Sync => u64::from(self.settings.limit()),
            RequestClass::Grant => u64::from(self.settings.requests_per_hour.max(1)),
        }
    }

    /// Waits until one more sync request fits the window and the concurrency limit, then counts
    /// it against `endpoint` (a `METHOD template` key). Fails at once, without counting, when
    /// the cap set by [`Budget::cap_requests`] is spent.
    pub async fn admit(&self, endpoint: &str) -> Result<Admission, BudgetError> {
        self.admit_as(endpoint, RequestClass::Sync).await
    }

    /// [`Budget::admit`] for a request of the given class.
    pub async fn admit_as(
        &self,
        endpoint: &str,
        class: RequestClass,
    ) -> Result<Admission, BudgetError> {
        self.check_cap()?;
        let slots = match class {
            RequestClass::Sync => &self.in_flight,
            RequestClass::Grant => &self.grant_in_flight,
        };
        let permit = Arc::clone(slots)
            .acquire_owned()
            .await
            .unwrap_or_else(|_| unreachable!("the budget never closes its semaphores"));
        let mut first_wait: Option<Instant> = None;
        loop {
            let wait_until = {
                let mut state = self.lock();
                if let Some(cap) = state.cap.filter(|cap| state.stats.admitted >= *cap) {
                    return Err(BudgetError { cap });
                }
                let now = Instant::now();
                prune(&mut state.window, now, self.window);
                let earliest = self.earliest_admission(&state, class, now);
                if earliest <= now {
                    if let (Some(pace), RequestClass::Sync) = (self.pace, class) {
                        state.tat = state.tat.max(now) + pace.interval;
                    }
                    state.window.push_back(now);
                    state.reserved = state.reserved.saturating_sub(1);
                    *state.counts.entry(endpoint.to_owned()).or_default() += 1;
                    state.stats.admitted += 1;
                    if let Some(since) = first_wait {
                        state.stats.delayed += 1;
                        state.stats.waited += now.saturating_duration_since(since);
                    }
                    None
                } else {
                    Some(earliest)
                }
            };
            match wait_until {
                None => return Ok(Admission { _permit: permit }),
                Some(at) => {
                    first_wait.get_or_insert_with(Instant::now);
                    tracing::debug!(
                        wait_ms = at.saturating_duration_since(Instant::now()).as_millis() as u64,
                        ?class,
                        "request waits for room in the rolling window"
                    );
                    tokio::time::sleep_until(at).await;
                }
            }
        }
    }

    /// When the next request of `class` may go: now while the window has room (and the pace, if
    /// any, allows), else when the window next frees a place.
    fn earliest_admission(&self, state: &State, class: RequestClass, now: Instant) -> Instant {
        let external = self.external_now(state, now);
        let full = state.window.len() as u64 + external >= self.ceiling(class);
        let ceiling = if full {
            // The window frees up when the oldest own request leaves it or the reported external
            // requests expire, whichever comes first.
            let own = state.window.front().map(|t| *t + self.window);
            let ext = (external > 0).then(|| state.external_at + self.window);
            own.into_iter().chain(ext).min().unwrap_or(now)
        } else {
            now
        };
        let paced = match (self.pace, class) {
            (Some(pace), RequestClass::Sync) => {
                state.tat.checked_sub(pace.tolerance).unwrap_or(now)
            }
            _ => now,
        };
        ceiling.max(paced)
    }

    /// Sync requests that may start right now without waiting for the window (or the pace).
    pub fn remaining_now(&self) -> u64 {
        let mut state = self.lock();
        let now = Instant::now();
        prune(&mut state.window, now, self.window);
        let hour = self.hour_left(&state, now);
        match self.pace {
            None => hour,
            Some(pace) => {
                let ahead = state.tat.saturating_duration_since(now);
                let burst =
                    (pace.tolerance.as_nanos() / pace.interval.as_nanos().max(1)) as u64 + 1;
                let used = ahead.as_nanos().div_ceil(pace.interval.as_nanos().max(1)) as u64;
                hour.min(burst.saturating_sub(used))
            }
        }
    }

    fn hour_left(&self, state: &State, now: Instant) -> u64 {
        self.ceiling(RequestClass::Sync)
            .saturating_sub(state.window.len() as u64)
            .saturating_sub(self.external_now(state, now))
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
            Some(cap) if state.stats.admitted >= cap => Err(BudgetError { cap }),
            _ => Ok(()),
        }
    }

    /// Records that other processes spent `n` requests on this token in the current rolling
    /// hour (the sync reads this from the store). They reduce what this budget admits until a
    /// window after this call; a later call replaces the figure.
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
        state
            .cap
            .map(|cap| cap.saturating_sub(state.stats.admitted))
    }

    /// Admits at most `max` more requests from now on (every request: listings, pages and
    /// retries); later ones fail with [`BudgetError`]. `None` removes the cap.
    pub fn cap_requests(&self, max: Option<u64>) {
        let mut state = self.lock();
        state.cap = max.map(|m| state.stats.admitted.saturating_add(m));
    }

    /// Sync requests still allowed in the current rolling hour, less those promised by
    /// [`Budget::try_reserve`].
    pub fn available(&self) -> u64 {
        let mut state = self.lock();
        let now = Instant::now();
        prune(&mut state.window, now, self.window);
        self.hour_left(&state, now)
    }

    /// How long until [`Budget::available`] reaches `n` if nothing else is admitted meanwhile:
    /// zero when it already has, `None` when it never can (more than the limit, less what is
    /// promised). External usage is assumed to stay until it expires.
    pub fn time_until_available(&self, n: u64) -> Option<Duration> {
        let mut state = self.lock();
        let now = Instant::now();
        prune(&mut state.window, now, self.window);
        let room = self
            .ceiling(RequestClass::Sync)
            .checked_sub(state.reserved)?
            .checked_sub(n)?;
        // The moment at most `keep` of the own requests remain in the window.
        let own_down_to = |keep: u64| -> Instant {
            let len = state.window.len() as u64;
            if len <= keep {
                now
            } else {
                state.window[(len - keep - 1) as usize] + self.window
            }
        };
        let external = self.external_now(&state, now);
        let while_external = room
            .checked_sub(external)
            .map(own_down_to)
            .filter(|at| external == 0 || *at < state.external_at + self.window);
        let after_external = own_down_to(room).max(state.external_at + self.window);
        let at = while_external.unwrap_or(after_external);
        Some(at.saturating_duration_since(now))
    }

    /// Promises `n` of this hour's requests to the caller if they are still available, so two
    /// planners sharing the token do not both count on the same requests. The promise is used
    /// up as requests are admitted; give back what was not used with [`Budget::release`].
    pub fn try_reserve(&self, n: u64) -> bool {
        let mut state = self.lock();
        let now = Instant::now();
        prune(&mut state.window, now, self.window);
        if self.hour_left(&state, now) >= n {
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
        self.lock().stats.admitted
    }

    /// How many admissions waited for the window, and how long in all.
    pub fn stats(&self) -> BudgetStats {
        self.lock().stats
    }

    /// Requests admitted per `METHOD template`, retries included.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.lock().counts.clone()
    }

    /// Records how one admitted attempt of `key` (`METHOD template`) ended: an HTTP status
    /// code, or a failure kind such as `timeout` when no answer came.
    pub fn record_outcome(&self, key: &str, outcome: &str) {
        let mut state = self.lock();
        *state
            .outcomes
            .entry((key.to_owned(), outcome.to_owned()))
            .or_insert(0) += 1;
    }

    /// Attempts that ended, per (`METHOD template`, status code or failure kind).
    pub fn outcome_counts(&self) -> BTreeMap<(String, String), u64> {
        self.lock().outcomes.clone()
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
#[path = "budget_tests.rs"]
mod tests;
