//! The five structural listings of a workspace: the workspace itself, its members and roles,
//! its projects, its repositories, and its groups with their members (1.0 API; when Bitbucket
//! refuses it the run says so and carries on).
//!
//! A resumed run does not read again what the interrupted run already stored: those listings
//! keep the facts and the freshness that run gave them. The groups listing and its members are
//! stored in one transaction, so an interruption cannot leave the groups done and their members
//! unwritten.

use std::collections::HashSet;

use tracing::warn;

use super::permissions::{new_project_listings, new_repo_listings};
use super::plan::pages_for;
use super::report::{Failure, WorkspaceSummary};
use super::workspace::WorkspaceRun;
use super::{SyncError, PAGE_SIZE};
use crate::bitbucket::convert::workspace_role;
use crate::bitbucket::{ApiError, ErrorKind, GroupV1, Project, Repository, WorkspaceMembership};
use crate::domain::GroupSlug;
use crate::store::{Fact, ListingKey, ReplaceOutcome};

impl WorkspaceRun<'_> {
    /// Reads the five structural listings.
    pub(super) async fn structural(&mut self) -> Result<WorkspaceSummary, SyncError> {
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
                    let w = w.to_domain(self.ws);
                    let fact = Fact::Workspace {
                        uuid: w.uuid,
                        name: w.name,
                        is_private: w.is_private,
                    };
                    self.replace(key, vec![fact], 1).await?;
                    summary.listings_read += 1;
                }
                Err(e) => self.fail(&key, &e),
            }
        }

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

        let members = self
            .store_listing(members_key, members, |m: &WorkspaceMembership| {
                Some(Fact::WorkspaceMember {
                    account: m.user.to_domain()?,
                    role: workspace_role(m.permission.as_ref()),
                })
            })
            .await?;
        let projects = self
            .store_listing(projects_key, projects, |p: &Project| {
                project_fact(p.to_domain(self.ws)?)
            })
            .await?;
        if let Some(outcome) = &projects {
            self.note_new(outcome, new_project_listings);
        }
        let repos = self
            .store_listing(repos_key, repos, |r: &Repository| {
                repo_fact(r.to_domain(self.ws)?)
            })
            .await?;
        if let Some(outcome) = &repos {
            self.note_new(outcome, new_repo_listings);
        }
        summary.listings_read += [members.is_some(), projects.is_some(), repos.is_some()]
            .into_iter()
            .filter(|read| *read)
            .count() as u64;

        // The 1.0 groups listing carries every group's members: one request for all of them.
        match groups {
            // Read before the interruption of the run this one resumes.
            None => summary.groups_available = true,
            Some(Ok(list)) => {
                summary.groups_available = true;
                self.store_groups(groups_key, list).await?;
                summary.listings_read += 1;
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
                    listing: groups_key.to_string(),
                    error: format!(
                        "groups unavailable (1.0 API): {e}. Group memberships keep their stored \
                         state, so access through groups may be out of date. To fix: check that \
                         the account is a member of {ws} and its token has the \
                         read:workspace:bitbucket scope (`doctor` checks both); if Atlassian has \
                         retired the 1.0 groups API for {ws}, group memberships cannot be read \
                         through Bitbucket any more"
                    ),
                });
            }
            Some(Err(e)) => self.fail(&groups_key, &e),
        }
        Ok(summary)
    }

    /// Stores a paginated structural listing read completely, or records its failure; returns
    /// the store's outcome when it was stored.
    pub(super) async fn store_listing<T>(
        &mut self,
        key: ListingKey,
        read: Option<Result<Vec<T>, ApiError>>,
        to_fact: impl Fn(&T) -> Option<Fact>,
    ) -> Result<Option<ReplaceOutcome>, SyncError> {
        match read {
            Some(Ok(list)) => {
                let pages = pages_for(list.len() as u64, PAGE_SIZE);
                let facts = list.iter().filter_map(to_fact).collect();
                Ok(Some(self.replace(key, facts, pages).await?))
            }
            Some(Err(e)) => {
                self.fail(&key, &e);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Stores the groups and their members in one transaction.
    pub(super) async fn store_groups(
        &mut self,
        key: ListingKey,
        list: Vec<GroupV1>,
    ) -> Result<(), SyncError> {
        let mut facts = Vec::new();
        let mut members = Vec::new();
        for g in &list {
            let Some(group) = g.to_domain(self.ws) else {
                continue;
            };
            facts.push(Fact::Group {
                slug: group.slug.clone(),
                name: group.name,
            });
            let accounts: Vec<Fact> = g
                .domain_members()
                .into_iter()
                .map(|account| Fact::GroupMember { account })
                .collect();
            members.push((group.slug, accounts));
        }
        // Groups created since the groups were first read: their members are drift.
        let known: Option<HashSet<GroupSlug>> = match self.store.listing_freshness(&key).await? {
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
        self.replace_all(requests).await?;
        Ok(())
    }
}

/// A repository as the fact its listing stores.
pub(super) fn repo_fact(r: crate::domain::Repository) -> Option<Fact> {
    Some(Fact::Repository {
        slug: r.slug,
        uuid: r.uuid,
        name: r.name,
        project: r.project,
        is_private: r.is_private,
    })
}

/// A project as the fact its listing stores.
pub(super) fn project_fact(p: crate::domain::Project) -> Option<Fact> {
    Some(Fact::Project {
        key: p.key,
        uuid: p.uuid,
        name: p.name,
        is_private: p.is_private,
    })
}
