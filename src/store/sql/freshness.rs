// Listing freshness: when each listing was last read completely, its resume cursor, and the
// listings of a workspace by age. Included by `sql.rs`; see there for the names in scope.

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
    statuses_by_age(keys, &rows)
}

/// The status of each of `keys` (the order of the answer as [`listings_by_age`]'s).
pub(crate) async fn listing_statuses(
    pool: &Pool<Db>,
    keys: &[ListingKey],
) -> Result<Vec<ListingStatus>, StoreError> {
    let mut rows = Vec::new();
    for chunk in keys.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Db>::new(format!(
            "SELECT {FRESHNESS_COLS} FROM listing_freshness WHERE listing IN ("
        ));
        let mut list = qb.separated(", ");
        for key in chunk {
            list.push_bind(key.to_string());
        }
        qb.push(")");
        rows.extend(
            qb.build()
                .fetch_all(pool)
                .await
                .map_err(db_err("read listing freshness"))?,
        );
    }
    statuses_by_age(keys.to_vec(), &rows)
}

/// `keys` with their freshness from `rows`: never read first (in the order given), then the
/// oldest read first.
fn statuses_by_age(
    keys: Vec<ListingKey>,
    rows: &[<Db as sqlx::Database>::Row],
) -> Result<Vec<ListingStatus>, StoreError> {
    let mut fresh: BTreeMap<ListingKey, ListingFreshness> = BTreeMap::new();
    for row in rows {
        let f = freshness_from_row(row)?;
        fresh.insert(f.key.clone(), f);
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
    // The sort is stable, so listings never read keep the order they were given in.
    out.sort_by_key(|s| (s.read_at.is_some(), s.read_at));
    Ok(out)
}

pub(crate) async fn record_listing_failure(
    pool: &Pool<Db>,
    key: &ListingKey,
    at: DateTime<Utc>,
    message: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO listing_failures (listing, workspace, failed_at, message) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (listing) DO UPDATE SET \
         failed_at = excluded.failed_at, message = excluded.message",
    )
    .bind(key.to_string())
    .bind(key.workspace().to_string())
    .bind(micros(at))
    .bind(message.to_owned())
    .execute(pool)
    .await
    .map_err(db_err("record a failed listing read"))?;
    Ok(())
}

pub(crate) async fn listing_failures(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
) -> Result<Vec<ListingFailure>, StoreError> {
    let rows = sqlx::query(
        "SELECT listing, failed_at, message FROM listing_failures WHERE workspace = $1 \
         ORDER BY listing",
    )
    .bind(workspace.to_string())
    .fetch_all(pool)
    .await
    .map_err(db_err("read failed listing reads"))?;
    rows.iter()
        .map(|row| {
            let decode = db_err("decode a failed listing read");
            let listing: String = row.try_get(0).map_err(&decode)?;
            Ok(ListingFailure {
                key: ListingKey::parse(&listing)?,
                failed_at: row.try_get(1).map_err(&decode)?,
                message: row.try_get(2).map_err(&decode)?,
            })
        })
        .collect()
}

pub(crate) async fn sweep_refusal(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
) -> Result<Option<crate::store::types::SweepRefusal>, StoreError> {
    let row = sqlx::query("SELECT refused_at, reason FROM sweep_refusals WHERE workspace = $1")
        .bind(workspace.to_string())
        .fetch_optional(pool)
        .await
        .map_err(db_err("read the refusal of the group-privileges listing"))?;
    row.map(|row| {
        let decode = db_err("decode the refusal of the group-privileges listing");
        Ok(crate::store::types::SweepRefusal {
            refused_at: row.try_get(0).map_err(&decode)?,
            reason: row.try_get(1).map_err(&decode)?,
        })
    })
    .transpose()
}

pub(crate) async fn set_sweep_refusal(
    pool: &Pool<Db>,
    workspace: &WorkspaceSlug,
    refusal: Option<&crate::store::types::SweepRefusal>,
) -> Result<(), StoreError> {
    let query = match refusal {
        Some(refusal) => sqlx::query(
            "INSERT INTO sweep_refusals (workspace, refused_at, reason) VALUES ($1, $2, $3) \
             ON CONFLICT (workspace) DO UPDATE SET \
             refused_at = excluded.refused_at, reason = excluded.reason",
        )
        .bind(workspace.to_string())
        .bind(micros(refusal.refused_at))
        .bind(refusal.reason.clone()),
        None => sqlx::query("DELETE FROM sweep_refusals WHERE workspace = $1")
            .bind(workspace.to_string()),
    };
    query
        .execute(pool)
        .await
        .map_err(db_err("record the refusal of the group-privileges listing"))?;
    Ok(())
}
