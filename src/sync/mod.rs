//! Sync: reads every managed workspace's access into the store, within the request budget.
//!
//! # What a run does
//! For each managed workspace (the config's `workspaces`, else every workspace the token's
//! account administers):
//! 1. the five *structural* listings: the workspace itself, its members and roles
//!    (`/workspaces/{ws}/permissions`), its projects, its repositories and its groups (1.0 API,
//!    members included; when Bitbucket refuses it the run says so and carries on);
//! 2. the *permission* listings: explicit user and group permissions of every project and
//!    repository (`permissions-config`), two listings each, chosen by [`plan`] when the budget
//!    cannot pay for all of them;
//! 3. a cross-check of a small sample of repositories against Bitbucket's own effective
//!    permissions (`/workspaces/{ws}/permissions/repositories/{repo}`), when the budget allows.
//!    Only repositories whose every fact (members, groups and their members, the repository's
//!    and its project's permissions) was read by this run are compared, so stale facts kept by
//!    a failed or deferred listing are never reported as a disagreement.
//!
//! # Correctness rules
//! - Only a complete listing reaches [`Store::replace_listing`]. A listing that failed, was cut
//!   short or was not read keeps its stored facts, and its age shows in the freshness table.
//! - The store turns every difference into a drift event unless the connector made the change.
//! - An unchanged listing writes nothing but its freshness, so an unchanged sync writes no rows
//!   beyond the run record.
//! - An interrupted run is resumed by the next one: it takes over the unfinished run and neither
//!   requests nor stores again the listings that run already completed (workspace listings
//!   included). The groups listing and its members are stored in one transaction, so an
//!   interruption cannot leave the groups done and their members unwritten.
//!
//! # Request model
//! See ARCHITECTURE.md, "Request model". In short: every listing costs its pages at 100 items per
//! page (at least one request); the run knows each listing's cost from its previous read and
//! spends at most the budget available to it.

pub mod plan;

use crate::bitbucket::{
    Account as ApiAccount, ApiError, BitbucketClient, ErrorKind, PermissionLevel, PermissionTarget,
    WorkspaceRole as ApiRole,
};
use crate::domain::{
    effective_access_for_repository, Account, AccountId, FactKey, GrantTarget, GroupSlug,
    ProjectKey, ProjectLevel, ProjectRef, RepoLevel, RepoRef, RepoSlug, Source, WorkspaceRole,
    WorkspaceSlug,
};
use crate::store::{
    Fact, ListingKey, ReplaceListing, ReplaceOutcome, Store, StoreError, SyncOutcome,
    SyncRunFinish, SyncRunId,
};
use chrono::{DateTime, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use plan::{pages_for, Candidate, Priority};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Instant;
use tokio::task::JoinSet;
use tracing::{info, instrument, warn};

/// Items per page the client asks for.
pub const PAGE_SIZE: u64 = 100;

/// Most completed permission listings written in one transaction.
const WRITE_BATCH: usize = 64;

/// How long an interrupted run stays resumable.
const RESUME_WINDOW_HOURS: i64 = 24;

/// What a run should do.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Workspaces to read; empty means every workspace the account administers.
    pub workspaces: Vec<String>,
    /// At most this many requests in this run (on top of the client's hourly budget).
    pub max_requests: Option<u64>,
    /// Repositories per workspace to cross-check against Bitbucket's effective permissions.
    pub cross_check_sample: usize,
    /// Show progress bars (on a terminal).
    pub progress: bool,
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
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A listing that could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The listing (`repo:acme/api:users`).
    pub listing: String,
    /// What went wrong, with Bitbucket's hint.
    pub error: String,
}

/// A disagreement between the computed effective access and Bitbucket's own.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// The repository (`acme/api`).
    pub repository: String,
    /// The account.
    pub account_id: String,
    /// What the stored facts give, `None` for nothing.
    pub computed: Option<String>,
    /// What Bitbucket reports, `None` for nothing.
    pub bitbucket: Option<String>,
}

/// Figures of one workspace.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkspaceSummary {
    /// The slug.
    pub workspace: String,
    /// Listings read completely in this run.
    pub listings_read: u64,
    /// Listings left for a later run by the budget.
    pub listings_deferred: u64,
    /// Whether the 1.0 groups API answered.
    pub groups_available: bool,
    /// Entities stored after the run, by kind.
    pub entities: BTreeMap<String, u64>,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// The run's id in the store.
    pub run: i64,
    /// Whether the run took over an interrupted one.
    pub resumed: bool,
    /// How it ended.
    pub outcome: SyncOutcome,
    /// Per workspace.
    pub workspaces: Vec<WorkspaceSummary>,
    /// Requests sent to Bitbucket by this run.
    pub requests_used: u64,
    /// Requests a complete read of every listing needs (its pages at 100 per page).
    pub minimum_requests: u64,
    /// Facts inserted, updated and deleted.
    pub inserted: u64,
    /// Facts whose attributes changed.
    pub updated: u64,
    /// Facts that disappeared.
    pub deleted: u64,
    /// Drift events recorded.
    pub drift: u64,
    /// Entity and audit rows written (0 when nothing changed).
    pub rows_written: u64,
    /// Listings that could not be read.
    pub failures: Vec<Failure>,
    /// Cross-check disagreements.
    pub findings: Vec<Finding>,
    /// Repositories cross-checked.
    pub cross_checked: u64,
    /// Age of the oldest stored fact after the run, in seconds (`None` when a listing was never
    /// read at all).
    pub oldest_fact_age_seconds: Option<i64>,
    /// Listings never read completely yet.
    pub never_read: u64,
    /// Wall time.
    pub duration_ms: u128,
}

#[derive(Default)]
struct Totals {
    inserted: u64,
    updated: u64,
    deleted: u64,
    drift: u64,
    rows_written: u64,
    /// Pages of the structural listings (the workspace, members, projects, repositories,
    /// groups), whether or not a resumed run skipped storing them.
    structural_pages: u64,
}

impl Totals {
    fn add(&mut self, o: &ReplaceOutcome) {
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.deleted += o.deleted;
        self.drift += o.drift.len() as u64;
        self.rows_written += o.rows_written;
    }
}

/// Runs one sync. `now` is read once per listing from the clock; the run's start is recorded.
#[instrument(skip_all, fields(workspaces = options.workspaces.len()))]
pub async fn run(
    store: &dyn Store,
    client: &BitbucketClient,
    options: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let requests_before = client.requests_used();
    // `--max-requests` bounds every request of the run, discovery and listings included, so a
    // listing that never ends cannot pass it.
    client.budget().cap_requests(options.max_requests);
    let workspaces = managed_workspaces(client, options).await?;

    // Take over an interrupted run, skipping what it completed.
    let mut resumed = false;
    let mut done: HashSet<ListingKey> = HashSet::new();
    let run_id = match store.unfinished_sync_run().await? {
        Some(run)
            if run.workspaces == workspaces
                && Utc::now() - run.started_at < chrono::Duration::hours(RESUME_WINDOW_HOURS) =>
        {
            resumed = true;
            done.extend(store.completed_listings(run.id).await?);
            info!(run = %run.id, completed = done.len(), "resuming an interrupted sync run");
            run.id
        }
        _ => store.start_sync_run(Utc::now(), &workspaces).await?,
    };

    // Requests earlier runs (other processes) spent in the last hour count against this one.
    let prior = store
        .requests_since(Utc::now() - chrono::Duration::hours(1))
        .await?
        .saturating_sub(requests_before);
    let mut limit = Limit::new(client, options.max_requests, prior);
    let progress = if options.progress {
        MultiProgress::new()
    } else {
        MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
    };
    let active = active_grant_targets(store).await?;

    let mut totals = Totals::default();
    let mut failures = Vec::new();
    let mut findings = Vec::new();
    let mut summaries = Vec::new();
    let mut minimum = 0u64;
    let mut cross_checked = 0u64;
    let mut deferred_total = 0u64;

    for ws in &workspaces {
        let bar = progress.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(ws.to_string());
        let mut ctx = WorkspaceRun {
            store,
            client,
            ws,
            run: run_id,
            done: &done,
            totals: &mut totals,
            failures: &mut failures,
            limit: &mut limit,
            bar: &bar,
            max_in_flight: client.budget().settings().max_in_flight.max(1),
            fresh: done.clone(),
            new_scopes: HashSet::new(),
        };
        let mut summary = ctx.structural().await?;
        let (candidates, skipped_cost) = ctx.candidates(&active).await?;
        minimum += skipped_cost;
        let plan = plan::plan(candidates, ctx.limit.left());
        minimum += plan
            .read
            .iter()
            .chain(&plan.deferred)
            .map(|c| c.cost)
            .sum::<u64>();
        summary.listings_deferred = plan.deferred.len() as u64;
        deferred_total += plan.deferred.len() as u64;
        summary.listings_read += ctx.read_permissions(plan.read).await?;
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
    let (oldest, never_read) = staleness(store, &workspaces).await?;
    let requests_used = client.requests_used() - requests_before;
    let outcome = if failures.is_empty() && deferred_total == 0 {
        SyncOutcome::Complete
    } else {
        SyncOutcome::Partial
    };
    let now = Utc::now();
    let report = SyncReport {
        run: run_id.0,
        resumed,
        outcome,
        workspaces: summaries,
        requests_used,
        minimum_requests: minimum,
        inserted: totals.inserted,
        updated: totals.updated,
        deleted: totals.deleted,
        drift: totals.drift,
        rows_written: totals.rows_written,
        failures,
        findings,
        cross_checked,
        oldest_fact_age_seconds: oldest.map(|t| (now - t).num_seconds()),
        never_read,
        duration_ms: started.elapsed().as_millis(),
    };
    let counts = serde_json::json!({
        "inserted": report.inserted, "updated": report.updated, "deleted": report.deleted,
        "drift": report.drift, "rows_written": report.rows_written,
        "failures": report.failures.len(), "findings": report.findings.len(),
        "deferred": deferred_total, "cross_checked": report.cross_checked,
        "workspaces": report.workspaces,
    });
    store
        .finish_sync_run(
            run_id,
            &SyncRunFinish {
                finished_at: now,
                outcome,
                counts,
                requests_used,
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

/// The requests this run may still send: the smaller of the client's budget and the run's cap.
struct Limit {
    cap: Option<u64>,
    start: u64,
    /// Requests of earlier runs in the last hour that this process's budget did not see.
    prior: u64,
    client: BitbucketClient,
}

impl Limit {
    fn new(client: &BitbucketClient, cap: Option<u64>, prior: u64) -> Self {
        Limit {
            cap,
            start: client.requests_used(),
            prior,
            client: client.clone(),
        }
    }

    fn left(&self) -> u64 {
        let budget = self.client.budget().available().saturating_sub(self.prior);
        match self.cap {
            Some(cap) => budget.min(cap.saturating_sub(self.client.requests_used() - self.start)),
            None => budget,
        }
    }
}

/// Repositories and projects with an active grant, as listing keys to refresh first.
async fn active_grant_targets(store: &dyn Store) -> Result<HashSet<ListingKey>, SyncError> {
    let mut out = HashSet::new();
    for grant in store.active_grants().await? {
        out.extend(match grant.target {
            GrantTarget::Repository { repository, .. } => repo_listings(repository),
            GrantTarget::Project { project, .. } => project_listings(project),
        });
    }
    Ok(out)
}

struct WorkspaceRun<'a> {
    store: &'a dyn Store,
    client: &'a BitbucketClient,
    ws: &'a WorkspaceSlug,
    run: SyncRunId,
    done: &'a HashSet<ListingKey>,
    totals: &'a mut Totals,
    failures: &'a mut Vec<Failure>,
    limit: &'a mut Limit,
    bar: &'a ProgressBar,
    max_in_flight: usize,
    /// Listings stored by this run (or by the interrupted run it resumes): the cross-check
    /// looks only at repositories whose facts all come from them.
    fresh: HashSet<ListingKey>,
    /// Listings of repositories, projects and groups that appeared since the workspace was
    /// first read: their first read is drift, not a baseline.
    new_scopes: HashSet<ListingKey>,
}

impl WorkspaceRun<'_> {
    fn request(&self, key: ListingKey, facts: Vec<Fact>, pages: u64) -> ReplaceListing {
        let mut request = ReplaceListing::new(key, facts, Utc::now());
        request.cost_requests = pages;
        request.run = Some(self.run);
        request.baseline_is_drift = self.new_scopes.contains(&request.key);
        request
    }

    async fn replace(
        &mut self,
        key: ListingKey,
        facts: Vec<Fact>,
        pages: u64,
    ) -> Result<ReplaceOutcome, StoreError> {
        let request = self.request(key.clone(), facts, pages);
        let outcome = self.store.replace_listing(request).await?;
        self.fresh.insert(key);
        self.totals.add(&outcome);
        Ok(outcome)
    }

    /// Notes the repositories or projects a structural listing found new (drift with nothing
    /// before), so that the first read of their permissions records drift too.
    fn note_new(
        &mut self,
        outcome: &ReplaceOutcome,
        listings: fn(&FactKey) -> Option<[ListingKey; 2]>,
    ) {
        for event in outcome.drift.iter().filter(|e| e.before.is_none()) {
            if let Some(keys) = listings(&event.key) {
                self.new_scopes.extend(keys);
            }
        }
    }

    fn fail(&mut self, key: &ListingKey, error: &ApiError) {
        warn!(listing = %key, error = %error, "listing not read; its stored facts stay");
        self.failures.push(Failure {
            listing: key.to_string(),
            error: error.to_string(),
        });
    }

    /// Reads the five structural listings.
    async fn structural(&mut self) -> Result<WorkspaceSummary, SyncError> {
        let ws = self.ws.as_str();
        let mut summary = WorkspaceSummary {
            workspace: ws.to_string(),
            ..Default::default()
        };
        let c = self.client;

        let key = ListingKey::Workspace(self.ws.clone());
        if !self.done.contains(&key) {
            match c.workspaces().get(ws).await {
                Ok(w) => {
                    let fact = Fact::Workspace {
                        uuid: w.uuid,
                        name: w.name.unwrap_or_else(|| w.slug.clone()),
                        is_private: w.is_private.unwrap_or(true),
                    };
                    self.replace(key, vec![fact], 1).await?;
                    summary.listings_read += 1;
                }
                Err(e) => self.fail(&key, &e),
            }
        }

        // A resumed run does not read again what the interrupted run already stored: those
        // listings keep the facts and the freshness that run gave them.
        let done = self.done;
        let members_key = ListingKey::WorkspaceMembers(self.ws.clone());
        let projects_key = ListingKey::Projects(self.ws.clone());
        let repos_key = ListingKey::Repositories(self.ws.clone());
        let groups_key = ListingKey::Groups(self.ws.clone());
        let groups_api = c.groups_v1(ws);
        let (members, projects, repos, groups) = tokio::join!(
            async {
                if done.contains(&members_key) {
                    None
                } else {
                    Some(c.workspaces().permissions(ws).collect_all().await)
                }
            },
            async {
                if done.contains(&projects_key) {
                    None
                } else {
                    Some(c.projects(ws).list().collect_all().await)
                }
            },
            async {
                if done.contains(&repos_key) {
                    None
                } else {
                    Some(c.repositories(ws).list(None).collect_all().await)
                }
            },
            async {
                if done.contains(&groups_key) {
                    None
                } else {
                    Some(groups_api.list().await)
                }
            },
        );

        self.totals.structural_pages += 2; // the workspace and the 1.0 groups listing
        for (key, items) in [
            (
                &members_key,
                members.as_ref().map(|r| r.as_ref().map(Vec::len)),
            ),
            (
                &projects_key,
                projects.as_ref().map(|r| r.as_ref().map(Vec::len)),
            ),
            (&repos_key, repos.as_ref().map(|r| r.as_ref().map(Vec::len))),
        ] {
            self.totals.structural_pages += match items {
                Some(Ok(n)) => pages_for(n as u64, PAGE_SIZE),
                // Not read (completed before an interruption) or failed: the cost of the
                // listing's last complete read.
                _ => self
                    .store
                    .listing_freshness(key)
                    .await?
                    .map_or(1, |f| f.cost_requests.max(1)),
            };
        }

        let key = members_key;
        match members {
            Some(Ok(list)) => {
                let pages = pages_for(list.len() as u64, PAGE_SIZE);
                let facts = list
                    .into_iter()
                    .filter_map(|m| {
                        let account = account(&m.user)?;
                        Some(Fact::WorkspaceMember {
                            account,
                            role: role(m.permission),
                        })
                    })
                    .collect();
                self.replace(key, facts, pages).await?;
                summary.listings_read += 1;
            }
            Some(Err(e)) => self.fail(&key, &e),
            None => {}
        }

        let key = projects_key;
        match projects {
            Some(Ok(list)) => {
                let pages = pages_for(list.len() as u64, PAGE_SIZE);
                let facts = list
                    .into_iter()
                    .filter_map(|p| {
                        let key = ProjectKey::parse(p.key.clone()).ok()?;
                        Some(Fact::Project {
                            key,
                            uuid: p.uuid,
                            name: p.name.unwrap_or(p.key),
                            is_private: p.is_private.unwrap_or(true),
                        })
                    })
                    .collect();
                let outcome = self.replace(key, facts, pages).await?;
                self.note_new(&outcome, new_project_listings);
                summary.listings_read += 1;
            }
            Some(Err(e)) => self.fail(&key, &e),
            None => {}
        }

        let key = repos_key;
        match repos {
            Some(Ok(list)) => {
                let pages = pages_for(list.len() as u64, PAGE_SIZE);
                let facts = list
                    .into_iter()
                    .filter_map(|r| {
                        let slug = RepoSlug::parse(r.slug()?.to_string()).ok()?;
                        Some(Fact::Repository {
                            name: r.name.clone().unwrap_or_else(|| slug.to_string()),
                            slug,
                            uuid: r.uuid,
                            project: r.project.and_then(|p| ProjectKey::parse(p.key).ok()),
                            is_private: r.is_private.unwrap_or(true),
                        })
                    })
                    .collect();
                let outcome = self.replace(key, facts, pages).await?;
                self.note_new(&outcome, new_repo_listings);
                summary.listings_read += 1;
            }
            Some(Err(e)) => self.fail(&key, &e),
            None => {}
        }

        // The 1.0 groups listing carries every group's members: one request for all of them.
        let key = groups_key;
        match groups {
            // Read before the interruption of the run this one resumes.
            None => summary.groups_available = true,
            Some(Ok(list)) => {
                summary.groups_available = true;
                {
                    let mut facts = Vec::new();
                    let mut members = Vec::new();
                    for g in list {
                        let Ok(slug) = GroupSlug::parse(g.slug.clone()) else {
                            continue;
                        };
                        facts.push(Fact::Group {
                            slug: slug.clone(),
                            name: g.name.clone().unwrap_or_else(|| g.slug.clone()),
                        });
                        let accounts: Vec<Fact> = g
                            .members
                            .iter()
                            .filter_map(|m| {
                                let id = m.account_id.clone().or_else(|| m.uuid.clone())?;
                                Some(Fact::GroupMember {
                                    account: Account {
                                        account_id: AccountId::parse(id).ok()?,
                                        uuid: m.uuid.clone(),
                                        display_name: m.display_name.clone().unwrap_or_default(),
                                        nickname: m.nickname.clone(),
                                    },
                                })
                            })
                            .collect();
                        members.push((slug, accounts));
                    }
                    // The groups and their members in one transaction: an interruption
                    // cannot leave the groups listing done with its members unwritten.
                    // Groups created since the groups were first read: their members are drift.
                    let known: Option<HashSet<GroupSlug>> =
                        match self.store.listing_freshness(&key).await? {
                            Some(_) => Some(
                                self.store
                                    .groups(self.ws)
                                    .await?
                                    .into_iter()
                                    .map(|g| g.slug)
                                    .collect(),
                            ),
                            None => None,
                        };
                    let mut requests = vec![self.request(key, facts, 1)];
                    for (group, accounts) in members {
                        let is_new = known.as_ref().is_some_and(|k| !k.contains(&group));
                        let key = ListingKey::GroupMembers {
                            workspace: self.ws.clone(),
                            group,
                        };
                        let mut request = self.request(key, accounts, 0);
                        request.baseline_is_drift |= is_new;
                        requests.push(request);
                    }
                    let keys: Vec<ListingKey> = requests.iter().map(|r| r.key.clone()).collect();
                    for outcome in self.store.replace_listings(requests).await? {
                        self.totals.add(&outcome);
                    }
                    self.fresh.extend(keys);
                    summary.listings_read += 1;
                }
            }
            Some(Err(e))
                if matches!(
                    e.kind,
                    ErrorKind::NotFound
                        | ErrorKind::Forbidden
                        | ErrorKind::Gone
                        | ErrorKind::Unauthorized
                        | ErrorKind::ClientError
                ) =>
            {
                warn!(workspace = ws, error = %e, "the 1.0 groups API is not available; group memberships keep their stored state");
                self.failures.push(Failure {
                    listing: key.to_string(),
                    error: format!("groups unavailable (1.0 API): {e}"),
                });
            }
            Some(Err(e)) => self.fail(&key, &e),
        }
        Ok(summary)
    }

    /// The permission listings with their cost and priority, and the cost of the listings a
    /// resumed run already completed (they count towards the minimum).
    async fn candidates(
        &mut self,
        active: &HashSet<ListingKey>,
    ) -> Result<(Vec<Candidate<ListingKey>>, u64), SyncError> {
        let mut out = Vec::new();
        let mut already = 0;
        for status in self.store.listings_by_age(self.ws).await? {
            let permission = matches!(
                status.key,
                ListingKey::ProjectUserPermissions(_)
                    | ListingKey::ProjectGroupPermissions(_)
                    | ListingKey::RepositoryUserPermissions(_)
                    | ListingKey::RepositoryGroupPermissions(_)
            );
            if !permission {
                continue;
            }
            let cost = status.cost_requests.unwrap_or(1).max(1);
            if self.done.contains(&status.key) {
                already += cost;
                continue;
            }
            let priority = if status.read_at.is_none() {
                Priority::NeverRead
            } else if active.contains(&status.key) {
                Priority::ActiveGrant
            } else {
                Priority::Stale
            };
            out.push(Candidate {
                key: status.key,
                cost,
                last_read: status.read_at,
                priority,
            });
        }
        Ok((out, already))
    }

    /// Reads the planned permission listings, `max_in_flight` at a time. Returns how many were
    /// stored.
    ///
    /// Reads run as tasks, so they go on while the store writes. Listings read completely are
    /// written in batches of whatever is ready (up to [`WRITE_BATCH`]) in one transaction each:
    /// a commit per listing dominated large syncs (the sync benchmark measured 3.5 ms against
    /// 0.75 ms per listing on PostgreSQL, 0.8 ms against 0.12 ms on SQLite). A listing is never
    /// held back waiting for more: when no other read has finished, the batch is written at
    /// once, so a slow, paced run still stores each listing as soon as it is read, and an
    /// interrupted run loses at most the batch being written.
    async fn read_permissions(
        &mut self,
        planned: Vec<Candidate<ListingKey>>,
    ) -> Result<u64, SyncError> {
        self.bar.set_length(planned.len() as u64);
        let mut keys = planned.into_iter().map(|c| c.key);
        // Dropping the set (when the run is cancelled) aborts the reads still running.
        let mut running: JoinSet<PermissionRead> = JoinSet::new();
        let spawn = |running: &mut JoinSet<_>, key: ListingKey| {
            let client = self.client.clone();
            running.spawn(async move {
                let result = fetch_permissions(&client, &key).await;
                (key, result)
            });
        };
        for key in keys.by_ref().take(self.max_in_flight) {
            spawn(&mut running, key);
        }
        let mut batch = Vec::new();
        let mut stored = 0;
        loop {
            let joined = match running.try_join_next() {
                Some(joined) => joined,
                None => {
                    stored += self.write_batch(&mut batch).await?;
                    match running.join_next().await {
                        Some(joined) => joined,
                        None => break,
                    }
                }
            };
            if let Some(key) = keys.next() {
                spawn(&mut running, key);
            }
            self.bar.inc(1);
            let (key, result) = match joined {
                Ok(done) => done,
                // A read that panicked is a bug: surface it as the panic it was.
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => continue,
            };
            match result {
                Ok((facts, pages)) => {
                    batch.push(self.request(key, facts, pages));
                    if batch.len() >= WRITE_BATCH {
                        stored += self.write_batch(&mut batch).await?;
                    }
                }
                // The repository or project went away after the structural listing; the next
                // repositories listing removes it with its permissions.
                Err(e) if e.kind == ErrorKind::NotFound => {
                    warn!(listing = %key, "gone since the structural listing; skipped")
                }
                Err(e) => self.fail(&key, &e),
            }
        }
        stored += self.write_batch(&mut batch).await?;
        Ok(stored)
    }

    /// Writes completed listings in one transaction; returns how many.
    async fn write_batch(&mut self, batch: &mut Vec<ReplaceListing>) -> Result<u64, StoreError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let requests = std::mem::take(batch);
        let keys: Vec<ListingKey> = requests.iter().map(|r| r.key.clone()).collect();
        for outcome in self.store.replace_listings(requests).await? {
            self.totals.add(&outcome);
        }
        let n = keys.len() as u64;
        self.fresh.extend(keys);
        Ok(n)
    }

    /// Compares the computed effective access of a few freshly read repositories with
    /// Bitbucket's own view.
    async fn cross_check(&mut self, sample: usize) -> Result<(u64, Vec<Finding>), SyncError> {
        let facts = self.store.workspace_facts(self.ws).await?;
        let mut checked = 0;
        let mut findings = Vec::new();
        // Only repositories whose every fact was read in this run: a listing that failed or
        // was deferred keeps older facts, and comparing those with Bitbucket's present state
        // would report a difference of age as an error of the model.
        let ws = self.ws;
        let fresh = |key: ListingKey| self.fresh.contains(&key);
        let workspace_fresh = fresh(ListingKey::WorkspaceMembers(ws.clone()))
            && fresh(ListingKey::Repositories(ws.clone()))
            && fresh(ListingKey::Groups(ws.clone()));
        if !workspace_fresh {
            return Ok((0, findings));
        }
        let group_members_fresh = facts.groups.iter().all(|g| {
            fresh(ListingKey::GroupMembers {
                workspace: ws.clone(),
                group: g.slug.clone(),
            })
        });
        if !group_members_fresh {
            return Ok((0, findings));
        }
        let repo_fresh = |r: &crate::domain::Repository| {
            let repo = RepoRef {
                workspace: ws.clone(),
                slug: r.slug.clone(),
            };
            let project_fresh = r.project.as_ref().is_none_or(|key| {
                let project = ProjectRef {
                    workspace: ws.clone(),
                    key: key.clone(),
                };
                fresh(ListingKey::ProjectUserPermissions(project.clone()))
                    && fresh(ListingKey::ProjectGroupPermissions(project))
            });
            project_fresh
                && fresh(ListingKey::RepositoryUserPermissions(repo.clone()))
                && fresh(ListingKey::RepositoryGroupPermissions(repo))
        };
        // Prefer private repositories with permissions: they exercise the most rules.
        let mut repos: Vec<&crate::domain::Repository> = facts
            .repositories
            .iter()
            .filter(|r| repo_fresh(r))
            .collect();
        repos.sort_by_key(|r| (!r.is_private, r.slug.clone()));
        for repo in repos.into_iter().take(sample) {
            if self.limit.left() < 2 {
                break;
            }
            let ours: BTreeMap<String, RepoLevel> =
                effective_access_for_repository(&facts, &repo.slug)
                    .into_iter()
                    // Bitbucket does not list the read a public repository gives everyone.
                    .filter_map(|e| {
                        let level = e
                            .sources
                            .iter()
                            .filter(|s| s.source != Source::PublicRepository)
                            .map(|s| s.level)
                            .max()?;
                        Some((e.account_id.to_string(), level))
                    })
                    .collect();
            let theirs = match self
                .client
                .permissions()
                .repository_effective(self.ws.as_str(), repo.slug.as_str(), None)
                .collect_all()
                .await
            {
                Ok(list) => list,
                Err(e) => {
                    warn!(repository = %repo.slug, error = %e, "cross-check skipped");
                    continue;
                }
            };
            checked += 1;
            let theirs: BTreeMap<String, RepoLevel> = theirs
                .into_iter()
                .filter_map(|p| {
                    let id = p.user.account_id.clone().or(p.user.uuid.clone())?;
                    Some((id, repo_level(p.permission)?))
                })
                .collect();
            let accounts: BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
            for id in accounts {
                let (a, b) = (ours.get(id), theirs.get(id));
                if a != b {
                    findings.push(Finding {
                        repository: format!("{}/{}", self.ws, repo.slug),
                        account_id: id.clone(),
                        computed: a.map(|l| l.to_string()),
                        bitbucket: b.map(|l| l.to_string()),
                    });
                }
            }
        }
        for f in &findings {
            warn!(repository = %f.repository, account = %f.account_id, computed = ?f.computed, bitbucket = ?f.bitbucket,
                "effective access disagrees with Bitbucket");
        }
        Ok((checked, findings))
    }
}

/// The two permission listings of a repository.
fn repo_listings(r: RepoRef) -> [ListingKey; 2] {
    [
        ListingKey::RepositoryUserPermissions(r.clone()),
        ListingKey::RepositoryGroupPermissions(r),
    ]
}

/// The two permission listings of a project.
fn project_listings(p: ProjectRef) -> [ListingKey; 2] {
    [
        ListingKey::ProjectUserPermissions(p.clone()),
        ListingKey::ProjectGroupPermissions(p),
    ]
}

/// The permission listings of the repository a drift event names, if it names one.
fn new_repo_listings(key: &FactKey) -> Option<[ListingKey; 2]> {
    match key {
        FactKey::Repository { repository } => Some(repo_listings(repository.clone())),
        _ => None,
    }
}

/// The permission listings of the project a drift event names, if it names one.
fn new_project_listings(key: &FactKey) -> Option<[ListingKey; 2]> {
    match key {
        FactKey::Project { project } => Some(project_listings(project.clone())),
        _ => None,
    }
}

/// A permission listing and the outcome of its read: its facts and pages, or the error.
type PermissionRead = (ListingKey, Result<(Vec<Fact>, u64), ApiError>);

/// Reads one permission listing completely: its facts and its pages.
async fn fetch_permissions(
    client: &BitbucketClient,
    key: &ListingKey,
) -> Result<(Vec<Fact>, u64), ApiError> {
    let (target, users) = match key {
        ListingKey::RepositoryUserPermissions(r) | ListingKey::RepositoryGroupPermissions(r) => (
            PermissionTarget::Repository {
                workspace: r.workspace.as_str(),
                repo_slug: r.slug.as_str(),
            },
            matches!(key, ListingKey::RepositoryUserPermissions(_)),
        ),
        ListingKey::ProjectUserPermissions(p) | ListingKey::ProjectGroupPermissions(p) => (
            PermissionTarget::Project {
                workspace: p.workspace.as_str(),
                project_key: p.key.as_str(),
            },
            matches!(key, ListingKey::ProjectUserPermissions(_)),
        ),
        other => {
            return Err(ApiError::local(
                ErrorKind::Config,
                "(sync)",
                format!("{other} is not a permission listing"),
            ))
        }
    };
    let on_repo = matches!(target, PermissionTarget::Repository { .. });
    // A level Bitbucket answers that the listing cannot hold (`none`, unknown) is no permission.
    let fact_for_user = |account: Account, level: PermissionLevel| {
        Some(if on_repo {
            Fact::RepositoryUserPermission {
                account,
                level: repo_level(level)?,
            }
        } else {
            Fact::ProjectUserPermission {
                account,
                level: project_level(level)?,
            }
        })
    };
    let fact_for_group = |group: GroupSlug, level: PermissionLevel| {
        Some(if on_repo {
            Fact::RepositoryGroupPermission {
                group,
                level: repo_level(level)?,
            }
        } else {
            Fact::ProjectGroupPermission {
                group,
                level: project_level(level)?,
            }
        })
    };
    let perms = client.permissions();
    let (count, facts): (usize, Vec<Fact>) = if users {
        let list = perms.list_users(target).collect_all().await?;
        let facts = list
            .iter()
            .filter_map(|p| fact_for_user(account(&p.user)?, p.permission))
            .collect();
        (list.len(), facts)
    } else {
        let list = perms.list_groups(target).collect_all().await?;
        let facts = list
            .iter()
            .filter_map(|p| {
                fact_for_group(GroupSlug::parse(p.group.slug.clone()).ok()?, p.permission)
            })
            .collect();
        (list.len(), facts)
    };
    Ok((facts, pages_for(count as u64, PAGE_SIZE)))
}

/// The domain account of an API account. Accounts without an account id (rare app users) are
/// keyed by their UUID, which Bitbucket also accepts in paths.
fn account(a: &ApiAccount) -> Option<Account> {
    let id = a.account_id.clone().or_else(|| a.uuid.clone())?;
    Some(Account {
        account_id: AccountId::parse(id).ok()?,
        uuid: a.uuid.clone(),
        display_name: a.display_name.clone().unwrap_or_default(),
        nickname: a.nickname.clone(),
    })
}

fn role(r: Option<ApiRole>) -> WorkspaceRole {
    match r {
        Some(ApiRole::Owner) => WorkspaceRole::Owner,
        Some(ApiRole::CreateProject) => WorkspaceRole::CreateProject,
        Some(ApiRole::Collaborator) => WorkspaceRole::Collaborator,
        _ => WorkspaceRole::Member,
    }
}

fn repo_level(l: PermissionLevel) -> Option<RepoLevel> {
    match l {
        PermissionLevel::Read => Some(RepoLevel::Read),
        // create-repo is a project level; on a repository it would mean write.
        PermissionLevel::Write | PermissionLevel::CreateRepo => Some(RepoLevel::Write),
        PermissionLevel::Admin => Some(RepoLevel::Admin),
        PermissionLevel::None | PermissionLevel::Unknown => None,
    }
}

fn project_level(l: PermissionLevel) -> Option<ProjectLevel> {
    match l {
        PermissionLevel::Read => Some(ProjectLevel::Read),
        PermissionLevel::Write => Some(ProjectLevel::Write),
        PermissionLevel::CreateRepo => Some(ProjectLevel::CreateRepo),
        PermissionLevel::Admin => Some(ProjectLevel::Admin),
        PermissionLevel::None | PermissionLevel::Unknown => None,
    }
}

async fn entity_counts(
    store: &dyn Store,
    ws: &WorkspaceSlug,
) -> Result<BTreeMap<String, u64>, SyncError> {
    let facts = store.workspace_facts(ws).await?;
    let mut out = BTreeMap::new();
    out.insert("members".into(), facts.members.len() as u64);
    out.insert("repositories".into(), facts.repositories.len() as u64);
    out.insert("projects".into(), store.projects(ws).await?.len() as u64);
    out.insert("groups".into(), store.groups(ws).await?.len() as u64);
    out.insert(
        "permissions".into(),
        (facts.project_permissions.len() + facts.repository_permissions.len()) as u64,
    );
    Ok(out)
}

/// The read time of the oldest listing, and how many were never read.
async fn staleness(
    store: &dyn Store,
    workspaces: &[WorkspaceSlug],
) -> Result<(Option<DateTime<Utc>>, u64), SyncError> {
    let mut oldest: Option<DateTime<Utc>> = None;
    let mut never = 0;
    for ws in workspaces {
        for s in store.listings_by_age(ws).await? {
            match s.read_at {
                None => never += 1,
                Some(t) => oldest = Some(oldest.map_or(t, |o| o.min(t))),
            }
        }
    }
    Ok((oldest, never))
}

/// An age in seconds as people read it: `45s`, `12m`, `5h`, `3d`.
pub fn format_age(seconds: i64) -> String {
    let s = seconds.max(0);
    if s < 120 {
        format!("{s}s")
    } else if s < 7200 {
        format!("{}m", s / 60)
    } else if s < 172_800 {
        format!("{}h", s / 3600)
    } else {
        format!("{}d", s / 86_400)
    }
}
