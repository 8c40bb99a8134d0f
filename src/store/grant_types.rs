//! The values the grant statements take and return: slots with their lease, the steps of a grant
//! (each a state change with its audit entries and the fact it leaves behind), claims of due
//! grants, and the filter of `list_grants`.

use chrono::{DateTime, Utc};

use super::types::NewAuditEntry;
use crate::domain::{EndKind, GrantId, GrantLevel, GrantState, NewGrant, Principal, SlotKey};

/// One slot as stored: its baseline, the level the connector last set (or saw) and its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantSlot {
    /// The slot.
    pub key: String,
    /// The level that stood before the slot's first grant in force.
    pub baseline: Option<GrantLevel>,
    /// The level the connector last set there, or saw when it read the baseline.
    pub last_set: Option<GrantLevel>,
    /// Who holds the lease.
    pub locked_by: Option<String>,
    /// Until when.
    pub locked_until: Option<DateTime<Utc>>,
}

/// A grant to record, with its audit entries, in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantRecord {
    /// The grant.
    pub grant: NewGrant,
    /// A freshly read baseline for the slot: sets both its baseline and the level last seen.
    /// `None` keeps the stored baseline (the slot already has grants in force).
    pub fresh_baseline: Option<Option<GrantLevel>>,
    /// The claim of the worker that will apply it (`owner`, `until`).
    pub claim: Option<(String, DateTime<Utc>)>,
    /// The audit entries.
    pub audit: Vec<NewAuditEntry>,
}

/// One step of a grant: a compare-and-set of its state with what it leaves behind.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantStep {
    /// The grant.
    pub id: GrantId,
    /// The state it must be in.
    pub from: GrantState,
    /// The state it moves to (may equal `from`, for a retry).
    pub to: GrantState,
    /// When.
    pub at: DateTime<Utc>,
    /// The level now in Bitbucket, set by the connector: becomes the slot's `last_set` and the
    /// stored explicit-permission fact, so a later sync sees no difference.
    pub set_level: Option<Option<GrantLevel>>,
    /// How the grant ends, once decided.
    pub end_kind: Option<EndKind>,
    /// A failed attempt: count it and wait until then before the next.
    pub retry_at: Option<DateTime<Utc>>,
    /// A new claim (`owner`, `until`); `None` releases the grant's claim.
    pub claim: Option<(String, DateTime<Utc>)>,
    /// The audit entries.
    pub audit: Vec<NewAuditEntry>,
}

impl GrantStep {
    /// A step from `from` to `to` with nothing else.
    pub fn new(id: GrantId, from: GrantState, to: GrantState, at: DateTime<Utc>) -> Self {
        GrantStep {
            id,
            from,
            to,
            at,
            set_level: None,
            end_kind: None,
            retry_at: None,
            claim: None,
            audit: Vec::new(),
        }
    }
}

/// Claims the grants a worker should act on now: in force and past their end (moved to `ending`
/// with an audit entry each), and pending or ending ones whose claim lapsed (a crash, a failed
/// attempt whose wait is over).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantClaim {
    /// The worker.
    pub owner: String,
    /// The current time.
    pub now: DateTime<Utc>,
    /// The claim lasts until then.
    pub until: DateTime<Utc>,
    /// At most this many grants.
    pub limit: u32,
    /// The actor named in the `expire` audit entries.
    pub actor: String,
}

/// Which grants `list_grants` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantFilter {
    /// Only these states (empty: every state).
    pub states: Vec<GrantState>,
    /// Only this principal's.
    pub principal: Option<Principal>,
    /// Only this workspace's.
    pub workspace: Option<String>,
    /// Only those changed at or after this time.
    pub changed_since: Option<DateTime<Utc>>,
}

/// A change to a slot outside any grant (`revoke --user U --repo R` of a standing permission).
#[derive(Debug, Clone, PartialEq)]
pub struct SlotChange {
    /// The slot.
    pub slot: SlotKey,
    /// The level Bitbucket now holds there.
    pub level: Option<GrantLevel>,
    /// The audit entries.
    pub audit: Vec<NewAuditEntry>,
}
