//! The cross-check: a small sample of repositories compared against Bitbucket's own effective
//! permissions (`/workspaces/{ws}/permissions/repositories/{repo}`), when the budget allows.
//!
//! Only repositories whose every fact (members, groups and their members, the repository's and
//! its project's permissions) was read by this run are compared, so stale facts kept by a failed
//! or deferred listing are never reported as a disagreement.
//!
//! The sample rotates: run `n` starts at position `(n - 1) × sample` of the repositories sorted
//! by slug and walks on from there, so consecutive runs check consecutive slices and every
//! repository is checked within `⌈repositories / sample⌉` runs (sooner when the sample is the
//! whole workspace). The run number is the store's, so the rotation needs no state of its own.

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
        let mut repos: Vec<&Repository> = facts.repositories.iter().collect();
        repos.sort_by(|a, b| a.slug.cmp(&b.slug));
        let start = rotation_start(self.run.0, sample, repos.len());
        let (before, after) = repos.split_at(start);
        let sampled: Vec<&Repository> = after
            .iter()
            .chain(before)
            .copied()
            .filter(|r| self.repository_is_fresh(r))
            .take(sample)
            .collect();
        for repo in sampled {
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

/// Where run `run` starts its sample of `sample` among `repositories` sorted repositories.
fn rotation_start(run: i64, sample: usize, repositories: usize) -> usize {
    if repositories == 0 {
        return 0;
    }
    let step = u64::try_from(run.max(1) - 1).unwrap_or(0) % repositories as u64;
    ((step * (sample as u64 % repositories as u64)) % repositories as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::rotation_start;
    use std::collections::BTreeSet;

    #[test]
    fn consecutive_runs_check_every_repository() {
        for (repositories, sample) in [(10usize, 3usize), (7, 2), (5, 5), (4, 9), (100, 1)] {
            let runs = repositories.div_ceil(sample) as i64;
            let mut seen = BTreeSet::new();
            for run in 1..=runs {
                let start = rotation_start(run, sample, repositories);
                seen.extend((0..sample.min(repositories)).map(|i| (start + i) % repositories));
            }
            assert_eq!(
                seen.len(),
                repositories,
                "{repositories} repositories, sample {sample}: {seen:?}"
            );
        }
    }

    #[test]
    fn the_next_run_starts_where_the_last_one_stopped() {
        assert_eq!(rotation_start(1, 3, 10), 0);
        assert_eq!(rotation_start(2, 3, 10), 3);
        assert_eq!(rotation_start(4, 3, 10), 9);
        assert_eq!(rotation_start(5, 3, 10), 2);
        assert_eq!(rotation_start(7, 3, 0), 0);
    }
}
