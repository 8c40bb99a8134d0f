//! The cross-check: a small sample of repositories compared against Bitbucket's own effective
//! permissions (`/workspaces/{ws}/permissions/repositories/{repo}`), when the budget allows.
//!
//! Only repositories whose every fact (members, groups and their members, the repository's and
//! its project's permissions) was read by this run are compared, so stale facts kept by a failed
//! or deferred listing are never reported as a disagreement.

use std::collections::{BTreeMap, BTreeSet};

use tracing::warn;

use super::report::Finding;
use super::workspace::WorkspaceRun;
use super::SyncError;
use crate::domain::{
    effective_access_for_repository, ProjectRef, RepoLevel, RepoRef, Repository, Source,
};
use crate::store::ListingKey;

impl WorkspaceRun<'_> {
    /// Whether every listing behind a repository's effective access is fresh.
    fn repository_is_fresh(&self, r: &Repository) -> bool {
        let fresh = |key: ListingKey| self.fresh.contains(&key);
        let ws = self.ws;
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
    }

    /// Compares the computed effective access of a few freshly read repositories with
    /// Bitbucket's own view.
    pub(super) async fn cross_check(
        &mut self,
        sample: usize,
    ) -> Result<(u64, Vec<Finding>), SyncError> {
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
            && fresh(ListingKey::Groups(ws.clone()))
            && facts.groups.iter().all(|g| {
                fresh(ListingKey::GroupMembers {
                    workspace: ws.clone(),
                    group: g.slug.clone(),
                })
            });
        if !workspace_fresh {
            return Ok((0, findings));
        }
        // Prefer private repositories with permissions: they exercise the most rules.
        let mut repos: Vec<&Repository> = facts
            .repositories
            .iter()
            .filter(|r| self.repository_is_fresh(r))
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
                    let account = p.user.to_domain()?;
                    Some((account.account_id.to_string(), p.permission.repo_level()?))
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
