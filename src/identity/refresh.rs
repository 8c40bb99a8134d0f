//! A matching pass over every stored account, and the two ways a person is looked up by email:
//! an IdP import and one address (`access user EMAIL`).
//!
//! A pass reads what the store already knows, asks the sources, applies the domain's rules and
//! writes every identity with the audit entries of its changed emails in one transaction. When
//! Jira cannot be read, its earlier matches stay and the pass records why.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::sources::read_jira;
use super::IdentityError;
use crate::bitbucket::members::EmailMatch;
use crate::bitbucket::BitbucketClient;
use crate::domain::{
    match_identities, same_email, AccountId, AccountKind, Identity, IdentityChange,
    IdentityRefresh, IdentitySource, MatchInput, WorkspaceSlug,
};
use crate::jira::JiraClient;
use crate::store::{AuditKind, NewAuditEntry, Store};

/// What a pass may ask besides the store.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sources<'a> {
    /// The Jira client, when `jira_credentials` are configured and it connected.
    pub jira: Option<&'a JiraClient>,
    /// Why Jira is configured but was not usable (connecting failed), if so.
    pub jira_problem: Option<&'a str>,
    /// The override file's entries, when one is configured.
    pub overrides: Option<&'a BTreeMap<AccountId, String>>,
}

/// What a pass did.
#[derive(Debug, Clone, Serialize)]
pub struct RefreshReport {
    /// Accounts matched (every stored account).
    pub accounts: usize,
    /// Accounts per source (`unmatched` included).
    pub by_source: BTreeMap<IdentitySource, usize>,
    /// Accounts with at least one conflict.
    pub with_conflicts: usize,
    /// Emails that changed, each recorded in the audit log.
    pub changes: Vec<IdentityChange>,
    /// Whether Jira was read completely.
    pub jira_read: bool,
    /// What happened with Jira, in words.
    pub jira: String,
    /// Requests sent to Jira.
    pub jira_requests: u64,
    /// Override entries naming an account the store does not know (a mistyped id, or an
    /// account no sync has read yet): they matched nothing.
    pub unknown_overrides: Vec<AccountId>,
}

impl RefreshReport {
    /// The warning about override entries that matched nothing, if any.
    pub fn override_warning(&self) -> Option<String> {
        if self.unknown_overrides.is_empty() {
            return None;
        }
        let ids: Vec<&str> = self
            .unknown_overrides
            .iter()
            .map(AccountId::as_str)
            .collect();
        Some(format!(
            "warning: the override file names {} account(s) the store does not know, so they \
             match nothing: {}; check the account ids (Bitbucket's account_id, not a nickname) \
             or run a sync that reads those accounts",
            ids.len(),
            ids.join(", ")
        ))
    }

    /// One paragraph for people.
    pub fn summary(&self) -> String {
        let sources: Vec<String> = self
            .by_source
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        format!(
            "identity matching: {} account(s): {}; {} with conflicts; {} changed email(s); Jira: {}",
            self.accounts,
            sources.join(", "),
            self.with_conflicts,
            self.changes.len(),
            self.jira
        )
    }
}

/// Whether a refresh is due: none ran yet, the last one could not read Jira while Jira is
/// configured, or it is older than `interval`.
pub async fn is_due(
    store: &dyn Store,
    interval: Duration,
    jira_configured: bool,
    now: DateTime<Utc>,
) -> Result<bool, IdentityError> {
    let Some(last) = store.last_identity_refresh().await? else {
        return Ok(true);
    };
    let age = (now - last.at).to_std().unwrap_or(Duration::ZERO);
    Ok(age >= interval || (jira_configured && !last.jira_read))
}

/// Runs a matching pass over every stored account, asking Jira when a client is given.
pub async fn refresh(
    store: &dyn Store,
    sources: Sources<'_>,
    now: DateTime<Utc>,
) -> Result<RefreshReport, IdentityError> {
    run_pass(store, sources, &BTreeMap::new(), true, now).await
}

async fn run_pass(
    store: &dyn Store,
    sources: Sources<'_>,
    new_member_emails: &BTreeMap<AccountId, String>,
    ask_jira: bool,
    now: DateTime<Utc>,
) -> Result<RefreshReport, IdentityError> {
    let stored_accounts = store.accounts().await?;
    let app_users: BTreeSet<AccountId> = stored_accounts
        .iter()
        .filter(|a| a.kind == AccountKind::AppUser)
        .map(|a| a.account_id.clone())
        .collect();
    let mut accounts: BTreeSet<AccountId> =
        stored_accounts.into_iter().map(|a| a.account_id).collect();
    let previous: BTreeMap<AccountId, Identity> = store
        .identities()
        .await?
        .into_iter()
        .map(|i| (i.account_id.clone(), i))
        .collect();
    // Accounts known only by an earlier email look-up stay in the picture.
    accounts.extend(previous.keys().cloned());
    accounts.extend(new_member_emails.keys().cloned());
    let unknown_overrides: Vec<AccountId> = sources
        .overrides
        .map(|o| {
            o.keys()
                .filter(|id| !accounts.contains(*id))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let accounts: Vec<AccountId> = accounts.into_iter().collect();
    let mut with_access = BTreeSet::new();
    for ws in store.workspaces().await? {
        with_access.extend(
            store
                .workspace_members(&ws.slug)
                .await?
                .into_iter()
                .map(|m| m.account_id),
        );
    }
    // Earlier member-filter matches hold until a better source speaks.
    let mut member_emails: BTreeMap<AccountId, String> = previous
        .values()
        .filter(|i| i.source == IdentitySource::BitbucketMemberEmail)
        .filter_map(|i| Some((i.account_id.clone(), i.email.clone()?)))
        .collect();
    member_emails.extend(new_member_emails.clone());

    let before = jira_requests(sources.jira);
    let (jira, jira_read, jira_words) = match (ask_jira, sources.jira, sources.jira_problem) {
        (false, _, _) => (
            None,
            false,
            "not asked (earlier Jira matches kept)".to_owned(),
        ),
        (true, _, Some(problem)) => (
            None,
            false,
            format!("not read, earlier matches kept: {problem}"),
        ),
        (true, None, None) => (None, false, "not configured".to_owned()),
        (true, Some(client), None) => match read_jira(client, &accounts).await {
            Ok(facts) => {
                let words = format!("read ({} of the accounts known to Jira)", facts.len());
                (Some(facts), true, words)
            }
            Err(e) => (None, false, format!("not read, earlier matches kept: {e}")),
        },
    };
    let jira_requests = jira_requests(sources.jira) - before;

    let outcome = match_identities(
        &MatchInput {
            accounts: &accounts,
            with_access: Some(&with_access),
            jira: jira.as_ref(),
            member_emails: Some(&member_emails),
            overrides: sources.overrides,
            app_users: Some(&app_users),
            previous: Some(&previous),
        },
        now,
    );
    let audit: Vec<NewAuditEntry> = outcome
        .changes
        .iter()
        .map(|c| NewAuditEntry {
            at: now,
            actor: "identity".to_owned(),
            kind: AuditKind::Identity,
            subject: format!("identity {}", c.account_id),
            before: Some(json!({"email": c.before, "source": c.before_source})),
            after: Some(json!({"email": c.after, "source": c.after_source})),
            details: json!({"change": if c.after.is_none() { "email_gone" } else { "email_changed" }}),
        })
        .collect();
    store
        .replace_identities(&outcome.identities, &audit)
        .await?;
    if ask_jira {
        store
            .record_identity_refresh(&IdentityRefresh {
                at: now,
                jira_read,
                message: jira_words.clone(),
                requests: jira_requests,
            })
            .await?;
    }
    let mut by_source = BTreeMap::new();
    for identity in &outcome.identities {
        *by_source.entry(identity.source).or_insert(0) += 1;
    }
    Ok(RefreshReport {
        accounts: outcome.identities.len(),
        by_source,
        with_conflicts: outcome
            .identities
            .iter()
            .filter(|i| !i.conflicts.is_empty())
            .count(),
        changes: outcome.changes,
        jira_read,
        jira: jira_words,
        jira_requests,
        unknown_overrides,
    })
}

fn jira_requests(jira: Option<&JiraClient>) -> u64 {
    jira.map_or(0, |j| j.request_counts().values().sum())
}

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
