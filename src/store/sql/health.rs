// Probes for the store's health and schema version. Included by `sql.rs`; see there for the
// names in scope.

/// Why the schema is behind this program's migrations (`MIGRATOR`), `None` when every one of
/// them is applied.
pub(crate) async fn pending_migrations(pool: &Pool<Db>) -> Result<Option<String>, StoreError> {
    let rows = match sqlx::query("SELECT version FROM _sqlx_migrations WHERE success = $1")
        .bind(true)
        .fetch_all(pool)
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            let text = e.to_string();
            if text.contains("no such table") || text.contains("does not exist") {
                return Ok(Some(crate::store::health::NO_SCHEMA.to_owned()));
            }
            return Err(db_err("read the applied migrations")(e));
        }
    };
    let applied: BTreeSet<i64> = rows
        .iter()
        .map(|row| row.try_get(0).map_err(db_err("decode a migration version")))
        .collect::<Result<_, _>>()?;
    let missing: Vec<String> = MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .map(|m| m.version.to_string())
        .collect();
    Ok((!missing.is_empty()).then(|| format!("migrations {} are not applied", missing.join(", "))))
}

/// Tries a write in a transaction that is rolled back.
pub(crate) async fn write_probe(pool: &Pool<Db>) -> Result<(), String> {
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query("CREATE TABLE bba_write_probe (id INTEGER)")
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    tx.rollback().await.map_err(|e| e.to_string())
}

/// Whether the database answers a query.
pub(crate) async fn ping(pool: &Pool<Db>) -> Result<(), String> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
