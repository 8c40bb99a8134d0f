// Grants, their slots and leases, and their steps: each state change with its audit entries and
// the explicit-permission fact it leaves behind, in one transaction.
// Included by `sql.rs`; see there for the names in scope.

const GRANT_COLS: &str = "id, principal_kind, principal_id, resource_kind, workspace, \
    resource_key, level, baseline_level, requested_by, reason, ticket, created_at, starts_at, \
    expires_at, state, updated_at, planned_level, end_kind, attempts, next_attempt_at";

/// Whether this backend is PostgreSQL: the claim of due grants adds `FOR UPDATE SKIP LOCKED`
/// there (SQLite serialises writers with `BEGIN IMMEDIATE` instead).
fn is_postgres() -> bool {
    std::any::TypeId::of::<Db>() == std::any::TypeId::of::<sqlx::Postgres>()
}

fn grant_level(what: &'static str, value: Option<String>) -> Result<Option<GrantLevel>, StoreError> {
    value
        .as_deref()
        .map(GrantLevel::parse)
        .transpose()
        .map_err(|e| corrupt(what)(e.to_string()))
}

fn grant_target(kind: &str, workspace: WorkspaceSlug, key: String) -> Result<GrantTarget, StoreError> {
    Ok(match kind {
        "repository" => GrantTarget::Repository {
            repository: RepoRef {
                workspace,
                slug: repo_slug(key)?,
            },
        },
        "project" => GrantTarget::Project {
            project: ProjectRef {
                workspace,
                key: project_key(key)?,
            },
        },
        "group_membership" => GrantTarget::GroupMembership {
            workspace,
            group: group_slug(key)?,
        },
        other => return Err(corrupt("grant resource kind")(other.to_owned())),
    })
}

fn grant_from_row(row: &<Db as sqlx::Database>::Row) -> Result<Grant, StoreError> {
    let decode = db_err("decode a grant");
    let principal_kind: String = row.try_get(1).map_err(&decode)?;
    let resource_kind: String = row.try_get(3).map_err(&decode)?;
    let workspace = ws_slug(row.try_get(4).map_err(&decode)?)?;
    let state: String = row.try_get(14).map_err(&decode)?;
    let end_kind: Option<String> = row.try_get(17).map_err(&decode)?;
    let attempts: i64 = row.try_get::<i64, _>(18).or_else(|_| row.try_get::<i32, _>(18).map(i64::from)).map_err(&decode)?;
    Ok(Grant {
        id: GrantId(row.try_get(0).map_err(&decode)?),
        principal: principal(&principal_kind, row.try_get(2).map_err(&decode)?)?,
        target: grant_target(&resource_kind, workspace, row.try_get(5).map_err(&decode)?)?,
        level: grant_level("grant level", row.try_get(6).map_err(&decode)?)?
            .ok_or_else(|| corrupt("grant level")("missing".to_owned()))?,
        baseline: grant_level("grant baseline", row.try_get(7).map_err(&decode)?)?,
        planned: grant_level("grant planned level", row.try_get(16).map_err(&decode)?)?,
        requested_by: row.try_get(8).map_err(&decode)?,
        reason: row.try_get(9).map_err(&decode)?,
        ticket: row.try_get(10).map_err(&decode)?,
        created_at: row.try_get(11).map_err(&decode)?,
        starts_at: row.try_get(12).map_err(&decode)?,
        expires_at: row.try_get(13).map_err(&decode)?,
        state: GrantState::parse(&state).map_err(|e| corrupt("grant state")(e.to_string()))?,
        updated_at: row.try_get(15).map_err(&decode)?,
        end_kind: end_kind
            .as_deref()
            .map(|k| EndKind::parse(k).ok_or_else(|| corrupt("grant end kind")(k.to_owned())))
            .transpose()?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt_at: row.try_get(19).map_err(&decode)?,
    })
}

async fn insert_grant_tx(
    tx: &mut Tx,
    grant: &NewGrant,
    claim: Option<&(String, DateTime<Utc>)>,
) -> Result<Grant, StoreError> {
    let (principal_kind, principal_id) = principal_columns(&grant.principal);
    let slot = SlotKey {
        principal: grant.principal.clone(),
        target: grant.target.clone(),
    };
    let row = sqlx::query(&format!(
        "INSERT INTO grants (principal_kind, principal_id, resource_kind, workspace, resource_key, \
         level, baseline_level, requested_by, reason, ticket, created_at, starts_at, expires_at, \
         state, updated_at, slot_key, planned_level, claimed_by, claimed_until) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $11, $15, $16, $17, $18) \
         RETURNING {GRANT_COLS}"
    ))
    .bind(principal_kind)
    .bind(principal_id)
    .bind(grant.target.kind())
    .bind(grant.target.workspace().to_string())
    .bind(grant.target.key().to_owned())
    .bind(grant.level.as_str())
    .bind(grant.baseline.map(GrantLevel::as_str))
    .bind(grant.requested_by.clone())
    .bind(grant.reason.clone())
    .bind(grant.ticket.clone())
    .bind(micros(grant.created_at))
    .bind(micros(grant.starts_at))
    .bind(grant.expires_at.map(micros))
    .bind(grant.state.as_str())
    .bind(slot.as_key())
    .bind(grant.planned.map(GrantLevel::as_str))
    .bind(claim.map(|c| c.0.clone()))
    .bind(claim.map(|c| micros(c.1)))
    .fetch_one(&mut **tx)
    .await
    .map_err(db_err("record a grant"))?;
    grant_from_row(&row)
}

pub(crate) async fn insert_grant(pool: &Pool<Db>, grant: &NewGrant) -> Result<Grant, StoreError> {
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db_err("begin a transaction"))?;
    let out = insert_grant_tx(&mut tx, grant, None).await?;
    tx.commit().await.map_err(db_err("commit a grant"))?;
    Ok(out)
}

/// Makes sure the slot's row exists (a lease or a baseline needs one).
async fn ensure_slot(tx: &mut Tx, key: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO grant_slots (slot_key, updated_at) VALUES ($1, $2) \
         ON CONFLICT (slot_key) DO NOTHING",
    )
    .bind(key.to_owned())
    .bind(micros(at))
    .execute(&mut **tx)
    .await
    .map_err(db_err("record a grant slot"))?;
    Ok(())
}

pub(crate) async fn record_grant(
    pool: &Pool<Db>,
    record: &GrantRecord,
) -> Result<Grant, StoreError> {
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db_err("begin a transaction"))?;
    let at = record.grant.created_at;
    let key = SlotKey {
        principal: record.grant.principal.clone(),
        target: record.grant.target.clone(),
    }
    .as_key();
    ensure_slot(&mut tx, &key, at).await?;
    if let Some(baseline) = record.fresh_baseline {
        sqlx::query(
            "UPDATE grant_slots SET baseline_level = $1, last_set = $1, updated_at = $2 \
             WHERE slot_key = $3",
        )
        .bind(baseline.map(GrantLevel::as_str))
        .bind(micros(at))
        .bind(key)
        .execute(&mut *tx)
        .await
        .map_err(db_err("record a slot's baseline"))?;
    }
    let grant = insert_grant_tx(&mut tx, &record.grant, record.claim.as_ref()).await?;
    let audit: Vec<NewAuditEntry> = record
        .audit
        .iter()
        .cloned()
        .map(|mut e| {
            with_grant_id(&mut e, grant.id);
            e
        })
        .collect();
    insert_audit(&mut tx, &audit).await?;
    tx.commit().await.map_err(db_err("commit a grant"))?;
    Ok(grant)
}

/// Names the grant in an audit entry recorded together with it (its id is known only now).
fn with_grant_id(entry: &mut NewAuditEntry, id: GrantId) {
    if let serde_json::Value::Object(map) = &mut entry.details {
        map.insert("grant_id".to_owned(), serde_json::json!(id.0));
    }
    if entry.subject.is_empty() {
        entry.subject = format!("grant {id}");
    }
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
    step_grant(pool, &GrantStep::new(id, from, to, at)).await
}

/// Writes the explicit-permission fact (or membership) a slot now has in Bitbucket, so that the
/// next read of its listing finds what the store already holds.
async fn write_slot_fact(
    tx: &mut Tx,
    principal: &Principal,
    target: &GrantTarget,
    level: Option<GrantLevel>,
) -> Result<(), StoreError> {
    let (principal_kind, principal_id) = principal_columns(principal);
    let (table, scope_col, key_col) = match (target, principal_kind) {
        (GrantTarget::Repository { .. }, "user") => {
            ("repository_user_permissions", "repo_slug", "account_id")
        }
        (GrantTarget::Repository { .. }, _) => {
            ("repository_group_permissions", "repo_slug", "group_slug")
        }
        (GrantTarget::Project { .. }, "user") => {
            ("project_user_permissions", "project_key", "account_id")
        }
        (GrantTarget::Project { .. }, _) => {
            ("project_group_permissions", "project_key", "group_slug")
        }
        (GrantTarget::GroupMembership { .. }, _) => ("group_members", "group_slug", "account_id"),
    };
    let workspace = target.workspace().to_string();
    let scope = target.key().to_owned();
    let membership = matches!(target, GrantTarget::GroupMembership { .. });
    match level {
        None => {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE workspace = $1 AND {scope_col} = $2 AND {key_col} = $3"
            ))
            .bind(workspace)
            .bind(scope)
            .bind(principal_id)
            .execute(&mut **tx)
            .await
            .map_err(db_err("remove a granted fact"))?;
        }
        Some(_) if membership => {
            sqlx::query(&format!(
                "INSERT INTO {table} (workspace, {scope_col}, {key_col}) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING"
            ))
            .bind(workspace)
            .bind(scope)
            .bind(principal_id)
            .execute(&mut **tx)
            .await
            .map_err(db_err("record a granted membership"))?;
        }
        Some(level) => {
            sqlx::query(&format!(
                "INSERT INTO {table} (workspace, {scope_col}, {key_col}, level) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (workspace, {scope_col}, {key_col}) DO UPDATE SET level = $4"
            ))
            .bind(workspace)
            .bind(scope)
            .bind(principal_id)
            .bind(level.as_str())
            .execute(&mut **tx)
            .await
            .map_err(db_err("record a granted fact"))?;
        }
    }
    Ok(())
}

async fn set_slot_level(
    tx: &mut Tx,
    slot: &SlotKey,
    level: Option<GrantLevel>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE grant_slots SET last_set = $1, updated_at = $2 WHERE slot_key = $3")
        .bind(level.map(GrantLevel::as_str))
        .bind(micros(at))
        .bind(slot.as_key())
        .execute(&mut **tx)
        .await
        .map_err(db_err("record a slot's level"))?;
    write_slot_fact(tx, &slot.principal, &slot.target, level).await
}

pub(crate) async fn step_grant(pool: &Pool<Db>, step: &GrantStep) -> Result<bool, StoreError> {
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db_err("begin a transaction"))?;
    let mut qb = QueryBuilder::<Db>::new("UPDATE grants SET state = ");
    qb.push_bind(step.to.as_str())
        .push(", updated_at = ")
        .push_bind(micros(step.at))
        .push(", claimed_by = ")
        .push_bind(step.claim.as_ref().map(|c| c.0.clone()))
        .push(", claimed_until = ")
        .push_bind(step.claim.as_ref().map(|c| micros(c.1)));
    if let Some(kind) = step.end_kind {
        qb.push(", end_kind = ").push_bind(kind.as_str());
    }
    if let Some(at) = step.retry_at {
        qb.push(", attempts = attempts + 1, next_attempt_at = ")
            .push_bind(micros(at));
    }
    qb.push(" WHERE id = ")
        .push_bind(step.id.0)
        .push(" AND state = ")
        .push_bind(step.from.as_str())
        .push(format!(" RETURNING {GRANT_COLS}"));
    let row = qb
        .build()
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err("change a grant's state"))?;
    let Some(row) = row else {
        return Ok(false);
    };
    let grant = grant_from_row(&row)?;
    if let Some(level) = step.set_level {
        set_slot_level(&mut tx, &grant.slot(), level, step.at).await?;
    }
    insert_audit(&mut tx, &step.audit).await?;
    tx.commit().await.map_err(db_err("commit a grant's state"))?;
    Ok(true)
}

pub(crate) async fn record_slot_change(
    pool: &Pool<Db>,
    change: &SlotChange,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db_err("begin a transaction"))?;
    ensure_slot(&mut tx, &change.slot.as_key(), at).await?;
    set_slot_level(&mut tx, &change.slot, change.level, at).await?;
    insert_audit(&mut tx, &change.audit).await?;
    tx.commit().await.map_err(db_err("commit a slot change"))
}

pub(crate) async fn grant_slot(
    pool: &Pool<Db>,
    slot: &SlotKey,
) -> Result<Option<GrantSlot>, StoreError> {
    let row = sqlx::query(
        "SELECT slot_key, baseline_level, last_set, locked_by, locked_until \
         FROM grant_slots WHERE slot_key = $1",
    )
    .bind(slot.as_key())
    .fetch_optional(pool)
    .await
    .map_err(db_err("read a grant slot"))?;
    let Some(row) = row else { return Ok(None) };
    let decode = db_err("decode a grant slot");
    Ok(Some(GrantSlot {
        key: row.try_get(0).map_err(&decode)?,
        baseline: grant_level("slot baseline", row.try_get(1).map_err(&decode)?)?,
        last_set: grant_level("slot level", row.try_get(2).map_err(&decode)?)?,
        locked_by: row.try_get(3).map_err(&decode)?,
        locked_until: row.try_get(4).map_err(&decode)?,
    }))
}

pub(crate) async fn lock_grant_slot(
    pool: &Pool<Db>,
    slot: &SlotKey,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db_err("begin a transaction"))?;
    let key = slot.as_key();
    ensure_slot(&mut tx, &key, now).await?;
    // Compare-and-set: free, lapsed, or already ours. PostgreSQL re-checks the condition after
    // waiting for a concurrent updater's row lock, so two takers never both succeed.
    let taken = sqlx::query(
        "UPDATE grant_slots SET locked_by = $1, locked_until = $2 WHERE slot_key = $3 \
         AND (locked_by IS NULL OR locked_until IS NULL OR locked_until <= $4 OR locked_by = $1)",
    )
    .bind(owner.to_owned())
    .bind(micros(until))
    .bind(key)
    .bind(micros(now))
    .execute(&mut *tx)
    .await
    .map_err(db_err("lease a grant slot"))?
    .rows_affected()
        == 1;
    tx.commit().await.map_err(db_err("commit a slot lease"))?;
    Ok(taken)
}

pub(crate) async fn unlock_grant_slot(
    pool: &Pool<Db>,
    slot: &SlotKey,
    owner: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE grant_slots SET locked_by = NULL, locked_until = NULL \
         WHERE slot_key = $1 AND locked_by = $2",
    )
    .bind(slot.as_key())
    .bind(owner.to_owned())
    .execute(pool)
    .await
    .map_err(db_err("release a grant slot"))?;
    Ok(())
}

pub(crate) async fn slot_grants(pool: &Pool<Db>, slot: &SlotKey) -> Result<Vec<Grant>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {GRANT_COLS} FROM grants WHERE slot_key = $1 \
         AND state IN ('pending', 'active', 'satisfied', 'ending') ORDER BY id"
    ))
    .bind(slot.as_key())
    .fetch_all(pool)
    .await
    .map_err(db_err("list a slot's grants"))?;
    rows.iter().map(grant_from_row).collect()
}

pub(crate) async fn claim_grants(
    pool: &Pool<Db>,
    claim: &GrantClaim,
) -> Result<Vec<Grant>, StoreError> {
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db_err("begin a transaction"))?;
    let now = micros(claim.now);
    // On PostgreSQL, rows another worker has locked are skipped rather than waited for, so two
    // workers split the due grants between them; SQLite has one writer at a time anyway.
    let lock = if is_postgres() {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let rows = sqlx::query(&format!(
        "SELECT {GRANT_COLS} FROM grants WHERE \
         (state IN ('active', 'satisfied') AND expires_at IS NOT NULL AND expires_at <= $1) \
         OR (state IN ('pending', 'ending') AND (claimed_until IS NULL OR claimed_until <= $1) \
             AND (next_attempt_at IS NULL OR next_attempt_at <= $1)) \
         ORDER BY expires_at, id LIMIT $2{lock}"
    ))
    .bind(now)
    .bind(i64::from(claim.limit))
    .fetch_all(&mut *tx)
    .await
    .map_err(db_err("find due grants"))?;
    let mut grants: Vec<Grant> = rows.iter().map(grant_from_row).collect::<Result<_, _>>()?;
    if grants.is_empty() {
        tx.commit().await.map_err(db_err("commit a claim"))?;
        return Ok(grants);
    }
    let mut audit = Vec::new();
    for grant in &mut grants {
        let mut qb = QueryBuilder::<Db>::new("UPDATE grants SET claimed_by = ");
        qb.push_bind(claim.owner.clone())
            .push(", claimed_until = ")
            .push_bind(micros(claim.until));
        if grant.state.is_in_force() {
            qb.push(", state = 'ending', end_kind = 'expired', updated_at = ")
                .push_bind(now);
            audit.push(NewAuditEntry {
                at: claim.now,
                actor: claim.actor.clone(),
                kind: AuditKind::Expire,
                subject: format!("grant {}", grant.id),
                before: Some(serde_json::json!({ "state": grant.state.as_str() })),
                after: Some(serde_json::json!({ "state": "ending" })),
                details: serde_json::json!({
                    "grant_id": grant.id.0,
                    "expires_at": grant.expires_at,
                    "slot": grant.slot().as_key(),
                }),
            });
            grant.state = GrantState::Ending;
            grant.end_kind = Some(EndKind::Expired);
            grant.updated_at = now;
        }
        qb.push(" WHERE id = ").push_bind(grant.id.0);
        qb.build()
            .execute(&mut *tx)
            .await
            .map_err(db_err("claim a due grant"))?;
    }
    insert_audit(&mut tx, &audit).await?;
    tx.commit().await.map_err(db_err("commit a claim"))?;
    Ok(grants)
}

pub(crate) async fn next_grant_event(
    pool: &Pool<Db>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    // The earliest of: an end of a grant in force, a lapsed claim, a retry's wait.
    let row = sqlx::query(
        "SELECT MIN(t) FROM ( \
           SELECT MIN(expires_at) AS t FROM grants WHERE state IN ('active', 'satisfied') \
           UNION ALL SELECT MIN(claimed_until) FROM grants WHERE state IN ('pending', 'ending') \
           UNION ALL SELECT MIN(next_attempt_at) FROM grants WHERE state IN ('pending', 'ending') \
         ) AS events",
    )
    .fetch_one(pool)
    .await
    .map_err(db_err("find the next grant event"))?;
    row.try_get::<Option<DateTime<Utc>>, _>(0)
        .map_err(db_err("decode the next grant event"))
}

pub(crate) async fn list_grants(
    pool: &Pool<Db>,
    filter: &GrantFilter,
) -> Result<Vec<Grant>, StoreError> {
    list_grants_due(pool, filter, None).await
}

/// The grants matching the filter, and (with `due_at`) ending at or before that time.
async fn list_grants_due(
    pool: &Pool<Db>,
    filter: &GrantFilter,
    due_at: Option<DateTime<Utc>>,
) -> Result<Vec<Grant>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(format!("SELECT {GRANT_COLS} FROM grants WHERE 1 = 1"));
    if !filter.states.is_empty() {
        qb.push(" AND state IN (");
        let mut list = qb.separated(", ");
        for state in &filter.states {
            list.push_bind(state.as_str());
        }
        qb.push(")");
    }
    if let Some(p) = &filter.principal {
        let (kind, id) = principal_columns(p);
        qb.push(" AND principal_kind = ")
            .push_bind(kind)
            .push(" AND principal_id = ")
            .push_bind(id);
    }
    if let Some(ws) = &filter.workspace {
        qb.push(" AND workspace = ").push_bind(ws.clone());
    }
    if let Some(since) = filter.changed_since {
        qb.push(" AND updated_at >= ").push_bind(micros(since));
    }
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

pub(crate) async fn grants_in_state(
    pool: &Pool<Db>,
    states: &[GrantState],
    due_at: Option<DateTime<Utc>>,
) -> Result<Vec<Grant>, StoreError> {
    let filter = GrantFilter {
        states: states.to_vec(),
        ..GrantFilter::default()
    };
    list_grants_due(pool, &filter, due_at).await
}

pub(crate) async fn acquire_grant_watcher(
    pool: &Pool<Db>,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db_err("begin a transaction"))?;
    sqlx::query(
        "INSERT INTO grant_watchers (name, owner, lease_until) VALUES ('expire', $1, $2) \
         ON CONFLICT (name) DO UPDATE SET owner = $1, lease_until = $2 \
         WHERE grant_watchers.lease_until <= $3 OR grant_watchers.owner = $1",
    )
    .bind(owner.to_owned())
    .bind(micros(until))
    .bind(micros(now))
    .execute(&mut *tx)
    .await
    .map_err(db_err("register the expiry watcher"))?;
    let holder: String = sqlx::query("SELECT owner FROM grant_watchers WHERE name = 'expire'")
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err("read the expiry watcher"))?
        .try_get(0)
        .map_err(db_err("decode the expiry watcher"))?;
    tx.commit().await.map_err(db_err("commit the expiry watcher"))?;
    Ok((holder != owner).then_some(holder))
}

pub(crate) async fn release_grant_watcher(pool: &Pool<Db>, owner: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM grant_watchers WHERE name = 'expire' AND owner = $1")
        .bind(owner.to_owned())
        .execute(pool)
        .await
        .map_err(db_err("release the expiry watcher"))?;
    Ok(())
}
