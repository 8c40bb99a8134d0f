//! The jobs `serve` runs: each is a [`Job`] value, and one [`JobRunner`] knows how to run every
//! kind, so the scheduler neither knows nor cares what a job does.
//!
//! [`Jobs`] is the production runner: the sync (one run per workspace through [`crate::sync`],
//! on the one long-lived Bitbucket client whose budget also counts other processes' requests
//! through the store) and the identity refresh (through [`crate::identity`], when it is due).
//!
//! The expiry job is the catch-up pass behind the watch loop of [`super::expiry`]: it ends
//! what is overdue or left unfinished, and observes each ended grant's lateness.
//!
//! The audit job writes the report of `src/audit` (as `bitbucket-access audit` does, in the
//! configured formats and folder) and sets the findings by kind in `/metrics`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use tracing::{info, warn};

use super::metrics::{Metrics, SyncResult};
use crate::bitbucket::BitbucketClient;
use crate::clock::Clock;
use crate::config::Config;
use crate::store::{MassChangeGuard, Store, StoreError, SyncOutcome};
use crate::sync::{LeaseSettings, SyncError, SyncOptions};

/// Repositories per workspace each scheduled sync cross-checks (as `sync` does by default).
const CROSS_CHECK_SAMPLE: usize = 3;

/// One scheduled job.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Job {
    /// Read one workspace into the store; `None` reads every workspace the account
    /// administers (a config without `workspaces`).
    Sync {
        /// The workspace slug.
        workspace: Option<String>,
    },
    /// Write the audit report.
    Audit,
    /// Apply the grants that have ended.
    Expiry,
    /// Match accounts to people again when the last matching is older than the interval.
    IdentityRefresh,
}

impl Job {
    /// The job's name in logs, `/readyz` and metric labels: `sync:acme`, `sync:*`, `audit`,
    /// `expiry`, `identity-refresh`.
    pub fn name(&self) -> String {
        match self {
            Job::Sync { workspace } => format!("sync:{}", workspace.as_deref().unwrap_or("*")),
            Job::Audit => "audit".into(),
            Job::Expiry => "expiry".into(),
            Job::IdentityRefresh => "identity-refresh".into(),
        }
    }

    /// The workspace of a sync job.
    pub fn workspace(&self) -> Option<&str> {
        match self {
            Job::Sync { workspace } => workspace.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// How a job ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// It did its work.
    Done {
        /// What it did, in a few words.
        detail: String,
    },
    /// It had nothing to do, or could not run here: not a success and not a failure.
    Skipped {
        /// Why.
        reason: String,
    },
}

/// Why a job failed; the scheduler retries it with backoff.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The sync could not run.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The sync ran but some listings could not be read (their stored facts stay).
    #[error("{count} listing(s) could not be read, the first: {first}")]
    Listings {
        /// How many.
        count: usize,
        /// The first failure, with Bitbucket's words.
        first: String,
    },
    /// The identity refresh failed; the matches stay as they were.
    #[error("identity matching failed, matches unchanged: {0}")]
    Identity(String),
    /// The audit could not be built or written; earlier reports stay.
    #[error("the audit failed: {0}")]
    Audit(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs jobs. The scheduler holds one; tests give it their own.
pub trait JobRunner: Send + Sync {
    /// Runs one job to its end.
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<JobOutcome, JobError>>;
}

/// The production runner: the store, the Bitbucket client and the config.
pub struct Jobs {
    /// The store every job works on.
    pub store: Arc<dyn Store>,
    /// The one Bitbucket client of the process: its budget is shared by every job.
    pub client: BitbucketClient,
    /// The loaded config.
    pub config: Arc<Config>,
    /// Where jobs read the time.
    pub clock: Arc<dyn Clock>,
    /// What jobs report.
    pub metrics: Arc<Metrics>,
    /// The sync runs' lease (as long as the scheduler's, so a dead instance's run is resumed
    /// about when its job lease has passed).
    pub sync_lease: LeaseSettings,
}

impl JobRunner for Jobs {
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<JobOutcome, JobError>> {
        Box::pin(async move {
            match job {
                Job::Sync { workspace } => self.sync(workspace.as_deref()).await,
                Job::IdentityRefresh => self.identity_refresh().await,
                Job::Audit => run_audit(self).await,
                Job::Expiry => run_expiry(self).await,
            }
        })
    }
}

impl Jobs {
    async fn sync(&self, workspace: Option<&str>) -> Result<JobOutcome, JobError> {
        let label = workspace.unwrap_or("*");
        let options = SyncOptions {
            // No workspace: the config names none, so the sync reads every administered one.
            workspaces: workspace.map(|w| vec![w.to_owned()]).unwrap_or_default(),
            cross_check_sample: CROSS_CHECK_SAMPLE,
            clock: Arc::clone(&self.clock),
            lease: self.sync_lease,
            mass_change: MassChangeGuard {
                max_percent: self.config.mass_change_guard.max_percent,
                min_count: self.config.mass_change_guard.min_count,
                accept: false,
            },
            ..SyncOptions::default()
        };
        let started = self.clock.now();
        let result = crate::sync::run(self.store.as_ref(), &self.client, &options).await;
        let seconds = (self.clock.now() - started).num_milliseconds().max(0) as f64 / 1000.0;
        let report = match result {
            Ok(report) => report,
            Err(e) => {
                self.metrics.record_sync(label, SyncResult::Failed, seconds);
                return Err(e.into());
            }
        };
        if report.workspaces.is_empty() && !report.held.is_empty() {
            self.metrics.record_sync(label, SyncResult::Held, seconds);
            let h = &report.held[0];
            return Ok(JobOutcome::Skipped {
                reason: format!("held by sync run {} of {}", h.run, h.owner),
            });
        }
        if let Some(first) = report.failures.first() {
            self.metrics.record_sync(label, SyncResult::Failed, seconds);
            return Err(JobError::Listings {
                count: report.failures.len(),
                first: format!("{}: {}", first.listing, first.error),
            });
        }
        let result = match report.outcome {
            SyncOutcome::Complete => SyncResult::Complete,
            SyncOutcome::Partial | SyncOutcome::Failed => SyncResult::Partial,
        };
        self.metrics.record_sync(label, result, seconds);
        let deferred: u64 = report.workspaces.iter().map(|w| w.listings_deferred).sum();
        Ok(JobOutcome::Done {
            detail: format!(
                "sync run {}: {:?}, {} requests, {} deferred, {} drift",
                report.run, report.outcome, report.requests_used, deferred, report.drift
            ),
        })
    }

    async fn identity_refresh(&self) -> Result<JobOutcome, JobError> {
        let now = self.clock.now();
        let due = crate::identity::is_due(
            self.store.as_ref(),
            self.config.identity.refresh_interval,
            self.config.jira.is_some(),
            now,
        )
        .await
        .map_err(|e| JobError::Identity(e.to_string()))?;
        if !due {
            return Ok(JobOutcome::Skipped {
                reason: "matches are younger than identity.refresh_interval".into(),
            });
        }
        let setup = crate::cli::identities::setup(&self.config, true)
            .await
            .map_err(JobError::Identity)?;
        let result = crate::identity::refresh(self.store.as_ref(), setup.sources(), now).await;
        // The Jira client lives for one pass; its requests are added to the process's count.
        if let Some(jira) = &setup.jira {
            self.metrics
                .add_requests("jira", &jira.budget().outcome_counts());
        }
        let report = result.map_err(|e| JobError::Identity(e.to_string()))?;
        if let Some(problem) = &setup.jira_problem {
            warn!(problem = %problem, "identity matching ran without Jira");
        }
        Ok(JobOutcome::Done {
            detail: report.summary(),
        })
    }
}

/// The audit job: builds the report from the store (every configured workspace), writes it in
/// `audit_policy.report_formats` to `audit_policy.report_dir`, stores it in the audit history
/// (chained to the previous report), and reports its findings by kind to `/metrics`.
pub async fn run_audit(ctx: &Jobs) -> Result<JobOutcome, JobError> {
    use crate::cli::audit::{produce, settings, OutputFormat};
    let policy = &ctx.config.audit_policy;
    let formats: Vec<OutputFormat> = policy
        .report_formats
        .iter()
        .map(|f| OutputFormat::from(*f))
        .collect();
    let settings = settings(&ctx.config, Vec::new());
    let (report, files) = produce(
        ctx.store.as_ref(),
        ctx.clock.as_ref(),
        &settings,
        &policy.report_dir,
        &formats,
    )
    .await
    .map_err(JobError::Audit)?;
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    for finding in &report.findings {
        *by_kind.entry(finding.kind.as_str().to_owned()).or_default() += 1;
    }
    let findings = report.findings.len();
    ctx.metrics.set_audit_findings(by_kind);
    info!(findings, files = files.len(), dir = %policy.report_dir.display(), "audit written");
    Ok(JobOutcome::Done {
        detail: format!(
            "{findings} finding(s), {} file(s) in {}",
            files.len(),
            policy.report_dir.display()
        ),
    })
}

/// The expiry job: the catch-up pass behind the watch loop (see [`super::expiry`]). It claims
/// every grant overdue or left pending or ending, finishes each exactly once (the store's claims
/// and slot leases), and observes the lateness of each grant it ended.
pub async fn run_expiry(ctx: &Jobs) -> Result<JobOutcome, JobError> {
    let settings = super::expiry::engine_settings(&ctx.config, ctx.sync_lease.lease);
    let report = super::expiry::run_pass(
        ctx.store.as_ref(),
        &ctx.client,
        ctx.clock.as_ref(),
        settings,
        &ctx.metrics,
    )
    .await?;
    if report.total() == 0 {
        return Ok(JobOutcome::Done {
            detail: "no grant was due".into(),
        });
    }
    info!(
        ended = report.ended,
        revoked = report.revoked,
        applied = report.applied,
        conflicts = report.conflicts,
        retry_later = report.retry_later,
        errors = report.errors,
        "expiry catch-up pass"
    );
    Ok(JobOutcome::Done {
        detail: format!(
            "{} ended, {} revoked, {} applied, {} conflicts, {} to retry, {} errors",
            report.ended,
            report.revoked,
            report.applied,
            report.conflicts,
            report.retry_later,
            report.errors
        ),
    })
}
