// The organization events' cursor (`org_event_cursors`).
// Included by `sql.rs`; see there for the names in scope.
//
// An empty `cursor` column stands for "before the first page", so the compare-and-set compares
// two strings on both backends instead of NULL-safe comparisons that differ between them.

use crate::store::org_events::{CursorAdvance, OrgCursor};

pub(crate) async fn org_cursor(
    pool: &Pool<Db>,
    org_id: &str,
) -> Result<Option<OrgCursor>, StoreError> {
    let row = sqlx::query(
        "SELECT org_id, cursor, own_account_id, events_applied, updated_at, updated_by \
         FROM org_event_cursors WHERE org_id = $1",
    )
    .bind(org_id.to_owned())
    .fetch_optional(pool)
    .await
    .map_err(db_err("read the organization events' cursor"))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let decode = db_err("decode the organization events' cursor");
    let cursor: String = row.try_get(1).map_err(&decode)?;
    let applied: i64 = row.try_get(3).map_err(&decode)?;
    Ok(Some(OrgCursor {
        org_id: row.try_get(0).map_err(&decode)?,
        cursor: (!cursor.is_empty()).then_some(cursor),
        own_account_id: row.try_get(2).map_err(&decode)?,
        events_applied: to_u64(applied),
        updated_at: row.try_get(4).map_err(&decode)?,
        updated_by: row.try_get(5).map_err(&decode)?,
    }))
}

/// Creates the organization's row (before its first page) when it has none.
async fn ensure_org_cursor(
    pool: &Pool<Db>,
    org_id: &str,
    at: DateTime<Utc>,
    by: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO org_event_cursors (org_id, cursor, events_applied, updated_at, updated_by) \
         VALUES ($1, '', 0, $2, $3) ON CONFLICT (org_id) DO NOTHING",
    )
    .bind(org_id.to_owned())
    .bind(micros(at))
    .bind(by.to_owned())
    .execute(pool)
    .await
    .map_err(db_err("create the organization events' cursor"))?;
    Ok(())
}

pub(crate) async fn advance_org_cursor(
    pool: &Pool<Db>,
    advance: &CursorAdvance,
) -> Result<bool, StoreError> {
    ensure_org_cursor(pool, &advance.org_id, advance.at, &advance.by).await?;
    let moved = sqlx::query(
        "UPDATE org_event_cursors SET cursor = $1, events_applied = events_applied + $2, \
         updated_at = $3, updated_by = $4 WHERE org_id = $5 AND cursor = $6",
    )
    .bind(advance.cursor.clone())
    .bind(to_i64("events applied", advance.applied)?)
    .bind(micros(advance.at))
    .bind(advance.by.clone())
    .bind(advance.org_id.clone())
    .bind(advance.expected.clone().unwrap_or_default())
    .execute(pool)
    .await
    .map_err(db_err("move the organization events' cursor"))?
    .rows_affected();
    Ok(moved == 1)
}

pub(crate) async fn set_org_own_account(
    pool: &Pool<Db>,
    org_id: &str,
    account_id: &str,
    at: DateTime<Utc>,
    by: &str,
) -> Result<(), StoreError> {
    ensure_org_cursor(pool, org_id, at, by).await?;
    sqlx::query("UPDATE org_event_cursors SET own_account_id = $1 WHERE org_id = $2")
        .bind(account_id.to_owned())
        .bind(org_id.to_owned())
        .execute(pool)
        .await
        .map_err(db_err("record the connector's own account"))?;
    Ok(())
}
