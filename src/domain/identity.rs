//! Identity matching rules: which person's email belongs to which Bitbucket account, where the
//! answer came from, and what does not add up.
//!
//! Pure: the sources' findings, the previous matches and the current time come in; the new
//! matches, the changes worth an audit entry and the conflicts come out. The rules, in order of
//! trust: the override file, then the organization's managed accounts (`atlassian_admin`), then
//! Jira (`users/search`, then `user/bulk`), then Bitbucket's member email filter. A source that
//! could not be read this time (Jira, the organization) leaves its earlier matches standing. An account no source names stays unmatched: nothing here ever guesses
//! from a display name or nickname. An app account (Bitbucket's `app_user`, or Jira's `app`)
//! without an email is labelled `app`, not left among the unmatched people: no person stands
//! behind it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::AccountId;

/// Where a match came from; stored and printed as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentitySource {
    /// The override file (`identity.overrides_file`).
    Manual,
    /// The organization's managed accounts (`atlassian_admin`, the Organizations API's users):
    /// the email Atlassian holds for the account, whatever its profile shows.
    AtlassianOrg,
    /// Jira's `users/search` listing.
    JiraUsersSearch,
    /// Jira's `user/bulk` look-up of accounts the listing did not return.
    JiraUserBulk,
    /// Bitbucket's workspace member filter by email (`identities import`, `access user EMAIL`).
    BitbucketMemberEmail,
    /// An app's account without an email: no person to match, so nothing is missing.
    App,
    /// No source named an email.
    Unmatched,
}

impl IdentitySource {
    /// Every source.
    pub const ALL: &'static [IdentitySource] = &[
        IdentitySource::Manual,
        IdentitySource::AtlassianOrg,
        IdentitySource::JiraUsersSearch,
        IdentitySource::JiraUserBulk,
        IdentitySource::BitbucketMemberEmail,
        IdentitySource::App,
        IdentitySource::Unmatched,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentitySource::Manual => "manual",
            IdentitySource::AtlassianOrg => "atlassian_org",
            IdentitySource::JiraUsersSearch => "jira_users_search",
            IdentitySource::JiraUserBulk => "jira_user_bulk",
            IdentitySource::BitbucketMemberEmail => "bitbucket_member_email",
            IdentitySource::App => "app",
            IdentitySource::Unmatched => "unmatched",
        }
    }

    /// Parses the stored spelling; `None` for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.as_str() == value)
    }

    /// Whether the match came from Jira.
    pub fn is_jira(self) -> bool {
        matches!(
            self,
            IdentitySource::JiraUsersSearch | IdentitySource::JiraUserBulk
        )
    }
}

impl fmt::Display for IdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of account this is, as Jira labels it (or Bitbucket, for its app users); `unknown`
/// when no source said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountType {
    /// A person's Atlassian account.
    Atlassian,
    /// An app or bot user (no person behind it).
    App,
    /// A Jira Service Management customer.
    Customer,
    /// Not known.
    #[default]
    Unknown,
}

impl AccountType {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Atlassian => "atlassian",
            AccountType::App => "app",
            AccountType::Customer => "customer",
            AccountType::Unknown => "unknown",
        }
    }

    /// Parses the stored spelling; anything else is `Unknown`.
    pub fn parse(value: &str) -> Self {
        match value {
            "atlassian" => AccountType::Atlassian,
            "app" => AccountType::App,
            "customer" => AccountType::Customer,
            _ => AccountType::Unknown,
        }
    }
}

/// Something about a match that a person should look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Conflict {
    /// Other accounts were matched to the same email.
    SharedEmail {
        /// The email.
        email: String,
        /// The other accounts claiming it.
        others: Vec<String>,
    },
    /// The override names another email than a source does.
    OverrideDisagrees {
        /// The source that disagrees.
        source: IdentitySource,
        /// What that source says.
        email: String,
    },
    /// The organization's managed account has another email than a source below it says.
    OrgDisagrees {
        /// The source that disagrees.
        source: IdentitySource,
        /// What that source says.
        email: String,
    },
    /// Jira says the account is inactive, yet it still has Bitbucket access.
    InactiveWithAccess,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::SharedEmail { email, others } => {
                write!(f, "{email} also claimed by {}", others.join(", "))
            }
            Conflict::OverrideDisagrees { source, email } => {
                write!(f, "override disagrees with {source} ({email})")
            }
            Conflict::OrgDisagrees { source, email } => {
                write!(
                    f,
                    "organization's managed account disagrees with {source} ({email})"
                )
            }
            Conflict::InactiveWithAccess => {
                f.write_str("inactive in Jira but still has Bitbucket access")
            }
        }
    }
}

/// The person behind an account, as far as identity matching knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The account.
    pub account_id: AccountId,
    /// The person's email, `None` when no source named one.
    pub email: Option<String>,
    /// Where the email came from (`unmatched` when none did).
    pub source: IdentitySource,
    /// When the match was made or last confirmed.
    pub matched_at: DateTime<Utc>,
    /// Whether Jira says the account is active; `None` when Jira did not say.
    pub active: Option<bool>,
    /// The kind of account.
    pub account_type: AccountType,
    /// What does not add up.
    pub conflicts: Vec<Conflict>,
}

/// One run of identity matching, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityRefresh {
    /// When it ran.
    pub at: DateTime<Utc>,
    /// Whether Jira was read completely.
    pub jira_read: bool,
    /// What happened, or why Jira was not read.
    pub message: String,
    /// Jira requests it spent.
    pub requests: u64,
}

/// What Jira said about one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JiraFact {
    /// The email, `None` when the person's privacy settings hide it.
    pub email: Option<String>,
    /// Whether the account is active.
    pub active: bool,
    /// The kind of account.
    pub account_type: AccountType,
    /// `JiraUsersSearch` or `JiraUserBulk`.
    pub source: IdentitySource,
}

/// Everything one matching pass looks at.
#[derive(Debug, Default)]
pub struct MatchInput<'a> {
    /// Every known Bitbucket account.
    pub accounts: &'a [AccountId],
    /// The accounts that have some Bitbucket access (for the inactive-with-access conflict).
    pub with_access: Option<&'a BTreeSet<AccountId>>,
    /// What Jira said, per account; `None` when Jira was not asked or could not be read.
    pub jira: Option<&'a BTreeMap<AccountId, JiraFact>>,
    /// Emails Bitbucket's member filter resolved to accounts.
    pub member_emails: Option<&'a BTreeMap<AccountId, String>>,
    /// The emails of the organization's managed accounts; `None` when the organization is not
    /// configured or could not be read.
    pub org_emails: Option<&'a BTreeMap<AccountId, String>>,
    /// The override file.
    pub overrides: Option<&'a BTreeMap<AccountId, String>>,
    /// The accounts Bitbucket shows as `app_user` (apps, whatever Jira says or does not say).
    pub app_users: Option<&'a BTreeSet<AccountId>>,
    /// The matches stored before this pass.
    pub previous: Option<&'a BTreeMap<AccountId, Identity>>,
}

/// An email that changed (appeared, disappeared or was replaced) for an account that had a
/// match before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityChange {
    /// The account.
    pub account_id: AccountId,
    /// The email before.
    pub before: Option<String>,
    /// The source of the match before.
    pub before_source: IdentitySource,
    /// The email now.
    pub after: Option<String>,
    /// The source of the match now.
    pub after_source: IdentitySource,
}

/// The result of a matching pass.
#[derive(Debug, Default)]
pub struct MatchOutcome {
    /// One identity per account, in account order.
    pub identities: Vec<Identity>,
    /// The changed emails.
    pub changes: Vec<IdentityChange>,
}

/// Whether two emails name the same mailbox (ignoring case and surrounding blanks).
pub fn same_email(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Matches every account to an email, following the rules in the module documentation, at `now`.
pub fn match_identities(input: &MatchInput<'_>, now: DateTime<Utc>) -> MatchOutcome {
    let mut identities: Vec<Identity> = input
        .accounts
        .iter()
        .map(|id| match_one(input, id, now))
        .collect();
    mark_shared_emails(&mut identities);
    let changes = identities
        .iter()
        .filter_map(|new| {
            let old = input.previous?.get(&new.account_id)?;
            let same = match (&old.email, &new.email) {
                (Some(a), Some(b)) => same_email(a, b),
                (None, None) => true,
                _ => false,
            };
            (!same).then(|| IdentityChange {
                account_id: new.account_id.clone(),
                before: old.email.clone(),
                before_source: old.source,
                after: new.email.clone(),
                after_source: new.source,
            })
        })
        .collect();
    MatchOutcome {
        identities,
        changes,
    }
}

fn match_one(input: &MatchInput<'_>, id: &AccountId, now: DateTime<Utc>) -> Identity {
    let previous = input.previous.and_then(|p| p.get(id));
    let manual = input.overrides.and_then(|o| o.get(id));
    let jira = input.jira.and_then(|j| j.get(id));
    let org_email = input
        .org_emails
        .and_then(|o| o.get(id))
        .map(|e| (IdentitySource::AtlassianOrg, e.clone()));
    // A source that could not be read: what it said last time still stands, with its time,
    // unless a source above it speaks now.
    if manual.is_none() && org_email.is_none() {
        let unread = |source: IdentitySource| {
            (source == IdentitySource::AtlassianOrg && input.org_emails.is_none())
                || (source.is_jira() && input.jira.is_none())
        };
        if let Some(old) = previous.filter(|p| unread(p.source)) {
            let mut kept = old.clone();
            kept.conflicts
                .retain(|c| !matches!(c, Conflict::SharedEmail { .. }));
            return kept;
        }
    }
    let (active, mut account_type) = match (jira, previous) {
        (Some(j), _) => (Some(j.active), j.account_type),
        (None, Some(p)) if input.jira.is_none() => (p.active, p.account_type),
        _ => (None, AccountType::Unknown),
    };
    // Bitbucket's `app_user` type is structural: such an account is an app even when Jira does
    // not know it (apps often have no Jira user) or says nothing about its type.
    if input.app_users.is_some_and(|a| a.contains(id)) {
        account_type = AccountType::App;
    }
    let jira_email = jira.and_then(|j| j.email.clone().map(|e| (j.source, e)));
    let member_email = input
        .member_emails
        .and_then(|m| m.get(id))
        .map(|e| (IdentitySource::BitbucketMemberEmail, e.clone()));
    let mut conflicts = Vec::new();
    let below_org = || jira_email.iter().chain(member_email.iter());
    let (source, email) = if let Some(manual) = manual {
        for (source, email) in org_email.iter().chain(below_org()) {
            if !same_email(manual, email) {
                conflicts.push(Conflict::OverrideDisagrees {
                    source: *source,
                    email: email.clone(),
                });
            }
        }
        (IdentitySource::Manual, Some(manual.clone()))
    } else if let Some((_, org)) = &org_email {
        for (source, email) in below_org() {
            if !same_email(org, email) {
                conflicts.push(Conflict::OrgDisagrees {
                    source: *source,
                    email: email.clone(),
                });
            }
        }
        (IdentitySource::AtlassianOrg, Some(org.clone()))
    } else if let Some((source, email)) = jira_email.or(member_email) {
        (source, Some(email))
    } else if account_type == AccountType::App {
        (IdentitySource::App, None)
    } else {
        (IdentitySource::Unmatched, None)
    };
    if active == Some(false) && input.with_access.is_some_and(|w| w.contains(id)) {
        conflicts.push(Conflict::InactiveWithAccess);
    }
    // Without a fresh word from Jira, an unchanged match keeps the time it was made.
    let matched_at = match previous {
        Some(p) if input.jira.is_none() && p.source == source && p.email == email => p.matched_at,
        _ => now,
    };
    Identity {
        account_id: id.clone(),
        email,
        source,
        matched_at,
        active,
        account_type,
        conflicts,
    }
}

fn mark_shared_emails(identities: &mut [Identity]) {
    let mut by_email: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for identity in identities.iter() {
        if let Some(email) = &identity.email {
            by_email
                .entry(email.trim().to_ascii_lowercase())
                .or_default()
                .push(identity.account_id.to_string());
        }
    }
    for identity in identities.iter_mut() {
        let Some(email) = identity.email.clone() else {
            continue;
        };
        let claimants = &by_email[&email.trim().to_ascii_lowercase()];
        if claimants.len() > 1 {
            let me = identity.account_id.to_string();
            identity.conflicts.push(Conflict::SharedEmail {
                email,
                others: claimants.iter().filter(|c| **c != me).cloned().collect(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn id(s: &str) -> AccountId {
        AccountId::parse(s.to_owned()).expect("id")
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 3, 0, 0).unwrap()
    }

    fn fact(email: Option<&str>, active: bool) -> JiraFact {
        JiraFact {
            email: email.map(str::to_owned),
            active,
            account_type: AccountType::Atlassian,
            source: IdentitySource::JiraUsersSearch,
        }
    }

    #[test]
    fn override_wins_and_reports_the_disagreement() {
        let accounts = [id("a")];
        let jira = BTreeMap::from([(id("a"), fact(Some("a@jira.example"), true))]);
        let overrides = BTreeMap::from([(id("a"), "a@override.example".to_owned())]);
        let out = match_identities(
            &MatchInput {
                accounts: &accounts,
                jira: Some(&jira),
                overrides: Some(&overrides),
                ..MatchInput::default()
            },
            now(),
        );
        let a = &out.identities[0];
        assert_eq!(a.email.as_deref(), Some("a@override.example"));
        assert_eq!(a.source, IdentitySource::Manual);
        assert_eq!(
            a.conflicts,
            vec![Conflict::OverrideDisagrees {
                source: IdentitySource::JiraUsersSearch,
                email: "a@jira.example".into()
            }]
        );
    }

    #[test]
    fn the_organization_ranks_after_overrides_and_before_jira() {
        let accounts = [id("a"), id("b")];
        let jira = BTreeMap::from([
            (id("a"), fact(Some("a@jira.example"), true)),
            (id("b"), fact(Some("b@x.example"), true)),
        ]);
        let org = BTreeMap::from([
            (id("a"), "a@org.example".to_owned()),
            (id("b"), "B@x.example".to_owned()),
        ]);
        let input = MatchInput {
            accounts: &accounts,
            jira: Some(&jira),
            org_emails: Some(&org),
            ..MatchInput::default()
        };
        let out = match_identities(&input, now());
        let [a, b] = &out.identities[..] else {
            panic!("two identities")
        };
        assert_eq!(
            (a.source, a.email.as_deref()),
            (IdentitySource::AtlassianOrg, Some("a@org.example"))
        );
        assert_eq!(
            a.conflicts,
            vec![Conflict::OrgDisagrees {
                source: IdentitySource::JiraUsersSearch,
                email: "a@jira.example".into()
            }]
        );
        assert_eq!(b.source, IdentitySource::AtlassianOrg);
        assert!(b.conflicts.is_empty(), "{:?}", b.conflicts);

        let overrides = BTreeMap::from([(id("a"), "a@override.example".to_owned())]);
        let out = match_identities(
            &MatchInput {
                overrides: Some(&overrides),
                ..input
            },
            now(),
        );
        assert_eq!(out.identities[0].source, IdentitySource::Manual);
        assert_eq!(
            out.identities[0].conflicts[0],
            Conflict::OverrideDisagrees {
                source: IdentitySource::AtlassianOrg,
                email: "a@org.example".into()
            }
        );

        // The organization unreadable: its earlier matches stand, even against Jira.
        let previous: BTreeMap<AccountId, Identity> = match_identities(&input, now())
            .identities
            .into_iter()
            .map(|i| (i.account_id.clone(), i))
            .collect();
        let later = now() + chrono::Duration::hours(1);
        let out = match_identities(
            &MatchInput {
                org_emails: None,
                previous: Some(&previous),
                ..input
            },
            later,
        );
        assert_eq!(out.identities, previous.into_values().collect::<Vec<_>>());
        assert!(out.changes.is_empty());
    }

    #[test]
    fn a_hidden_email_stays_unmatched_and_its_disappearance_is_a_change() {
        let accounts = [id("a")];
        let jira = BTreeMap::from([(id("a"), fact(None, true))]);
        let previous = BTreeMap::from([(
            id("a"),
            Identity {
                account_id: id("a"),
                email: Some("a@x.example".into()),
                source: IdentitySource::JiraUsersSearch,
                matched_at: now(),
                active: Some(true),
                account_type: AccountType::Atlassian,
                conflicts: vec![],
            },
        )]);
        let out = match_identities(
            &MatchInput {
                accounts: &accounts,
                jira: Some(&jira),
                previous: Some(&previous),
                ..MatchInput::default()
            },
            now(),
        );
        assert_eq!(out.identities[0].email, None);
        assert_eq!(out.identities[0].source, IdentitySource::Unmatched);
        assert_eq!(out.changes.len(), 1);
        assert_eq!(out.changes[0].before.as_deref(), Some("a@x.example"));
    }

    #[test]
    fn jira_unreadable_keeps_the_previous_jira_match() {
        let accounts = [id("a")];
        let old = Identity {
            account_id: id("a"),
            email: Some("a@x.example".into()),
            source: IdentitySource::JiraUserBulk,
            matched_at: now() - chrono::Duration::days(3),
            active: Some(true),
            account_type: AccountType::Atlassian,
            conflicts: vec![],
        };
        let previous = BTreeMap::from([(id("a"), old.clone())]);
        let out = match_identities(
            &MatchInput {
                accounts: &accounts,
                previous: Some(&previous),
                ..MatchInput::default()
            },
            now(),
        );
        assert_eq!(out.identities, vec![old]);
        assert!(out.changes.is_empty());
    }

    #[test]
    fn an_app_user_is_an_app_not_an_unmatched_person() {
        let accounts = [id("bot"), id("person"), id("jira-app")];
        let app_users = BTreeSet::from([id("bot")]);
        // Jira knows neither the Bitbucket app user nor the person; it labels its own app.
        let mut app = fact(None, true);
        app.account_type = AccountType::App;
        let jira = BTreeMap::from([(id("jira-app"), app)]);
        let out = match_identities(
            &MatchInput {
                accounts: &accounts,
                jira: Some(&jira),
                app_users: Some(&app_users),
                ..MatchInput::default()
            },
            now(),
        );
        let [bot, person, jira_app] = &out.identities[..] else {
            panic!("three identities")
        };
        assert_eq!(
            (bot.source, bot.account_type),
            (IdentitySource::App, AccountType::App)
        );
        assert_eq!(
            (jira_app.source, jira_app.account_type),
            (IdentitySource::App, AccountType::App)
        );
        assert_eq!(person.source, IdentitySource::Unmatched);
        // An override still names an app's mailbox when someone wants one recorded.
        let overrides = BTreeMap::from([(id("bot"), "ci@x.example".to_owned())]);
        let out = match_identities(
            &MatchInput {
                accounts: &accounts[..1],
                overrides: Some(&overrides),
                app_users: Some(&app_users),
                ..MatchInput::default()
            },
            now(),
        );
        assert_eq!(out.identities[0].source, IdentitySource::Manual);
        assert_eq!(out.identities[0].account_type, AccountType::App);
    }

    #[test]
    fn two_accounts_with_one_email_and_inactive_access_are_conflicts() {
        let accounts = [id("a"), id("b")];
        let jira = BTreeMap::from([
            (id("a"), fact(Some("p@x.example"), true)),
            (id("b"), fact(Some("P@x.example"), false)),
        ]);
        let with_access = BTreeSet::from([id("b")]);
        let out = match_identities(
            &MatchInput {
                accounts: &accounts,
                jira: Some(&jira),
                with_access: Some(&with_access),
                ..MatchInput::default()
            },
            now(),
        );
        assert!(matches!(
            &out.identities[0].conflicts[..],
            [Conflict::SharedEmail { others, .. }] if others == &["b".to_owned()]
        ));
        assert!(out.identities[1]
            .conflicts
            .contains(&Conflict::InactiveWithAccess));
    }
}
