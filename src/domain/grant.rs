//! Grants: a request to give a principal a level on a repository or project, often for a while.
//!
//! Only the record and its states live here; applying and expiring grants is the grants module's
//! job. Time is always passed in, so expiry can be tested without a clock.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{Principal, ProjectRef, RepoRef};
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
    /// Recorded, not yet applied in Bitbucket.
    Pending,
    /// Applied in Bitbucket and in force.
    Active,
    /// Bitbucket already gave the principal the level (nothing to apply).
    Satisfied,
    /// Past its expiry; the baseline is being put back.
    Ending,
    /// Ended at its expiry; the baseline was put back.
    Ended,
    /// Ended early by a revoke; the baseline was put back.
    Revoked,
    /// Bitbucket refused it.
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
}

impl fmt::Display for GrantState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a grant gives, with the level that stood before it (the baseline to restore).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GrantTarget {
    /// A level on one repository.
    Repository {
        /// The repository.
        repository: RepoRef,
        /// The granted level.
        level: RepoLevel,
        /// The explicit level the principal had before, if any.
        baseline: Option<RepoLevel>,
    },
    /// A level on one project.
    Project {
        /// The project.
        project: ProjectRef,
        /// The granted level.
        level: ProjectLevel,
        /// The explicit level the principal had before, if any.
        baseline: Option<ProjectLevel>,
    },
}

/// A grant as it is about to be recorded (the store assigns the id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewGrant {
    /// Who receives it.
    pub principal: Principal,
    /// What it gives.
    pub target: GrantTarget,
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
    /// What it gives.
    pub target: GrantTarget,
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
}

impl Grant {
    /// Whether the grant should be ended at `now` (active and past its expiry).
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.state == GrantState::Active && self.expires_at.is_some_and(|at| at <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_roundtrip_and_final_states_are_named() {
        for state in GrantState::ALL {
            assert_eq!(GrantState::parse(state.as_str()), Ok(*state));
        }
        assert!(GrantState::Ended.is_final());
        assert!(!GrantState::Active.is_final());
        assert!(GrantState::parse("done").is_err());
    }
}
