//! `serve`: the long-running process. Runs the config's scheduled jobs (sync, identity
//! refresh, audit, expiry) on one machine or several sharing a PostgreSQL store, and answers
//! `/healthz`, `/readyz` and `/metrics` on `server.listen`.
//!
//! - [`jobs`]: the [`Job`] values and the runner that knows how to run each (the audit
//!   adapter is there).
//! - [`expiry`]: the grants watch loop as a task of its own, and the catch-up pass's setup.
//! - [`scheduler`]: cron times on the injected clock, lanes, retries with backoff, the board of
//!   job states.
//! - [`lease`]: a job runs on one instance at a time (`job_leases`, compare-and-set, expiring
//!   when its holder dies); on SQLite one instance per store.
//! - [`health`] and [`metrics`]: the HTTP endpoints, on an axum router the HTTP API extends.
//!
//! Shutdown: [`Running::shutdown`] stops taking work at once, lets the job in hand finish for
//! up to the grace period, then abandons it. Abandoning never leaves a half-applied change: the
//! store commits each step in its own transaction (a dropped one rolls back), and a sync run
//! abandoned midway is resumed by the next sync once its lease passes. The expiry watch loop
//! gets the same grace: it stops between passes, and a grant whose restore is abandoned stays
//! ending, finished by the next pass once its claim lapses.
//!
//! The request budget: every sync job uses the one Bitbucket client of the process, whose
//! budget learns other processes' requests from the store at each run's heartbeats; and syncs
//! run one instance at a time (one lease for the sync lane), so each run starts knowing what
//! the others spent.

pub mod expiry;
pub mod health;
pub mod jobs;
pub mod lease;
pub mod metrics;
pub mod org_events;
pub mod scheduler;

pub use health::{router, ServeState};
pub use jobs::{Job, JobError, JobOutcome, JobRunner, Jobs};
pub use lease::{LeaseError, Leases};
pub use metrics::Metrics;
pub use scheduler::{lanes, Board, Lane, Scheduler, SchedulerSettings};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::bitbucket::BitbucketClient;
use crate::clock::Clock;
use crate::config::Config;
use crate::store::Store;
use crate::sync::LeaseSettings;

/// How long shutdown waits for the job in hand before abandoning it.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How long shutdown tries to end the instance lease.
const INSTANCE_RELEASE_WAIT: Duration = Duration::from_secs(5);

/// The shortest readiness threshold on a sync's age, whatever the schedule.
const MIN_SYNC_AGE: Duration = Duration::from_secs(3600);

/// How `serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where the HTTP endpoints listen.
    pub listen: SocketAddr,
    /// The job leases and the sync runs' lease: how long they last without renewal (how soon
    /// another instance takes over from a dead one) and how often they are renewed.
    pub lease: LeaseSettings,
    /// How long shutdown waits for the job in hand.
    pub shutdown_grace: Duration,
    /// The oldest a workspace's last sync may be while `/readyz` says ready; `None`: three
    /// sync periods, at least an hour.
    pub max_sync_age: Option<Duration>,
    /// Retry delays (the zone is the config's).
    pub retry_base: Duration,
    /// The longest retry delay.
    pub retry_max: Duration,
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
}

impl ServeOptions {
    /// The defaults for a config: its `server.listen`, one-minute leases renewed every 15 s,
    /// 30 s of grace, the system clock.
    pub fn for_config(config: &Config) -> Self {
        let defaults = SchedulerSettings::default();
        ServeOptions {
            listen: config.server.listen,
            lease: LeaseSettings::default(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            max_sync_age: None,
            retry_base: defaults.retry_base,
            retry_max: defaults.retry_max,
            clock: Arc::new(crate::clock::SystemClock),
        }
    }
}

/// Why `serve` could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another instance holds the SQLite store, or the store failed.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr} (server.listen): {source}; pick a free address and port")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A started `serve`.
pub struct Running {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    scheduler: tokio::task::JoinHandle<()>,
    expiry: tokio::task::JoinHandle<()>,
    events: Option<tokio::task::JoinHandle<()>>,
    server: tokio::task::JoinHandle<()>,
    instance: lease::InstanceGuard,
    board: Arc<Board>,
    metrics: Arc<Metrics>,
    grace: Duration,
}

/// How shutdown went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Whether a job was still running at the end of the grace period and was abandoned.
    pub abandoned: Vec<String>,
}

/// The readiness threshold for a sync schedule: three periods, at least [`MIN_SYNC_AGE`].
fn default_max_sync_age(config: &Config, clock: &dyn Clock) -> Duration {
    let zone = config.schedules.time_zone;
    let first = scheduler::next_after(&config.schedules.sync, zone, clock.now());
    let second = first.and_then(|t| scheduler::next_after(&config.schedules.sync, zone, t));
    let period = match (first, second) {
        (Some(a), Some(b)) => (b - a).to_std().unwrap_or(MIN_SYNC_AGE),
        _ => MIN_SYNC_AGE,
    };
    period.saturating_mul(3).max(MIN_SYNC_AGE)
}

/// Starts `serve`: takes the instance lease (SQLite), binds the listener, logs each job's next
/// run, and runs the scheduler and the HTTP server until [`Running::shutdown`].
pub async fn start(
    config: Arc<Config>,
    store: Arc<dyn Store>,
    client: BitbucketClient,
    options: ServeOptions,
) -> Result<Running, ServeError> {
    let clock = Arc::clone(&options.clock);
    let leases = Leases::new(Arc::clone(&store), Arc::clone(&clock), options.lease);
    let instance = leases.hold_instance().await?;
    let listener = match TcpListener::bind(options.listen).await {
        Ok(l) => l,
        Err(source) => {
            instance.release().await;
            return Err(ServeError::Listen {
                addr: options.listen,
                source,
            });
        }
    };
    let addr = listener.local_addr().unwrap_or(options.listen);
    let metrics = Arc::new(Metrics::default());
    let budget = Arc::clone(client.budget());
    let watch_task = expiry::WatchTask {
        store: Arc::clone(&store),
        client: client.clone(),
        clock: Arc::clone(&clock),
        settings: expiry::engine_settings(&config, options.lease.lease),
        metrics: Arc::clone(&metrics),
        retry: options.lease.lease,
    };
    let events_task = events_task(&config, &store, &client, &clock, &metrics, options.lease);
    let runner = Arc::new(Jobs {
        store: Arc::clone(&store),
        client: client.clone(),
        config: Arc::clone(&config),
        clock: Arc::clone(&clock),
        metrics: Arc::clone(&metrics),
        sync_lease: options.lease,
    });
    // The HTTP API (issue 15) shares the store, the client (one budget) and the job runner.
    let syncs = crate::api::Syncs::new(Some(runner.clone()), Arc::clone(&clock));
    let api = crate::api::router(Arc::new(crate::api::ApiState {
        store: Arc::clone(&store),
        client: client.clone(),
        config: Arc::clone(&config),
        clock: Arc::clone(&clock),
        refresh: Arc::new(crate::api::TargetedSyncRefresh {
            store: Arc::clone(&store),
            client,
            clock: Arc::clone(&clock),
        }),
        deliveries: crate::api::Deliveries::default(),
        syncs,
    }));
    let settings = SchedulerSettings {
        zone: config.schedules.time_zone,
        retry_base: options.retry_base,
        retry_max: options.retry_max,
    };
    let scheduler = Scheduler::new(
        lanes(&config),
        runner,
        Arc::clone(&clock),
        leases.clone(),
        Arc::clone(&metrics),
        settings,
    );
    info!(holder = leases.holder(), listen = %addr, time_zone = %settings.zone, "serve started");
    for (job, next) in scheduler.next_runs() {
        match next {
            Some(at) => info!(job = %job, next_run = %at.to_rfc3339(), "scheduled"),
            None => warn!(job = %job, "never runs: its schedule has no future time"),
        }
    }
    let board = scheduler.board();
    let state = Arc::new(ServeState {
        store,
        board: Arc::clone(&board),
        metrics: Arc::clone(&metrics),
        budget,
        started: clock.now(),
        max_sync_age: options
            .max_sync_age
            .unwrap_or_else(|| default_max_sync_age(&config, clock.as_ref())),
        workspaces: config.workspaces.clone(),
        clock,
    });
    let (stop, stopped) = watch::channel(false);
    let scheduler_stop = stopped.clone();
    let scheduler = tokio::spawn(async move { scheduler.run(scheduler_stop).await });
    let expiry = expiry::spawn_watch(watch_task, stopped.clone());
    let events = events_task.map(|task| org_events::spawn_events(task, stopped.clone()));
    let mut server_stop = stopped;
    // One listener: health and metrics, then the HTTP API (issue 15).
    let app = router(state).merge(api);
    let server = tokio::spawn(async move {
        let until_stopped = async move {
            let _ = server_stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(until_stopped)
            .await
        {
            warn!(error = %e, "the HTTP server stopped");
        }
    });
    Ok(Running {
        addr,
        stop,
        scheduler,
        expiry,
        events,
        server,
        instance,
        board,
        metrics,
        grace: options.shutdown_grace,
    })
}

/// The organization events task when `atlassian_admin` is configured; a client that cannot be
/// built is logged and the full reads run as before.
fn events_task(
    config: &Config,
    store: &Arc<dyn Store>,
    client: &BitbucketClient,
    clock: &Arc<dyn Clock>,
    metrics: &Arc<Metrics>,
    lease: LeaseSettings,
) -> Option<org_events::EventsTask> {
    let admin = config.atlassian_admin.as_ref()?;
    let org = match crate::connect::org_client_with(config, crate::http::RetryPolicy::default())? {
        Ok(org) => org,
        Err(e) => {
            warn!(error = %e, "the organization events are not polled: the Organizations API client could not be built (atlassian_admin)");
            return None;
        }
    };
    let managed = config
        .workspaces
        .iter()
        .filter_map(|w| crate::domain::WorkspaceSlug::parse(w.clone()).ok())
        .collect();
    Some(org_events::EventsTask {
        store: Arc::clone(store),
        client: client.clone(),
        org,
        clock: Arc::clone(clock),
        interval: admin.poll_interval,
        options: crate::sync::events::EventsOptions {
            managed,
            clock: Arc::clone(clock),
            lease,
            mass_change: crate::store::MassChangeGuard {
                max_percent: config.mass_change_guard.max_percent,
                min_count: config.mass_change_guard.min_count,
                accept: false,
            },
            ..crate::sync::events::EventsOptions::default()
        },
        metrics: Arc::clone(metrics),
    })
}

impl Running {
    /// The address the HTTP endpoints listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The scheduler's board.
    pub fn board(&self) -> Arc<Board> {
        Arc::clone(&self.board)
    }

    /// What the jobs recorded.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Stops taking work, waits up to the grace period for the job in hand, abandons it after
    /// that (see the module docs for why that is safe), stops the HTTP server and ends the
    /// instance lease.
    pub async fn shutdown(self) -> ShutdownReport {
        let _ = self.stop.send(true);
        let running = self.board.running();
        if !running.is_empty() {
            info!(jobs = ?running, grace_s = self.grace.as_secs(), "shutting down: letting the running job finish");
        }
        let mut scheduler = self.scheduler;
        let mut expiry = self.expiry;
        let mut events = self.events;
        // The watch loop finishes the pass under way (its restores are recorded) within the
        // same grace as the scheduler's job, and so does the events task.
        let both = async {
            let events = async {
                if let Some(task) = events.as_mut() {
                    let _ = task.await;
                }
            };
            tokio::join!(&mut scheduler, &mut expiry, events)
        };
        let abandoned = match tokio::time::timeout(self.grace, both).await {
            Ok(_) => Vec::new(),
            Err(_) => {
                let mut abandoned = self.board.running();
                if !expiry.is_finished() {
                    abandoned.push("expiry watch loop".to_owned());
                }
                warn!(jobs = ?abandoned, "shutdown grace passed: abandoning the running job (a sync run is resumed by the next sync, an ending grant is finished by the next expiry pass)");
                // A task that finished within the grace was polled to its end by the join
                // above and must not be awaited again.
                if events.as_ref().is_some_and(|t| !t.is_finished()) {
                    abandoned.push("organization events".to_owned());
                }
                for task in [Some(scheduler), Some(expiry), events]
                    .into_iter()
                    .flatten()
                {
                    if !task.is_finished() {
                        task.abort();
                        let _ = task.await;
                    }
                }
                abandoned
            }
        };
        let _ = self.server.await;
        // An abandoned transaction may hold SQLite's write lock until its connection is
        // reused; the instance lease then passes by itself instead of holding up the exit.
        if tokio::time::timeout(INSTANCE_RELEASE_WAIT, self.instance.release())
            .await
            .is_err()
        {
            warn!("could not end the instance lease in time; it passes by itself");
        }
        info!("serve stopped");
        ShutdownReport { abandoned }
    }
}
