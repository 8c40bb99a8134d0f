//! Grants and revokes, time-bound, that restore what stood before (issue 12).
//!
//! - `request.rs`: a grant request independent of the CLI or an API, and its preflight
//!   (account, membership, owner, target, policy) with the calls a `--dry-run` would make.
//! - `policy.rs`: the `grant_policy` limits.
//! - `remote.rs`: the one place that reads and sets a slot's level in Bitbucket.
//! - `engine.rs`: the engine, its settings and the slot lease; `apply.rs` gives a grant (and
//!   finishes a pending one), `end.rs` ends one (restore or conflict) and revokes.
//! - `expire.rs`: one expiry pass, and the watch loop.
//! - `inflight.rs`: the changes of grants in flight, which a sync treats as expected, not drift.
//!
//! Durability: the intent (a pending grant and its audit entry) is committed before Bitbucket is
//! called; every later state change is committed with its audit entry and the fact it leaves
//! in the store, in one transaction. A crash between the two leaves a pending or ending grant
//! whose claim lapses; the next pass (or the next grant on the slot) reads Bitbucket and finishes
//! it. Only one process acts on a slot at a time (the slot's lease).

mod apply;
mod end;
mod engine;
mod expire;
mod inflight;
mod policy;
mod remote;
mod request;

pub use engine::{Engine, EngineSettings, Step};
pub use expire::{PassReport, WatchError};
pub use inflight::expected_changes;
pub use policy::{check_policy, PolicyRefusal};
pub use remote::{describe_calls, PlannedCall};
pub use request::{preflight, Duration as GrantDuration, GrantPlan, GrantRequest, Preflight};

use crate::bitbucket::ApiError;
use crate::domain::{GrantId, GrantState};
use crate::store::StoreError;

/// What can go wrong while granting, revoking or expiring.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Bitbucket refused or failed a call.
    #[error("Bitbucket: {0}")]
    Bitbucket(#[from] ApiError),
    /// A preflight or policy check refused the request; nothing was changed.
    #[error("refused: {0}")]
    Refused(String),
    /// No grant has this id.
    #[error("no grant has id {0}; `bitbucket-access grants --all` lists them")]
    NotFound(GrantId),
    /// The grant cannot take this step in its state.
    #[error("grant {id} is {state}: {what}")]
    WrongState {
        /// The grant.
        id: GrantId,
        /// Its state.
        state: GrantState,
        /// What cannot be done.
        what: &'static str,
    },
    /// Another process holds the slot; try again shortly.
    #[error("another process is changing {0}; try again in a minute")]
    SlotBusy(String),
    /// The slot has a grant that could not be finished yet.
    #[error(
        "{slot} has unfinished grant {id} ({state}); run `bitbucket-access expire` and try again"
    )]
    Unfinished {
        /// The slot.
        slot: String,
        /// The grant.
        id: GrantId,
        /// Its state.
        state: GrantState,
    },
    /// The test seam stopped the engine after this step (a simulated crash).
    #[error("stopped after step {0:?} (test seam)")]
    Stopped(Step),
}
