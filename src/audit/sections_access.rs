//! The sections that rest on effective access: the matrix, the administrators, the identity
//! findings (unmatched, outside the allowed domains, inactive with access) and the policy
//! findings about access (admin and owner limits, public repositories, direct user permissions).
//!
//! Pure: the effective access comes from [`crate::access`] (the domain's rules), a batch of
//! repositories at a time; [`AccessSections`] keeps only what the report holds (administrators,
//! findings, counts per account and the matrix's hash), never the rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::access::{AccessRow, AccountNames};
use crate::config::AuditPolicy;
use crate::domain::{
    Identity, Principal, ProjectLevel, RepoLevel, RepoSlug, Source, WorkspaceFacts, WorkspaceRole,
    WorkspaceSlug,
};

use super::matrix::{matrix_row, MatrixDigest};
use super::model::{AdminRow, AdminScope, Finding, FindingKind, Text};

/// The access sections, gathered a workspace and a batch of repositories at a time.
pub(super) struct AccessSections {
    pub administrators: Vec<AdminRow>,
    pub findings: Vec<Finding>,
    /// Rows of the matrix.
    pub access_rows: u64,
    /// Account id → (display name, repositories it reaches): what the identity findings say.
    reach: BTreeMap<Text, (Text, u64)>,
    digest: MatrixDigest,
}

fn person(names: &AccountNames, id: &str) -> (String, Option<String>) {
    names.get(id).cloned().unwrap_or_default()
}

fn admin_row(
    names: &AccountNames,
    ws: &WorkspaceSlug,
    scope: AdminScope,
    resource: String,
    id: &str,
    via: Vec<String>,
) -> AdminRow {
    let (display_name, email) = person(names, id);
    AdminRow {
        scope,
        workspace: ws.to_string(),
        resource,
        account_id: id.to_owned(),
        display_name,
        email,
        via,
    }
}

impl AccessSections {
    pub(super) fn new() -> AccessSections {
        AccessSections {
            administrators: Vec::new(),
            findings: Vec::new(),
            access_rows: 0,
            reach: BTreeMap::new(),
            digest: MatrixDigest::new(),
        }
    }

    /// What rests on a workspace's facts alone: its owners (with the owner limit), its project
    /// admins and its public repositories. Comes before the workspace's batches.
    pub(super) fn workspace(
        &mut self,
        ws: &WorkspaceSlug,
        facts: &WorkspaceFacts,
        names: &AccountNames,
        policy: &AuditPolicy,
    ) {
        let owners: Vec<&str> = facts
            .members
            .iter()
            .filter(|m| m.role == WorkspaceRole::Owner)
            .map(|m| m.account_id.as_str())
            .collect();
        for owner in &owners {
            self.administrators.push(admin_row(
                names,
                ws,
                AdminScope::Workspace,
                ws.to_string(),
                owner,
                vec!["workspace owner".to_owned()],
            ));
        }
        if let Some(max) = policy.max_workspace_owners {
            if owners.len() > max as usize {
                self.findings.push(Finding::new(
                    FindingKind::OwnerLimitExceeded,
                    vec![ws.to_string()],
                    format!(
                        "workspace {ws} has {} owners; the policy allows {max}",
                        owners.len()
                    ),
                ));
            }
        }

        // Project admins: explicit admin for a user, or for a group (each of its members).
        let members: HashMap<&str, &[crate::domain::AccountId]> = facts
            .groups
            .iter()
            .map(|g| (g.slug.as_str(), g.members.as_slice()))
            .collect();
        let mut project_admins: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for p in facts
            .project_permissions
            .iter()
            .filter(|p| p.level == ProjectLevel::Admin)
        {
            match &p.principal {
                Principal::User { account_id } => project_admins
                    .entry((p.project.to_string(), account_id.to_string()))
                    .or_default()
                    .push("direct".to_owned()),
                Principal::Group { slug } => {
                    for account in members.get(slug.as_str()).copied().unwrap_or_default() {
                        project_admins
                            .entry((p.project.to_string(), account.to_string()))
                            .or_default()
                            .push(format!("group {slug}"));
                    }
                }
            }
        }
        for ((project, account), via) in project_admins {
            self.administrators.push(admin_row(
                names,
                ws,
                AdminScope::Project,
                project,
                &account,
                via,
            ));
        }

        for repo in facts.repositories.iter().filter(|r| !r.is_private) {
            self.findings.push(Finding::new(
                FindingKind::PublicRepository,
                vec![format!("{ws}/{}", repo.slug)],
                format!("{ws}/{} is public: anyone can read it", repo.slug),
            ));
        }
    }

    /// What rests on the effective access of one batch of a workspace's repositories (every row
    /// of those repositories): their admins (with the admin limit), the direct user permissions
    /// on them, the accounts' reach, the row count and the matrix's hash.
    pub(super) fn batch(
        &mut self,
        ws: &WorkspaceSlug,
        facts: &WorkspaceFacts,
        repositories: &BTreeSet<RepoSlug>,
        rows: &[AccessRow],
        names: &AccountNames,
        policy: &AuditPolicy,
    ) {
        // Repository admins: effective admin, with the sources that give it.
        let mut admins_per_repo: BTreeMap<&str, usize> = BTreeMap::new();
        for row in rows.iter().filter(|r| r.level == RepoLevel::Admin) {
            *admins_per_repo.entry(row.repository.as_str()).or_default() += 1;
            let via = row
                .sources
                .iter()
                .filter(|s| s.level == RepoLevel::Admin)
                .map(|s| s.source.describe())
                .collect();
            self.administrators.push(admin_row(
                names,
                ws,
                AdminScope::Repository,
                row.repository.clone(),
                &row.account_id,
                via,
            ));
        }
        if let Some(max) = policy.max_admins_per_repository {
            for (repo, count) in admins_per_repo.iter().filter(|(_, n)| **n > max as usize) {
                self.findings.push(Finding::new(
                    FindingKind::AdminLimitExceeded,
                    vec![format!("{ws}/{repo}")],
                    format!("{ws}/{repo} has {count} accounts with admin; the policy allows {max}"),
                ));
            }
        }
        if policy.flag_direct_user_permissions {
            self.findings
                .extend(direct_permissions(ws, facts, repositories, rows));
        }
        for row in rows {
            let row = matrix_row(row);
            self.digest.add(&row);
            self.access_rows += 1;
            self.reach
                .entry(row.account_id.clone())
                .or_insert_with(|| (row.display_name.clone(), 0))
                .1 += 1;
        }
    }

    /// Accounts with access.
    pub(super) fn accounts_with_access(&self) -> u64 {
        self.reach.len() as u64
    }

    /// The matrix's hash, once every batch is in.
    pub(super) fn matrix_sha256(self) -> String {
        self.digest.finish()
    }

    /// The identity findings about every account with access (after every batch).
    pub(super) fn identity_findings(
        &self,
        identities: &HashMap<String, Identity>,
        policy: &AuditPolicy,
    ) -> Vec<Finding> {
        identity_findings(&self.reach, identities, policy)
    }
}
/// A finding for each explicit user permission on a repository, saying whether another source
/// (a group, the project) already gives the same level.
fn direct_permissions(
    ws: &WorkspaceSlug,
    facts: &WorkspaceFacts,
    repositories: &BTreeSet<RepoSlug>,
    rows: &[AccessRow],
) -> Vec<Finding> {
    let by_key: HashMap<(&str, &str), &AccessRow> = rows
        .iter()
        .map(|r| ((r.repository.as_str(), r.account_id.as_str()), r))
        .collect();
    let mut out = Vec::new();
    for permission in facts
        .repository_permissions
        .iter()
        .filter(|p| repositories.contains(&p.repository))
    {
        let Principal::User { account_id } = &permission.principal else {
            continue;
        };
        let covered: Vec<String> = by_key
            .get(&(permission.repository.as_str(), account_id.as_str()))
            .map(|row| {
                row.sources
                    .iter()
                    .filter(|s| s.source != Source::Direct && s.level >= permission.level)
                    .map(|s| s.source.describe())
                    .collect()
            })
            .unwrap_or_default();
        let repo = format!("{ws}/{}", permission.repository);
        let message = if covered.is_empty() {
            format!(
                "{account_id} holds {} on {repo} directly; a group permission would do",
                permission.level
            )
        } else {
            format!(
                "{account_id} holds {} on {repo} directly, which {} already gives",
                permission.level,
                covered.join(", ")
            )
        };
        out.push(Finding::new(
            FindingKind::DirectUserPermission,
            vec![repo, account_id.to_string()],
            message,
        ));
    }
    out
}

/// Findings about the people behind the accounts that have access: unmatched, outside the
/// allowed domains, inactive in Jira.
fn identity_findings(
    reach: &BTreeMap<Text, (Text, u64)>,
    identities: &HashMap<String, Identity>,
    policy: &AuditPolicy,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (id, (name, repositories)) in reach {
        let id: &str = id;
        let reach = format!("{name} ({id}) can reach {repositories} repositories");
        let identity = identities.get(id);
        match identity.and_then(|i| i.email.as_deref()) {
            None if policy.flag_unmatched_accounts => out.push(Finding::new(
                FindingKind::UnmatchedAccount,
                vec![id.to_owned()],
                format!("{reach} but matches no person's email"),
            )),
            None => {}
            Some(email) => {
                let domain = email
                    .rsplit_once('@')
                    .map(|(_, d)| d.to_ascii_lowercase())
                    .unwrap_or_default();
                if !policy.allowed_email_domains.is_empty()
                    && !policy.allowed_email_domains.contains(&domain)
                {
                    out.push(Finding::new(
                        FindingKind::OutsideDomain,
                        vec![id.to_owned(), email.to_owned()],
                        format!("{reach} with {email}, outside the allowed email domains"),
                    ));
                }
            }
        }
        if identity.and_then(|i| i.active) == Some(false) {
            out.push(Finding::new(
                FindingKind::InactiveWithAccess,
                vec![id.to_owned()],
                format!("{reach} but is inactive in Jira"),
            ));
        }
    }
    out
}
