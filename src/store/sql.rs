// The SQL shared by both backends. This file is not a module of its own: `sqlite.rs` and
// `postgres.rs` each `include!` it with `Db` (the sqlx database type), `BEGIN_WRITE` (the
// statement that opens a write transaction), `LOCK_LISTING` (a statement serialising the
// replaces of one listing, where the write transaction does not already) and `lock_listings`
// (the same for many listings at once) in scope, so the same statements are compiled once per
// backend without trait gymnastics over sqlx's generic executors. Every statement must be valid
// on both SQLite and PostgreSQL: `$N` placeholders, `ON CONFLICT ... DO UPDATE`, `RETURNING`,
// row values (`(a, b) IN ((..), (..))`), no backend-specific functions.
//
// This file holds the imports and small conversions every part uses; each concern has its own
// file under `sql/`, included below into the same backend module (so they share these imports
// and need none of their own). The sync-run statements live in `runs.rs`, included the same way.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sqlx::{Pool, QueryBuilder, Row, Transaction};

use crate::domain::{
    Account, AccountId, AccountType, DriftEvent, EndKind, Grant, GrantId, GrantLevel, GrantState,
    GrantTarget, Group, SlotKey,
    GroupMembers, GroupSlug, Identity, IdentityRefresh, IdentitySource, NewGrant, Principal,
    Project, ProjectKey, ProjectLevel,
    ProjectPermission, ProjectRef, RepoLevel, RepoRef, RepoSlug, Repository, RepositoryPermission,
    Workspace, WorkspaceFacts, WorkspaceMember, WorkspaceRole, WorkspaceSlug,
};
use crate::store::audit_run::{AuditRun, AuditRunId, ChainedAuditEntry, NewAuditRun};
use crate::store::chain;
use crate::store::error::StoreError;
use crate::store::idempotency::{IdempotencyClaim, IdempotencyKey};
use crate::store::grant_types::{GrantClaim, GrantFilter, GrantRecord, GrantSlot, GrantStep, SlotChange};
use crate::store::listing::{self, ColKind, ColVal, Rows, Scope, TableSpec};
use crate::store::types::{
    AuditEntry, AuditFilter, AuditId, AuditKind, HeldChange, ListingFailure, ListingFreshness,
    ListingKey, ListingStatus, NewAuditEntry, ReplaceListing, ReplaceOutcome,
};

/// Rows per multi-row statement: far below both backends' limits on bound parameters.
const CHUNK: usize = 400;

type Tx = Transaction<'static, Db>;

fn db_err(action: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::Database {
        action,
        message: e.to_string(),
    }
}

fn to_i64(what: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange {
        what,
        value: value.to_string(),
    })
}

fn to_u64(value: i64) -> u64 {
    // Counts are written from u64 values, so a negative one can only come from a hand edit.
    u64::try_from(value).unwrap_or(0)
}

/// Truncates to microseconds, the precision PostgreSQL keeps, so a value reads back equal on
/// both backends.
fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

fn corrupt(what: &'static str) -> impl Fn(String) -> StoreError {
    move |detail| StoreError::Corrupt { what, detail }
}

fn account_id(value: String) -> Result<AccountId, StoreError> {
    AccountId::parse(value).map_err(|e| StoreError::Corrupt {
        what: "account id",
        detail: e.to_string(),
    })
}

fn ws_slug(value: String) -> Result<WorkspaceSlug, StoreError> {
    WorkspaceSlug::parse(value).map_err(|e| StoreError::Corrupt {
        what: "workspace slug",
        detail: e.to_string(),
    })
}

fn project_key(value: String) -> Result<ProjectKey, StoreError> {
    ProjectKey::parse(value).map_err(|e| StoreError::Corrupt {
        what: "project key",
        detail: e.to_string(),
    })
}

fn repo_slug(value: String) -> Result<RepoSlug, StoreError> {
    RepoSlug::parse(value).map_err(|e| StoreError::Corrupt {
        what: "repository slug",
        detail: e.to_string(),
    })
}

fn group_slug(value: String) -> Result<GroupSlug, StoreError> {
    GroupSlug::parse(value).map_err(|e| StoreError::Corrupt {
        what: "group slug",
        detail: e.to_string(),
    })
}

fn json_text(value: &serde_json::Value) -> String {
    value.to_string()
}

fn parse_json(what: &'static str, text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(what)(e.to_string()))
}

include!("sql/batch.rs");
include!("sql/replace.rs");
include!("sql/freshness.rs");
include!("sql/facts.rs");
include!("sql/scoped_facts.rs");
include!("sql/accounts.rs");
include!("sql/grants.rs");
include!("sql/idempotency.rs");
include!("sql/org_events.rs");
include!("sql/audit.rs");
include!("sql/audit_runs.rs");
include!("sql/health.rs");
