//! Leases that keep a job on one instance at a time, and one `serve` per SQLite store.
//!
//! A job's lease is a row of `job_leases` (job name, holder, until, heartbeat) taken by
//! compare-and-set ([`Store::acquire_job_lease`]): only when it is free, has passed, or is
//! already the caller's. The holder renews it every heartbeat while the job runs and ends it
//! when the job is done; an instance that dies stops renewing and the job is free for another
//! once the lease has passed. The holder is the instance's [`RunOwner`] string (host, process,
//! random part), so a restarted process is a new holder.
//!
//! On SQLite an *instance* lease (`#instance`) is held for the life of the process: a second
//! `serve` on the same file refuses to start, since SQLite is for one machine and one writer.
//! PostgreSQL takes any number of instances.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use tracing::warn;

use crate::clock::Clock;
use crate::store::{Backend, JobLeaseRequest, LeaseClaim, RunOwner, Store, StoreError};
use crate::sync::LeaseSettings;

/// The lease name of the instance lease on SQLite (job names never start with `#`).
pub const INSTANCE_LEASE: &str = "#instance";

/// Why `serve` cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another instance holds the SQLite store.
    #[error("another `serve` ({holder}) already runs on this SQLite store (its lease lasts until {until}); stop it first, or use PostgreSQL (database_url postgres://...) to run several instances")]
    InstanceRunning {
        /// The other instance.
        holder: String,
        /// Until when its lease lasts unless renewed.
        until: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// This instance's leases on one store.
#[derive(Debug, Clone)]
pub struct Leases {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    holder: String,
    settings: LeaseSettings,
}

impl Leases {
    /// The leases of a new instance (a new random holder).
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: LeaseSettings) -> Self {
        Leases {
            store,
            clock,
            holder: RunOwner::generate().to_string(),
            settings,
        }
    }

    /// This instance's holder name.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The lease and heartbeat settings.
    pub fn settings(&self) -> LeaseSettings {
        self.settings
    }

    fn request(&self, job: &str, run_time: Option<DateTime<Utc>>) -> JobLeaseRequest {
        let now = self.clock.now();
        JobLeaseRequest {
            job: job.to_owned(),
            holder: self.holder.clone(),
            now,
            lease_until: now
                + chrono::Duration::from_std(self.settings.lease).unwrap_or(chrono::Duration::MAX),
            run_time,
        }
    }

    /// Takes `job`'s lease if it is free (or passed, or ours); else says who holds it. For a
    /// scheduled run, `run_time` is its cron time: a job that another instance already ran at
    /// or after it is not run again ([`LeaseClaim::AlreadyRan`]).
    pub async fn try_acquire(
        &self,
        job: &str,
        run_time: Option<DateTime<Utc>>,
    ) -> Result<LeaseClaim, StoreError> {
        self.store
            .acquire_job_lease(&self.request(job, run_time))
            .await
    }

    /// Ends `job`'s lease so another instance may take it at once. Best effort: a lease that
    /// cannot be released passes by itself.
    pub async fn release(&self, job: &str) {
        let at = self.clock.now();
        if let Err(e) = self.store.release_job_lease(job, &self.holder, at).await {
            warn!(job, error = %e, "could not release a job lease; it passes by itself");
        }
    }

    /// Renews `job`'s lease now; `false` when another instance took it.
    async fn renew(&self, job: &str) -> bool {
        match self.store.renew_job_lease(&self.request(job, None)).await {
            Ok(true) => true,
            Ok(false) => {
                warn!(
                    job,
                    "the job's lease was taken by another instance (this one stalled past it)"
                );
                false
            }
            Err(e) => {
                // The lease outlives several missed heartbeats.
                warn!(job, error = %e, "job lease heartbeat failed");
                true
            }
        }
    }

    /// Runs `work` while renewing `job`'s lease every heartbeat. A renewal is never dropped
    /// halfway: when the work ends the heartbeats are asked to stop and the one in flight ends
    /// first. A lease lost meanwhile does not cancel the work (it may be inside a transaction);
    /// the sync's own run lease keeps two instances from writing one run.
    pub async fn hold_while<T>(&self, job: &str, work: impl Future<Output = T>) -> T {
        let period = self.settings.heartbeat.max(Duration::from_millis(10));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let beats = async {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stopped.changed() => return,
                }
                if !self.renew(job).await {
                    return;
                }
            }
        };
        let work = async {
            let out = work.await;
            let _ = stop.send(true);
            out
        };
        let (out, ()) = tokio::join!(work, beats);
        out
    }

    /// On SQLite, takes the instance lease and keeps it renewed until the returned guard is
    /// stopped; on PostgreSQL, does nothing (any number of instances share it).
    pub async fn hold_instance(&self) -> Result<InstanceGuard, LeaseError> {
        if self.store.backend() != Backend::Sqlite {
            return Ok(InstanceGuard { task: None });
        }
        if let LeaseClaim::Held(other) = self.try_acquire(INSTANCE_LEASE, None).await? {
            return Err(LeaseError::InstanceRunning {
                holder: other.holder,
                until: other.lease_until.to_rfc3339(),
            });
        }
        let leases = self.clone();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let period = leases.settings.heartbeat.max(Duration::from_millis(10));
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = stopped.changed() => break,
                }
                leases.renew(INSTANCE_LEASE).await;
            }
            leases.release(INSTANCE_LEASE).await;
        });
        Ok(InstanceGuard {
            task: Some((stop, task)),
        })
    }
}

/// Keeps the instance lease renewed; [`InstanceGuard::release`] ends it.
#[derive(Debug)]
pub struct InstanceGuard {
    task: Option<(
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl InstanceGuard {
    /// Stops renewing and ends the instance lease.
    pub async fn release(self) {
        if let Some((stop, task)) = self.task {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }
}
