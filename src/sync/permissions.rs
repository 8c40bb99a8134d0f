//! The permission listings: explicit user and group permissions of every project and
//! repository (`permissions-config`), two listings each, chosen by [`super::plan`] when the
//! budget cannot pay for all of them, read several at a time and stored in batches. The group
//! listings of repositories the group-privileges sweep ([`super::sweep`]) read are not
//! candidates: the sweep's listings are written by the same writer, beside these reads.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use tokio::task::JoinSet;
use tracing::warn;

use super::plan::{pages_for, Candidate, Priority};
use super::workspace::{WorkspaceRun, Written};
use super::{SyncError, PAGE_SIZE};
use crate::bitbucket::{ApiError, BitbucketClient, ErrorKind, PermissionLevel, PermissionTarget};
use crate::domain::{Account, FactKey, GrantTarget, GroupSlug, ProjectRef, RepoRef};
use crate::store::{Fact, ListingKey, ReplaceListing, Store, StoreError};

/// Most listings read now, and most of the sweep's listings, written in one transaction.
const WRITE_BATCH: usize = 64;

/// The two permission listings of a repository.
pub(super) fn repo_listings(r: RepoRef) -> [ListingKey; 2] {
    [
        ListingKey::RepositoryUserPermissions(r.clone()),
        ListingKey::RepositoryGroupPermissions(r),
    ]
}

/// The two permission listings of a project.
pub(super) fn project_listings(p: ProjectRef) -> [ListingKey; 2] {
    [
        ListingKey::ProjectUserPermissions(p.clone()),
        ListingKey::ProjectGroupPermissions(p),
    ]
}

/// The permission listings of a repository a drift event names as new.
pub(super) fn new_repo_listings(key: &FactKey) -> Option<[ListingKey; 2]> {
    match key {
        FactKey::Repository { repository } => Some(repo_listings(repository.clone())),
        _ => None,
    }
}

/// The permission listings of a project a drift event names as new.
pub(super) fn new_project_listings(key: &FactKey) -> Option<[ListingKey; 2]> {
    match key {
        FactKey::Project { project } => Some(project_listings(project.clone())),
        _ => None,
    }
}

/// Repositories and projects with an active grant, as listing keys to refresh first.
pub(super) async fn active_grant_targets(
    store: &dyn Store,
) -> Result<HashSet<ListingKey>, SyncError> {
    let mut out = HashSet::new();
    for grant in store.active_grants().await? {
        match grant.target {
            GrantTarget::Repository { repository } => out.extend(repo_listings(repository)),
            GrantTarget::Project { project } => out.extend(project_listings(project)),
            // Memberships are read with the groups, not in the permission listings.
            GrantTarget::GroupMembership { .. } => {}
        }
    }
    Ok(out)
}

fn is_permission_listing(key: &ListingKey) -> bool {
    matches!(
        key,
        ListingKey::ProjectUserPermissions(_)
            | ListingKey::ProjectGroupPermissions(_)
            | ListingKey::RepositoryUserPermissions(_)
            | ListingKey::RepositoryGroupPermissions(_)
    )
}

impl WorkspaceRun<'_> {
    /// The permission listings with their cost and priority, and the cost of the listings a
    /// resumed run already completed (they count towards the minimum).
    pub(super) async fn candidates(
        &mut self,
        active: &HashSet<ListingKey>,
    ) -> Result<(Vec<Candidate<ListingKey>>, u64), SyncError> {
        let mut out = Vec::new();
        let mut already = 0;
        for status in self.store.listings_by_age(self.ws).await? {
            if !is_permission_listing(&status.key) {
                continue;
            }
            let cost = status.cost_requests.unwrap_or(1).max(1);
            // Read by the group-privileges sweep (in this run, or stored by the interrupted run
            // this one resumes): its one request counts for all of them.
            if self.swept && matches!(status.key, ListingKey::RepositoryGroupPermissions(_)) {
                continue;
            }
            if self.done.contains(&status.key) {
                already += cost;
                continue;
            }
            // Stored by this run already.
            if self.fresh.contains(&status.key) {
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
    /// Reads run as tasks in the planner's order, never more than `max_in_flight` at once, and
    /// they go on while the store writes: a completed listing joins the next batch while the
    /// previous one is being committed, so reads never wait for a commit (on PostgreSQL a commit
    /// took as long as several reads). A batch is written as soon as the previous write is done,
    /// whatever its size (up to [`WRITE_BATCH`]), so a slow, paced run still stores each listing
    /// as soon as it is read, and an interrupted run loses at most the batches not yet committed.
    /// When a full batch waits for the write before it, no further read starts: what the run
    /// holds in memory stays bounded by two batches and the reads in flight (and the sweep's
    /// listings, [`WorkspaceRun::pending`], which each batch also takes from).
    pub(super) async fn read_permissions(
        &mut self,
        planned: Vec<Candidate<ListingKey>>,
    ) -> Result<u64, SyncError> {
        self.bar.set_length(planned.len() as u64);
        let mut keys = planned.into_iter().map(|c| c.key).peekable();
        // Dropping the set (when the run is cancelled) aborts the reads still running.
        let mut running: JoinSet<PermissionRead> = JoinSet::new();
        let client = self.client.clone();
        let spawn = |running: &mut JoinSet<_>, key: ListingKey| {
            let client = client.clone();
            running.spawn(async move {
                let result = fetch_permissions(&client, &key).await;
                (key, result)
            });
        };
        let store = self.store;
        // The batch being committed; dropping it (a cancelled run) rolls it back.
        let mut writing: Option<BatchWrite<'_>> = None;
        // Listings read before (the sweep's), written beside the reads, a batch at a time.
        let mut ready = std::mem::take(&mut self.pending);
        let mut batch = Vec::new();
        let mut stored = 0;
        loop {
            // Start reads up to the limit, unless a full batch is already waiting for the store.
            while running.len() < self.max_in_flight && batch.len() < WRITE_BATCH {
                match keys.next() {
                    Some(key) => spawn(&mut running, key),
                    None => break,
                }
            }
            if writing.is_none() && !(batch.is_empty() && ready.is_empty()) {
                let mut next = std::mem::take(&mut batch);
                next.extend(ready.drain(ready.len().saturating_sub(WRITE_BATCH)..));
                writing = Some(write_batch(store, next));
            }
            let Some(write) = writing.as_mut() else {
                // Nothing to write: wait for a read, or finish.
                match running.join_next().await {
                    Some(joined) => self.take_read(joined, &mut batch),
                    None if keys.peek().is_none() => break,
                    None => {}
                }
                continue;
            };
            let event = tokio::select! {
                // Reads first: a write waits a moment longer, a read frees a place in flight.
                biased;
                Some(joined) = running.join_next(), if !running.is_empty() => Event::Read(joined),
                done = write => Event::Wrote(done),
            };
            match event {
                Event::Read(joined) => self.take_read(joined, &mut batch),
                Event::Wrote(done) => {
                    writing = None;
                    stored += self.written(done?);
                }
            }
        }
        Ok(stored)
    }

    /// Takes one finished read: a complete listing joins the batch, a failure is recorded.
    fn take_read(
        &mut self,
        joined: Result<PermissionRead, tokio::task::JoinError>,
        batch: &mut Vec<ReplaceListing>,
    ) {
        self.bar.inc(1);
        let (key, result) = match joined {
            Ok(done) => done,
            // A read that panicked is a bug: surface it as the panic it was.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => return,
        };
        match result {
            Ok((facts, pages)) => batch.push(self.request(key, facts, pages)),
            // The repository or project went away after the structural listing; the next
            // repositories listing removes it with its permissions.
            Err(e) if e.kind == ErrorKind::NotFound => {
                warn!(listing = %key, "gone since the structural listing; skipped")
            }
            Err(e) => self.fail(&key, &e),
        }
    }
}

/// What the read loop waited for: a read that finished, or the write of a batch.
enum Event {
    Read(Result<PermissionRead, tokio::task::JoinError>),
    Wrote(Result<Written, StoreError>),
}

/// A batch of listings being written in one transaction: their keys and outcomes when done.
type BatchWrite<'a> = Pin<Box<dyn Future<Output = Result<Written, StoreError>> + Send + 'a>>;

/// Writes `batch` in one transaction, as a future the read loop polls beside the reads.
fn write_batch(store: &dyn Store, batch: Vec<ReplaceListing>) -> BatchWrite<'_> {
    Box::pin(async move {
        let keys: Vec<ListingKey> = batch.iter().map(|r| r.key.clone()).collect();
        let outcomes = store.replace_listings(batch).await?;
        Ok(Written { keys, outcomes })
    })
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
    // A level the listing cannot hold (`none`, unknown) is no permission.
    let fact_for_user = |account: Account, level: PermissionLevel| {
        Some(if on_repo {
            Fact::RepositoryUserPermission {
                account,
                level: level.repo_level()?,
            }
        } else {
            Fact::ProjectUserPermission {
                account,
                level: level.project_level()?,
            }
        })
    };
    let fact_for_group = |group: GroupSlug, level: PermissionLevel| {
        Some(if on_repo {
            Fact::RepositoryGroupPermission {
                group,
                level: level.repo_level()?,
            }
        } else {
            Fact::ProjectGroupPermission {
                group,
                level: level.project_level()?,
            }
        })
    };
    let perms = client.permissions();
    let (count, facts): (usize, Vec<Fact>) = if users {
        let list = perms.list_users(target).collect_all().await?;
        let facts = list
            .iter()
            .filter_map(|p| fact_for_user(p.user.to_domain()?, p.permission))
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
