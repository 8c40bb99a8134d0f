// The SQL shared by both backends. This file is not a module of its own: `sqlite.rs` and
// `postgres.rs` each `include!` it with `Db` (the sqlx database type), `BEGIN_WRITE` (the
// statement that opens a write transaction) and `LOCK_LISTING` (a statement serialising the
// replaces of one listing, where the write transaction does not already) in scope, so the same
// statements are compiled once per backend without trait gymnastics over sqlx's generic
// executors. Every statement must be valid on both SQLite and PostgreSQL: `$N` placeholders,
// `ON CONFLICT ... DO UPDATE`, `RETURNING`, no backend-specific functions.
//
// This file holds the imports and small conversions every part uses, and the sync-run
// statements; each other concern has its own file under `sql/`, included below into the same
// backend module (so they share these imports and need none of their own).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sqlx::{Pool, QueryBuilder, Row, Transaction};

use crate::domain::{
    Account, AccountId, Grant, GrantId, GrantState, GrantTarget, Group, GroupMembers, GroupSlug,
    Identity, IdentitySource, NewGrant, Principal, Project, ProjectKey, ProjectLevel,
    ProjectPermission, ProjectRef, RepoLevel, RepoRef, RepoSlug, Repository, RepositoryPermission,
    Workspace, WorkspaceFacts, WorkspaceMember, WorkspaceRole, WorkspaceSlug,
};
use crate::store::error::StoreError;
use crate::store::listing::{self, ColKind, ColVal, Rows, Scope};
use crate::store::types::{
    AuditEntry, AuditFilter, AuditId, AuditKind, HeldChange, ListingFailure, ListingFreshness,
    ListingKey, ListingStatus, NewAuditEntry, ReplaceListing, ReplaceOutcome, SyncOutcome, SyncRun,
    SyncRunFinish, SyncRunId,
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

include!("sql/replace.rs");
include!("sql/freshness.rs");
include!("sql/facts.rs");
include!("sql/accounts.rs");
include!("sql/grants.rs");
include!("sql/audit.rs");
include!("sql/health.rs");

pub(crate) async fn start_sync_run(
    pool: &Pool<Db>,
    started_at: DateTime<Utc>,
    workspaces: &[WorkspaceSlug],
) -> Result<SyncRunId, StoreError> {
    let names: Vec<&str> = workspaces.iter().map(WorkspaceSlug::as_str).collect();
    let row =
        sqlx::query("INSERT INTO sync_runs (started_at, workspaces) VALUES ($1, $2) RETURNING id")
            .bind(micros(started_at))
            .bind(serde_json::json!(names).to_string())
            .fetch_one(pool)
            .await
            .map_err(db_err("start a sync run"))?;
    Ok(SyncRunId(
        row.try_get(0).map_err(db_err("decode a sync run id"))?,
    ))
}

pub(crate) async fn finish_sync_run(
    pool: &Pool<Db>,
    run: SyncRunId,
    finish: &SyncRunFinish,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE sync_runs SET finished_at = $1, outcome = $2, counts = $3, requests_used = $4, \
         minimum_requests = $5 WHERE id = $6",
    )
    .bind(micros(finish.finished_at))
    .bind(finish.outcome.as_str())
    .bind(json_text(&finish.counts))
    .bind(to_i64("requests used", finish.requests_used)?)
    .bind(to_i64("minimum requests", finish.minimum_requests)?)
    .bind(run.0)
    .execute(pool)
    .await
    .map_err(db_err("finish a sync run"))?;
    Ok(())
}

const SYNC_RUN_COLS: &str =
    "id, started_at, workspaces, finished_at, outcome, counts, requests_used, minimum_requests";

fn sync_run_from_row(row: &<Db as sqlx::Database>::Row) -> Result<SyncRun, StoreError> {
    let decode = db_err("decode a sync run");
    let workspaces: String = row.try_get(2).map_err(&decode)?;
    let workspaces: Vec<String> = serde_json::from_str(&workspaces)
        .map_err(|e| corrupt("sync run workspaces")(e.to_string()))?;
    let outcome: Option<String> = row.try_get(4).map_err(&decode)?;
    let counts: String = row.try_get(5).map_err(&decode)?;
    Ok(SyncRun {
        id: SyncRunId(row.try_get(0).map_err(&decode)?),
        started_at: row.try_get(1).map_err(&decode)?,
        workspaces: workspaces
            .into_iter()
            .map(ws_slug)
            .collect::<Result<_, _>>()?,
        finished_at: row.try_get(3).map_err(&decode)?,
        outcome: outcome.as_deref().map(SyncOutcome::parse).transpose()?,
        counts: parse_json("sync run counts", &counts)?,
        requests_used: to_u64(row.try_get(6).map_err(&decode)?),
        minimum_requests: to_u64(row.try_get(7).map_err(&decode)?),
    })
}

/// Requests spent by the sync runs that finished at or after `since`.
pub(crate) async fn requests_since(
    pool: &Pool<Db>,
    since: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(requests_used), 0) AS BIGINT) FROM sync_runs WHERE finished_at >= $1",
    )
    .bind(micros(since))
    .fetch_one(pool)
    .await
    .map_err(db_err("sum the requests of recent sync runs"))?;
    let n: i64 = row.try_get(0).map_err(db_err("decode a request count"))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(crate) async fn last_sync_run(
    pool: &Pool<Db>,
    unfinished_only: bool,
) -> Result<Option<SyncRun>, StoreError> {
    let filter = if unfinished_only {
        " WHERE finished_at IS NULL"
    } else {
        ""
    };
    let row = sqlx::query(&format!(
        "SELECT {SYNC_RUN_COLS} FROM sync_runs{filter} ORDER BY id DESC LIMIT 1"
    ))
    .fetch_optional(pool)
    .await
    .map_err(db_err("read sync runs"))?;
    row.as_ref().map(sync_run_from_row).transpose()
}

pub(crate) async fn completed_listings(
    pool: &Pool<Db>,
    run: SyncRunId,
) -> Result<Vec<ListingKey>, StoreError> {
    let rows = sqlx::query(
        "SELECT listing FROM listing_freshness WHERE last_run_id = $1 ORDER BY listing",
    )
    .bind(run.0)
    .fetch_all(pool)
    .await
    .map_err(db_err("read the listings of a sync run"))?;
    rows.iter()
        .map(|row| {
            let text: String = row.try_get(0).map_err(db_err("decode a listing key"))?;
            ListingKey::parse(&text)
        })
        .collect()
}
