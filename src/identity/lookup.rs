//! The two ways a person is looked up by email: an IdP import (through Bitbucket's member email
//! filter, recorded by a matching pass) and one address (`access user EMAIL`, which writes
//! nothing).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::refresh::{run_pass, RefreshReport, Sources};
use super::IdentityError;
use crate::bitbucket::members::EmailMatch;
use crate::bitbucket::BitbucketClient;
use crate::domain::{same_email, AccountId, IdentitySource, WorkspaceSlug};
use crate::jira::JiraClient;
use crate::store::Store;

/// What an import of people did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// Addresses in the file.
    pub emails: usize,
    /// Addresses Bitbucket resolved to a member.
    pub resolved: usize,
    /// Each resolved address (as the file gave it) with its account, in address order.
    pub matches: Vec<(String, AccountId)>,
    /// Addresses no member of the managed workspaces holds.
    pub not_found: Vec<String>,
    /// The matching pass that recorded them.
    pub pass: RefreshReport,
}

/// Resolves an IdP's list of addresses to accounts through the member email filter of each
/// workspace (at most 90 addresses per request), then records the matches in a pass that keeps
/// Jira's earlier answers (it does not ask Jira).
pub async fn import_people(
    store: &dyn Store,
    bitbucket: &BitbucketClient,
    workspaces: &[WorkspaceSlug],
    emails: &[String],
    sources: Sources<'_>,
    now: DateTime<Utc>,
) -> Result<ImportReport, IdentityError> {
    let mut pending: Vec<String> = emails.to_vec();
    let mut found: BTreeMap<String, EmailMatch> = BTreeMap::new();
    for ws in workspaces {
        if pending.is_empty() {
            break;
        }
        let matches = bitbucket
            .resolve_member_emails(ws.as_str(), &pending)
            .await?;
        pending.retain(|e| !matches.contains_key(&e.to_ascii_lowercase()));
        found.extend(matches);
    }
    let by_account: BTreeMap<AccountId, String> = found
        .values()
        .map(|m| (m.account.account_id.clone(), m.email.clone()))
        .collect();
    let pass = run_pass(store, sources, &by_account, false, now).await?;
    Ok(ImportReport {
        emails: emails.len(),
        resolved: found.len(),
        matches: found
            .values()
            .map(|m| (m.email.clone(), m.account.account_id.clone()))
            .collect(),
        not_found: pending,
        pass,
    })
}

/// How `access user EMAIL` found its account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// The account.
    pub account_id: AccountId,
    /// The source that tied the email to it.
    pub source: IdentitySource,
    /// `store` when an earlier match answered, else the live source asked.
    pub via: &'static str,
}

/// Resolves one email to an account: the stored matches first, then Bitbucket's member filter
/// on each workspace, then Jira's user search (an exact, visible address only). Writes nothing.
/// Fails only when no source found the address and the member filter was refused.
pub async fn resolve_email(
    store: &dyn Store,
    bitbucket: Option<(&BitbucketClient, &[WorkspaceSlug])>,
    jira: Option<&JiraClient>,
    email: &str,
) -> Result<Option<Resolution>, IdentityError> {
    if let Some(identity) = store
        .identities()
        .await?
        .into_iter()
        .find(|i| i.email.as_deref().is_some_and(|e| same_email(e, email)))
    {
        return Ok(Some(Resolution {
            account_id: identity.account_id,
            source: identity.source,
            via: "store",
        }));
    }
    // A refusal of the member filter (a token without administrator rights, say) does not stop
    // Jira from answering; it is reported only when no source found the address.
    let mut refused = None;
    if let Some((client, workspaces)) = bitbucket {
        for ws in workspaces {
            let matches = match client
                .resolve_member_emails(ws.as_str(), &[email.trim().to_owned()])
                .await
            {
                Ok(matches) => matches,
                Err(e) => {
                    refused.get_or_insert(e);
                    continue;
                }
            };
            if let Some(m) = matches.into_values().next() {
                return Ok(Some(Resolution {
                    account_id: m.account.account_id,
                    source: IdentitySource::BitbucketMemberEmail,
                    via: "Bitbucket's member email filter",
                }));
            }
        }
    }
    if let Some(client) = jira {
        // A Jira failure here only means this source cannot answer; the caller reports "not
        // found" with the sources it tried.
        if let Ok(users) = client.search_by_email(email.trim()).await {
            if let Some(user) = users
                .into_iter()
                .find(|u| u.email.as_deref().is_some_and(|e| same_email(e, email)))
            {
                if let Ok(id) = AccountId::parse(user.account_id) {
                    return Ok(Some(Resolution {
                        account_id: id,
                        source: IdentitySource::JiraUsersSearch,
                        via: "Jira's user search",
                    }));
                }
            }
        }
    }
    match refused {
        Some(e) => Err(e.into()),
        None => Ok(None),
    }
}
