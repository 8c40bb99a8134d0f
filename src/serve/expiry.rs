//! Expiry inside `serve`: the grants watch loop runs as its own task for the life of the
//! process, and the cron `schedules.expiry` job is the catch-up pass behind it.
//!
//! - The watch loop ([`spawn_watch`]) ends grants within about a second of their end. It is
//!   started with the scheduler and told to stop by the same shutdown signal; it heeds it only
//!   between passes, so a restore under way is finished and recorded, never left half-applied
//!   (the shutdown grace bounds the wait; a pass abandoned after it leaves its grants ending
//!   and claimed, and the claim's lapse lets the next pass, here or elsewhere, finish them).
//! - The catch-up pass ([`run_pass`]) claims what is overdue or left pending or ending (a loop
//!   that could not watch, a crash, a restore that failed and is due again).
//!
//! Several instances on PostgreSQL each watch: the store's claims (`FOR UPDATE SKIP LOCKED`)
//! and the slot leases give each grant to one of them. On SQLite the store allows one watcher;
//! when another process (an `expire --watch`) holds it, the loop waits and tries again, and the
//! catch-up pass still runs.
//!
//! Every grant ended at its expiry, by the loop or by the pass, is observed in
//! [`Metrics::observe_expiry_lateness`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use super::metrics::Metrics;
use crate::bitbucket::BitbucketClient;
use crate::clock::Clock;
use crate::config::Config;
use crate::grants::{Engine, EngineSettings, PassReport, WatchError};
use crate::store::{Store, StoreError};

/// The actor named in the audit entries of the grants `serve` ends.
const ACTOR: &str = "bitbucket-access serve";

/// The grants engine's settings in `serve`: the config's conflict rule and concurrency, and
/// claims as long as the job leases (so a dead instance's grants are taken over about when its
/// jobs are).
pub fn engine_settings(config: &Config, lease: Duration) -> EngineSettings {
    let mut settings = EngineSettings::new("serve");
    settings.actor = ACTOR.to_owned();
    settings.on_conflict = config.grant_policy.on_conflict;
    settings.max_in_flight = config.request_budget.max_in_flight.max(1);
    settings.lease = chrono::Duration::from_std(lease).unwrap_or(settings.lease);
    settings
}

/// Feeds the metrics from one pass's report.
fn observe(metrics: &Metrics, report: &PassReport) {
    for late in &report.lateness {
        metrics.observe_expiry_lateness(late.num_milliseconds() as f64 / 1000.0);
    }
}

/// One catch-up pass, its lateness observed.
pub async fn run_pass(
    store: &dyn Store,
    client: &BitbucketClient,
    clock: &dyn Clock,
    settings: EngineSettings,
    metrics: &Metrics,
) -> Result<PassReport, StoreError> {
    let report = Engine::new(store, client, clock, settings)
        .expire_pass()
        .await?;
    observe(metrics, &report);
    Ok(report)
}

/// What the watch task needs.
pub struct WatchTask {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The process's Bitbucket client (the engine sends its requests as grant requests).
    pub client: BitbucketClient,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The engine's settings.
    pub settings: EngineSettings,
    /// Where lateness is observed.
    pub metrics: Arc<Metrics>,
    /// How long to wait before trying again when another watcher holds a SQLite store.
    pub retry: Duration,
}

/// Starts the watch loop; it returns once `stopped` turns true (after the pass under way).
pub fn spawn_watch(task: WatchTask, stopped: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let engine = Engine::new(
            task.store.as_ref(),
            &task.client,
            task.clock.as_ref(),
            task.settings.clone(),
        );
        info!(owner = %engine.settings().owner, "expiry watch loop started");
        loop {
            let mut until = stopped.clone();
            let shutdown = async move {
                let _ = until.wait_for(|s| *s).await;
            };
            let result = engine
                .watch_reporting(shutdown, |report| observe(&task.metrics, report))
                .await;
            match result {
                Ok(()) => break,
                Err(WatchError::AlreadyWatching(holder)) => {
                    warn!(holder = %holder, "expiry watch loop waits: another watcher holds this SQLite store; the expiry job still catches up")
                }
                Err(e) => warn!(error = %e, "the expiry watch loop stopped; starting it again"),
            }
            let mut until = stopped.clone();
            tokio::select! {
                _ = until.wait_for(|s| *s) => break,
                () = tokio::time::sleep(task.retry) => {}
            }
        }
        info!("expiry watch loop stopped");
    })
}
