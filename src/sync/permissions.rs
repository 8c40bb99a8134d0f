//! The permission listings: explicit user and group permissions of every project and
//! repository (`permissions-config`), two listings each, chosen by [`super::plan`] when the
//! budget cannot pay for all of them, read several at a time and stored in batches. The group
//! listings of repositories the group-privileges sweep ([`super::sweep`]) already stored in this
//! run are not candidates.

use std::collections::HashSet;

use tokio::task::JoinSet;
use tracing::warn;

use super::plan::{pages_for, Candidate, Priority};
use super::workspace::WorkspaceRun;
use super::{SyncError, PAGE_SIZE};
use crate::bitbucket::{ApiError, BitbucketClient, ErrorKind, PermissionLevel, PermissionTarget};
use crate::domain::{Account, FactKey, GrantTarget, GroupSlug, ProjectRef, RepoRef};
use crate::store::{Fact, ListingKey, ReplaceListing, Store, StoreError};

/// Most completed permission listings written in one transaction.
pub(super) const WRITE_BATCH: usize = 64;

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
            if self.done.contains(&status.key) {
                already += cost;
                continue;
            }
            // Stored by this run already (the group-privileges sweep, whose one request counts
            // for all of them).
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
    /// Reads run as tasks, so they go on while the store writes. Listings read completely are
    /// written in batches of whatever is ready (up to [`WRITE_BATCH`]) in one transaction each:
    /// a commit per listing dominated large syncs (the sync benchmark measured 3.5 ms against
    /// 0.75 ms per listing on PostgreSQL, 0.8 ms against 0.12 ms on SQLite). A listing is never
    /// held back waiting for more: when no other read has finished, the batch is written at
    /// once, so a slow, paced run still stores each listing as soon as it is read, and an
    /// interrupted run loses at most the batch being written.
    pub(super) async fn read_permissions(
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
        self.replace_all(std::mem::take(batch)).await
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
