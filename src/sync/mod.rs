//! Sync: reads every managed workspace's access into the store, within the request budget.
//!
//! # What a run does
//! For each managed workspace (the config's `workspaces`, else every workspace the token's
//! account administers) that no other live run holds:
//! 1. the five *structural* listings ([`structural`]);
//! 2. the group permissions of every repository in one request ([`sweep`]) when Bitbucket
//!    answers it, then the other *permission* listings ([`permissions`]), as many as the
//!    rolling hour allows now in the order of [`plan`]; the rest are deferred, or with
//!    [`SyncOptions::wait`] read once the window has freed enough requests;
//! 3. a cross-check of a small sample of repositories against Bitbucket's own effective
//!    permissions ([`cross_check`]), when the budget allows.
//!
//! # Correctness rules
//! - Only a complete listing reaches [`Store::replace_listing`]. A listing that failed, was cut
//!   short or was not read keeps its stored facts, and its age shows in the freshness table.
//! - The store turns every difference into a drift event unless the connector made the change.
//! - An unchanged listing writes nothing but its freshness, so an unchanged sync writes no rows
//!   beyond the run record.
//! - A run owns its workspaces while its lease lasts ([`lease`]): a second run skips them and
//!   says which run holds them. An interrupted run is resumed by the next one once its lease has
//!   passed: it takes over the unfinished run and neither requests nor stores again the listings
//!   that run already completed (workspace listings included).
//! - Time is read only through the [`Clock`] of [`SyncOptions`]; wire values become domain
//!   values only through [`crate::bitbucket::convert`].
//!
//! # Request model
//! See ARCHITECTURE.md, "Request model". In short: every listing costs its pages at 100 items per
//! page (at least one request); the run knows each listing's cost from its previous read and
//! spends at once what the rolling hour still allows (less what other processes spent of it),
//! never sitting in the budget waiting for the window unless asked to wait.

mod age;
mod cross_check;
pub mod events;
mod lease;
mod permissions;
pub mod plan;
mod progress;
mod report;
mod structural;
mod sweep;
mod target;
pub mod targeted;
mod workspace;

pub use age::format_age;
pub use lease::LeaseSettings;
pub use report::{Failure, Finding, Held, HeldListing, SyncReport, WorkspaceSummary};
pub use sweep::{GroupPermissionsSource, SWEEP_REFUSAL_KEPT};

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use tracing::{info, instrument};

use crate::bitbucket::{ApiError, BitbucketClient};
use crate::clock::{Clock, SystemClock};
use crate::domain::WorkspaceSlug;
use crate::store::{
    ClaimOutcome, ListingKey, MassChangeGuard, RunOwner, Store, StoreError, SyncOutcome,
    SyncRunFinish,
};
use report::{entity_counts, staleness, Totals};
use workspace::{Limit, WorkspaceRun};

/// Items per page the client asks for.
pub const PAGE_SIZE: u64 = 100;

/// The structural listings of a workspace, each at least one request.
const STRUCTURAL_LISTINGS: u64 = 5;

/// What a run should do.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Workspaces to read; empty means every workspace the account administers.
    pub workspaces: Vec<String>,
    /// At most this many requests in this run (on top of the client's hourly budget).
    pub max_requests: Option<u64>,
    /// Repositories per workspace to cross-check against Bitbucket's effective permissions.
    pub cross_check_sample: usize,
    /// Read the group permissions of all repositories with one group-privileges request per
    /// workspace (falling back to one listing per repository when Bitbucket refuses it).
    pub group_privileges_sweep: bool,
    /// Show progress bars (on a terminal).
    pub progress: bool,
    /// Where the run reads the time (the system clock outside tests).
    pub clock: Arc<dyn Clock>,
    /// The run's lease and heartbeat.
    pub lease: LeaseSettings,
    /// Holds back a replace that would remove most of a listing (`accept` applies it).
    pub mass_change: MassChangeGuard,
    /// When the rolling hour cannot pay for every listing: wait for it to free requests and
    /// read the rest (`sync --wait`), instead of deferring them to a later run.
    pub wait: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            workspaces: Vec::new(),
            max_requests: None,
            cross_check_sample: 0,
            group_privileges_sweep: true,
            progress: false,
            clock: Arc::new(SystemClock),
            lease: LeaseSettings::default(),
            mass_change: MassChangeGuard::default(),
            wait: false,
        }
    }
}

/// Why a run could not happen at all. Failures of single listings are not errors: they are
/// reported in [`SyncReport::failures`] and leave the stored facts as they were.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Bitbucket refused the discovery of workspaces.
    #[error("cannot list the workspaces to sync: {0}")]
    Discovery(#[source] ApiError),
    /// No workspace to sync.
    #[error("no workspace to sync: the account administers none; list them in `workspaces` or make the account an administrator")]
    NothingToSync,
    /// A workspace slug in the options is not a valid slug.
    #[error("workspace {0:?} is not a valid workspace slug")]
    BadWorkspace(String),
    /// Another process took the run over because this one did not renew its lease in time.
    #[error("sync run {run} was taken over by another process while {owner} was still running it (its lease expired: the store or this process was stalled); run the sync again")]
    LeaseLost {
        /// The run.
        run: i64,
        /// This process's owner id.
        owner: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs one sync: claims the workspaces no other live run holds (resuming an interrupted run
/// when its owner is gone), reads them while renewing the claim, and records the result.
#[instrument(skip_all, fields(workspaces = options.workspaces.len()))]
pub async fn run(
    store: &dyn Store,
    client: &BitbucketClient,
    options: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let clock = options.clock.as_ref();
    let requests_before = client.requests_used();
    // `--max-requests` bounds every request of the run, discovery and listings included, so a
    // listing that never ends cannot pass it.
    client.budget().cap_requests(options.max_requests);
    // A store file removed since it was opened would take no writes; say so before spending
    // requests on a run that could not be kept.
    store.check_file()?;
    let workspaces = managed_workspaces(client, options).await?;
    let owner = RunOwner::generate();
    let claim = lease::claim(store, clock, &owner, &workspaces, &options.lease).await?;
    for h in &claim.held {
        info!(workspace = %h.workspace, run = %h.run, owner = %h.owner, "held by another run; skipped");
    }
    if claim.resumed {
        info!(run = %claim.run, "resuming an interrupted sync run");
    }
    let lease = lease::Lease {
        store,
        client,
        clock,
        owner,
        run: claim.run,
        settings: options.lease,
        requests_before,
        flushed: AtomicU64::new(0),
    };
    let mut report = match lease
        .hold_while(read_claimed(store, client, options, &claim))
        .await
    {
        Ok(report) => report,
        // A lost run belongs to its new owner: leave its lease alone.
        Err(e @ SyncError::LeaseLost { .. }) => return Err(e),
        Err(e) => {
            lease.release().await;
            return Err(e);
        }
    };
    report.requests_used = lease.requests_used();
    report.duration_ms = started.elapsed().as_millis();
    let counts = serde_json::json!({
        "inserted": report.inserted, "updated": report.updated, "deleted": report.deleted,
        "drift": report.drift, "rows_written": report.rows_written,
        "failures": report.failures.len(), "findings": report.findings.len(),
        "mass_changes_held": report.mass_changes_held.len(),
        "deferred": report.workspaces.iter().map(|w| w.listings_deferred).sum::<u64>(),
        "cross_checked": report.cross_checked,
        "workspaces": report.workspaces, "held": report.held,
    });
    store
        .finish_sync_run(
            claim.run,
            &SyncRunFinish {
                finished_at: clock.now(),
                outcome: report.outcome,
                counts,
                requests_used: report.requests_used,
                minimum_requests: report.minimum_requests,
            },
        )
        .await?;
    info!(
        requests = report.requests_used,
        minimum = report.minimum_requests,
        drift = report.drift,
        rows = report.rows_written,
        "sync finished"
    );
    Ok(report)
}

/// Reads the claimed workspaces; the report's request count and duration are the caller's.
async fn read_claimed(
    store: &dyn Store,
    client: &BitbucketClient,
    options: &SyncOptions,
    claim: &ClaimOutcome,
) -> Result<SyncReport, SyncError> {
    let clock = options.clock.as_ref();
    let mut done: HashSet<ListingKey> = HashSet::new();
    if claim.resumed {
        done.extend(store.completed_listings(claim.run).await?);
        info!(run = %claim.run, completed = done.len(), "listings the interrupted run completed");
    }
    let mut limit = Limit::new(client);
    let bars = progress::bars(options.progress);
    let active = permissions::active_grant_targets(store).await?;
    let expected = crate::grants::expected_changes(store).await?;

    let mut totals = Totals::default();
    let mut failures = Vec::new();
    let mut findings = Vec::new();
    let mut summaries = Vec::new();
    let mut minimum = 0u64;
    let mut cross_checked = 0u64;
    let mut deferred_total = 0u64;

    for ws in &claim.claimed {
        let bar = progress::workspace_bar(&bars, ws);
        let mut ctx = WorkspaceRun {
            store,
            client,
            clock,
            ws,
            run: claim.run,
            done: &done,
            totals: &mut totals,
            failures: &mut failures,
            limit: &mut limit,
            bar: &bar,
            max_in_flight: client.budget().settings().max_in_flight.max(1),
            fresh: done.clone(),
            new_scopes: HashSet::new(),
            guard: options.mass_change,
            swept: false,
            pending: Vec::new(),
            expected: &expected,
            attributions: &[],
        };
        if !options.wait && ctx.limit.left() < STRUCTURAL_LISTINGS {
            // Reading the structure now would sit in the budget waiting for the window.
            let (summary, cost) = ctx.defer_workspace(&active).await?;
            minimum += cost;
            deferred_total += summary.listings_deferred;
            bar.finish_with_message("deferred");
            summaries.push(summary);
            continue;
        }
        let mut summary = ctx.structural().await?;
        if options.group_privileges_sweep {
            minimum += ctx.sweep_group_permissions(&mut summary).await?;
        }
        let (candidates, skipped_cost) = ctx.candidates(&active).await?;
        minimum += skipped_cost;
        minimum += candidates.iter().map(|c| c.cost).sum::<u64>();
        let budgeted = ctx.read_within_budget(candidates, options.wait).await?;
        summary.listings_deferred = budgeted.deferred;
        deferred_total += budgeted.deferred;
        summary.listings_read += budgeted.read;
        if options.cross_check_sample > 0 {
            let (checked, mut found) = ctx.cross_check(options.cross_check_sample).await?;
            cross_checked += checked;
            findings.append(&mut found);
        }
        bar.finish_with_message("done");
        summary.entities = entity_counts(store, ws).await?;
        summaries.push(summary);
    }

    // Requests a complete read needs: every listing's pages. The structural listings count the
    // pages they had in this run, the permission listings their cost from the plan.
    minimum += totals.structural_pages;
    let (oldest, never_read) = staleness(store, &claim.claimed).await?;
    // The failed reads are kept with the listings, so `access` can say which answers rest on
    // them; a later complete read clears them.
    record_failures(store, clock, &failures).await?;
    // A store file removed or replaced during the run would make this a report of writes that
    // went nowhere.
    store.check_file()?;
    let outcome = if failures.is_empty() && deferred_total == 0 && totals.held.is_empty() {
        SyncOutcome::Complete
    } else {
        SyncOutcome::Partial
    };
    Ok(SyncReport {
        run: claim.run.0,
        resumed: claim.resumed,
        outcome,
        workspaces: summaries,
        held: claim.held.iter().map(Held::from).collect(),
        requests_used: 0,
        minimum_requests: minimum,
        inserted: totals.inserted,
        updated: totals.updated,
        deleted: totals.deleted,
        drift: totals.drift,
        rows_written: totals.rows_written,
        failures,
        mass_changes_held: totals.held,
        findings,
        cross_checked,
        oldest_fact_age_seconds: oldest.map(|t| (clock.now() - t).num_seconds()),
        never_read,
        duration_ms: 0,
    })
}

/// Keeps the failed reads with their listings, so `access` can say which answers rest on
/// them; a later complete read clears them.
async fn record_failures(
    store: &dyn Store,
    clock: &dyn Clock,
    failures: &[Failure],
) -> Result<(), SyncError> {
    for failure in failures {
        if let Ok(key) = ListingKey::parse(&failure.listing) {
            store
                .record_listing_failure(&key, clock.now(), &failure.error)
                .await?;
        }
    }
    Ok(())
}

/// The workspaces of this run, as slugs.
async fn managed_workspaces(
    client: &BitbucketClient,
    options: &SyncOptions,
) -> Result<Vec<WorkspaceSlug>, SyncError> {
    let names: Vec<String> = if options.workspaces.is_empty() {
        client
            .workspaces()
            .list_filtered(Some(true))
            .collect_all()
            .await
            .map_err(SyncError::Discovery)?
            .into_iter()
            .filter(|w| w.administrator)
            .map(|w| w.workspace.slug)
            .collect()
    } else {
        options.workspaces.clone()
    };
    let mut out: Vec<WorkspaceSlug> = names
        .into_iter()
        .map(|n| WorkspaceSlug::parse(n.clone()).map_err(|_| SyncError::BadWorkspace(n)))
        .collect::<Result<_, _>>()?;
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(SyncError::NothingToSync);
    }
    Ok(out)
}
