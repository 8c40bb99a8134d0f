//! The values of run ownership: who claims a sync run, what a claim asks for and what it got.
//!
//! A run belongs to its owner while its lease lasts; the owner renews the lease with a heartbeat
//! as it works. A workspace claimed by a run with a live lease is not read by a second run, and
//! an unfinished run is resumed only once its lease has passed (its owner is gone).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::WorkspaceSlug;
use crate::store::types::SyncRunId;

/// The owner of a sync run: a random id per run, with the host and process for people reading
/// it (`build-7/4242/9f2c61d0a4b3e8f1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunOwner(String);

impl RunOwner {
    /// A new owner for a run of this process: hostname, process id and 64 random bits, so two
    /// runs of one process are two owners too.
    pub fn generate() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".to_owned());
        RunOwner(format!(
            "{host}/{}/{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ))
    }

    /// An owner with a given name (tests, and owners read back from the store).
    pub fn named(name: impl Into<String>) -> Self {
        RunOwner(name.into())
    }

    /// The stored form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a run asks for when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    /// The workspaces it means to read.
    pub workspaces: Vec<WorkspaceSlug>,
    /// Who asks.
    pub owner: RunOwner,
    /// The time of the claim, from the caller's clock.
    pub now: DateTime<Utc>,
    /// Until when the claim holds unless renewed.
    pub lease_until: DateTime<Utc>,
    /// An unfinished run started before this is too old to resume.
    pub resume_after: DateTime<Utc>,
}

/// A workspace another live run holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldWorkspace {
    /// The workspace.
    pub workspace: WorkspaceSlug,
    /// The run holding it.
    pub run: SyncRunId,
    /// That run's owner.
    pub owner: RunOwner,
    /// Until when its lease lasts, unless renewed.
    pub lease_until: DateTime<Utc>,
}

/// What a claim got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimOutcome {
    /// The run now owned by the claimant: an interrupted one taken over, or a new one.
    pub run: SyncRunId,
    /// Whether `run` is an interrupted run taken over (its completed listings can be skipped).
    pub resumed: bool,
    /// The workspaces the run holds: those asked for, less `held`.
    pub claimed: Vec<WorkspaceSlug>,
    /// The workspaces other live runs hold, left out of this run.
    pub held: Vec<HeldWorkspace>,
}

/// A renewal of a run's lease, with the requests its owner sent since the last one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The run.
    pub run: SyncRunId,
    /// Its owner; a heartbeat of anyone else changes nothing.
    pub owner: RunOwner,
    /// The time of the heartbeat, from the owner's clock (its minute gets the requests).
    pub at: DateTime<Utc>,
    /// The new end of the lease.
    pub lease_until: DateTime<Utc>,
    /// Requests sent since the previous heartbeat.
    pub requests: u64,
}
