//! The scheduler: runs [`Job`]s at their cron times, one lease-holding instance at a time,
//! retrying failures with backoff, and keeps the [`Board`] that `/readyz` and `/metrics` read.
//!
//! Jobs are grouped in [`Lane`]s. A lane has one cron schedule, one lease and its jobs in order;
//! its loop sleeps on the injected [`Clock`] until the next cron time (or the earliest retry),
//! takes the lease, runs the due jobs one after the other while renewing the lease, and releases
//! it. So a job is never started while it still runs (the loop is sequential), nor on two
//! instances at once (the lease). The sync lane holds every workspace's sync and then the
//! identity refresh: they spend one token's budget, so one instance at a time runs them and the
//! budget each run sees through the store is up to date when it starts.
//!
//! Times: cron expressions are read in the config's `schedules.time_zone` (UTC by default; in a
//! named zone a time the clocks skip fires when they jump, and a repeated time fires once unless
//! the expression is hourly, see `config/zone.rs`); a cron time that passes while the lane's
//! jobs are still running is skipped, not queued. A failed job is retried after 30 s, doubling
//! up to 30 min, or at the next cron time if sooner. A skip (nothing to do, held by another
//! instance, not in this build) is neither success nor failure.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;
use tracing::{info, warn};

use super::jobs::{Job, JobOutcome, JobRunner};
use super::lease::Leases;
use super::metrics::{JobFigures, Metrics, RunResult};
use crate::clock::Clock;
use crate::config::{Config, CronSchedule, ScheduleZone};
use crate::store::LeaseClaim;

/// Failures in a row after which a job counts as failing repeatedly (and `/readyz` says so).
pub const FAILING_AFTER: u32 = 3;

/// A schedule, a lease and the jobs run in order when it fires.
#[derive(Debug, Clone)]
pub struct Lane {
    /// The lease name (one instance at a time runs the lane).
    pub lease: String,
    /// When it fires.
    pub schedule: CronSchedule,
    /// Its jobs, run in this order.
    pub jobs: Vec<Job>,
}

/// The lanes of a config: the syncs (one per configured workspace, else one for every
/// administered workspace) followed by the identity refresh, the audit, and the expiry.
pub fn lanes(config: &Config) -> Vec<Lane> {
    let mut sync: Vec<Job> = if config.workspaces.is_empty() {
        vec![Job::Sync { workspace: None }]
    } else {
        config
            .workspaces
            .iter()
            .map(|w| Job::Sync {
                workspace: Some(w.clone()),
            })
            .collect()
    };
    sync.push(Job::IdentityRefresh);
    vec![
        Lane {
            lease: "sync".into(),
            schedule: config.schedules.sync.clone(),
            jobs: sync,
        },
        Lane {
            lease: "audit".into(),
            schedule: config.schedules.audit.clone(),
            jobs: vec![Job::Audit],
        },
        Lane {
            lease: "expiry".into(),
            schedule: config.schedules.expiry.clone(),
            jobs: vec![Job::Expiry],
        },
    ]
}

/// How the scheduler reads times and retries.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerSettings {
    /// The zone cron expressions are read in.
    pub zone: ScheduleZone,
    /// The first retry's delay after a failure; each further failure doubles it.
    pub retry_base: Duration,
    /// The longest delay between retries.
    pub retry_max: Duration,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings {
            zone: ScheduleZone::utc(),
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(30 * 60),
        }
    }
}

/// The next time `schedule` fires strictly after `now`, read in `zone` (across a change of the
/// clocks by the rules of [`ScheduleZone::next_after`]).
pub fn next_after(
    schedule: &CronSchedule,
    zone: ScheduleZone,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    zone.next_after(schedule.schedule(), now)
}

/// One job as the board shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobStatus {
    /// The job's name.
    pub job: String,
    /// When it runs next (its retry, or its next cron time).
    pub next_run: Option<DateTime<Utc>>,
    /// Whether it runs on this instance right now.
    pub running: bool,
    /// When it last succeeded here.
    pub last_success: Option<DateTime<Utc>>,
    /// When it last failed here, and why.
    pub last_failure: Option<DateTime<Utc>>,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// Failures since its last success.
    pub consecutive_failures: u32,
}

/// What every job of this instance is doing; shared with the HTTP server.
#[derive(Debug, Default)]
pub struct Board {
    jobs: Mutex<BTreeMap<String, JobStatus>>,
}

impl Board {
    fn update(&self, job: &str, f: impl FnOnce(&mut JobStatus)) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let status = jobs.entry(job.to_owned()).or_insert_with(|| JobStatus {
            job: job.to_owned(),
            ..JobStatus::default()
        });
        f(status);
    }

    /// Every job's status, by name.
    pub fn snapshot(&self) -> Vec<JobStatus> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.values().cloned().collect()
    }

    /// The jobs running on this instance right now.
    pub fn running(&self) -> Vec<String> {
        self.snapshot()
            .into_iter()
            .filter(|s| s.running)
            .map(|s| s.job)
            .collect()
    }

    /// The figures `/metrics` shows per job.
    pub fn figures(&self) -> Vec<JobFigures> {
        self.snapshot()
            .into_iter()
            .map(|s| JobFigures {
                job: s.job,
                next_run: s.next_run,
                consecutive_failures: s.consecutive_failures,
            })
            .collect()
    }
}

/// Runs the lanes until shut down.
pub struct Scheduler {
    lanes: Vec<Lane>,
    runner: Arc<dyn JobRunner>,
    clock: Arc<dyn Clock>,
    leases: Leases,
    board: Arc<Board>,
    metrics: Arc<Metrics>,
    settings: SchedulerSettings,
}

impl Scheduler {
    /// A scheduler of `lanes`; nothing runs before [`Scheduler::run`].
    pub fn new(
        lanes: Vec<Lane>,
        runner: Arc<dyn JobRunner>,
        clock: Arc<dyn Clock>,
        leases: Leases,
        metrics: Arc<Metrics>,
        settings: SchedulerSettings,
    ) -> Self {
        let scheduler = Scheduler {
            lanes,
            runner,
            clock,
            leases,
            board: Arc::new(Board::default()),
            metrics,
            settings,
        };
        let now = scheduler.clock.now();
        for lane in &scheduler.lanes {
            let next = next_after(&lane.schedule, settings.zone, now);
            for job in &lane.jobs {
                scheduler.board.update(&job.name(), |s| s.next_run = next);
            }
        }
        scheduler
    }

    /// The board this scheduler keeps.
    pub fn board(&self) -> Arc<Board> {
        Arc::clone(&self.board)
    }

    /// Each job with its next run, in lane order.
    pub fn next_runs(&self) -> Vec<(String, Option<DateTime<Utc>>)> {
        let now = self.clock.now();
        self.lanes
            .iter()
            .flat_map(|lane| {
                let next = next_after(&lane.schedule, self.settings.zone, now);
                lane.jobs.iter().map(move |j| (j.name(), next))
            })
            .collect()
    }

    /// Runs every lane until `shutdown` turns true (or its sender is dropped). A lane that is
    /// running jobs stops after the job in hand; the caller bounds how long it waits for that.
    pub async fn run(&self, shutdown: watch::Receiver<bool>) {
        let lanes = self
            .lanes
            .iter()
            .map(|lane| self.run_lane(lane, shutdown.clone()));
        futures::future::join_all(lanes).await;
    }

    fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
        self.settings
            .retry_base
            .saturating_mul(factor)
            .min(self.settings.retry_max)
    }

    async fn run_lane(&self, lane: &Lane, mut shutdown: watch::Receiver<bool>) {
        let zone = self.settings.zone;
        let mut next_tick = next_after(&lane.schedule, zone, self.clock.now());
        let mut retries: BTreeMap<Job, DateTime<Utc>> = BTreeMap::new();
        loop {
            for job in &lane.jobs {
                let next = match (retries.get(job), next_tick) {
                    (Some(r), Some(t)) => Some((*r).min(t)),
                    (r, t) => r.copied().or(t),
                };
                self.board.update(&job.name(), |s| s.next_run = next);
            }
            let wake = retries.values().copied().chain(next_tick).min();
            let Some(wake) = wake else {
                info!(lane = %lane.lease, "the schedule has no further run time");
                return;
            };
            if *shutdown.borrow_and_update() {
                return;
            }
            tokio::select! {
                _ = self.clock.sleep_until(wake) => {}
                _ = shutdown.changed() => return,
            }
            let now = self.clock.now();
            let tick = next_tick.filter(|t| now >= *t);
            let due: Vec<Job> = lane
                .jobs
                .iter()
                .filter(|j| tick.is_some() || retries.get(*j).is_some_and(|r| now >= *r))
                .cloned()
                .collect();
            self.run_due(lane, &due, tick, &mut retries, &shutdown)
                .await;
            if tick.is_some() {
                next_tick = next_after(&lane.schedule, zone, self.clock.now());
            }
        }
    }

    /// Takes the lane's lease and runs the due jobs in order; when another instance holds the
    /// lease, or already ran the lane at or after this cron time (`tick`), they are skipped
    /// here.
    async fn run_due(
        &self,
        lane: &Lane,
        due: &[Job],
        tick: Option<DateTime<Utc>>,
        retries: &mut BTreeMap<Job, DateTime<Utc>>,
        shutdown: &watch::Receiver<bool>,
    ) {
        match self.leases.try_acquire(&lane.lease, tick).await {
            Ok(LeaseClaim::Acquired) => {
                let work = async {
                    for job in due {
                        if *shutdown.borrow() {
                            info!(job = %job, "shutting down: not started");
                            break;
                        }
                        self.run_job(job, retries).await;
                    }
                };
                self.leases.hold_while(&lane.lease, work).await;
                self.leases.release(&lane.lease).await;
            }
            Ok(LeaseClaim::Held(other) | LeaseClaim::AlreadyRan(other)) => {
                for job in due {
                    info!(job = %job, holder = %other.holder, "runs (or ran) on another instance at this time; skipped here");
                    self.metrics.record_run(&job.name(), RunResult::Skipped);
                    retries.remove(job);
                }
            }
            Err(e) => {
                let message = format!("cannot take the job's lease: {e}");
                for job in due {
                    self.failed(job, &message, retries);
                }
            }
        }
    }

    async fn run_job(&self, job: &Job, retries: &mut BTreeMap<Job, DateTime<Utc>>) {
        let name = job.name();
        self.board.update(&name, |s| s.running = true);
        info!(job = %name, "job started");
        let result = self.runner.run(job).await;
        let now = self.clock.now();
        self.board.update(&name, |s| s.running = false);
        match result {
            Ok(JobOutcome::Done { detail }) => {
                info!(job = %name, %detail, "job done");
                self.metrics.record_run(&name, RunResult::Success);
                self.board.update(&name, |s| {
                    s.last_success = Some(now);
                    s.consecutive_failures = 0;
                });
                retries.remove(job);
            }
            Ok(JobOutcome::Skipped { reason }) => {
                info!(job = %name, %reason, "job skipped");
                self.metrics.record_run(&name, RunResult::Skipped);
                retries.remove(job);
            }
            Err(e) => self.failed(job, &e.to_string(), retries),
        }
    }

    fn failed(&self, job: &Job, message: &str, retries: &mut BTreeMap<Job, DateTime<Utc>>) {
        let name = job.name();
        let now = self.clock.now();
        let mut failures = 0;
        self.board.update(&name, |s| {
            s.consecutive_failures += 1;
            s.last_failure = Some(now);
            s.last_error = Some(message.to_owned());
            failures = s.consecutive_failures;
        });
        self.metrics.record_run(&name, RunResult::Failure);
        let delay = self.backoff(failures);
        let retry_at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        warn!(job = %name, failures, retry_in_s = delay.as_secs(), error = %message, "job failed; retrying with backoff");
        retries.insert(job.clone(), retry_at);
    }
}
