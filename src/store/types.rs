//! The values the store takes and gives: facts (keyed by [`ListingKey`], in `key.rs`), the
//! mass-change guard, replace outcomes, freshness, sync runs and audit entries. None of them
//! holds an sqlx type.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{
    Account, DriftEvent, GroupSlug, ProjectKey, ProjectLevel, RepoLevel, RepoSlug, WorkspaceRole,
    WorkspaceSlug,
};

use super::error::StoreError;
pub use super::key::ListingKey;

/// One item of a listing. Its scope (workspace, project, repository, group) comes from the
/// [`ListingKey`] it is passed with; the variant must match the listing.
///
/// Facts naming an account carry the account's profile, which the store upserts (without drift:
/// a changed display name is not a change of access).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Fact {
    /// The workspace's attributes.
    Workspace {
        /// Bitbucket's UUID.
        uuid: Option<String>,
        /// Display name.
        name: String,
        /// Privacy.
        is_private: bool,
    },
    /// A member of the workspace with its role.
    WorkspaceMember {
        /// The member.
        account: Account,
        /// The role.
        role: WorkspaceRole,
    },
    /// A project.
    Project {
        /// Key.
        key: ProjectKey,
        /// Bitbucket's UUID.
        uuid: Option<String>,
        /// Display name.
        name: String,
        /// Privacy.
        is_private: bool,
    },
    /// A repository.
    Repository {
        /// Slug.
        slug: RepoSlug,
        /// Bitbucket's UUID.
        uuid: Option<String>,
        /// Display name.
        name: String,
        /// Its project.
        project: Option<ProjectKey>,
        /// Privacy.
        is_private: bool,
    },
    /// A group.
    Group {
        /// Slug.
        slug: GroupSlug,
        /// Display name.
        name: String,
    },
    /// A member of the listing's group.
    GroupMember {
        /// The member.
        account: Account,
    },
    /// An explicit user permission on the listing's project.
    ProjectUserPermission {
        /// The user.
        account: Account,
        /// The level.
        level: ProjectLevel,
    },
    /// An explicit group permission on the listing's project.
    ProjectGroupPermission {
        /// The group.
        group: GroupSlug,
        /// The level.
        level: ProjectLevel,
    },
    /// An explicit user permission on the listing's repository.
    RepositoryUserPermission {
        /// The user.
        account: Account,
        /// The level.
        level: RepoLevel,
    },
    /// An explicit group permission on the listing's repository.
    RepositoryGroupPermission {
        /// The group.
        group: GroupSlug,
        /// The level.
        level: RepoLevel,
    },
}

/// A change the connector made itself and expects the next read of the listing to show.
///
/// A difference matching one is applied without a drift event. `item` is the account id or
/// group slug (or the project key, repository slug, group slug for the entity listings), and
/// `level` the level now expected, `None` when the item was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedChange {
    /// The item within the listing.
    pub item: String,
    /// The level the connector set, `None` when it removed the item.
    pub level: Option<String>,
}

/// A request to replace one listing with its complete new content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplaceListing {
    /// Which listing.
    pub key: ListingKey,
    /// Its complete content, as just read. Duplicates are merged (the last one wins).
    pub facts: Vec<Fact>,
    /// When the read completed.
    pub observed_at: DateTime<Utc>,
    /// How many requests the read cost (pages).
    pub cost_requests: u64,
    /// The sync run that read it, so an interrupted run can tell what it already did.
    pub run: Option<SyncRunId>,
    /// Changes the connector made itself since the last read (not drift).
    pub expected: Vec<ExpectedChange>,
    /// Record drift even on the listing's first complete read: set for the permissions and
    /// members of a repository, project or group that appeared out of band after its workspace
    /// was first read, whose every fact is then a change nobody asked the connector for.
    pub baseline_is_drift: bool,
    /// Hold back a replace that would remove most of the stored facts (`None`: no guard).
    pub guard: Option<MassChangeGuard>,
    /// The facts are the stored listing with a few of its items read anew (a targeted
    /// refresh of one repository or project): their changes are recorded like any other, but
    /// the listing's freshness stays as it was, because its other items were not read.
    pub partial: bool,
    /// The organization audit-log events whose refresh read this listing: each drift entry
    /// names the one that explains it ([`crate::domain::pick_attribution`]), and a change the
    /// connector's own account made is not drift.
    pub attribution: Vec<crate::domain::Attribution>,
}

/// Holds back a replace that would remove more than `max_percent` percent of a listing's
/// stored facts, and at least `min_count` of them: one glitch (a complete but empty page)
/// must not wipe a workspace. A held replace changes no fact, leaves the listing's freshness
/// as it was, and records a `held_change` audit entry; `accept` lets it through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MassChangeGuard {
    /// The share of stored facts a replace may remove, in percent; more is held.
    pub max_percent: u8,
    /// Removals below this count are never held.
    pub min_count: u64,
    /// Apply even a mass change (the operator confirmed it).
    pub accept: bool,
}

impl Default for MassChangeGuard {
    fn default() -> Self {
        Self {
            max_percent: 50,
            min_count: 10,
            accept: false,
        }
    }
}

impl MassChangeGuard {
    /// Whether removing `would_remove` of `stored` facts must be held.
    pub fn holds(&self, would_remove: u64, stored: u64) -> bool {
        !self.accept
            && would_remove >= self.min_count
            && u128::from(would_remove) * 100 > u128::from(stored) * u128::from(self.max_percent)
    }
}

/// A replace the [`MassChangeGuard`] held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldChange {
    /// How many stored facts the replace would have removed.
    pub would_remove: u64,
    /// How many facts the listing holds (and keeps).
    pub stored: u64,
}

impl ReplaceListing {
    /// A request with no run and no expected changes.
    pub fn new(key: ListingKey, facts: Vec<Fact>, observed_at: DateTime<Utc>) -> Self {
        Self {
            key,
            facts,
            observed_at,
            cost_requests: 1,
            run: None,
            expected: Vec::new(),
            baseline_is_drift: false,
            guard: None,
            partial: false,
            attribution: Vec::new(),
        }
    }
}

/// What a replace changed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReplaceOutcome {
    /// Facts that were not stored before.
    pub inserted: u64,
    /// Facts whose attributes changed.
    pub updated: u64,
    /// Facts that disappeared.
    pub deleted: u64,
    /// Dependent rows removed with a deleted repository, project or group (its permissions,
    /// members and freshness), which Bitbucket removes with it.
    pub cascaded: u64,
    /// Account rows inserted or updated from the profiles the facts carried.
    pub accounts_written: u64,
    /// Whether this was the listing's first complete read (a baseline: no drift is recorded).
    pub baseline: bool,
    /// The differences the connector did not cause, each also written to the audit log.
    pub drift: Vec<DriftEvent>,
    /// Entity and audit rows written (freshness bookkeeping is not counted). Zero when nothing
    /// changed.
    pub rows_written: u64,
    /// Set when the guard held the replace back: then nothing else changed.
    pub held: Option<HeldChange>,
}

/// What the store knows about the last complete read of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingFreshness {
    /// Which listing.
    pub key: ListingKey,
    /// When it was last read completely.
    pub read_at: DateTime<Utc>,
    /// What that read cost in requests.
    pub cost_requests: u64,
    /// How many facts it held.
    pub item_count: u64,
    /// A resume cursor saved by an interrupted read, if any.
    pub cursor: Option<String>,
    /// The sync run that read it last.
    pub last_run: Option<SyncRunId>,
}

/// The last failed read of a listing, kept until a complete read replaces the listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingFailure {
    /// Which listing.
    pub key: ListingKey,
    /// When the read failed.
    pub failed_at: DateTime<Utc>,
    /// Why (already free of secrets: the caller scrubs what it passes).
    pub message: String,
}

/// Bitbucket's last refusal of a workspace's group-privileges sweep (403, 404, 410 or an answer
/// of an unexpected shape): the sync reads group permissions per repository until it is old
/// enough to ask again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepRefusal {
    /// When Bitbucket refused it.
    pub refused_at: DateTime<Utc>,
    /// Why, as the run's summary said it (free of secrets).
    pub reason: String,
}

/// A listing the sync should read, with its age: `read_at` is `None` when it was never read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingStatus {
    /// Which listing.
    pub key: ListingKey,
    /// When it was last read completely, `None` if never.
    pub read_at: Option<DateTime<Utc>>,
    /// What the last read cost, `None` if never read.
    pub cost_requests: Option<u64>,
}

/// The store's id of a sync run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SyncRunId(pub i64);

impl fmt::Display for SyncRunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How a sync run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncOutcome {
    /// Every planned listing was read.
    Complete,
    /// The budget ran out; some listings keep older facts.
    Partial,
    /// The run failed.
    Failed,
}

impl SyncOutcome {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncOutcome::Complete => "complete",
            SyncOutcome::Partial => "partial",
            SyncOutcome::Failed => "failed",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(value: &str) -> Result<Self, StoreError> {
        match value {
            "complete" => Ok(SyncOutcome::Complete),
            "partial" => Ok(SyncOutcome::Partial),
            "failed" => Ok(SyncOutcome::Failed),
            other => Err(StoreError::Corrupt {
                what: "sync outcome",
                detail: format!("{other:?}"),
            }),
        }
    }
}

/// The end of a sync run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRunFinish {
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// How.
    pub outcome: SyncOutcome,
    /// Counts by name (entities, changes, drift...), free form.
    pub counts: serde_json::Value,
    /// Requests made.
    pub requests_used: u64,
    /// Requests a complete read would need at 100 items per page.
    pub minimum_requests: u64,
}

/// A recorded sync run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRun {
    /// Its id.
    pub id: SyncRunId,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The workspaces it covers.
    pub workspaces: Vec<WorkspaceSlug>,
    /// When it ended, `None` while running or after an interruption.
    pub finished_at: Option<DateTime<Utc>>,
    /// How it ended.
    pub outcome: Option<SyncOutcome>,
    /// Counts by name.
    pub counts: serde_json::Value,
    /// Requests made.
    pub requests_used: u64,
    /// Requests a complete read would need.
    pub minimum_requests: u64,
}

/// The kind of an audit entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// A change observed in Bitbucket that the connector did not make.
    Drift,
    /// The connector granted a level.
    Grant,
    /// The connector revoked or restored a level.
    Revoke,
    /// A grant ended at its expiry.
    Expire,
    /// A grant met a level changed by someone else.
    Conflict,
    /// A sync run started or ended.
    Sync,
    /// An identity match was made or changed.
    Identity,
    /// A replace that would have removed most of a listing was held back.
    HeldChange,
    /// An audit report was produced and stored.
    Audit,
}

impl AuditKind {
    /// Every kind.
    pub const ALL: &'static [AuditKind] = &[
        AuditKind::Drift,
        AuditKind::Grant,
        AuditKind::Revoke,
        AuditKind::Expire,
        AuditKind::Conflict,
        AuditKind::Sync,
        AuditKind::Identity,
        AuditKind::HeldChange,
        AuditKind::Audit,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Drift => "drift",
            AuditKind::Grant => "grant",
            AuditKind::Revoke => "revoke",
            AuditKind::Expire => "expire",
            AuditKind::Conflict => "conflict",
            AuditKind::Sync => "sync",
            AuditKind::Identity => "identity",
            AuditKind::HeldChange => "held_change",
            AuditKind::Audit => "audit",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(value: &str) -> Result<Self, StoreError> {
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == value)
            .ok_or_else(|| StoreError::Corrupt {
                what: "audit kind",
                detail: format!("{value:?}"),
            })
    }
}

/// An audit entry about to be appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAuditEntry {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who did it (`sync`, `bitbucket` for drift, a user's email for a grant).
    pub actor: String,
    /// What kind of event.
    pub kind: AuditKind,
    /// What it is about (`repository_user_permission acme/payments-api 557058:…`).
    pub subject: String,
    /// The state before, if any.
    pub before: Option<serde_json::Value>,
    /// The state after, if any.
    pub after: Option<serde_json::Value>,
    /// Anything else (listing, grant id, ticket...).
    pub details: serde_json::Value,
}

/// The store's id of an audit entry; ids grow with insertion order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuditId(pub i64);

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Its id.
    pub id: AuditId,
    /// The entry.
    #[serde(flatten)]
    pub entry: NewAuditEntry,
}

/// Which audit entries to list. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only these kinds.
    pub kinds: Vec<AuditKind>,
    /// Only entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only entries before this time.
    pub until: Option<DateTime<Utc>>,
    /// At most this many entries (oldest first).
    pub limit: Option<u64>,
}
