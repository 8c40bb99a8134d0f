//! The targeted refresh: reads only the listings a known change touched (a repository's or a
//! project's permissions, a group's members, the workspace's members, repositories or
//! projects), through the same machinery as a full sync, and nothing else.
//!
//! Callers (the organization events of [`crate::org`]-driven refreshes, webhooks) name
//! [`Target`]s; duplicates and targets another one covers are merged first, so ten events on
//! one repository cost what one does. The rules of a full run hold:
//! - the refresh is a sync run: it claims its workspaces (a workspace a live run holds is
//!   skipped and reported in [`TargetedReport::held`]), renews its lease and counts its requests
//!   for the other processes' budgets;
//! - it spends only what the rolling hour allows now: what does not fit is reported in
//!   [`TargetedReport::deferred`], never waited for;
//! - only complete listings replace stored facts, and every difference is drift.
//!
//! A single repository or project ([`Target::Repository`], [`Target::Project`]) is read with
//! one request, not by the workspace's whole listing (fifty requests in a 5,000-repository
//! workspace): its fresh state is merged into the stored listing, which is replaced as a
//! *partial* listing, so its change is recorded while the listing's freshness, which speaks
//! for the items not read, stays as it was. A repository with its two permission listings
//! costs three requests.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use indicatif::ProgressBar;
use serde::Serialize;
use tracing::{info, instrument, warn};

use super::lease::{self, Lease, LeaseSettings};
use super::permissions::{
    new_project_listings, new_repo_listings, project_listings, repo_listings,
};
use super::plan::{pages_for, Candidate, Priority};
use super::report::{Failure, Held, HeldListing, Totals};
use super::structural::{project_fact, repo_fact};
pub use super::target::Target;
use super::target::{merge, Item, Reads};
use super::workspace::{Limit, WorkspaceRun};
use super::{SyncError, PAGE_SIZE};
use crate::bitbucket::convert::workspace_role;
use crate::bitbucket::{ApiError, BitbucketClient, ErrorKind, Project, Repository};
use crate::clock::{Clock, SystemClock};
use crate::domain::{Attribution, GroupSlug, WorkspaceSlug};
use crate::store::{
    Fact, ListingKey, MassChangeGuard, ReplaceOutcome, RunOwner, Store, SyncOutcome, SyncRunFinish,
};

/// How a targeted refresh runs.
#[derive(Debug, Clone)]
pub struct TargetedOptions {
    /// Where the refresh reads the time.
    pub clock: Arc<dyn Clock>,
    /// The run's lease and heartbeat.
    pub lease: LeaseSettings,
    /// Holds back a replace that would remove most of a listing.
    pub mass_change: MassChangeGuard,
    /// The organization events the targets came from (empty for a webhook's refresh): the
    /// drift a listing shows names the event that explains it, and the connector's own
    /// changes are not drift.
    pub attributions: Vec<(Target, Attribution)>,
}

impl Default for TargetedOptions {
    fn default() -> Self {
        TargetedOptions {
            clock: Arc::new(SystemClock),
            lease: LeaseSettings::default(),
            mass_change: MassChangeGuard::default(),
            attributions: Vec::new(),
        }
    }
}

/// What a targeted refresh did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetedReport {
    /// The sync run it was recorded as (`None` when every workspace was held).
    pub run: Option<i64>,
    /// Targets asked for, before merging.
    pub targets: usize,
    /// Reads they came to after merging (listings and single items).
    pub reads: u64,
    /// Listings and single items read and stored.
    pub stored: u64,
    /// Requests sent to Bitbucket.
    pub requests_used: u64,
    /// Facts inserted.
    pub inserted: u64,
    /// Facts whose attributes changed.
    pub updated: u64,
    /// Facts that disappeared.
    pub deleted: u64,
    /// Drift events recorded.
    pub drift: u64,
    /// Reads that failed (stored facts stay).
    pub failures: Vec<Failure>,
    /// Reads the rolling hour could not pay for now: read them again later.
    pub deferred: Vec<String>,
    /// Workspaces another live run holds: their targets were not read.
    pub held: Vec<Held>,
    /// Listings whose mass removal was held back.
    pub mass_changes_held: Vec<HeldListing>,
}

impl TargetedReport {
    /// Whether everything asked for was read and stored (nothing failed, deferred or held).
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
            && self.deferred.is_empty()
            && self.held.is_empty()
            && self.mass_changes_held.is_empty()
    }
}

/// Reads the listings `targets` name (merged) and stores them as a sync run.
#[instrument(skip_all, fields(targets = targets.len()))]
pub async fn refresh(
    store: &dyn Store,
    client: &BitbucketClient,
    targets: &[Target],
    options: &TargetedOptions,
) -> Result<TargetedReport, SyncError> {
    let mut report = TargetedReport {
        targets: targets.len(),
        ..TargetedReport::default()
    };
    let merged = merge(targets);
    if merged.is_empty() {
        return Ok(report);
    }
    store.check_file()?;
    let clock = options.clock.as_ref();
    let requests_before = client.requests_used();
    let workspaces: Vec<WorkspaceSlug> = merged.keys().cloned().collect();
    let owner = RunOwner::generate();
    let claim = lease::claim(store, clock, &owner, &workspaces, &options.lease).await?;
    report.held = claim.held.iter().map(Held::from).collect();
    for h in &claim.held {
        info!(workspace = %h.workspace, run = %h.run, "held by another run; its targets wait");
    }
    let lease = Lease {
        store,
        client,
        clock,
        owner,
        run: claim.run,
        settings: options.lease,
        requests_before,
        flushed: AtomicU64::new(0),
    };
    let mut totals = Totals::default();
    let work = async {
        let mut limit = Limit::new(client);
        for ws in &claim.claimed {
            if let Some(reads) = merged.get(ws) {
                read_workspace(
                    store,
                    client,
                    options,
                    &claim.run,
                    ws,
                    reads,
                    &mut limit,
                    &mut totals,
                    &mut report,
                )
                .await?;
            }
        }
        Ok(())
    };
    match lease.hold_while(work).await {
        Ok(()) => {}
        Err(e @ SyncError::LeaseLost { .. }) => return Err(e),
        Err(e) => {
            lease.release().await;
            return Err(e);
        }
    }
    super::record_failures(store, clock, &report.failures).await?;
    report.run = Some(claim.run.0);
    report.requests_used = lease.requests_used();
    report.inserted = totals.inserted;
    report.updated = totals.updated;
    report.deleted = totals.deleted;
    report.drift = totals.drift;
    report.mass_changes_held = totals.held;
    let outcome = if report.is_complete() {
        SyncOutcome::Complete
    } else {
        SyncOutcome::Partial
    };
    store
        .finish_sync_run(
            claim.run,
            &SyncRunFinish {
                finished_at: clock.now(),
                outcome,
                counts: serde_json::json!({
                    "targeted": true,
                    "targets": report.targets, "reads": report.reads, "stored": report.stored,
                    "inserted": report.inserted, "updated": report.updated,
                    "deleted": report.deleted, "drift": report.drift,
                    "failures": report.failures.len(), "deferred": report.deferred.len(),
                    "held": report.held,
                }),
                requests_used: report.requests_used,
                minimum_requests: report.reads,
            },
        )
        .await?;
    info!(
        requests = report.requests_used,
        reads = report.reads,
        drift = report.drift,
        "targeted refresh finished"
    );
    Ok(report)
}

/// Reads one claimed workspace's merged targets: whole listings first (a new repository or
/// project they find adds its permission listings), then single items, group members, and the
/// permission listings last, within what the rolling hour allows now.
#[allow(clippy::too_many_arguments)]
async fn read_workspace(
    store: &dyn Store,
    client: &BitbucketClient,
    options: &TargetedOptions,
    run: &crate::store::SyncRunId,
    ws: &WorkspaceSlug,
    reads: &Reads,
    limit: &mut Limit,
    totals: &mut Totals,
    report: &mut TargetedReport,
) -> Result<(), SyncError> {
    let done = HashSet::new();
    let bar = ProgressBar::hidden();
    // Changes of grants in flight are the connector's own: not drift here either.
    let expected = crate::grants::expected_changes(store).await?;
    let mut failures = Vec::new();
    let mut ctx = WorkspaceRun {
        store,
        client,
        clock: options.clock.as_ref(),
        ws,
        run: *run,
        done: &done,
        totals,
        failures: &mut failures,
        limit,
        bar: &bar,
        max_in_flight: client.budget().settings().max_in_flight.max(1),
        fresh: HashSet::new(),
        new_scopes: HashSet::new(),
        guard: options.mass_change,
        swept: false,
        pending: Vec::new(),
        expected: &expected,
        attributions: &options.attributions,
    };
    let mut permissions = reads.permissions.clone();
    report.reads += (reads.structural.len() + reads.items.len() + reads.group_members.len()) as u64;

    for key in &reads.structural {
        let cost = last_cost(store, key).await?;
        if ctx.limit.left() < cost {
            report.deferred.push(key.to_string());
            continue;
        }
        if let Some(new) = read_structural(&mut ctx, key).await? {
            report.stored += 1;
            permissions.extend(new);
        }
    }
    for item in &reads.items {
        if ctx.limit.left() < 1 {
            report.deferred.push(item_label(item));
            continue;
        }
        match merge_item(&mut ctx, item).await? {
            ItemRead::Stored { gone } => {
                report.stored += 1;
                // A repository or project that is gone took its permissions with it: reading
                // them would only meet a 404.
                if gone {
                    let [users, groups] = match item {
                        Item::Repository(r) => repo_listings(r.clone()),
                        Item::Project(p) => project_listings(p.clone()),
                    };
                    permissions.remove(&users);
                    permissions.remove(&groups);
                }
            }
            ItemRead::Failed => {}
        }
    }
    for group in &reads.group_members {
        if ctx.limit.left() < 1 {
            report.deferred.push(format!("group:{ws}/{group}:members"));
            continue;
        }
        if read_group_members(&mut ctx, group).await? {
            report.stored += 1;
        }
    }

    report.reads += permissions.len() as u64;
    let mut candidates = Vec::with_capacity(permissions.len());
    for key in permissions {
        let freshness = store.listing_freshness(&key).await?;
        candidates.push(Candidate {
            cost: freshness.as_ref().map_or(1, |f| f.cost_requests.max(1)),
            last_read: freshness.map(|f| f.read_at),
            priority: Priority::Stale,
            key,
        });
    }
    let planned = super::plan::plan(candidates, ctx.limit.left());
    report
        .deferred
        .extend(planned.deferred.iter().map(|c| c.key.to_string()));
    report.stored += ctx.read_permissions(planned.read).await?;
    drop(ctx);
    report.failures.append(&mut failures);
    Ok(())
}

/// The requests a listing cost when last read completely (one when never read).
async fn last_cost(store: &dyn Store, key: &ListingKey) -> Result<u64, SyncError> {
    Ok(store
        .listing_freshness(key)
        .await?
        .map_or(1, |f| f.cost_requests.max(1)))
}

fn item_label(item: &Item) -> String {
    match item {
        Item::Repository(r) => format!("repository {r}"),
        Item::Project(p) => format!("project {p}"),
    }
}

/// Reads and stores one whole structural listing. Returns the permission listings of the
/// repositories or projects it found new (their first read is drift), or `None` when the read
/// failed.
async fn read_structural(
    ctx: &mut WorkspaceRun<'_>,
    key: &ListingKey,
) -> Result<Option<Vec<ListingKey>>, SyncError> {
    let c = ctx.client;
    let ws = ctx.ws.as_str();
    let slug = ctx.ws.clone();
    let outcome = match key {
        ListingKey::WorkspaceMembers(_) => {
            let read = c.workspaces().permissions(ws).collect_all().await;
            ctx.store_listing(key.clone(), Some(read), |m| {
                Some(Fact::WorkspaceMember {
                    account: m.user.to_domain()?,
                    role: workspace_role(m.permission.as_ref()),
                })
            })
            .await?
        }
        ListingKey::Projects(_) => {
            let read = c.projects(ws).list().collect_all().await;
            ctx.store_listing(key.clone(), Some(read), |p: &Project| {
                project_fact(p.to_domain(&slug)?)
            })
            .await?
        }
        ListingKey::Repositories(_) => {
            let read = c.repositories(ws).list(None).collect_all().await;
            ctx.store_listing(key.clone(), Some(read), |r: &Repository| {
                repo_fact(r.to_domain(&slug)?)
            })
            .await?
        }
        ListingKey::Groups(_) => {
            return match c.groups_v1(ws).list().await {
                Ok(list) => {
                    ctx.store_groups(key.clone(), list).await?;
                    Ok(Some(Vec::new()))
                }
                Err(e) => {
                    ctx.fail(key, &e);
                    Ok(None)
                }
            };
        }
        other => {
            warn!(listing = %other, "not a structural listing; skipped");
            return Ok(None);
        }
    };
    let Some(outcome) = outcome else {
        return Ok(None);
    };
    let before = ctx.new_scopes.len();
    ctx.note_new(&outcome, new_repo_listings);
    ctx.note_new(&outcome, new_project_listings);
    let new = if ctx.new_scopes.len() > before {
        new_listings(&outcome)
    } else {
        Vec::new()
    };
    Ok(Some(new))
}

/// The permission listings of the repositories and projects a replace found new.
fn new_listings(outcome: &ReplaceOutcome) -> Vec<ListingKey> {
    outcome
        .drift
        .iter()
        .filter(|e| e.before.is_none())
        .filter_map(|e| new_repo_listings(&e.key).or_else(|| new_project_listings(&e.key)))
        .flatten()
        .collect()
}

/// What reading a single item came to.
enum ItemRead {
    /// Merged and stored; `gone` when Bitbucket no longer has it.
    Stored { gone: bool },
    /// The read failed; stored facts stay.
    Failed,
}

/// Reads one repository or project (one request) and stores its listing with that item
/// replaced, added or (when Bitbucket answers 404) removed, as a partial listing.
async fn merge_item(ctx: &mut WorkspaceRun<'_>, item: &Item) -> Result<ItemRead, SyncError> {
    let ws = ctx.ws.clone();
    let c = ctx.client;
    let (key, read, stored) = match item {
        Item::Repository(r) => (
            ListingKey::Repositories(ws.clone()),
            c.repositories(ws.as_str())
                .get(r.slug.as_str())
                .await
                .map(|w| w.to_domain(&ws).and_then(repo_fact)),
            ctx.store
                .repositories(&ws)
                .await?
                .into_iter()
                .filter_map(repo_fact)
                .collect::<Vec<_>>(),
        ),
        Item::Project(p) => (
            ListingKey::Projects(ws.clone()),
            c.projects(ws.as_str())
                .get(p.key.as_str())
                .await
                .map(|w| w.to_domain(&ws).and_then(project_fact)),
            ctx.store
                .projects(&ws)
                .await?
                .into_iter()
                .filter_map(project_fact)
                .collect(),
        ),
    };
    // The stored listing without the item: the item's fresh state (if any) joins it.
    let (mine, mut facts): (Vec<Fact>, Vec<Fact>) =
        stored.into_iter().partition(|f| is_item(f, item));
    let known = !mine.is_empty();
    let gone = match read {
        Ok(fact) => {
            let gone = fact.is_none();
            facts.extend(fact);
            gone
        }
        Err(e) if e.kind == ErrorKind::NotFound => true,
        Err(e) => {
            ctx.fail(&key, &item_error(item, e));
            return Ok(ItemRead::Failed);
        }
    };
    if gone && !known {
        // Nothing stored and nothing there: no change to write.
        return Ok(ItemRead::Stored { gone });
    }
    let mut request = ctx.request(key.clone(), facts, 1);
    request.partial = true;
    let outcome = ctx.store.replace_listing(request).await?;
    ctx.totals.add(&key, &outcome);
    // A repository or project that appeared since the listing was read: its permissions'
    // first read is drift, not a baseline.
    ctx.note_new(&outcome, new_repo_listings);
    ctx.note_new(&outcome, new_project_listings);
    Ok(ItemRead::Stored { gone })
}

/// Whether a stored fact is the item's.
fn is_item(fact: &Fact, item: &Item) -> bool {
    match (fact, item) {
        (Fact::Repository { slug, .. }, Item::Repository(r)) => *slug == r.slug,
        (Fact::Project { key, .. }, Item::Project(p)) => *key == p.key,
        _ => false,
    }
}

/// The item's read error, naming the item (the listing key names only the workspace).
fn item_error(item: &Item, e: ApiError) -> ApiError {
    ApiError::local(
        e.kind,
        "(targeted refresh)",
        format!("{}: {e}", item_label(item)),
    )
}

/// Reads one group's members (one request). A group Bitbucket no longer has is settled by
/// the groups listing (one request too), which removes it with its members.
async fn read_group_members(
    ctx: &mut WorkspaceRun<'_>,
    group: &GroupSlug,
) -> Result<bool, SyncError> {
    let ws = ctx.ws.clone();
    let key = ListingKey::GroupMembers {
        workspace: ws.clone(),
        group: group.clone(),
    };
    match ctx
        .client
        .groups_v1(ws.as_str())
        .members(group.as_str())
        .await
    {
        Ok(members) => {
            let pages = pages_for(members.len() as u64, PAGE_SIZE).max(1);
            let facts = members
                .iter()
                .filter_map(|m| m.to_domain())
                .map(|account| Fact::GroupMember { account })
                .collect();
            ctx.replace(key, facts, pages).await?;
            Ok(true)
        }
        Err(e) if e.kind == ErrorKind::NotFound => {
            Ok(read_structural(ctx, &ListingKey::Groups(ws))
                .await?
                .is_some())
        }
        Err(e) => {
            ctx.fail(&key, &e);
            Ok(false)
        }
    }
}
