// Stored audit reports, and the sync runs a report rests on.
// Included by `sql.rs`; see there for the names in scope.

const AUDIT_RUN_COLS: &str =
    "id, generated_at, sha256, previous_sha256, findings, content, files";

fn audit_run_from_row(row: &<Db as sqlx::Database>::Row) -> Result<AuditRun, StoreError> {
    let decode = db_err("decode an audit report");
    let files: String = row.try_get(6).map_err(&decode)?;
    Ok(AuditRun {
        id: AuditRunId(row.try_get(0).map_err(&decode)?),
        run: NewAuditRun {
            generated_at: row.try_get(1).map_err(&decode)?,
            sha256: row.try_get(2).map_err(&decode)?,
            previous_sha256: row.try_get(3).map_err(&decode)?,
            findings: to_u64(row.try_get(4).map_err(&decode)?),
            content: row.try_get(5).map_err(&decode)?,
            files: serde_json::from_str(&files)
                .map_err(|e| corrupt("audit report files")(e.to_string()))?,
        },
    })
}

/// Stores a report and appends its audit entry, in one transaction.
pub(crate) async fn record_audit_run(
    pool: &Pool<Db>,
    run: &NewAuditRun,
    entry: &NewAuditEntry,
) -> Result<AuditRunId, StoreError> {
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db_err("begin a transaction"))?;
    let files = serde_json::to_string(&run.files)
        .map_err(|e| corrupt("audit report files")(e.to_string()))?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO audit_runs (generated_at, sha256, previous_sha256, findings, content, files) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(micros(run.generated_at))
    .bind(run.sha256.clone())
    .bind(run.previous_sha256.clone())
    .bind(to_i64("audit findings", run.findings)?)
    .bind(run.content.clone())
    .bind(files)
    .fetch_one(&mut *tx)
    .await
    .map_err(db_err("store an audit report"))?;
    insert_audit(&mut tx, std::slice::from_ref(entry)).await?;
    tx.commit().await.map_err(db_err("commit an audit report"))?;
    Ok(AuditRunId(id))
}

/// Every stored report, oldest first (`last`: only the newest).
pub(crate) async fn audit_runs(pool: &Pool<Db>, last: bool) -> Result<Vec<AuditRun>, StoreError> {
    let order = if last { "DESC LIMIT 1" } else { "" };
    let rows = sqlx::query(&format!(
        "SELECT {AUDIT_RUN_COLS} FROM audit_runs ORDER BY id {order}"
    ))
    .fetch_all(pool)
    .await
    .map_err(db_err("read audit reports"))?;
    rows.iter().map(audit_run_from_row).collect()
}

/// The sync runs that last read a listing of these workspaces, by id.
pub(crate) async fn sync_runs_behind(
    pool: &Pool<Db>,
    workspaces: &[WorkspaceSlug],
) -> Result<Vec<SyncRun>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new(format!(
        "SELECT {SYNC_RUN_COLS} FROM sync_runs WHERE id IN \
         (SELECT last_run_id FROM listing_freshness WHERE last_run_id IS NOT NULL"
    ));
    if !workspaces.is_empty() {
        qb.push(" AND workspace IN (");
        let mut list = qb.separated(", ");
        for ws in workspaces {
            list.push_bind(ws.to_string());
        }
        qb.push(")");
    }
    qb.push(") ORDER BY id");
    let rows = qb
        .build()
        .fetch_all(pool)
        .await
        .map_err(db_err("read the sync runs behind the facts"))?;
    rows.iter().map(sync_run_from_row).collect()
}
