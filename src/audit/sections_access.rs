//! The sections that rest on effective access: the matrix, the administrators, the identity
//! findings (unmatched, outside the allowed domains, inactive with access) and the policy
//! findings about access (admin and owner limits, public repositories, direct user permissions).
//!
//! Pure: the effective access comes from [`crate::access`] (the domain's rules), identities and
//! policy come in, rows and findings come out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::access::{AccessRow, AccountNames};
use crate::config::AuditPolicy;
use crate::domain::{
    Identity, Principal, ProjectLevel, RepoLevel, Source, WorkspaceFacts, WorkspaceRole,
    WorkspaceSlug,
};

use super::model::{AdminRow, AdminScope, Finding, FindingKind, Interner, MatrixRow};

/// What one workspace contributes to the access sections.
#[derive(Debug, Default)]
pub(super) struct WorkspaceSections {
    pub matrix: Vec<MatrixRow>,
    pub administrators: Vec<AdminRow>,
    pub findings: Vec<Finding>,
}

fn person(names: &AccountNames, id: &str) -> (String, Option<String>) {
    names.get(id).cloned().unwrap_or_default()
}

/// The matrix, administrators and access-policy findings of one workspace. The matrix's texts
/// come from `interner`: the matrix of a large world is the report's biggest part.
pub(super) fn workspace_sections(
    ws: &WorkspaceSlug,
    facts: &WorkspaceFacts,
    rows: Vec<AccessRow>,
    names: &AccountNames,
    policy: &AuditPolicy,
    interner: &mut Interner,
) -> WorkspaceSections {
    let mut out = WorkspaceSections::default();
    let admin_row = |scope, resource: String, id: &str, via: Vec<String>| {
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
    };

    let owners: Vec<&str> = facts
        .members
        .iter()
        .filter(|m| m.role == WorkspaceRole::Owner)
        .map(|m| m.account_id.as_str())
        .collect();
    for owner in &owners {
        out.administrators.push(admin_row(
            AdminScope::Workspace,
            ws.to_string(),
            owner,
            vec!["workspace owner".to_owned()],
        ));
    }
    if let Some(max) = policy.max_workspace_owners {
        if owners.len() > max as usize {
            out.findings.push(Finding::new(
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
        out.administrators
            .push(admin_row(AdminScope::Project, project, &account, via));
    }

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
        out.administrators.push(admin_row(
            AdminScope::Repository,
            row.repository.clone(),
            &row.account_id,
            via,
        ));
    }
    if let Some(max) = policy.max_admins_per_repository {
        for (repo, count) in admins_per_repo.iter().filter(|(_, n)| **n > max as usize) {
            out.findings.push(Finding::new(
                FindingKind::AdminLimitExceeded,
                vec![format!("{ws}/{repo}")],
                format!("{ws}/{repo} has {count} accounts with admin; the policy allows {max}"),
            ));
        }
    }

    for repo in facts.repositories.iter().filter(|r| !r.is_private) {
        out.findings.push(Finding::new(
            FindingKind::PublicRepository,
            vec![format!("{ws}/{}", repo.slug)],
            format!("{ws}/{} is public: anyone can read it", repo.slug),
        ));
    }

    if policy.flag_direct_user_permissions {
        out.findings.extend(direct_permissions(ws, facts, &rows));
    }
    out.matrix = rows.iter().map(|r| matrix_row(r, interner)).collect();
    out
}

fn matrix_row(row: &AccessRow, interner: &mut Interner) -> MatrixRow {
    MatrixRow {
        workspace: interner.get(&row.workspace),
        repository: interner.get(&row.repository),
        account_id: interner.get(&row.account_id),
        display_name: interner.get(&row.display_name),
        email: row.email.as_deref().map(|e| interner.get(e)),
        level: interner.get(row.level.as_str()),
        sources: row.why().iter().map(|s| interner.get(s)).collect(),
    }
}

/// A finding for each explicit user permission on a repository, saying whether another source
/// (a group, the project) already gives the same level.
fn direct_permissions(
    ws: &WorkspaceSlug,
    facts: &WorkspaceFacts,
    rows: &[AccessRow],
) -> Vec<Finding> {
    let by_key: HashMap<(&str, &str), &AccessRow> = rows
        .iter()
        .map(|r| ((r.repository.as_str(), r.account_id.as_str()), r))
        .collect();
    let mut out = Vec::new();
    for permission in &facts.repository_permissions {
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

/// An account's display name and the `(workspace, repository)` pairs it reaches.
type Reach<'a> = (&'a str, BTreeSet<(&'a str, &'a str)>);

/// Findings about the people behind the accounts that have access: unmatched, outside the
/// allowed domains, inactive in Jira.
pub(super) fn identity_findings(
    matrix: &[MatrixRow],
    identities: &HashMap<String, Identity>,
    policy: &AuditPolicy,
) -> Vec<Finding> {
    // Account id → (display name, repositories reached).
    let mut with_access: BTreeMap<&str, Reach<'_>> = BTreeMap::new();
    for row in matrix {
        with_access
            .entry(&*row.account_id)
            .or_insert_with(|| (&*row.display_name, BTreeSet::new()))
            .1
            .insert((&*row.workspace, &*row.repository));
    }
    let mut out = Vec::new();
    for (id, (name, repos)) in with_access {
        let reach = format!("{} ({id}) can reach {} repositories", name, repos.len());
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
