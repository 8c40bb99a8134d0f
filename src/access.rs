//! Effective access, explained: who can reach a repository and why, what an account can reach.
//!
//! Computed from the stored explicit facts by the domain's rules; nothing here calls Bitbucket.
//! Every answer says how complete it is: the oldest read of the listings it rests on, the
//! listings it rests on that were never read (then the answer may miss rows), and those whose
//! last read failed (then their facts are older).

use crate::domain::{
    effective_access, effective_access_for_account, effective_access_for_repository, AccountId,
    EffectiveAccess, Grant, GrantState, GrantTarget, Principal, RepoLevel, RepoSlug, Source,
    SourcedLevel, WorkspaceFacts, WorkspaceSlug,
};
use crate::store::{GrantFilter, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

mod completeness;

pub use completeness::Completeness;
use completeness::{completeness, repository_completeness};

/// One account's effective level on one repository, with its sources.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AccessRow {
    /// Workspace slug.
    pub workspace: String,
    /// Repository slug.
    pub repository: String,
    /// Atlassian account id.
    pub account_id: String,
    /// Display name, when known.
    pub display_name: String,
    /// The person's email, when identity matching found one.
    pub email: Option<String>,
    /// The effective level.
    pub level: RepoLevel,
    /// Every source with the level it gives, strongest first. JSON shows each as people read
    /// it (`group developers: write`).
    #[serde(serialize_with = "serialize_sources")]
    pub sources: Vec<SourcedLevel>,
    /// Grants in force behind a source (the index into `sources`): "why does she have write?"
    /// answered with the grant, who asked for it, the ticket and the end.
    pub grants: Vec<GrantNote>,
}

/// A grant in force that gives a source of a row its level.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GrantNote {
    /// Which source of the row (index into `sources`).
    pub source: usize,
    /// The grant's id.
    pub grant_id: i64,
    /// Who asked for it.
    pub requested_by: String,
    /// The ticket.
    pub ticket: Option<String>,
    /// When it ends (`None`: standing).
    pub ends_at: Option<DateTime<Utc>>,
}

impl GrantNote {
    fn describe(&self) -> String {
        format!(
            "grant {} by {}{}, {}",
            self.grant_id,
            self.requested_by,
            self.ticket
                .as_deref()
                .map_or_else(String::new, |t| format!(" ({t})")),
            self.ends_at.map_or_else(
                || "no end".to_owned(),
                |e| format!("ends {}", e.format("%Y-%m-%d %H:%M UTC"))
            )
        )
    }
}

fn serialize_sources<S: serde::Serializer>(
    sources: &[SourcedLevel],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(sources.iter().map(describe))
}

fn describe(source: &SourcedLevel) -> String {
    format!("{}: {}", source.source.describe(), source.level)
}

impl AccessRow {
    /// The sources as people read them: `group developers: write`.
    pub fn why(&self) -> Vec<String> {
        self.sources
            .iter()
            .enumerate()
            .map(|(i, s)| match self.grants.iter().find(|g| g.source == i) {
                Some(g) => format!("{} [{}]", describe(s), g.describe()),
                None => describe(s),
            })
            .collect()
    }
}

/// An answer with its completeness.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AccessAnswer {
    /// One row per account and repository.
    pub rows: Vec<AccessRow>,
    /// What the answer rests on.
    pub completeness: Completeness,
}

/// Why an access query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The argument is not `WS/REPO`.
    #[error(
        "{0:?} is not WS/REPO (a workspace slug and a repository slug, e.g. acme/payments-api)"
    )]
    BadRepository(String),
    /// The repository is not in the store.
    #[error(
        "repository {0} is not in the store: check the slugs, or run `bitbucket-access sync` first"
    )]
    UnknownRepository(String),
    /// The account is not in the store.
    #[error("no stored account matches {0:?}: give the Atlassian account id of a synced account (an email works only once it is matched to an account)")]
    UnknownAccount(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Display name and matched email of every known account, by account id.
pub type AccountNames = HashMap<String, (String, Option<String>)>;

/// Display name and matched email of every known account.
pub async fn account_names(store: &dyn Store) -> Result<AccountNames, StoreError> {
    let mut emails: HashMap<String, String> = store
        .identities()
        .await?
        .into_iter()
        .filter_map(|i| Some((i.account_id.to_string(), i.email?)))
        .collect();
    Ok(store
        .accounts()
        .await?
        .into_iter()
        .map(|a| {
            let id = a.account_id.to_string();
            let email = emails.remove(&id);
            (id, (a.display_name, email))
        })
        .collect())
}

fn rows(ws: &WorkspaceSlug, list: Vec<EffectiveAccess>, names: &AccountNames) -> Vec<AccessRow> {
    list.into_iter()
        .map(|e| {
            let (display_name, email) = names
                .get(e.account_id.as_str())
                .cloned()
                .unwrap_or_default();
            AccessRow {
                workspace: ws.to_string(),
                repository: e.repository.to_string(),
                display_name,
                email,
                account_id: e.account_id.to_string(),
                level: e.level,
                sources: e.sources,
                grants: Vec::new(),
            }
        })
        .collect()
}

/// Names, on each row, the active grants behind its sources: a grant to the account (or to a
/// group it is in) on the repository (or its project) at the level the source gives.
fn note_grants(rows: &mut [AccessRow], facts_projects: &HashMap<String, String>, grants: &[Grant]) {
    for row in rows {
        for (i, sourced) in row.sources.iter().enumerate() {
            let project = facts_projects.get(&format!("{}/{}", row.workspace, row.repository));
            let found = grants.iter().filter(|g| {
                g.state == GrantState::Active
                    && g.target.workspace().as_str() == row.workspace
                    && g.level
                        .repo_level()
                        .or_else(|| g.level.project_level().map(|p| p.repo_level()))
                        == Some(sourced.level)
                    && match (&sourced.source, &g.principal, &g.target) {
                        (
                            Source::Direct,
                            Principal::User { account_id },
                            GrantTarget::Repository { repository },
                        ) => {
                            account_id.as_str() == row.account_id
                                && repository.slug.as_str() == row.repository
                        }
                        (
                            Source::Group { slug },
                            Principal::Group { slug: g },
                            GrantTarget::Repository { repository },
                        ) => slug == g && repository.slug.as_str() == row.repository,
                        (
                            Source::Project { key },
                            Principal::User { account_id },
                            GrantTarget::Project { project: p },
                        ) => {
                            account_id.as_str() == row.account_id
                                && p.key == *key
                                && project == Some(&key.to_string())
                        }
                        (
                            Source::ProjectGroup { key, group },
                            Principal::Group { slug },
                            GrantTarget::Project { project: p },
                        ) => slug == group && p.key == *key && project == Some(&key.to_string()),
                        _ => false,
                    }
            });
            if let Some(g) = found.max_by_key(|g| g.id) {
                row.grants.push(GrantNote {
                    source: i,
                    grant_id: g.id.0,
                    requested_by: g.requested_by.clone(),
                    ticket: g.ticket.clone(),
                    ends_at: g.expires_at,
                });
            }
        }
    }
}

/// Every repository's project, as `ws/repo` → project key.
fn repo_projects(
    ws: &WorkspaceSlug,
    facts: &crate::domain::WorkspaceFacts,
) -> HashMap<String, String> {
    facts
        .repositories
        .iter()
        .filter_map(|r| Some((format!("{ws}/{}", r.slug), r.project.as_ref()?.to_string())))
        .collect()
}

/// Display name and matched email of these accounts.
async fn names_of(store: &dyn Store, ids: &[AccountId]) -> Result<AccountNames, StoreError> {
    Ok(store
        .accounts_with_emails(ids)
        .await?
        .into_iter()
        .map(|(a, email)| (a.account_id.to_string(), (a.display_name, email)))
        .collect())
}

/// The effective access of every account on every repository of one workspace, sorted by
/// repository then account, with the completeness of the whole workspace. The audit's matrix
/// is the same rows, a batch of repositories at a time ([`for_repositories`]).
pub async fn for_workspace(
    store: &dyn Store,
    ws: &WorkspaceSlug,
    facts: &WorkspaceFacts,
    names: &AccountNames,
) -> Result<AccessAnswer, StoreError> {
    Ok(AccessAnswer {
        rows: rows(ws, effective_access(facts), names),
        completeness: completeness(store, ws, |_| true).await?,
    })
}

/// The completeness of every listing of a workspace (what a workspace-wide answer rests on).
pub async fn workspace_completeness(
    store: &dyn Store,
    ws: &WorkspaceSlug,
) -> Result<Completeness, StoreError> {
    completeness(store, ws, |_| true).await
}

/// A workspace's repositories in batches of at most `per_batch` (at least one), in the order
/// [`for_workspace`] lists its rows: the batches of [`for_repositories`].
pub fn repository_batches(facts: &WorkspaceFacts, per_batch: usize) -> Vec<BTreeSet<RepoSlug>> {
    let slugs: Vec<RepoSlug> = facts.repository_slugs().into_iter().collect();
    slugs
        .chunks(per_batch.max(1))
        .map(|batch| batch.iter().cloned().collect())
        .collect()
}

/// The effective access on a batch of a workspace's repositories, sorted by repository then
/// account: the rows [`for_workspace`] gives for them, computed from these repositories' facts
/// only, so the audit can stream a large workspace's matrix one batch at a time.
pub fn for_repositories(
    ws: &WorkspaceSlug,
    facts: &WorkspaceFacts,
    repositories: &BTreeSet<RepoSlug>,
    names: &AccountNames,
) -> Vec<AccessRow> {
    rows(
        ws,
        effective_access(&facts.restricted_to(repositories)),
        names,
    )
}

/// Who can reach `ws/repo` and why, strongest first.
///
/// Reads only the facts the repository's access rests on ([`Store::repository_facts`]), so
/// the cost of an answer does not grow with the size of the workspace.
pub async fn for_repository(
    store: &dyn Store,
    full_name: &str,
) -> Result<AccessAnswer, AccessError> {
    let bad = || AccessError::BadRepository(full_name.to_string());
    let (ws, repo) = full_name.split_once('/').ok_or_else(bad)?;
    let ws = WorkspaceSlug::parse(ws.to_string()).map_err(|_| bad())?;
    let repo = RepoSlug::parse(repo.to_string()).map_err(|_| bad())?;
    let Some(facts) = store.repository_facts(&ws, &repo).await? else {
        return Err(AccessError::UnknownRepository(full_name.to_string()));
    };
    let project = facts.repositories.first().and_then(|r| r.project.clone());
    let completeness = repository_completeness(store, &ws, &repo, project.as_ref()).await?;
    let found = effective_access_for_repository(&facts, &repo);
    let ids: Vec<AccountId> = found.iter().map(|e| e.account_id.clone()).collect();
    let names = names_of(store, &ids).await?;
    let mut out = rows(&ws, found, &names);
    let grants = store
        .list_grants(&GrantFilter {
            states: GrantState::IN_FORCE.to_vec(),
            workspace: Some(ws.to_string()),
            ..GrantFilter::default()
        })
        .await?;
    note_grants(&mut out, &repo_projects(&ws, &facts), &grants);
    out.sort_by(|a, b| {
        b.level
            .cmp(&a.level)
            .then(a.display_name.cmp(&b.display_name))
    });
    Ok(AccessAnswer {
        rows: out,
        completeness,
    })
}

/// What an account (by id, or by an email matched to it) can reach, in every stored workspace.
///
/// Reads only the facts the account's access rests on ([`Store::account_facts`]); the
/// completeness covers every listing of each workspace, since any of them could give it access.
pub async fn for_account(
    store: &dyn Store,
    who: &str,
) -> Result<(String, AccessAnswer), AccessError> {
    let account = if who.contains('@') {
        store.account_by_email(who).await?
    } else {
        match AccountId::parse(who.to_string()) {
            Ok(id) => store.account(&id).await?,
            Err(_) => None,
        }
    }
    .ok_or_else(|| AccessError::UnknownAccount(who.to_string()))?;
    let names = names_of(store, std::slice::from_ref(&account.account_id)).await?;
    let mut out = Vec::new();
    let mut whole = Completeness::default();
    let grants = store.active_grants().await?;
    for ws in store.workspaces().await? {
        let facts = store.account_facts(&ws.slug, &account.account_id).await?;
        let mut found = rows(
            &ws.slug,
            effective_access_for_account(&facts, &account.account_id),
            &names,
        );
        note_grants(&mut found, &repo_projects(&ws.slug, &facts), &grants);
        out.extend(found);
        // Any listing of a workspace can give the account access.
        whole.add(completeness(store, &ws.slug, |_| true).await?);
    }
    Ok((
        account.account_id.to_string(),
        AccessAnswer {
            rows: out,
            completeness: whole,
        },
    ))
}
