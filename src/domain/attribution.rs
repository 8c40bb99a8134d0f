//! Who made a change: the organization audit-log event a targeted refresh was started by, and
//! the rule that picks, for one drifted fact, the event that explains it.
//!
//! A refresh reads whole listings, so one listing may show several changes, made by several
//! people, and several events may name it. The rule prefers the event that names the fact's
//! principal (the user or group whose permission or membership changed); an event that names
//! someone else explains nothing about this fact unless no event names anybody it could be.
//! Changes the connector's own account made (its grants and restores, as the audit log shows
//! them) are recognised here and are not drift.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::FactKey;

/// The audit-log event behind a refresh, and who made the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    /// The event's id in the organization's audit log.
    pub event_id: String,
    /// When the change happened, as the audit log says.
    pub event_time: DateTime<Utc>,
    /// The actor's Atlassian account id.
    pub actor_account_id: String,
    /// The actor's display name.
    pub actor_name: String,
    /// Whether an API token made the change (else a browser session).
    pub api_token: bool,
    /// The accounts and groups the event names (account ids, group slugs), to match facts.
    #[serde(skip)]
    pub names: Vec<String>,
    /// Whether the actor is the connector's own account: its changes are not drift.
    #[serde(skip)]
    pub own: bool,
}

/// The principal a fact is about: an account id or a group slug; `None` for a repository,
/// project, group or workspace itself.
fn principal(key: &FactKey) -> Option<String> {
    match key {
        FactKey::WorkspaceMember { account, .. }
        | FactKey::GroupMember { account, .. }
        | FactKey::ProjectUserPermission { account, .. }
        | FactKey::RepositoryUserPermission { account, .. } => Some(account.to_string()),
        FactKey::ProjectGroupPermission { group, .. }
        | FactKey::RepositoryGroupPermission { group, .. } => Some(group.to_string()),
        FactKey::Workspace { .. }
        | FactKey::Project { .. }
        | FactKey::Repository { .. }
        | FactKey::Group { .. } => None,
    }
}

/// The event that explains a change of `key`, among the events whose refresh read its
/// listing: the latest one naming the fact's principal; else, for a fact without a principal
/// or when no event names it, the latest event by someone other than the connector. `None`
/// when nothing explains it (the change is drift without an actor).
pub fn pick<'a>(key: &FactKey, candidates: &'a [Attribution]) -> Option<&'a Attribution> {
    let latest = |it: &mut dyn Iterator<Item = &'a Attribution>| {
        it.max_by(|a, b| {
            a.event_time
                .cmp(&b.event_time)
                .then(a.event_id.cmp(&b.event_id))
        })
    };
    match principal(key) {
        Some(who) => latest(&mut candidates.iter().filter(|a| a.names.contains(&who)))
            // An own event names its own principal; another principal's change next to it is
            // somebody else's, never the connector's.
            .or_else(|| latest(&mut candidates.iter().filter(|a| !a.own))),
        None => latest(&mut candidates.iter()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountId, RepoRef, RepoSlug, WorkspaceSlug};

    fn at(id: &str, secs: i64, names: &[&str], own: bool) -> Attribution {
        Attribution {
            event_id: id.into(),
            event_time: DateTime::from_timestamp(secs, 0).unwrap(),
            actor_account_id: if own { "me" } else { "them" }.into(),
            actor_name: "X".into(),
            api_token: own,
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            own,
        }
    }

    fn repo() -> RepoRef {
        RepoRef {
            workspace: WorkspaceSlug::parse("acme".to_owned()).unwrap(),
            slug: RepoSlug::parse("api".to_owned()).unwrap(),
        }
    }

    fn user_perm(account: &str) -> FactKey {
        FactKey::RepositoryUserPermission {
            repository: repo(),
            account: AccountId::parse(account.to_owned()).unwrap(),
        }
    }

    #[test]
    fn the_event_naming_the_principal_wins_over_a_later_one() {
        let events = [at("e1", 10, &["u1"], false), at("e2", 20, &["u2"], true)];
        assert_eq!(pick(&user_perm("u1"), &events).unwrap().event_id, "e1");
        assert!(pick(&user_perm("u2"), &events).unwrap().own);
    }

    #[test]
    fn an_own_event_never_explains_another_principals_change() {
        let events = [at("e2", 20, &["u2"], true)];
        assert_eq!(pick(&user_perm("u9"), &events), None);
        let with_other = [at("e1", 10, &["u1"], false), at("e2", 20, &["u2"], true)];
        assert_eq!(pick(&user_perm("u9"), &with_other).unwrap().event_id, "e1");
    }

    #[test]
    fn a_fact_without_principal_takes_the_latest_event() {
        let events = [at("e1", 10, &[], false), at("e3", 30, &[], false)];
        let key = FactKey::Repository { repository: repo() };
        assert_eq!(pick(&key, &events).unwrap().event_id, "e3");
        assert_eq!(pick(&key, &[]), None);
    }
}
