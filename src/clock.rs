//! Time as a dependency: code that needs "now" takes a [`Clock`], so that tests can move time
//! instead of waiting for it.
//!
//! [`SystemClock`] reads the system time; [`ManualClock`] holds a time that a test sets and
//! advances. The manual clock is public (not `cfg(test)`) because integration tests and the
//! benchmark live outside the crate.
//!
//! Long-running work (the `serve` scheduler) also *waits* on the clock with
//! [`Clock::sleep_until`]: the system clock sleeps in real time, the manual clock wakes its
//! sleepers when a test moves it past their time, so a test drives a schedule without waiting.

use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// A source of the current time.
pub trait Clock: fmt::Debug + Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// Waits until this clock shows `at` or later (at once when it already does). The default
    /// sleeps in real time, re-reading the clock on waking so that a changed system time is
    /// noticed within a minute.
    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            loop {
                let Ok(left) = (at - self.now()).to_std() else {
                    return;
                };
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left.min(std::time::Duration::from_secs(60))).await;
            }
        })
    }
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until told otherwise. Clones share one time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
    /// Wakes the tasks in [`Clock::sleep_until`] whenever the time is set or advanced.
    moved: Arc<Notify>,
    /// How many tasks are in [`Clock::sleep_until`] right now.
    sleepers: Arc<AtomicUsize>,
}

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(at)),
            moved: Arc::new(Notify::new()),
            sleepers: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A clock showing the system time of its creation.
    pub fn starting_now() -> Self {
        Self::new(Utc::now())
    }

    /// Sets the time.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.lock() = at;
        self.moved.notify_waiters();
    }

    /// Moves the time forward by `by` (backward when negative).
    pub fn advance(&self, by: Duration) {
        {
            let mut now = self.lock();
            *now += by;
        }
        self.moved.notify_waiters();
    }

    /// How many tasks wait in [`Clock::sleep_until`] on this clock (or its clones) right now,
    /// so a test can move time only once the code under test has gone to sleep.
    pub fn sleepers(&self) -> usize {
        self.sleepers.load(Ordering::SeqCst)
    }

    /// Waits (in real time, polling briefly) until at least `n` tasks sleep on this clock.
    pub async fn wait_for_sleepers(&self, n: usize) {
        while self.sleepers() < n {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        // A panic elsewhere cannot leave a timestamp half-written, so poisoning is ignored.
        self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _sleeping = Sleeping::enter(&self.sleepers);
            loop {
                // Registered before the time is read, so a move between the two still wakes us.
                let moved = self.moved.notified();
                tokio::pin!(moved);
                moved.as_mut().enable();
                if self.now() >= at {
                    return;
                }
                moved.await;
            }
        })
    }
}

/// Counts a sleeper for as long as it lives (also when its sleep is dropped unfinished).
struct Sleeping<'a>(&'a AtomicUsize);

impl<'a> Sleeping<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Sleeping(count)
    }
}

impl Drop for Sleeping<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let start = DateTime::parse_from_rfc3339("2026-12-02T00:00:00Z")
            .expect("a time")
            .with_timezone(&Utc);
        let clock = ManualClock::new(start);
        let shared = clock.clone();
        assert_eq!(clock.now(), start);
        shared.advance(Duration::minutes(5));
        assert_eq!(clock.now(), start + Duration::minutes(5));
        clock.set(start);
        assert_eq!(shared.now(), start);
    }

    #[tokio::test]
    async fn a_manual_sleep_ends_when_the_clock_passes_its_time_and_not_before() {
        let start = DateTime::parse_from_rfc3339("2026-12-02T00:00:00Z")
            .expect("a time")
            .with_timezone(&Utc);
        let clock = ManualClock::new(start);
        let sleeper = clock.clone();
        let woke = tokio::spawn(async move {
            sleeper.sleep_until(start + Duration::minutes(10)).await;
            sleeper.now()
        });
        clock.wait_for_sleepers(1).await;
        clock.advance(Duration::minutes(9));
        tokio::task::yield_now().await;
        assert!(!woke.is_finished(), "woke before its time");
        assert_eq!(clock.sleepers(), 1);
        clock.advance(Duration::minutes(2));
        let at = woke.await.expect("the sleeper ends");
        assert_eq!(at, start + Duration::minutes(11));
        assert_eq!(clock.sleepers(), 0);
    }
}
