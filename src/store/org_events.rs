//! The values of the organization events' cursor (`org_event_cursors`): where the next poll of
//! an organization's audit-log stream starts, and the connector's own account, whose changes
//! are not drift.

use chrono::{DateTime, Utc};

/// The stored cursor of one organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgCursor {
    /// The organization's id.
    pub org_id: String,
    /// The stream's cursor after the last applied event; `None` before the first page.
    pub cursor: Option<String>,
    /// The connector's own Bitbucket account id, once learned.
    pub own_account_id: Option<String>,
    /// Events applied through this cursor so far, every instance together.
    pub events_applied: u64,
    /// When the cursor last moved.
    pub updated_at: DateTime<Utc>,
    /// Which instance moved it (a [`crate::store::RunOwner`] string).
    pub updated_by: String,
}

/// A move of the cursor by compare-and-set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorAdvance {
    /// The organization's id.
    pub org_id: String,
    /// The cursor the poll started from (`None`: the first page); the move fails when the
    /// stored cursor is no longer this one.
    pub expected: Option<String>,
    /// The cursor after the events applied.
    pub cursor: String,
    /// How many events the poll applied.
    pub applied: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Which instance.
    pub by: String,
}
