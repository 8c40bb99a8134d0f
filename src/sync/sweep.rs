//! The group-privileges sweep: one `GET /1.0/group-privileges/{workspace}` request in place of
//! a `permissions-config/groups` listing per repository (bitbucket-api.md section 12).
//!
//! The sweep follows the complete-listing rule. Only an answer read completely and understood
//! entry by entry replaces anything: then it replaces the group permissions of every repository
//! the store knows (one complete listing per repository, marked fresh; a repository absent from
//! the sweep has no group permissions). Those listings are written by the permission listings'
//! writer ([`super::permissions`]) while the other listings are read. A failed request, a body of an unexpected shape or an
//! entry the connector does not understand replaces nothing, and the run falls back to the
//! per-repository listings, saying why in its summary. So does an empty answer while group
//! permissions are stored: removing them all is confirmed repository by repository.

use std::collections::{BTreeMap, HashMap};

use chrono::Duration;
use serde::Serialize;
use tracing::{info, warn};

use super::age::format_age;
use super::plan::pages_for;
use super::report::WorkspaceSummary;
use super::workspace::WorkspaceRun;
use super::{SyncError, PAGE_SIZE};
use crate::bitbucket::{ApiError, ErrorKind, GroupPrivilegeV1};
use crate::domain::{GroupSlug, Principal, RepoLevel, RepoSlug};
use crate::store::{Fact, ListingKey, SweepRefusal};

/// How long a workspace whose group-privileges sweep Bitbucket refused (403, 404, 410 or an
/// answer of an unexpected shape) reads its group permissions per repository before the sweep
/// is asked again. A refusal is a decision of Bitbucket's or of the workspace's settings, not a
/// passing fault: asking on every run would spend a request on a known answer.
pub const SWEEP_REFUSAL_KEPT: Duration = Duration::hours(24);

/// Whether an error of the sweep request is a refusal worth remembering (not a passing fault).
fn is_refusal(e: &ApiError) -> bool {
    matches!(
        e.kind,
        ErrorKind::Forbidden | ErrorKind::NotFound | ErrorKind::Gone | ErrorKind::Decode
    )
}

/// Where a run read the group permissions of a workspace's repositories.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupPermissionsSource {
    /// One group-privileges request for the whole workspace.
    Sweep,
    /// One `permissions-config/groups` listing per repository.
    #[default]
    PerRepository,
}

/// What the summary says when a refusal on record kept the run from asking.
fn skipped_note(refusal: &SweepRefusal, age_seconds: i64) -> String {
    format!(
        "the group-privileges listing was not asked: Bitbucket refused it {} ago ({}); it is asked again {} after the refusal; group permissions were read per repository",
        format_age(age_seconds),
        refusal.reason,
        format_age(SWEEP_REFUSAL_KEPT.num_seconds()),
    )
}

/// Why a sweep was not used: the words the summary shows.
fn fallback_reason(e: &ApiError) -> String {
    let what = match e.kind {
        ErrorKind::Forbidden | ErrorKind::Unauthorized => "Bitbucket refused it",
        ErrorKind::NotFound => "Bitbucket does not offer it for this workspace",
        ErrorKind::Gone => "Bitbucket has retired it",
        ErrorKind::Decode => "its answer has an unexpected shape",
        _ => "it failed",
    };
    format!("the group-privileges listing was not used ({what}: {e}); group permissions were read per repository")
}

/// The sweep's entries by repository, each with its groups and levels; an entry the connector
/// does not understand rejects the whole answer.
fn by_repository(
    entries: &[GroupPrivilegeV1],
    ws: &crate::domain::WorkspaceSlug,
) -> Result<HashMap<RepoSlug, BTreeMap<GroupSlug, Option<RepoLevel>>>, String> {
    let mut out: HashMap<RepoSlug, BTreeMap<GroupSlug, Option<RepoLevel>>> = HashMap::new();
    for entry in entries {
        let grant = entry.to_domain(ws)?;
        // Two entries for one group on one repository keep the higher level, as Bitbucket's
        // own effective permissions would.
        let level = out
            .entry(grant.repository)
            .or_default()
            .entry(grant.group)
            .or_insert(grant.level);
        *level = (*level).max(grant.level);
    }
    Ok(out)
}

impl WorkspaceRun<'_> {
    /// Reads the group permissions of every repository with one sweep request when Bitbucket
    /// answers it, and stores them; records in `summary` where they came from. Returns the
    /// requests the sweep counts towards the run's minimum (1 when it replaced the
    /// per-repository listings, else 0: those listings are then planned as usual).
    pub(super) async fn sweep_group_permissions(
        &mut self,
        summary: &mut WorkspaceSummary,
    ) -> Result<u64, SyncError> {
        let keys: Vec<ListingKey> = self
            .store
            .listings_by_age(self.ws)
            .await?
            .into_iter()
            .map(|s| s.key)
            .filter(|k| {
                matches!(k, ListingKey::RepositoryGroupPermissions(_)) && !self.done.contains(k)
            })
            .collect();
        // A refusal on record and recent enough: Bitbucket gave its answer; do not ask again.
        let now = self.clock.now();
        let refusal = self.store.sweep_refusal(self.ws).await?;
        if let Some(refusal) = &refusal {
            let age = now - refusal.refused_at;
            if age < SWEEP_REFUSAL_KEPT {
                info!(workspace = %self.ws, reason = %refusal.reason, "group-privileges listing refused recently; not asked");
                summary.group_permissions_note = Some(skipped_note(refusal, age.num_seconds()));
                return Ok(0);
            }
        }
        if keys.is_empty() {
            // Nothing to read: no repository, or the interrupted run this one resumes read
            // them all. Its one request still stands for them in the run's minimum.
            summary.group_permissions_source = GroupPermissionsSource::Sweep;
            self.swept = true;
            let swept = self
                .done
                .iter()
                .any(|k| matches!(k, ListingKey::RepositoryGroupPermissions(r) if r.workspace == *self.ws));
            return Ok(u64::from(swept));
        }
        if self.limit.left() == 0 {
            summary.group_permissions_note =
                Some("no request was left for the group-privileges listing".to_string());
            return Ok(0);
        }
        let entries = match self.client.group_privileges(self.ws.as_str()).await {
            Ok(entries) => entries,
            Err(e) => {
                let reason = fallback_reason(&e);
                warn!(workspace = %self.ws, error = %e, "group-privileges listing not used; reading group permissions per repository");
                if is_refusal(&e) {
                    self.remember_refusal(e.to_string()).await?;
                }
                summary.group_permissions_note = Some(reason);
                return Ok(0);
            }
        };
        if entries.is_empty() {
            // An empty answer would remove every stored group permission at once. Bitbucket
            // may answer an empty array where it means "not for you", so such a removal is
            // confirmed by the per-repository listings instead of taken from the sweep.
            let stored = self
                .store
                .repository_permissions(self.ws)
                .await?
                .iter()
                .filter(|p| matches!(p.principal, Principal::Group { .. }))
                .count();
            if stored > 0 {
                warn!(workspace = %self.ws, stored, "group-privileges listing empty while group permissions are stored; reading them per repository");
                summary.group_permissions_note = Some(format!(
                    "the group-privileges listing came back empty while {stored} repository group permissions are stored; group permissions were read per repository to confirm the removal"
                ));
                return Ok(0);
            }
        }
        let mut grants = match by_repository(&entries, self.ws) {
            Ok(grants) => grants,
            Err(problem) => {
                warn!(workspace = %self.ws, problem = %problem, "group-privileges listing not understood; reading group permissions per repository");
                self.remember_refusal(format!("an unexpected answer: {problem}"))
                    .await?;
                summary.group_permissions_note = Some(format!(
                    "the group-privileges listing was not used (its answer has an unexpected shape: {problem}); group permissions were read per repository"
                ));
                return Ok(0);
            }
        };
        let mut requests = Vec::with_capacity(keys.len());
        for key in keys {
            let ListingKey::RepositoryGroupPermissions(repo) = &key else {
                continue;
            };
            let groups = grants.remove(&repo.slug).unwrap_or_default();
            // The cost the per-repository listing would have, should a later run need it.
            let pages = pages_for(groups.len() as u64, PAGE_SIZE);
            let facts = groups
                .into_iter()
                .filter_map(|(group, level)| {
                    Some(Fact::RepositoryGroupPermission {
                        group,
                        level: level?,
                    })
                })
                .collect();
            requests.push(self.request(key, facts, pages));
        }
        if !grants.is_empty() {
            // Repositories created after the repositories listing: the next run lists them and
            // reads their group permissions then.
            info!(workspace = %self.ws, repositories = grants.len(), "group privileges of repositories not yet listed; left for the next run");
        }
        if refusal.is_some() {
            // Bitbucket answers again: the old refusal no longer stands.
            self.store.set_sweep_refusal(self.ws, None).await?;
        }
        // Written by the permission reads' writer, beside the reads of the other listings:
        // storing a listing per repository is the slow part, the request was quick.
        self.swept = true;
        self.pending = requests;
        summary.group_permissions_source = GroupPermissionsSource::Sweep;
        Ok(1)
    }

    /// Keeps Bitbucket's refusal of the sweep, so that the next runs read per repository
    /// without asking until [`SWEEP_REFUSAL_KEPT`] has passed.
    async fn remember_refusal(&self, reason: String) -> Result<(), SyncError> {
        let refusal = SweepRefusal {
            refused_at: self.clock.now(),
            reason,
        };
        self.store
            .set_sweep_refusal(self.ws, Some(&refusal))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::WorkspaceSlug;

    fn entry(repo: &str, group: &str, level: &str) -> GroupPrivilegeV1 {
        serde_json::from_value(serde_json::json!({
            "repo": repo, "privilege": level, "group": {"slug": group}
        }))
        .expect("decodes")
    }

    #[test]
    fn entries_group_by_repository_and_keep_the_higher_level() {
        let ws = WorkspaceSlug::parse("acme".to_string()).expect("slug");
        let got = by_repository(
            &[
                entry("acme/api", "devs", "read"),
                entry("acme/api", "devs", "admin"),
                entry("acme/web", "ops", "write"),
            ],
            &ws,
        )
        .expect("understood");
        let api = RepoSlug::parse("api".to_string()).expect("slug");
        let devs = GroupSlug::parse("devs".to_string()).expect("slug");
        assert_eq!(got.len(), 2);
        assert_eq!(got[&api][&devs], Some(RepoLevel::Admin));
    }

    #[test]
    fn one_foreign_entry_rejects_the_whole_answer() {
        let ws = WorkspaceSlug::parse("acme".to_string()).expect("slug");
        let err = by_repository(
            &[
                entry("acme/api", "devs", "read"),
                entry("evil/api", "devs", "admin"),
            ],
            &ws,
        )
        .expect_err("rejected");
        assert!(err.contains("evil/api"), "{err}");
    }
}
