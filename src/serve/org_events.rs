//! The organization events inside `serve`: a task that applies the pending audit-log events
//! every `atlassian_admin.poll_interval` ([`crate::sync::events::apply_pending`]), for the life
//! of the process, beside the scheduled full reads (which keep running as verification).
//!
//! Several instances each run the task; the `org-events` job lease gives each pass to one of
//! them, and the stored cursor makes every pass start after the last applied event. Shutdown is
//! heeded between passes, so a pass's refresh is recorded before the task stops (within the
//! shutdown grace, like the other tasks). What each pass did is counted in [`Metrics`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use super::metrics::Metrics;
use crate::bitbucket::BitbucketClient;
use crate::clock::Clock;
use crate::org::OrgClient;
use crate::store::Store;
use crate::sync::events::{apply_pending, EventsOptions};

/// What the task needs.
pub struct EventsTask {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The one Bitbucket client of the process (one budget).
    pub client: BitbucketClient,
    /// The Organizations API client (its own budget).
    pub org: OrgClient,
    /// Where the task reads and waits for time.
    pub clock: Arc<dyn Clock>,
    /// Time between passes.
    pub interval: Duration,
    /// How each pass runs.
    pub options: EventsOptions,
    /// Where passes are counted.
    pub metrics: Arc<Metrics>,
}

/// Starts the task; it stops between passes once `stopped` turns true.
pub fn spawn_events(
    task: EventsTask,
    mut stopped: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        info!(
            interval_s = task.interval.as_secs_f64(),
            org = task.org.org_id(),
            "organization events polling started"
        );
        loop {
            if *stopped.borrow_and_update() {
                break;
            }
            match apply_pending(task.store.as_ref(), &task.client, &task.org, &task.options).await {
                Ok(report) => task.metrics.record_org_events(&report),
                Err(e) => {
                    task.metrics.record_org_events_failure();
                    warn!(error = %e, "applying the organization events failed; the cursor stays and the next pass tries again");
                }
            }
            let wake = task.clock.now()
                + chrono::Duration::from_std(task.interval).unwrap_or(chrono::Duration::MAX);
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => break,
                () = task.clock.sleep_until(wake) => {}
            }
        }
        info!("organization events polling stopped");
    })
}
