//! What a run tells its caller: the report, its parts, and the figures read back from the store
//! at the end of a run (entities per workspace, the age of the oldest fact).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::sweep::GroupPermissionsSource;
use super::SyncError;
use crate::domain::WorkspaceSlug;
use crate::store::{HeldWorkspace, ListingKey, ReplaceOutcome, Store, SyncOutcome};

/// A listing that could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The listing (`repo:acme/api:users`).
    pub listing: String,
    /// What went wrong, with Bitbucket's hint.
    pub error: String,
}

/// A disagreement between the computed effective access and Bitbucket's own.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// The repository (`acme/api`).
    pub repository: String,
    /// The account.
    pub account_id: String,
    /// What the stored facts give, `None` for nothing.
    pub computed: Option<String>,
    /// What Bitbucket reports, `None` for nothing.
    pub bitbucket: Option<String>,
}

/// A workspace left to another run that holds it (not a failure).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Held {
    /// The workspace.
    pub workspace: String,
    /// The run holding it.
    pub run: i64,
    /// That run's owner (`host/pid/random`).
    pub owner: String,
}

impl From<&HeldWorkspace> for Held {
    fn from(h: &HeldWorkspace) -> Self {
        Held {
            workspace: h.workspace.to_string(),
            run: h.run.0,
            owner: h.owner.to_string(),
        }
    }
}

/// A complete listing whose replacement the mass-change guard held back: it would have removed
/// most of what the store holds for it, so the stored facts stay until an operator accepts it
/// (`sync --accept-mass-change`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HeldListing {
    /// The listing (`repos:acme`).
    pub listing: String,
    /// Stored facts the replacement would have removed.
    pub would_remove: u64,
    /// Stored facts of the listing (kept).
    pub stored: u64,
}

/// Figures of one workspace.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkspaceSummary {
    /// The slug.
    pub workspace: String,
    /// Listings read completely in this run.
    pub listings_read: u64,
    /// Listings left for a later run by the budget.
    pub listings_deferred: u64,
    /// Whether the 1.0 groups API answered.
    pub groups_available: bool,
    /// Where the group permissions of the repositories came from: `sweep` (one
    /// group-privileges request) or `per_repository`.
    pub group_permissions_source: GroupPermissionsSource,
    /// Why the sweep was not used, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_permissions_note: Option<String>,
    /// Entities stored after the run, by kind.
    pub entities: BTreeMap<String, u64>,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// The run's id in the store.
    pub run: i64,
    /// Whether the run took over an interrupted one.
    pub resumed: bool,
    /// How it ended.
    pub outcome: SyncOutcome,
    /// Per workspace read by this run.
    pub workspaces: Vec<WorkspaceSummary>,
    /// Workspaces another live run holds, skipped by this one.
    pub held: Vec<Held>,
    /// Requests sent to Bitbucket by this run.
    pub requests_used: u64,
    /// Requests a complete read of every listing needs (its pages at 100 per page).
    pub minimum_requests: u64,
    /// Facts inserted, updated and deleted.
    pub inserted: u64,
    /// Facts whose attributes changed.
    pub updated: u64,
    /// Facts that disappeared.
    pub deleted: u64,
    /// Drift events recorded.
    pub drift: u64,
    /// Entity and audit rows written (0 when nothing changed).
    pub rows_written: u64,
    /// Listings that could not be read.
    pub failures: Vec<Failure>,
    /// Listings whose mass removal was held back (their stored facts stay).
    pub mass_changes_held: Vec<HeldListing>,
    /// Cross-check disagreements.
    pub findings: Vec<Finding>,
    /// Repositories cross-checked.
    pub cross_checked: u64,
    /// Age of the oldest stored fact after the run, in seconds (`None` when a listing was never
    /// read at all).
    pub oldest_fact_age_seconds: Option<i64>,
    /// Listings never read completely yet.
    pub never_read: u64,
    /// Wall time.
    pub duration_ms: u128,
}

/// What the store changed over a run.
#[derive(Default)]
pub(super) struct Totals {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub drift: u64,
    pub rows_written: u64,
    /// Pages of the structural listings (the workspace, members, projects, repositories,
    /// groups), whether or not a resumed run skipped storing them.
    pub structural_pages: u64,
    /// Listings the mass-change guard held back.
    pub held: Vec<HeldListing>,
}

impl Totals {
    pub fn add(&mut self, key: &ListingKey, o: &ReplaceOutcome) {
        if let Some(h) = o.held {
            self.held.push(HeldListing {
                listing: key.to_string(),
                would_remove: h.would_remove,
                stored: h.stored,
            });
        }
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.deleted += o.deleted;
        self.drift += o.drift.len() as u64;
        self.rows_written += o.rows_written;
    }
}

/// The stored entities of a workspace, by kind.
pub(super) async fn entity_counts(
    store: &dyn Store,
    ws: &WorkspaceSlug,
) -> Result<BTreeMap<String, u64>, SyncError> {
    let facts = store.workspace_facts(ws).await?;
    let mut out = BTreeMap::new();
    out.insert("members".into(), facts.members.len() as u64);
    out.insert("repositories".into(), facts.repositories.len() as u64);
    out.insert("projects".into(), store.projects(ws).await?.len() as u64);
    out.insert("groups".into(), store.groups(ws).await?.len() as u64);
    out.insert(
        "permissions".into(),
        (facts.project_permissions.len() + facts.repository_permissions.len()) as u64,
    );
    Ok(out)
}

/// The read time of the oldest listing, and how many were never read.
pub(super) async fn staleness(
    store: &dyn Store,
    workspaces: &[WorkspaceSlug],
) -> Result<(Option<DateTime<Utc>>, u64), SyncError> {
    let mut oldest: Option<DateTime<Utc>> = None;
    let mut never = 0;
    for ws in workspaces {
        for s in store.listings_by_age(ws).await? {
            match s.read_at {
                None => never += 1,
                Some(t) => oldest = Some(oldest.map_or(t, |o| o.min(t))),
            }
        }
    }
    Ok((oldest, never))
}
