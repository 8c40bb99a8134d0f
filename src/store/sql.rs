// The SQL shared by both backends. This file is not a module of its own: `sqlite.rs` and
// `postgres.rs` each `include!` it with `Db` (the sqlx database type), `BEGIN_WRITE` (the
// statement that opens a write transaction) and `LOCK_LISTING` (a statement serialising the
// replaces of one listing, where the write transaction does not already) in scope, so the same
// statements are compiled once per backend without trait gymnastics over sqlx's generic
// executors. Every statement here must be valid on both SQLite and PostgreSQL: `$N`
// placeholders, `ON CONFLICT ... DO UPDATE`, `RETURNING`, no backend-specific functions.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sqlx::{Pool, QueryBuilder, Row, Transaction};

use crate::domain::{
    Account, AccountId, Grant, GrantId, GrantState, GrantTarget, Group, GroupMembers, GroupSlug,
    Identity, NewGrant, Principal, Project, ProjectKey, ProjectLevel, ProjectPermission,
    ProjectRef, RepoLevel, RepoRef, RepoSlug, Repository, RepositoryPermission, Workspace,
    WorkspaceFacts, WorkspaceMember, WorkspaceRole, WorkspaceSlug,
};
use crate::store::error::StoreError;
use crate::store::listing::{self, ColKind, ColVal, Rows, Scope};
use crate::store::types::{
    AuditEntry, AuditFilter, AuditId, AuditKind, ListingFreshness, ListingKey, ListingStatus,
    NewAuditEntry, ReplaceListing, ReplaceOutcome,
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

fn push_scope(qb: &mut QueryBuilder<'static, Db>, scope: &Scope) {
    qb.push(" WHERE 1 = 1");
    for (col, value) in scope.spec.scope_cols.iter().zip(&scope.values) {
        qb.push(" AND ")
            .push(*col)
            .push(" = ")
            .push_bind(value.clone());
    }
    if let Some(key) = &scope.only_key {
        qb.push(" AND ")
            .push(scope.spec.key_col)
            .push(" = ")
            .push_bind(key.clone());
    }
}

async fn load_rows(tx: &mut Tx, scope: &Scope) -> Result<Rows, StoreError> {
    let spec = scope.spec;
    let mut qb = QueryBuilder::<Db>::new("SELECT ");
    qb.push(spec.key_col);
    for (col, _) in spec.value_cols {
        qb.push(", ").push(*col);
    }
    qb.push(" FROM ").push(spec.table);
    push_scope(&mut qb, scope);
    let rows = qb
        .build()
        .fetch_all(&mut **tx)
        .await
        .map_err(db_err("read the stored facts of a listing"))?;
    let mut out = Rows::new();
    for row in rows {
        let decode = db_err("decode a stored fact");
        let key: String = row.try_get(0).map_err(&decode)?;
        let mut values = Vec::with_capacity(spec.value_cols.len());
        for (i, (_, kind)) in spec.value_cols.iter().enumerate() {
            values.push(match kind {
                ColKind::Text => ColVal::Text(row.try_get(i + 1).map_err(&decode)?),
                ColKind::Bool => ColVal::Bool(row.try_get(i + 1).map_err(&decode)?),
            });
        }
        out.insert(key, values);
    }
    Ok(out)
}

async fn upsert_rows(
    tx: &mut Tx,
    scope: &Scope,
    rows: &[(String, Vec<ColVal>)],
) -> Result<(), StoreError> {
    let spec = scope.spec;
    let mut conflict_cols: Vec<&str> = spec.scope_cols.to_vec();
    conflict_cols.push(spec.key_col);
    for chunk in rows.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Db>::new("INSERT INTO ");
        qb.push(spec.table)
            .push(" (")
            .push(conflict_cols.join(", "));
        for (col, _) in spec.value_cols {
            qb.push(", ").push(*col);
        }
        qb.push(") ");
        qb.push_values(chunk, |mut b, (key, values)| {
            for value in &scope.values {
                b.push_bind(value.clone());
            }
            b.push_bind(key.clone());
            for value in values {
                match value {
                    ColVal::Text(text) => b.push_bind(text.clone()),
                    ColVal::Bool(flag) => b.push_bind(*flag),
                };
            }
        });
        qb.push(" ON CONFLICT (")
            .push(conflict_cols.join(", "))
            .push(")");
        if spec.value_cols.is_empty() {
            qb.push(" DO NOTHING");
        } else {
            let sets: Vec<String> = spec
                .value_cols
                .iter()
                .map(|(col, _)| format!("{col} = excluded.{col}"))
                .collect();
            qb.push(" DO UPDATE SET ").push(sets.join(", "));
        }
        qb.build()
            .execute(&mut **tx)
            .await
            .map_err(db_err("write the facts of a listing"))?;
    }
    Ok(())
}

/// Deletes rows of `table` whose `scope_cols` equal `scope_values` and whose `key_col` is in `keys`.
async fn delete_keys(
    tx: &mut Tx,
    table: &'static str,
    scope_cols: &[&'static str],
    scope_values: &[String],
    key_col: &'static str,
    keys: &[String],
) -> Result<u64, StoreError> {
    let mut affected = 0;
    for chunk in keys.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Db>::new("DELETE FROM ");
        qb.push(table).push(" WHERE 1 = 1");
        for (col, value) in scope_cols.iter().zip(scope_values) {
            qb.push(" AND ")
                .push(*col)
                .push(" = ")
                .push_bind(value.clone());
        }
        qb.push(" AND ").push(key_col).push(" IN (");
        let mut list = qb.separated(", ");
        for key in chunk {
            list.push_bind(key.clone());
        }
        qb.push(")");
        affected += qb
            .build()
            .execute(&mut **tx)
            .await
            .map_err(db_err("delete facts of a listing"))?
            .rows_affected();
    }
    Ok(affected)
}

/// Removes what Bitbucket removes together with a repository, project or group: its explicit
/// permissions or memberships and their freshness. Returns the fact rows removed.
async fn cascade(tx: &mut Tx, key: &ListingKey, deleted: &[String]) -> Result<u64, StoreError> {
    if deleted.is_empty() {
        return Ok(0);
    }
    let ws = key.workspace().to_string();
    let scope = [ws.clone()];
    let (tables, scope_col, listings): (&[&'static str], &'static str, Vec<String>) = match key {
        ListingKey::Repositories(_) => (
            &[
                "repository_user_permissions",
                "repository_group_permissions",
            ],
            "repo_slug",
            deleted
                .iter()
                .flat_map(|slug| {
                    [
                        format!("repo:{ws}/{slug}:users"),
                        format!("repo:{ws}/{slug}:groups"),
                    ]
                })
                .collect(),
        ),
        ListingKey::Projects(_) => (
            &["project_user_permissions", "project_group_permissions"],
            "project_key",
            deleted
                .iter()
                .flat_map(|k| {
                    [
                        format!("project:{ws}/{k}:users"),
                        format!("project:{ws}/{k}:groups"),
                    ]
                })
                .collect(),
        ),
        ListingKey::Groups(_) => (
            &["group_members"],
            "group_slug",
            deleted
                .iter()
                .map(|g| format!("group:{ws}/{g}:members"))
                .collect(),
        ),
        _ => return Ok(0),
    };
    let mut removed = 0;
    for table in tables {
        removed += delete_keys(tx, table, &["workspace"], &scope, scope_col, deleted).await?;
    }
    delete_keys(tx, "listing_freshness", &[], &[], "listing", &listings).await?;
    Ok(removed)
}

/// Inserts new accounts and updates changed profiles; returns the rows written.
async fn upsert_accounts(tx: &mut Tx, accounts: &[Account]) -> Result<u64, StoreError> {
    if accounts.is_empty() {
        return Ok(0);
    }
    let mut stored: BTreeMap<String, Vec<ColVal>> = BTreeMap::new();
    for chunk in accounts.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT account_id, uuid, display_name, nickname FROM accounts WHERE account_id IN (",
        );
        let mut list = qb.separated(", ");
        for account in chunk {
            list.push_bind(account.account_id.to_string());
        }
        qb.push(")");
        let rows = qb
            .build()
            .fetch_all(&mut **tx)
            .await
            .map_err(db_err("read accounts"))?;
        for row in rows {
            let decode = db_err("decode an account");
            let id: String = row.try_get(0).map_err(&decode)?;
            let display_name: String = row.try_get(2).map_err(&decode)?;
            stored.insert(
                id,
                vec![
                    ColVal::Text(row.try_get(1).map_err(&decode)?),
                    ColVal::Text(Some(display_name)),
                    ColVal::Text(row.try_get(3).map_err(&decode)?),
                ],
            );
        }
    }
    let changed: Vec<&Account> = accounts
        .iter()
        .filter(|a| stored.get(a.account_id.as_str()) != Some(&listing::account_values(a)))
        .collect();
    for chunk in changed.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO accounts (account_id, uuid, display_name, nickname) ",
        );
        qb.push_values(chunk, |mut b, account| {
            b.push_bind(account.account_id.to_string())
                .push_bind(account.uuid.clone())
                .push_bind(account.display_name.clone())
                .push_bind(account.nickname.clone());
        });
        qb.push(
            " ON CONFLICT (account_id) DO UPDATE SET uuid = excluded.uuid, \
             display_name = excluded.display_name, nickname = excluded.nickname",
        );
        qb.build()
            .execute(&mut **tx)
            .await
            .map_err(db_err("write accounts"))?;
    }
    debug_assert!(listing::ACCOUNT_COLS.len() == 3);
    Ok(changed.len() as u64)
}

async fn insert_audit(tx: &mut Tx, entries: &[NewAuditEntry]) -> Result<Vec<AuditId>, StoreError> {
    let mut ids = Vec::with_capacity(entries.len());
    for chunk in entries.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO audit_log (occurred_at, actor, kind, subject, before_value, after_value, details) ",
        );
        qb.push_values(chunk, |mut b, e| {
            b.push_bind(micros(e.at))
                .push_bind(e.actor.clone())
                .push_bind(e.kind.as_str())
                .push_bind(e.subject.clone())
                .push_bind(e.before.as_ref().map(json_text))
                .push_bind(e.after.as_ref().map(json_text))
                .push_bind(json_text(&e.details));
        });
        qb.push(" RETURNING id");
        let rows = qb
            .build()
            .fetch_all(&mut **tx)
            .await
            .map_err(db_err("append to the audit log"))?;
        for row in rows {
            ids.push(AuditId(
                row.try_get(0).map_err(db_err("decode an audit id"))?,
            ));
        }
    }
    Ok(ids)
}

pub(crate) async fn replace_listings(
    pool: &Pool<Db>,
    requests: Vec<ReplaceListing>,
) -> Result<Vec<ReplaceOutcome>, StoreError> {
    // Process in key order so that concurrent batches take their listing locks in one order
    // and cannot deadlock on them; answer in the caller's order.
    let mut order: Vec<(usize, ReplaceListing)> = requests.into_iter().enumerate().collect();
    order.sort_by(|a, b| a.1.key.cmp(&b.1.key));
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db_err("begin a transaction"))?;
    let mut outcomes: Vec<(usize, ReplaceOutcome)> = Vec::with_capacity(order.len());
    for (index, request) in order {
        outcomes.push((index, replace_in_tx(&mut tx, request).await?));
    }
    tx.commit().await.map_err(db_err("commit listings"))?;
    outcomes.sort_by_key(|(index, _)| *index);
    Ok(outcomes.into_iter().map(|(_, outcome)| outcome).collect())
}

pub(crate) async fn replace_listing(
    pool: &Pool<Db>,
    request: ReplaceListing,
) -> Result<ReplaceOutcome, StoreError> {
    let mut outcomes = replace_listings(pool, vec![request]).await?;
    outcomes.pop().ok_or(StoreError::Database {
        action: "replace a listing",
        message: "no outcome was produced".to_owned(),
    })
}

async fn replace_in_tx(
    tx: &mut Tx,
    mut request: ReplaceListing,
) -> Result<ReplaceOutcome, StoreError> {
    request.observed_at = micros(request.observed_at);
    let observed = listing::observe(&request)?;
    let scope = listing::scope_of(&request.key);
    let listing_text = request.key.to_string();
    let cost = to_i64("listing cost", request.cost_requests)?;
    let items = to_i64("listing size", observed.rows.len() as u64)?;

    if let Some(lock) = LOCK_LISTING {
        // Two replaces of the same listing must not both diff against the same old state, or
        // each would record the same drift.
        sqlx::query(lock)
            .bind(&listing_text)
            .execute(&mut **tx)
            .await
            .map_err(db_err("lock a listing"))?;
    }
    let seen_before = sqlx::query("SELECT listing FROM listing_freshness WHERE listing = $1")
        .bind(&listing_text)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err("read listing freshness"))?
        .is_some();
    let stored = load_rows(tx, &scope).await?;
    let baseline = !seen_before && !request.baseline_is_drift;
    let diff = listing::diff(&request, &stored, &observed.rows, baseline);

    let accounts_written = upsert_accounts(tx, &observed.accounts).await?;
    upsert_rows(tx, &scope, &diff.upserts).await?;
    let deleted = delete_keys(
        tx,
        scope.spec.table,
        scope.spec.scope_cols,
        &scope.values,
        scope.spec.key_col,
        &diff.deletes,
    )
    .await?;
    let cascaded = cascade(tx, &request.key, &diff.deletes).await?;

    let audit: Vec<NewAuditEntry> = diff
        .drift
        .iter()
        .map(|event| NewAuditEntry {
            at: event.observed_at,
            actor: "bitbucket".to_owned(),
            kind: AuditKind::Drift,
            subject: format!("{} {}", event.kind, event.key),
            before: event.before.clone(),
            after: event.after.clone(),
            details: serde_json::json!({
                "listing": listing_text,
                "entity": event.kind.as_str(),
                "key": event.key,
            }),
        })
        .collect();
    insert_audit(tx, &audit).await?;

    sqlx::query(
        "INSERT INTO listing_freshness \
         (listing, workspace, read_at, cost_requests, item_count, resume_cursor, last_run_id) \
         VALUES ($1, $2, $3, $4, $5, NULL, $6) \
         ON CONFLICT (listing) DO UPDATE SET read_at = excluded.read_at, \
         cost_requests = excluded.cost_requests, item_count = excluded.item_count, \
         resume_cursor = NULL, last_run_id = excluded.last_run_id",
    )
    .bind(&listing_text)
    .bind(request.key.workspace().to_string())
    .bind(request.observed_at)
    .bind(cost)
    .bind(items)
    .bind(request.run.map(|r| r.0))
    .execute(&mut **tx)
    .await
    .map_err(db_err("mark a listing fresh"))?;

    let rows_written = diff.inserted
        + diff.updated
        + deleted
        + cascaded
        + accounts_written
        + diff.drift.len() as u64;
    Ok(ReplaceOutcome {
        inserted: diff.inserted,
        updated: diff.updated,
        deleted,
        cascaded,
        accounts_written,
        baseline,
        drift: diff.drift,
        rows_written,
    })
}

fn freshness_from_row(row: &<Db as sqlx::Database>::Row) -> Result<ListingFreshness, StoreError> {
    let decode = db_err("decode listing freshness");
    let listing: String = row.try_get("listing").map_err(&decode)?;
    let cost: i64 = row.try_get("cost_requests").map_err(&decode)?;
    let items: i64 = row.try_get("item_count").map_err(&decode)?;
    let run: Option<i64> = row.try_get("last_run_id").map_err(&decode)?;
    Ok(ListingFreshness {
        key: ListingKey::parse(&listing)?,
        read_at: row.try_get("read_at").map_err(&decode)?,
        cost_requests: to_u64(cost),
        item_count: to_u64(items),
        cursor: row.try_get("resume_cursor").map_err(&decode)?,
        last_run: run.map(SyncRunId),
    })
}

const FRESHNESS_COLS: &str =
    "listing, read_at, cost_requests, item_count, resume_cursor, last_run_id";

pub(crate) async fn listing_freshness(
    pool: &Pool<Db>,
    key: &ListingKey,
) -> Result<Option<ListingFreshness>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {FRESHNESS_COLS} FROM listing_freshness WHERE listing = $1"
    ))
    .bind(key.to_string())
    .fetch_optional(pool)
    .await
    .map_err(db_err("read listing freshness"))?;
    row.as_ref().map(freshness_from_row).transpose()
}

pub(crate) async fn save_listing_cursor(
    pool: &Pool<Db>,
    key: &ListingKey,
    cursor: Option<&str>,
) -> Result<(), StoreError> {
    // Only a listing read before has a row; a cursor for a never-completed listing is kept in
    // the run's memory by the sync, since the store has no read time to give it.
    sqlx::query("UPDATE listing_freshness SET resume_cursor = $1 WHERE listing = $2")
        .bind(cursor.map(str::to_owned))
        .bind(key.to_string())
        .execute(pool)
        .await
        .map_err(db_err("save a listing cursor"))?;
    Ok(())
}

pub(crate) async fn listings_by_age(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
) -> Result<Vec<ListingStatus>, StoreError> {
    let ws = workspace.to_string();
    let rows = sqlx::query(&format!(
        "SELECT {FRESHNESS_COLS} FROM listing_freshness WHERE workspace = $1"
    ))
    .bind(&ws)
    .fetch_all(pool)
    .await
    .map_err(db_err("read listing freshness"))?;
    let mut fresh: BTreeMap<ListingKey, ListingFreshness> = BTreeMap::new();
    for row in &rows {
        let f = freshness_from_row(row)?;
        fresh.insert(f.key.clone(), f);
    }

    let mut keys = vec![
        ListingKey::Workspace(workspace.clone()),
        ListingKey::WorkspaceMembers(workspace.clone()),
        ListingKey::Projects(workspace.clone()),
        ListingKey::Repositories(workspace.clone()),
        ListingKey::Groups(workspace.clone()),
    ];
    for project in projects(pool, workspace).await? {
        let p = ProjectRef {
            workspace: workspace.clone(),
            key: project.key,
        };
        keys.push(ListingKey::ProjectUserPermissions(p.clone()));
        keys.push(ListingKey::ProjectGroupPermissions(p));
    }
    for repo in repositories(pool, workspace).await? {
        let r = RepoRef {
            workspace: workspace.clone(),
            slug: repo.slug,
        };
        keys.push(ListingKey::RepositoryUserPermissions(r.clone()));
        keys.push(ListingKey::RepositoryGroupPermissions(r));
    }
    for group in groups(pool, workspace).await? {
        keys.push(ListingKey::GroupMembers {
            workspace: workspace.clone(),
            group: group.slug,
        });
    }
    let mut out: Vec<ListingStatus> = keys
        .into_iter()
        .map(|key| {
            let f = fresh.get(&key);
            ListingStatus {
                read_at: f.map(|f| f.read_at),
                cost_requests: f.map(|f| f.cost_requests),
                key,
            }
        })
        .collect();
    // Never read first (in discovery order), then the oldest read first. The sort is stable.
    out.sort_by_key(|s| (s.read_at.is_some(), s.read_at));
    Ok(out)
}

pub(crate) async fn workspaces(pool: &Pool<Db>) -> Result<Vec<Workspace>, StoreError> {
    let rows = sqlx::query("SELECT slug, uuid, name, is_private FROM workspaces ORDER BY slug")
        .fetch_all(pool)
        .await
        .map_err(db_err("read workspaces"))?;
    rows.iter()
        .map(|row| {
            let decode = db_err("decode a workspace");
            Ok(Workspace {
                slug: ws_slug(row.try_get(0).map_err(&decode)?)?,
                uuid: row.try_get(1).map_err(&decode)?,
                name: row.try_get(2).map_err(&decode)?,
                is_private: row.try_get(3).map_err(&decode)?,
            })
        })
        .collect()
}

pub(crate) async fn projects(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
) -> Result<Vec<Project>, StoreError> {
    let rows = sqlx::query(
        "SELECT project_key, uuid, name, is_private FROM projects \
         WHERE workspace = $1 ORDER BY project_key",
    )
    .bind(workspace.to_string())
    .fetch_all(pool)
    .await
    .map_err(db_err("read projects"))?;
    rows.iter()
        .map(|row| {
            let decode = db_err("decode a project");
            Ok(Project {
                workspace: workspace.clone(),
                key: project_key(row.try_get(0).map_err(&decode)?)?,
                uuid: row.try_get(1).map_err(&decode)?,
                name: row.try_get(2).map_err(&decode)?,
                is_private: row.try_get(3).map_err(&decode)?,
            })
        })
        .collect()
}

pub(crate) async fn repositories(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
) -> Result<Vec<Repository>, StoreError> {
    let rows = sqlx::query(
        "SELECT repo_slug, uuid, name, project_key, is_private FROM repositories \
         WHERE workspace = $1 ORDER BY repo_slug",
    )
    .bind(workspace.to_string())
    .fetch_all(pool)
    .await
    .map_err(db_err("read repositories"))?;
    rows.iter()
        .map(|row| {
            let decode = db_err("decode a repository");
            let project: Option<String> = row.try_get(3).map_err(&decode)?;
            Ok(Repository {
                workspace: workspace.clone(),
                slug: repo_slug(row.try_get(0).map_err(&decode)?)?,
                uuid: row.try_get(1).map_err(&decode)?,
                name: row.try_get(2).map_err(&decode)?,
                project: project.map(project_key).transpose()?,
                is_private: row.try_get(4).map_err(&decode)?,
            })
        })
        .collect()
}

pub(crate) async fn workspace_members(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
) -> Result<Vec<WorkspaceMember>, StoreError> {
    let rows = sqlx::query(
        "SELECT account_id, role FROM workspace_members WHERE workspace = $1 ORDER BY account_id",
    )
    .bind(workspace.to_string())
    .fetch_all(pool)
    .await
    .map_err(db_err("read workspace members"))?;
    rows.iter()
        .map(|row| {
            let decode = db_err("decode a workspace member");
            let role: String = row.try_get(1).map_err(&decode)?;
            Ok(WorkspaceMember {
                account_id: account_id(row.try_get(0).map_err(&decode)?)?,
                role: WorkspaceRole::parse(&role).map_err(|e| corrupt("role")(e.to_string()))?,
            })
        })
        .collect()
}

pub(crate) async fn groups(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
) -> Result<Vec<Group>, StoreError> {
    let rows = sqlx::query(
        "SELECT group_slug, name FROM workspace_groups WHERE workspace = $1 ORDER BY group_slug",
    )
    .bind(workspace.to_string())
    .fetch_all(pool)
    .await
    .map_err(db_err("read groups"))?;
    rows.iter()
        .map(|row| {
            let decode = db_err("decode a group");
            Ok(Group {
                workspace: workspace.clone(),
                slug: group_slug(row.try_get(0).map_err(&decode)?)?,
                name: row.try_get(1).map_err(&decode)?,
            })
        })
        .collect()
}

pub(crate) async fn group_members(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
) -> Result<Vec<GroupMembers>, StoreError> {
    let rows = sqlx::query(
        "SELECT group_slug, account_id FROM group_members WHERE workspace = $1 \
         ORDER BY group_slug, account_id",
    )
    .bind(workspace.to_string())
    .fetch_all(pool)
    .await
    .map_err(db_err("read group members"))?;
    let mut out: Vec<GroupMembers> = Vec::new();
    for row in &rows {
        let decode = db_err("decode a group member");
        let slug = group_slug(row.try_get(0).map_err(&decode)?)?;
        let member = account_id(row.try_get(1).map_err(&decode)?)?;
        match out.last_mut() {
            Some(last) if last.slug == slug => last.members.push(member),
            _ => out.push(GroupMembers {
                slug,
                members: vec![member],
            }),
        }
    }
    Ok(out)
}

pub(crate) async fn project_permissions(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
) -> Result<Vec<ProjectPermission>, StoreError> {
    let rows = sqlx::query(
        "SELECT project_key, 'user' AS principal_kind, account_id AS principal, level \
         FROM project_user_permissions WHERE workspace = $1 \
         UNION ALL \
         SELECT project_key, 'group' AS principal_kind, group_slug AS principal, level \
         FROM project_group_permissions WHERE workspace = $1",
    )
    .bind(workspace.to_string())
    .fetch_all(pool)
    .await
    .map_err(db_err("read project permissions"))?;
    let mut out = rows
        .iter()
        .map(|row| {
            let decode = db_err("decode a project permission");
            let level: String = row.try_get(3).map_err(&decode)?;
            Ok(ProjectPermission {
                project: project_key(row.try_get(0).map_err(&decode)?)?,
                principal: principal(
                    &row.try_get::<String, _>(1).map_err(&decode)?,
                    row.try_get(2).map_err(&decode)?,
                )?,
                level: ProjectLevel::parse(&level)
                    .map_err(|e| corrupt("project level")(e.to_string()))?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    out.sort();
    Ok(out)
}

pub(crate) async fn repository_permissions(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
) -> Result<Vec<RepositoryPermission>, StoreError> {
    let rows = sqlx::query(
        "SELECT repo_slug, 'user' AS principal_kind, account_id AS principal, level \
         FROM repository_user_permissions WHERE workspace = $1 \
         UNION ALL \
         SELECT repo_slug, 'group' AS principal_kind, group_slug AS principal, level \
         FROM repository_group_permissions WHERE workspace = $1",
    )
    .bind(workspace.to_string())
    .fetch_all(pool)
    .await
    .map_err(db_err("read repository permissions"))?;
    let mut out = rows
        .iter()
        .map(|row| {
            let decode = db_err("decode a repository permission");
            let level: String = row.try_get(3).map_err(&decode)?;
            Ok(RepositoryPermission {
                repository: repo_slug(row.try_get(0).map_err(&decode)?)?,
                principal: principal(
                    &row.try_get::<String, _>(1).map_err(&decode)?,
                    row.try_get(2).map_err(&decode)?,
                )?,
                level: RepoLevel::parse(&level)
                    .map_err(|e| corrupt("repository level")(e.to_string()))?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    out.sort();
    Ok(out)
}

fn principal(kind: &str, id: String) -> Result<Principal, StoreError> {
    match kind {
        "user" => Ok(Principal::User {
            account_id: account_id(id)?,
        }),
        "group" => Ok(Principal::Group {
            slug: group_slug(id)?,
        }),
        other => Err(corrupt("principal kind")(other.to_owned())),
    }
}

fn principal_columns(principal: &Principal) -> (&'static str, String) {
    match principal {
        Principal::User { account_id } => ("user", account_id.to_string()),
        Principal::Group { slug } => ("group", slug.to_string()),
    }
}

pub(crate) async fn workspace_facts(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
) -> Result<WorkspaceFacts, StoreError> {
    Ok(WorkspaceFacts {
        members: workspace_members(pool, workspace).await?,
        repositories: repositories(pool, workspace).await?,
        groups: group_members(pool, workspace).await?,
        project_permissions: project_permissions(pool, workspace).await?,
        repository_permissions: repository_permissions(pool, workspace).await?,
    })
}

fn account_from_row(row: &<Db as sqlx::Database>::Row) -> Result<Account, StoreError> {
    let decode = db_err("decode an account");
    Ok(Account {
        account_id: account_id(row.try_get(0).map_err(&decode)?)?,
        uuid: row.try_get(1).map_err(&decode)?,
        display_name: row.try_get(2).map_err(&decode)?,
        nickname: row.try_get(3).map_err(&decode)?,
    })
}

pub(crate) async fn accounts(pool: &Pool<Db>) -> Result<Vec<Account>, StoreError> {
    let rows = sqlx::query(
        "SELECT account_id, uuid, display_name, nickname FROM accounts ORDER BY account_id",
    )
    .fetch_all(pool)
    .await
    .map_err(db_err("read accounts"))?;
    rows.iter().map(account_from_row).collect()
}

pub(crate) async fn account(
    pool: &Pool<Db>,
    id: &AccountId,
) -> Result<Option<Account>, StoreError> {
    let row = sqlx::query(
        "SELECT account_id, uuid, display_name, nickname FROM accounts WHERE account_id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(pool)
    .await
    .map_err(db_err("read an account"))?;
    row.as_ref().map(account_from_row).transpose()
}

pub(crate) async fn account_by_email(
    pool: &Pool<Db>,
    email: &str,
) -> Result<Option<Account>, StoreError> {
    let row = sqlx::query(
        "SELECT a.account_id, a.uuid, a.display_name, a.nickname FROM accounts a \
         JOIN identities i ON i.account_id = a.account_id \
         WHERE lower(i.email) = lower($1) ORDER BY a.account_id LIMIT 1",
    )
    .bind(email.to_owned())
    .fetch_optional(pool)
    .await
    .map_err(db_err("look up an account by email"))?;
    row.as_ref().map(account_from_row).transpose()
}

pub(crate) async fn upsert_identity(
    pool: &Pool<Db>,
    identity: &Identity,
) -> Result<(), StoreError> {
    let conflicts = serde_json::to_string(&identity.conflicts)
        .map_err(|e| corrupt("identity conflicts")(e.to_string()))?;
    sqlx::query(
        "INSERT INTO identities (account_id, email, source, matched_at, conflicts) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id) DO UPDATE SET \
         email = excluded.email, source = excluded.source, matched_at = excluded.matched_at, \
         conflicts = excluded.conflicts",
    )
    .bind(identity.account_id.to_string())
    .bind(identity.email.clone())
    .bind(identity.source.clone())
    .bind(micros(identity.matched_at))
    .bind(conflicts)
    .execute(pool)
    .await
    .map_err(db_err("write an identity"))?;
    Ok(())
}

pub(crate) async fn identities(pool: &Pool<Db>) -> Result<Vec<Identity>, StoreError> {
    let rows = sqlx::query(
        "SELECT account_id, email, source, matched_at, conflicts FROM identities \
         ORDER BY account_id",
    )
    .fetch_all(pool)
    .await
    .map_err(db_err("read identities"))?;
    rows.iter()
        .map(|row| {
            let decode = db_err("decode an identity");
            let conflicts: String = row.try_get(4).map_err(&decode)?;
            Ok(Identity {
                account_id: account_id(row.try_get(0).map_err(&decode)?)?,
                email: row.try_get(1).map_err(&decode)?,
                source: row.try_get(2).map_err(&decode)?,
                matched_at: row.try_get(3).map_err(&decode)?,
                conflicts: serde_json::from_str(&conflicts)
                    .map_err(|e| corrupt("identity conflicts")(e.to_string()))?,
            })
        })
        .collect()
}

const GRANT_COLS: &str = "id, principal_kind, principal_id, resource_kind, workspace, \
    resource_key, level, baseline_level, requested_by, reason, ticket, created_at, starts_at, \
    expires_at, state, updated_at";

fn grant_from_row(row: &<Db as sqlx::Database>::Row) -> Result<Grant, StoreError> {
    let decode = db_err("decode a grant");
    let principal_kind: String = row.try_get(1).map_err(&decode)?;
    let resource_kind: String = row.try_get(3).map_err(&decode)?;
    let workspace = ws_slug(row.try_get(4).map_err(&decode)?)?;
    let resource_key: String = row.try_get(5).map_err(&decode)?;
    let level: String = row.try_get(6).map_err(&decode)?;
    let baseline: Option<String> = row.try_get(7).map_err(&decode)?;
    let state: String = row.try_get(14).map_err(&decode)?;
    let bad_level = |e: crate::domain::LevelError| corrupt("grant level")(e.to_string());
    let target = match resource_kind.as_str() {
        "repository" => GrantTarget::Repository {
            repository: RepoRef {
                workspace,
                slug: repo_slug(resource_key)?,
            },
            level: RepoLevel::parse(&level).map_err(bad_level)?,
            baseline: baseline
                .as_deref()
                .map(RepoLevel::parse)
                .transpose()
                .map_err(bad_level)?,
        },
        "project" => GrantTarget::Project {
            project: ProjectRef {
                workspace,
                key: project_key(resource_key)?,
            },
            level: ProjectLevel::parse(&level).map_err(bad_level)?,
            baseline: baseline
                .as_deref()
                .map(ProjectLevel::parse)
                .transpose()
                .map_err(bad_level)?,
        },
        other => return Err(corrupt("grant resource kind")(other.to_owned())),
    };
    Ok(Grant {
        id: GrantId(row.try_get(0).map_err(&decode)?),
        principal: principal(&principal_kind, row.try_get(2).map_err(&decode)?)?,
        target,
        requested_by: row.try_get(8).map_err(&decode)?,
        reason: row.try_get(9).map_err(&decode)?,
        ticket: row.try_get(10).map_err(&decode)?,
        created_at: row.try_get(11).map_err(&decode)?,
        starts_at: row.try_get(12).map_err(&decode)?,
        expires_at: row.try_get(13).map_err(&decode)?,
        state: GrantState::parse(&state).map_err(|e| corrupt("grant state")(e.to_string()))?,
        updated_at: row.try_get(15).map_err(&decode)?,
    })
}

pub(crate) async fn insert_grant(pool: &Pool<Db>, grant: &NewGrant) -> Result<Grant, StoreError> {
    let (principal_kind, principal_id) = principal_columns(&grant.principal);
    let (resource_kind, workspace, resource_key, level, baseline) = match &grant.target {
        GrantTarget::Repository {
            repository,
            level,
            baseline,
        } => (
            "repository",
            repository.workspace.to_string(),
            repository.slug.to_string(),
            level.as_str(),
            baseline.map(RepoLevel::as_str),
        ),
        GrantTarget::Project {
            project,
            level,
            baseline,
        } => (
            "project",
            project.workspace.to_string(),
            project.key.to_string(),
            level.as_str(),
            baseline.map(ProjectLevel::as_str),
        ),
    };
    let row = sqlx::query(&format!(
        "INSERT INTO grants (principal_kind, principal_id, resource_kind, workspace, resource_key, \
         level, baseline_level, requested_by, reason, ticket, created_at, starts_at, expires_at, \
         state, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $11) \
         RETURNING {GRANT_COLS}"
    ))
    .bind(principal_kind)
    .bind(principal_id)
    .bind(resource_kind)
    .bind(workspace)
    .bind(resource_key)
    .bind(level)
    .bind(baseline)
    .bind(grant.requested_by.clone())
    .bind(grant.reason.clone())
    .bind(grant.ticket.clone())
    .bind(micros(grant.created_at))
    .bind(micros(grant.starts_at))
    .bind(grant.expires_at.map(micros))
    .bind(grant.state.as_str())
    .fetch_one(pool)
    .await
    .map_err(db_err("record a grant"))?;
    grant_from_row(&row)
}

pub(crate) async fn grant(pool: &Pool<Db>, id: GrantId) -> Result<Option<Grant>, StoreError> {
    let row = sqlx::query(&format!("SELECT {GRANT_COLS} FROM grants WHERE id = $1"))
        .bind(id.0)
        .fetch_optional(pool)
        .await
        .map_err(db_err("read a grant"))?;
    row.as_ref().map(grant_from_row).transpose()
}

pub(crate) async fn transition_grant(
    pool: &Pool<Db>,
    id: GrantId,
    from: GrantState,
    to: GrantState,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let result =
        sqlx::query("UPDATE grants SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4")
            .bind(to.as_str())
            .bind(micros(at))
            .bind(id.0)
            .bind(from.as_str())
            .execute(pool)
            .await
            .map_err(db_err("change a grant's state"))?;
    Ok(result.rows_affected() == 1)
}

pub(crate) async fn grants_in_state(
    pool: &Pool<Db>,
    state: GrantState,
    due_at: Option<DateTime<Utc>>,
) -> Result<Vec<Grant>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(format!("SELECT {GRANT_COLS} FROM grants WHERE state = "));
    qb.push_bind(state.as_str());
    if let Some(at) = due_at {
        qb.push(" AND expires_at IS NOT NULL AND expires_at <= ")
            .push_bind(micros(at));
    }
    qb.push(" ORDER BY id");
    let rows = qb
        .build()
        .fetch_all(pool)
        .await
        .map_err(db_err("list grants"))?;
    rows.iter().map(grant_from_row).collect()
}

pub(crate) async fn append_audit(
    pool: &Pool<Db>,
    entry: &NewAuditEntry,
) -> Result<AuditId, StoreError> {
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db_err("begin a transaction"))?;
    let ids = insert_audit(&mut tx, std::slice::from_ref(entry)).await?;
    tx.commit().await.map_err(db_err("commit an audit entry"))?;
    ids.first().copied().ok_or(StoreError::Database {
        action: "append to the audit log",
        message: "the database returned no id".to_owned(),
    })
}

pub(crate) async fn list_audit(
    pool: &Pool<Db>,
    filter: &AuditFilter,
) -> Result<Vec<AuditEntry>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(
        "SELECT id, occurred_at, actor, kind, subject, before_value, after_value, details \
         FROM audit_log WHERE 1 = 1",
    );
    if !filter.kinds.is_empty() {
        let kinds: BTreeSet<&str> = filter.kinds.iter().map(|k| k.as_str()).collect();
        qb.push(" AND kind IN (");
        let mut list = qb.separated(", ");
        for kind in kinds {
            list.push_bind(kind);
        }
        qb.push(")");
    }
    if let Some(since) = filter.since {
        qb.push(" AND occurred_at >= ").push_bind(micros(since));
    }
    if let Some(until) = filter.until {
        qb.push(" AND occurred_at < ").push_bind(micros(until));
    }
    qb.push(" ORDER BY id");
    if let Some(limit) = filter.limit {
        qb.push(" LIMIT ").push_bind(to_i64("audit limit", limit)?);
    }
    let rows = qb
        .build()
        .fetch_all(pool)
        .await
        .map_err(db_err("read the audit log"))?;
    rows.iter()
        .map(|row| {
            let decode = db_err("decode an audit entry");
            let kind: String = row.try_get(3).map_err(&decode)?;
            let before: Option<String> = row.try_get(5).map_err(&decode)?;
            let after: Option<String> = row.try_get(6).map_err(&decode)?;
            let details: String = row.try_get(7).map_err(&decode)?;
            Ok(AuditEntry {
                id: AuditId(row.try_get(0).map_err(&decode)?),
                entry: NewAuditEntry {
                    at: row.try_get(1).map_err(&decode)?,
                    actor: row.try_get(2).map_err(&decode)?,
                    kind: AuditKind::parse(&kind)?,
                    subject: row.try_get(4).map_err(&decode)?,
                    before: before
                        .as_deref()
                        .map(|t| parse_json("audit before", t))
                        .transpose()?,
                    after: after
                        .as_deref()
                        .map(|t| parse_json("audit after", t))
                        .transpose()?,
                    details: parse_json("audit details", &details)?,
                },
            })
        })
        .collect()
}
