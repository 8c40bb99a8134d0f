//! The sections that rest on the store's history: drift since the previous report, grants, and
//! the freshness of the facts (with its finding when listings are missing or failed).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::access::Completeness;
use crate::domain::{
    FactKey, Grant, GrantLevel, GrantState, GrantTarget, Principal, WorkspaceFacts, WorkspaceSlug,
};
use crate::store::{AuditEntry, SyncRun};

use super::model::{
    DriftActor, DriftRow, FailedListing, Finding, FindingKind, Freshness, GrantCategory, GrantRow,
    PolicyUsed, SyncRunRef,
};

/// The workspace a drift entry is about, from the typed key the store keeps in its details.
fn drift_workspace(entry: &AuditEntry) -> Option<WorkspaceSlug> {
    let key: FactKey = serde_json::from_value(entry.entry.details.get("key")?.clone()).ok()?;
    Some(match key {
        FactKey::Workspace { workspace }
        | FactKey::WorkspaceMember { workspace, .. }
        | FactKey::Group { workspace, .. }
        | FactKey::GroupMember { workspace, .. } => workspace,
        FactKey::Project { project }
        | FactKey::ProjectUserPermission { project, .. }
        | FactKey::ProjectGroupPermission { project, .. } => project.workspace,
        FactKey::Repository { repository }
        | FactKey::RepositoryUserPermission { repository, .. }
        | FactKey::RepositoryGroupPermission { repository, .. } => repository.workspace,
    })
}

/// Who made a drifted change, from the organization event the store kept with the entry.
fn drift_actor(entry: &AuditEntry) -> Option<DriftActor> {
    let a: crate::domain::Attribution =
        serde_json::from_value(entry.entry.details.get("attribution")?.clone()).ok()?;
    Some(DriftActor {
        account_id: a.actor_account_id,
        name: a.actor_name,
        api_token: a.api_token,
        event_id: a.event_id,
        event_time: a.event_time,
    })
}

/// The drift rows and findings of the audited workspaces.
pub(super) fn drift(
    entries: Vec<AuditEntry>,
    workspaces: &BTreeSet<WorkspaceSlug>,
) -> (Vec<DriftRow>, Vec<Finding>) {
    let mut rows = Vec::new();
    let mut findings = Vec::new();
    for e in entries {
        // An entry whose key cannot be read is kept: hiding drift is worse than showing it twice.
        if drift_workspace(&e).is_some_and(|ws| !workspaces.contains(&ws)) {
            continue;
        }
        let changed_by = drift_actor(&e);
        let by = changed_by
            .as_ref()
            .map(|a| format!(" (by {} {}, event {})", a.name, a.account_id, a.event_id))
            .unwrap_or_default();
        findings.push(Finding::new(
            FindingKind::Drift,
            vec![format!("audit_log:{}", e.id.0), e.entry.subject.clone()],
            format!(
                "{} changed in Bitbucket at {}, not by the connector{by}",
                e.entry.subject,
                e.entry.at.to_rfc3339()
            ),
        ));
        rows.push(DriftRow {
            audit_id: e.id.0,
            observed_at: e.entry.at,
            subject: e.entry.subject,
            before: e.entry.before,
            after: e.entry.after,
            changed_by,
        });
    }
    (rows, findings)
}

fn grant_row(category: GrantCategory, g: &Grant) -> GrantRow {
    GrantRow {
        category,
        id: g.id.0,
        state: g.state.to_string(),
        principal: g.principal.to_string(),
        resource_kind: g.target.kind().to_owned(),
        resource: resource_name(&g.target),
        level: g.level.to_string(),
        baseline: g.baseline.map(|b| b.to_string()),
        requested_by: g.requested_by.clone(),
        ticket: g.ticket.clone(),
        starts_at: g.starts_at,
        expires_at: g.expires_at,
        updated_at: g.updated_at,
    }
}

/// The target as people name it (`acme/api`, `acme/PAY`, `acme/developers`).
fn resource_name(target: &GrantTarget) -> String {
    match target {
        GrantTarget::Repository { repository } => repository.to_string(),
        GrantTarget::Project { project } => project.to_string(),
        GrantTarget::GroupMembership { workspace, group } => format!("{workspace}/{group}"),
    }
}

/// Whether what an ended grant gave is still in the stored facts: the principal's explicit level
/// on the target is at least the granted one and above the baseline, or (a membership) the user
/// is still in a group they were not in before.
fn still_present(grant: &Grant, facts: &BTreeMap<WorkspaceSlug, WorkspaceFacts>) -> bool {
    let Some(f) = facts.get(grant.target.workspace()) else {
        return false;
    };
    let above_baseline = |stored: Option<GrantLevel>| {
        stored.is_some_and(|s| s >= grant.level && Some(s) > grant.baseline)
    };
    match &grant.target {
        GrantTarget::Repository { repository } => above_baseline(
            f.repository_permissions
                .iter()
                .filter(|p| p.repository == repository.slug && p.principal == grant.principal)
                .map(|p| GrantLevel::from(p.level))
                .max(),
        ),
        GrantTarget::Project { project } => above_baseline(
            f.project_permissions
                .iter()
                .filter(|p| p.project == project.key && p.principal == grant.principal)
                .map(|p| GrantLevel::from(p.level))
                .max(),
        ),
        GrantTarget::GroupMembership { group, .. } => {
            let Principal::User { account_id } = &grant.principal else {
                return false;
            };
            grant.baseline.is_none()
                && f.groups
                    .iter()
                    .any(|g| &g.slug == group && g.members.contains(account_id))
        }
    }
}

fn grant_workspace(grant: &Grant) -> &WorkspaceSlug {
    grant.target.workspace()
}

fn subject(grant: &Grant) -> Vec<String> {
    let who = match &grant.principal {
        Principal::User { account_id } => account_id.to_string(),
        Principal::Group { slug } => format!("group {slug}"),
    };
    vec![
        format!("grant:{}", grant.id),
        who,
        resource_name(&grant.target),
    ]
}

/// The grants section and its findings.
pub(super) fn grants(
    all: &[Grant],
    previous_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    policy: &PolicyUsed,
    facts: &BTreeMap<WorkspaceSlug, WorkspaceFacts>,
) -> (Vec<GrantRow>, Vec<Finding>) {
    let grace = chrono::Duration::seconds(
        i64::try_from(policy.expired_grant_grace_seconds).unwrap_or(i64::MAX / 1000),
    );
    let max = chrono::Duration::seconds(
        i64::try_from(policy.max_grant_duration_seconds).unwrap_or(i64::MAX / 1000),
    );
    let mut rows = Vec::new();
    let mut findings = Vec::new();
    for g in all
        .iter()
        .filter(|g| facts.contains_key(grant_workspace(g)))
    {
        let ended = matches!(g.state, GrantState::Ended | GrantState::Revoked);
        match g.state {
            GrantState::Active => rows.push(grant_row(GrantCategory::Active, g)),
            GrantState::Failed => {
                rows.push(grant_row(GrantCategory::Failed, g));
                findings.push(Finding::new(
                    FindingKind::GrantFailed,
                    subject(g),
                    format!("grant {} failed: Bitbucket refused it", g.id),
                ));
            }
            GrantState::Conflict => {
                rows.push(grant_row(GrantCategory::Conflict, g));
                findings.push(Finding::new(
                    FindingKind::GrantConflict,
                    subject(g),
                    format!(
                        "grant {} is in conflict: someone else changed the level in Bitbucket",
                        g.id
                    ),
                ));
            }
            _ if ended && previous_at.is_none_or(|at| g.updated_at >= at) => {
                rows.push(grant_row(GrantCategory::EndedSincePrevious, g));
            }
            _ => {}
        }
        if ended && g.updated_at + grace <= now && still_present(g, facts) {
            rows.push(grant_row(GrantCategory::ExpiredPresent, g));
            findings.push(Finding::new(
                FindingKind::ExpiredGrantPresent,
                subject(g),
                format!(
                    "grant {} ended at {} but its level is still present in Bitbucket",
                    g.id,
                    g.updated_at.to_rfc3339()
                ),
            ));
        }
        let live = matches!(
            g.state,
            GrantState::Pending | GrantState::Active | GrantState::Satisfied
        );
        let too_long = match g.expires_at {
            Some(end) => end - g.starts_at > max,
            None => !policy.allow_standing_grants,
        };
        if live && too_long {
            let length = g.expires_at.map_or("standing (no end)".to_owned(), |end| {
                format!("{} hours", (end - g.starts_at).num_hours())
            });
            findings.push(Finding::new(
                FindingKind::GrantTooLong,
                subject(g),
                format!(
                    "grant {} is {length}; the grant policy allows {} hours{}",
                    g.id,
                    max.num_hours(),
                    if policy.allow_standing_grants {
                        ""
                    } else {
                        " and no standing grants"
                    }
                ),
            ));
        }
    }
    rows.sort_by(|a, b| a.category.cmp(&b.category).then(a.id.cmp(&b.id)));
    (rows, findings)
}

/// The freshness section from each workspace's completeness, and a finding per workspace with
/// listings never read or failed.
pub(super) fn freshness(
    per_workspace: Vec<(WorkspaceSlug, Completeness)>,
    runs: Vec<SyncRun>,
    now: DateTime<Utc>,
) -> (Freshness, Vec<Finding>) {
    let mut out = Freshness {
        oldest_read_at: None,
        oldest_fact_age_seconds: None,
        never_read: Vec::new(),
        failed: Vec::new(),
        sync_runs: runs
            .into_iter()
            .map(|r| SyncRunRef {
                id: r.id.0,
                started_at: r.started_at,
                finished_at: r.finished_at,
                outcome: r.outcome.map(|o| o.as_str().to_owned()),
            })
            .collect(),
    };
    let mut findings = Vec::new();
    for (ws, c) in per_workspace {
        out.oldest_read_at = match (out.oldest_read_at, c.oldest_read_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if !c.never_read.is_empty() || !c.failed.is_empty() {
            findings.push(Finding::new(
                FindingKind::IncompleteFacts,
                vec![ws.to_string()],
                format!(
                    "workspace {ws}: {} listings never read, {} whose last read failed; run \
                     `bitbucket-access sync`",
                    c.never_read.len(),
                    c.failed.len()
                ),
            ));
        }
        out.never_read
            .extend(c.never_read.iter().map(ToString::to_string));
        out.failed
            .extend(c.failed.into_iter().map(|f| FailedListing {
                listing: f.key.to_string(),
                failed_at: f.failed_at,
                message: f.message,
            }));
    }
    out.oldest_fact_age_seconds = out.oldest_read_at.map(|at| (now - at).num_seconds());
    (out, findings)
}
