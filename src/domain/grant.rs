//! Grants: a request to give a principal a level on a repository or project (or a user a place
//! in a group), often for a while, and the rule that decides what stands when one ends.
//!
//! Only the records, their states and the pure restore rule live here; applying and ending grants
//! is the `grants` module's job. Time is always passed in, so expiry can be tested without a clock.
//!
//! A *slot* is one principal on one target. Bitbucket holds one explicit level per slot, so the
//! grants of a slot stack: Bitbucket should hold the highest of the slot's baseline (the level
//! that stood before the first grant) and the levels of the grants in force. When one ends, the
//! level that stands without it is put back; nothing at all when nothing stood before.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{GroupSlug, Principal, ProjectRef, RepoRef, WorkspaceSlug};
use super::levels::{LevelError, ProjectLevel, RepoLevel};

/// The store's id of a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GrantId(pub i64);

impl fmt::Display for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a grant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantState {
    /// The intent is stored; Bitbucket is not yet known to be changed.
    Pending,
    /// Applied in Bitbucket and in force.
    Active,
    /// In force without a change: the baseline or another grant already gave at least its level.
    Satisfied,
    /// Its end is decided; the restore is in progress or waits for a retry.
    Ending,
    /// Ended at its expiry; what stands without it was put back.
    Ended,
    /// Ended early by a revoke; what stands without it was put back.
    Revoked,
    /// Bitbucket refused it; nothing changed.
    Failed,
    /// Someone changed the level in Bitbucket meanwhile; the connector left it alone.
    Conflict,
}

impl GrantState {
    /// Every state.
    pub const ALL: &'static [GrantState] = &[
        GrantState::Pending,
        GrantState::Active,
        GrantState::Satisfied,
        GrantState::Ending,
        GrantState::Ended,
        GrantState::Revoked,
        GrantState::Failed,
        GrantState::Conflict,
    ];

    /// The states of a grant that gives its level now.
    pub const IN_FORCE: &'static [GrantState] = &[GrantState::Active, GrantState::Satisfied];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantState::Pending => "pending",
            GrantState::Active => "active",
            GrantState::Satisfied => "satisfied",
            GrantState::Ending => "ending",
            GrantState::Ended => "ended",
            GrantState::Revoked => "revoked",
            GrantState::Failed => "failed",
            GrantState::Conflict => "conflict",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(value: &str) -> Result<Self, LevelError> {
        Self::ALL
            .iter()
            .copied()
            .find(|s| s.as_str() == value)
            .ok_or_else(|| LevelError {
                kind: "grant state",
                value: value.to_owned(),
                expected: "pending active satisfied ending ended revoked failed conflict",
            })
    }

    /// Whether the grant is over (no further transition expected).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            GrantState::Ended | GrantState::Revoked | GrantState::Failed | GrantState::Conflict
        )
    }

    /// Whether the grant gives its level now (active or satisfied).
    pub fn is_in_force(self) -> bool {
        Self::IN_FORCE.contains(&self)
    }
}

impl fmt::Display for GrantState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A level a grant gives, over every kind of target, weakest first so "the highest of" is `max`.
///
/// Repositories take `read|write|admin`, projects also `create-repo`; a group membership is
/// `member` (its absence, `None`, is "not a member").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum GrantLevel {
    /// Read.
    #[serde(rename = "read")]
    Read,
    /// Write.
    #[serde(rename = "write")]
    Write,
    /// Projects only: create repositories (and write on the project's repositories).
    #[serde(rename = "create-repo")]
    CreateRepo,
    /// Admin.
    #[serde(rename = "admin")]
    Admin,
    /// Group membership.
    #[serde(rename = "member")]
    Member,
}

impl GrantLevel {
    /// Every level.
    pub const ALL: &'static [GrantLevel] = &[
        GrantLevel::Read,
        GrantLevel::Write,
        GrantLevel::CreateRepo,
        GrantLevel::Admin,
        GrantLevel::Member,
    ];

    /// The stored (and Bitbucket's) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantLevel::Read => "read",
            GrantLevel::Write => "write",
            GrantLevel::CreateRepo => "create-repo",
            GrantLevel::Admin => "admin",
            GrantLevel::Member => "member",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(value: &str) -> Result<Self, LevelError> {
        Self::ALL
            .iter()
            .copied()
            .find(|l| l.as_str() == value)
            .ok_or_else(|| LevelError {
                kind: "grant level",
                value: value.to_owned(),
                expected: "read write create-repo admin member",
            })
    }

    /// The project level this is, if it is one.
    pub fn project_level(self) -> Option<ProjectLevel> {
        ProjectLevel::parse(self.as_str()).ok()
    }

    /// The repository level this is, if it is one.
    pub fn repo_level(self) -> Option<RepoLevel> {
        RepoLevel::parse(self.as_str()).ok()
    }
}

impl From<RepoLevel> for GrantLevel {
    fn from(level: RepoLevel) -> Self {
        match level {
            RepoLevel::Read => GrantLevel::Read,
            RepoLevel::Write => GrantLevel::Write,
            RepoLevel::Admin => GrantLevel::Admin,
        }
    }
}

impl From<ProjectLevel> for GrantLevel {
    fn from(level: ProjectLevel) -> Self {
        match level {
            ProjectLevel::Read => GrantLevel::Read,
            ProjectLevel::Write => GrantLevel::Write,
            ProjectLevel::CreateRepo => GrantLevel::CreateRepo,
            ProjectLevel::Admin => GrantLevel::Admin,
        }
    }
}

impl fmt::Display for GrantLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a grant changes: a permission on a repository or project, or a group's membership.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GrantTarget {
    /// The explicit permission on one repository.
    Repository {
        /// The repository.
        repository: RepoRef,
    },
    /// The explicit permission on one project.
    Project {
        /// The project.
        project: ProjectRef,
    },
    /// Membership of one workspace group (the principal is a user).
    GroupMembership {
        /// The workspace of the group.
        workspace: WorkspaceSlug,
        /// The group.
        group: GroupSlug,
    },
}

impl GrantTarget {
    /// The stored kind.
    pub fn kind(&self) -> &'static str {
        match self {
            GrantTarget::Repository { .. } => "repository",
            GrantTarget::Project { .. } => "project",
            GrantTarget::GroupMembership { .. } => "group_membership",
        }
    }

    /// The workspace the target lives in.
    pub fn workspace(&self) -> &WorkspaceSlug {
        match self {
            GrantTarget::Repository { repository } => &repository.workspace,
            GrantTarget::Project { project } => &project.workspace,
            GrantTarget::GroupMembership { workspace, .. } => workspace,
        }
    }

    /// The key within the workspace (repository slug, project key, group slug).
    pub fn key(&self) -> &str {
        match self {
            GrantTarget::Repository { repository } => repository.slug.as_str(),
            GrantTarget::Project { project } => project.key.as_str(),
            GrantTarget::GroupMembership { group, .. } => group.as_str(),
        }
    }

    /// Whether `level` can be given on this target.
    pub fn accepts(&self, level: GrantLevel) -> bool {
        match self {
            GrantTarget::Repository { .. } => level.repo_level().is_some(),
            GrantTarget::Project { .. } => level.project_level().is_some(),
            GrantTarget::GroupMembership { .. } => level == GrantLevel::Member,
        }
    }
}

impl fmt::Display for GrantTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantTarget::Repository { repository } => write!(f, "repository {repository}"),
            GrantTarget::Project { project } => write!(f, "project {project}"),
            GrantTarget::GroupMembership { workspace, group } => {
                write!(f, "group {workspace}/{group}")
            }
        }
    }
}

/// One principal on one target: the unit Bitbucket holds one explicit level for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SlotKey {
    /// Who.
    pub principal: Principal,
    /// On what.
    pub target: GrantTarget,
}

impl SlotKey {
    /// A stable text key, unique per slot (the store's primary key).
    pub fn as_key(&self) -> String {
        let who = match &self.principal {
            Principal::User { account_id } => format!("user:{account_id}"),
            Principal::Group { slug } => format!("group:{slug}"),
        };
        format!(
            "{who}|{}:{}/{}",
            self.target.kind(),
            self.target.workspace(),
            self.target.key()
        )
    }
}

impl fmt::Display for SlotKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.principal, self.target)
    }
}

/// How a grant ends: at its expiry or by a revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndKind {
    /// At its expiry (final state `ended`).
    Expired,
    /// Early, by `revoke` (final state `revoked`).
    Revoked,
}

impl EndKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EndKind::Expired => "expired",
            EndKind::Revoked => "revoked",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "expired" => Some(EndKind::Expired),
            "revoked" => Some(EndKind::Revoked),
            _ => None,
        }
    }

    /// The state a grant ends in.
    pub fn final_state(self) -> GrantState {
        match self {
            EndKind::Expired => GrantState::Ended,
            EndKind::Revoked => GrantState::Revoked,
        }
    }
}

/// A grant as it is about to be recorded (the store assigns the id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewGrant {
    /// Who receives it.
    pub principal: Principal,
    /// What it changes.
    pub target: GrantTarget,
    /// The level it gives.
    pub level: GrantLevel,
    /// The slot's baseline when it began (`None`: nothing stood).
    pub baseline: Option<GrantLevel>,
    /// The level Bitbucket should hold while it is in force (the highest of the slot).
    pub planned: Option<GrantLevel>,
    /// Who asked for it.
    pub requested_by: String,
    /// Why (free text).
    pub reason: Option<String>,
    /// The ticket it answers (`SEC-123`).
    pub ticket: Option<String>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When it takes effect.
    pub starts_at: DateTime<Utc>,
    /// When it ends; `None` for a standing grant.
    pub expires_at: Option<DateTime<Utc>>,
    /// The initial state, normally [`GrantState::Pending`].
    pub state: GrantState,
}

/// A recorded grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The store's id.
    pub id: GrantId,
    /// Who receives it.
    pub principal: Principal,
    /// What it changes.
    pub target: GrantTarget,
    /// The level it gives.
    pub level: GrantLevel,
    /// The slot's baseline when it began.
    pub baseline: Option<GrantLevel>,
    /// The level Bitbucket should hold while it is in force.
    pub planned: Option<GrantLevel>,
    /// Who asked for it.
    pub requested_by: String,
    /// Why (free text).
    pub reason: Option<String>,
    /// The ticket it answers.
    pub ticket: Option<String>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When it takes effect.
    pub starts_at: DateTime<Utc>,
    /// When it ends; `None` for a standing grant.
    pub expires_at: Option<DateTime<Utc>>,
    /// Where it stands.
    pub state: GrantState,
    /// When the state last changed.
    pub updated_at: DateTime<Utc>,
    /// How it ends, once its end is decided.
    pub end_kind: Option<EndKind>,
    /// Failed restore attempts so far.
    pub attempts: u32,
    /// The earliest time of the next restore attempt after a failure.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl Grant {
    /// The slot the grant acts on.
    pub fn slot(&self) -> SlotKey {
        SlotKey {
            principal: self.principal.clone(),
            target: self.target.clone(),
        }
    }

    /// Whether the grant should be ended at `now` (in force and past its expiry).
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.state.is_in_force() && self.expires_at.is_some_and(|at| at <= now)
    }
}

/// The level Bitbucket should hold on a slot: the highest of its baseline and the levels of the
/// grants in force. `None` means no explicit permission (or no membership) at all.
pub fn standing_level(
    baseline: Option<GrantLevel>,
    in_force: impl IntoIterator<Item = GrantLevel>,
) -> Option<GrantLevel> {
    in_force.into_iter().map(Some).fold(baseline, Ord::max)
}

/// What to do to give a new grant of `level`: `None` when the slot already stands at least that
/// high (the grant is satisfied, no call), else the level to set.
pub fn raise_to(
    baseline: Option<GrantLevel>,
    in_force: impl IntoIterator<Item = GrantLevel>,
    level: GrantLevel,
) -> Option<GrantLevel> {
    let now = standing_level(baseline, in_force);
    (now < Some(level)).then_some(level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn states_roundtrip_and_final_states_are_named() {
        for state in GrantState::ALL {
            assert_eq!(GrantState::parse(state.as_str()), Ok(*state));
        }
        assert!(GrantState::Ended.is_final());
        assert!(!GrantState::Active.is_final());
        assert!(GrantState::Satisfied.is_in_force());
        assert!(!GrantState::Ending.is_in_force());
        assert!(GrantState::parse("expired").is_err());
        for level in GrantLevel::ALL {
            assert_eq!(GrantLevel::parse(level.as_str()), Ok(*level));
        }
    }

    #[test]
    fn overlapping_grants_stand_at_the_highest_then_fall_back() {
        use GrantLevel::*;
        // A standing read, write for an hour and admin for ten minutes.
        assert_eq!(standing_level(Some(Read), [Write, Admin]), Some(Admin));
        assert_eq!(standing_level(Some(Read), [Write]), Some(Write));
        assert_eq!(standing_level(Some(Read), []), Some(Read));
        assert_eq!(standing_level(None, []), None);
        assert_eq!(raise_to(Some(Admin), [], Write), None);
        assert_eq!(raise_to(Some(Read), [Write], Admin), Some(Admin));
        assert_eq!(raise_to(None, [], Member), Some(Member));
    }

    fn level() -> impl Strategy<Value = GrantLevel> {
        prop::sample::select(vec![
            GrantLevel::Read,
            GrantLevel::Write,
            GrantLevel::CreateRepo,
            GrantLevel::Admin,
        ])
    }

    proptest! {
        /// Granting and then ending every grant, in any order, leaves the baseline; and at every
        /// step Bitbucket never holds less than the baseline nor less than any grant in force.
        #[test]
        fn ending_every_grant_in_any_order_restores_the_baseline(
            baseline in prop::option::of(level()),
            grants in prop::collection::vec(level(), 0..6),
            order in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut in_force: Vec<GrantLevel> = Vec::new();
            let mut held = baseline;
            for g in &grants {
                if let Some(set) = raise_to(baseline, in_force.iter().copied(), *g) {
                    held = Some(set);
                }
                in_force.push(*g);
                prop_assert_eq!(held, standing_level(baseline, in_force.iter().copied()));
            }
            for idx in order {
                if in_force.is_empty() { break; }
                in_force.remove(idx.index(in_force.len()));
                held = standing_level(baseline, in_force.iter().copied());
                prop_assert!(held >= baseline);
                for g in &in_force { prop_assert!(held >= Some(*g)); }
            }
            in_force.clear();
            prop_assert_eq!(standing_level(baseline, in_force), baseline);
        }
    }
}
