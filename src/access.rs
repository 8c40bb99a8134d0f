//! Effective access, explained: who can reach a repository and why, what an account can reach.
//!
//! Computed from the stored explicit facts by the domain's rules; nothing here calls Bitbucket.

use crate::domain::{
    effective_access_for_account, effective_access_for_repository, AccountId, EffectiveAccess,
    RepoSlug, WorkspaceSlug,
};
use crate::store::{Store, StoreError};
use serde::Serialize;
use std::collections::HashMap;

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
    /// The effective level.
    pub level: String,
    /// Every source with the level it gives (`group developers: write`).
    pub sources: Vec<String>,
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

async fn names(store: &dyn Store) -> Result<HashMap<String, String>, StoreError> {
    Ok(store
        .accounts()
        .await?
        .into_iter()
        .map(|a| (a.account_id.to_string(), a.display_name))
        .collect())
}

fn rows(
    ws: &WorkspaceSlug,
    list: Vec<EffectiveAccess>,
    names: &HashMap<String, String>,
) -> Vec<AccessRow> {
    list.into_iter()
        .map(|e| AccessRow {
            workspace: ws.to_string(),
            repository: e.repository.to_string(),
            display_name: names
                .get(e.account_id.as_str())
                .cloned()
                .unwrap_or_default(),
            account_id: e.account_id.to_string(),
            level: e.level.to_string(),
            sources: e
                .sources
                .iter()
                .map(|s| format!("{}: {}", s.source.describe(), s.level))
                .collect(),
        })
        .collect()
}

/// Who can reach `ws/repo` and why, strongest first.
pub async fn for_repository(
    store: &dyn Store,
    full_name: &str,
) -> Result<Vec<AccessRow>, AccessError> {
    let bad = || AccessError::BadRepository(full_name.to_string());
    let (ws, repo) = full_name.split_once('/').ok_or_else(bad)?;
    let ws = WorkspaceSlug::parse(ws.to_string()).map_err(|_| bad())?;
    let repo = RepoSlug::parse(repo.to_string()).map_err(|_| bad())?;
    let facts = store.workspace_facts(&ws).await?;
    if !facts.repositories.iter().any(|r| r.slug == repo) {
        return Err(AccessError::UnknownRepository(full_name.to_string()));
    }
    let names = names(store).await?;
    let mut out = rows(&ws, effective_access_for_repository(&facts, &repo), &names);
    out.sort_by(|a, b| {
        level_rank(&b.level)
            .cmp(&level_rank(&a.level))
            .then(a.display_name.cmp(&b.display_name))
    });
    Ok(out)
}

/// What an account (by id, or by an email matched to it) can reach, in every stored workspace.
pub async fn for_account(
    store: &dyn Store,
    who: &str,
) -> Result<(String, Vec<AccessRow>), AccessError> {
    let account = if who.contains('@') {
        store.account_by_email(who).await?
    } else {
        match AccountId::parse(who.to_string()) {
            Ok(id) => store.account(&id).await?,
            Err(_) => None,
        }
    }
    .ok_or_else(|| AccessError::UnknownAccount(who.to_string()))?;
    let names = names(store).await?;
    let mut out = Vec::new();
    for ws in store.workspaces().await? {
        let facts = store.workspace_facts(&ws.slug).await?;
        out.extend(rows(
            &ws.slug,
            effective_access_for_account(&facts, &account.account_id),
            &names,
        ));
    }
    Ok((account.account_id.to_string(), out))
}

fn level_rank(level: &str) -> u8 {
    match level {
        "admin" => 3,
        "write" => 2,
        "read" => 1,
        _ => 0,
    }
}
