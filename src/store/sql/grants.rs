// Grants and their compare-and-set state transitions.
// Included by `sql.rs`; see there for the names in scope.

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

pub(crate) async fn list_grants(
    pool: &Pool<Db>,
    filter: &GrantFilter,
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
    if let Some(principal) = &filter.principal {
        let (kind, id) = principal_columns(principal);
        qb.push(" AND principal_kind = ")
            .push_bind(kind)
            .push(" AND principal_id = ")
            .push_bind(id);
    }
    if let Some(workspace) = &filter.workspace {
        qb.push(" AND workspace = ").push_bind(workspace.clone());
    }
    if let Some(since) = filter.changed_since {
        qb.push(" AND updated_at >= ").push_bind(micros(since));
    }
    qb.push(" ORDER BY id");
    let rows = qb
        .build()
        .fetch_all(pool)
        .await
        .map_err(db_err("list grants"))?;
    rows.iter().map(grant_from_row).collect()
}
