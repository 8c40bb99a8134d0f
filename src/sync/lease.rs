//! Run ownership while the sync works: the claim at the start, a heartbeat that renews the
//! lease and records the requests spent since the last one, and the budget's view of what other
//! processes spent of the rolling hour.
//!
//! Requests are counted per (run, owner, minute) in the store, each heartbeat adding only its
//! delta, so two processes never count one request twice and the rolling hour is a sum over the
//! last sixty buckets however long a process lives.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{debug, warn};

use super::SyncError;
use crate::bitbucket::BitbucketClient;
use crate::clock::Clock;
use crate::domain::WorkspaceSlug;
use crate::store::{ClaimOutcome, ClaimRequest, Heartbeat, RunOwner, Store, SyncRunId};

/// How long an interrupted run stays resumable.
const RESUME_WINDOW_HOURS: i64 = 24;

/// How long a run's claim lasts and how often its owner renews it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSettings {
    /// How long a claim lasts without renewal: after it, the run counts as abandoned.
    pub lease: Duration,
    /// How often the owner renews it (well under `lease`, so a slow store does not lose it).
    pub heartbeat: Duration,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        LeaseSettings {
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(15),
        }
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Claims the workspaces of a run (see [`Store::claim_sync_run`]).
pub(super) async fn claim(
    store: &dyn Store,
    clock: &dyn Clock,
    owner: &RunOwner,
    workspaces: &[WorkspaceSlug],
    settings: &LeaseSettings,
) -> Result<ClaimOutcome, SyncError> {
    let now = clock.now();
    let request = ClaimRequest {
        workspaces: workspaces.to_vec(),
        owner: owner.clone(),
        now,
        lease_until: now + chrono_duration(settings.lease),
        resume_after: now - chrono::Duration::hours(RESUME_WINDOW_HOURS),
    };
    Ok(store.claim_sync_run(&request).await?)
}

/// An owned run: renews its lease and accounts for its requests.
pub(super) struct Lease<'a> {
    pub store: &'a dyn Store,
    pub client: &'a BitbucketClient,
    pub clock: &'a dyn Clock,
    pub owner: RunOwner,
    pub run: SyncRunId,
    pub settings: LeaseSettings,
    /// The client's request counter when the run began.
    pub requests_before: u64,
    /// Requests of this run already written to the store.
    pub flushed: AtomicU64,
}

impl Lease<'_> {
    /// Requests this run has sent so far.
    pub fn requests_used(&self) -> u64 {
        self.client
            .requests_used()
            .saturating_sub(self.requests_before)
    }

    /// Renews the lease, writes the requests since the last heartbeat, and tells the budget
    /// what other processes spent of the rolling hour.
    async fn beat(&self) -> Result<(), SyncError> {
        let now = self.clock.now();
        let used = self.requests_used();
        let flushed = self.flushed.load(Ordering::SeqCst);
        let renewed = self
            .store
            .heartbeat_sync_run(&Heartbeat {
                run: self.run,
                owner: self.owner.clone(),
                at: now,
                lease_until: now + chrono_duration(self.settings.lease),
                requests: used.saturating_sub(flushed),
            })
            .await?;
        if !renewed {
            return Err(SyncError::LeaseLost {
                run: self.run.0,
                owner: self.owner.to_string(),
            });
        }
        self.flushed.store(used.max(flushed), Ordering::SeqCst);
        self.refresh_external_usage(now).await
    }

    /// Sets the budget's external usage: the requests stored for the last hour by other runs,
    /// less those this process's budget already holds in its own window (earlier runs of a
    /// long-lived process are in both).
    async fn refresh_external_usage(&self, now: DateTime<Utc>) -> Result<(), SyncError> {
        let others = self
            .store
            .requests_since(now - chrono::Duration::hours(1), Some(self.run))
            .await?;
        let budget = self.client.budget();
        let own_other_runs = budget.used_in_window().saturating_sub(self.requests_used());
        let external = others.saturating_sub(own_other_runs);
        debug!(external, "requests of other processes in the rolling hour");
        budget.set_external_usage(external);
        Ok(())
    }

    /// Ends the lease of a run that stopped with an error, counting its last requests, so that
    /// the next sync may resume it at once instead of waiting for the lease to pass. Best
    /// effort: the run's own error is the one worth reporting.
    pub async fn release(&self) {
        let now = self.clock.now();
        let used = self.requests_used();
        let beat = Heartbeat {
            run: self.run,
            owner: self.owner.clone(),
            at: now,
            lease_until: now,
            requests: used.saturating_sub(self.flushed.load(Ordering::SeqCst)),
        };
        match self.store.heartbeat_sync_run(&beat).await {
            Ok(_) => self.flushed.store(used, Ordering::SeqCst),
            Err(e) => warn!(run = %self.run, error = %e, "could not release the sync run's lease"),
        }
    }

    /// Runs `work` while renewing the lease every heartbeat; the first heartbeat comes before
    /// the work starts, so the budget knows other processes' usage before anything is planned.
    ///
    /// The heartbeats run beside the work, not between its steps: a heartbeat waiting for
    /// SQLite's write lock must not stop the work that holds it from committing. A heartbeat
    /// is never dropped halfway: a store transaction cancelled between its `BEGIN IMMEDIATE`
    /// and its commit can leave the write lock held by an idle pooled connection, and every
    /// later write (finishing the run) would wait for it in vain. So when the work ends, the
    /// heartbeats are asked to stop and the one in flight finishes first.
    pub async fn hold_while<T>(
        &self,
        work: impl Future<Output = Result<T, SyncError>>,
    ) -> Result<T, SyncError> {
        self.beat().await?;
        let period = self.settings.heartbeat.max(Duration::from_millis(1));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let beats = async {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stopped.changed() => return None,
                }
                match self.beat().await {
                    Ok(()) => {}
                    // Another process took the run over: stop before both write it.
                    Err(e @ SyncError::LeaseLost { .. }) => return Some(e),
                    // A store that failed once may answer the next heartbeat; the lease
                    // outlives several missed ones.
                    Err(e) => warn!(run = %self.run, error = %e, "sync run heartbeat failed"),
                }
            }
        };
        tokio::pin!(work);
        tokio::pin!(beats);
        tokio::select! {
            out = &mut work => {
                let _ = stop.send(true);
                // The heartbeat in flight, if any, completes its transaction.
                if let Some(lost) = beats.await {
                    // The run was taken over while its work was ending: its result is not
                    // this process's to record.
                    return Err(lost);
                }
                out
            }
            lost = &mut beats => match lost {
                Some(e) => Err(e),
                // The heartbeats stop only when asked, after the work ended.
                None => work.await,
            },
        }
    }
}
