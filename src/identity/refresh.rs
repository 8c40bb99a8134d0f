//! A matching pass over every stored account.
//!
//! A pass reads what the store already knows, asks the sources, applies the domain's rules and
//! writes every identity with the audit entries of its changed emails in one transaction. When
//! Jira or the organization (`atlassian_admin`) cannot be read, its earlier matches stay and the
//! pass says why.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::sources::{read_jira, read_org};
use super::IdentityError;
use crate::domain::{
    match_identities, AccountId, AccountKind, Identity, IdentityChange, IdentityRefresh,
    IdentitySource, MatchInput,
};
use crate::jira::JiraClient;
use crate::org::OrgClient;
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
    /// The Organizations API client, when `atlassian_admin` is configured and it was built.
    pub org: Option<&'a OrgClient>,
    /// Why `atlassian_admin` is configured but its client could not be built, if so.
    pub org_problem: Option<&'a str>,
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
    /// Whether the organization's managed accounts were read completely.
    pub org_read: bool,
    /// What happened with the organization, in words; `None` without `atlassian_admin`.
    pub org: Option<String>,
    /// Requests sent to the Organizations API.
    pub org_requests: u64,
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
        let org = self
            .org
            .as_ref()
            .map(|words| format!("; organization: {words}"))
            .unwrap_or_default();
        format!(
            "identity matching: {} account(s): {}; {} with conflicts; {} changed email(s); Jira: {}{org}",
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

pub(super) async fn run_pass(
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
    let org_before = sources.org.map_or(0, OrgClient::requests_used);
    let (org_emails, org_read, org_words) = read_org_source(sources, ask_jira).await;
    let org_requests = sources.org.map_or(0, OrgClient::requests_used) - org_before;

    let outcome = match_identities(
        &MatchInput {
            accounts: &accounts,
            with_access: Some(&with_access),
            jira: jira.as_ref(),
            member_emails: Some(&member_emails),
            org_emails: org_emails.as_ref(),
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
                message: match &org_words {
                    Some(org) => format!("{jira_words}; organization: {org}"),
                    None => jira_words.clone(),
                },
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
        org_read,
        org: org_words,
        org_requests,
        unknown_overrides,
    })
}

/// The organization's managed-account emails when `atlassian_admin` is configured and `ask`
/// (a full pass), with whether they were read and what happened in words. A failure is not the
/// pass's: the earlier `atlassian_org` matches stay, and the words say why.
async fn read_org_source(
    sources: Sources<'_>,
    ask: bool,
) -> (Option<BTreeMap<AccountId, String>>, bool, Option<String>) {
    let kept = "earlier matches kept";
    match (ask, sources.org, sources.org_problem) {
        (_, None, None) => (None, false, None),
        (false, _, _) => (None, false, Some(format!("not asked ({kept})"))),
        (true, _, Some(problem)) => (None, false, Some(format!("not read, {kept}: {problem}"))),
        (true, Some(client), None) => match read_org(client).await {
            Ok(emails) => {
                let words = format!("read ({} managed accounts with an email)", emails.len());
                (Some(emails), true, Some(words))
            }
            Err(e) => {
                tracing::warn!(error = %e, "organization's managed accounts not read; earlier matches kept");
                (None, false, Some(format!("not read, {kept}: {e}")))
            }
        },
    }
}

fn jira_requests(jira: Option<&JiraClient>) -> u64 {
    jira.map_or(0, |j| j.request_counts().values().sum())
}
