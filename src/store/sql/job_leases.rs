// Job leases of `serve` (compare-and-set, heartbeats, release), the grant counts by state and
// the last finished sync per workspace that `/readyz` and `/metrics` show.
// Included by `sql.rs` after `runs.rs`; see there for the names in scope.
//
// A claim reads the row and writes it in one write transaction no other claim interleaves with
// (SQLite's `BEGIN IMMEDIATE`; on PostgreSQL a transaction-scoped advisory lock on the job's
// name through `LOCK_LISTING`), so two processes never both take one lease. The expiry is
// decided in Rust on decoded times, not by comparing SQLite's text timestamps.

use crate::store::job_leases::{JobLease, JobLeaseRequest, LeaseClaim};

/// The advisory-lock key of a job's lease on PostgreSQL (listing keys never contain `#`).
fn job_lock_key(job: &str) -> String {
    format!("#job-lease:{job}")
}

fn job_lease_from_row(row: &<Db as sqlx::Database>::Row) -> Result<JobLease, StoreError> {
    let decode = db_err("decode a job lease");
    Ok(JobLease {
        job: row.try_get(0).map_err(&decode)?,
        holder: row.try_get(1).map_err(&decode)?,
        lease_until: row.try_get(2).map_err(&decode)?,
        heartbeat: row.try_get(3).map_err(&decode)?,
    })
}

pub(crate) async fn acquire_job_lease(
    pool: &Pool<Db>,
    request: &JobLeaseRequest,
) -> Result<LeaseClaim, StoreError> {
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db_err("begin a job lease claim"))?;
    if let Some(lock) = LOCK_LISTING {
        sqlx::query(lock)
            .bind(job_lock_key(&request.job))
            .execute(&mut *tx)
            .await
            .map_err(db_err("lock a job lease"))?;
    }
    let row = sqlx::query(
        "SELECT job, holder, lease_until, heartbeat FROM job_leases WHERE job = $1",
    )
    .bind(&request.job)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_err("read a job lease"))?;
    if let Some(current) = row.as_ref().map(job_lease_from_row).transpose()? {
        let claim = if current.holder != request.holder && current.lease_until > request.now {
            Some(LeaseClaim::Held(current))
        } else if request.run_time.is_some_and(|t| current.heartbeat >= micros(t)) {
            Some(LeaseClaim::AlreadyRan(current))
        } else {
            None
        };
        if let Some(claim) = claim {
            tx.rollback().await.map_err(db_err("end a job lease claim"))?;
            return Ok(claim);
        }
    }
    sqlx::query(
        "INSERT INTO job_leases (job, holder, lease_until, heartbeat) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, \
         lease_until = excluded.lease_until, heartbeat = excluded.heartbeat",
    )
    .bind(&request.job)
    .bind(&request.holder)
    .bind(micros(request.lease_until))
    .bind(micros(request.now))
    .execute(&mut *tx)
    .await
    .map_err(db_err("take a job lease"))?;
    tx.commit().await.map_err(db_err("commit a job lease claim"))?;
    Ok(LeaseClaim::Acquired)
}

pub(crate) async fn renew_job_lease(
    pool: &Pool<Db>,
    request: &JobLeaseRequest,
) -> Result<bool, StoreError> {
    let renewed = sqlx::query(
        "UPDATE job_leases SET lease_until = $1, heartbeat = $2 WHERE job = $3 AND holder = $4",
    )
    .bind(micros(request.lease_until))
    .bind(micros(request.now))
    .bind(&request.job)
    .bind(&request.holder)
    .execute(pool)
    .await
    .map_err(db_err("renew a job lease"))?
    .rows_affected();
    Ok(renewed == 1)
}

pub(crate) async fn release_job_lease(
    pool: &Pool<Db>,
    job: &str,
    holder: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE job_leases SET lease_until = $1, heartbeat = $1 WHERE job = $2 AND holder = $3",
    )
    .bind(micros(at))
    .bind(job)
    .bind(holder)
    .execute(pool)
    .await
    .map_err(db_err("release a job lease"))?;
    Ok(())
}

pub(crate) async fn job_leases(pool: &Pool<Db>) -> Result<Vec<JobLease>, StoreError> {
    let rows =
        sqlx::query("SELECT job, holder, lease_until, heartbeat FROM job_leases ORDER BY job")
            .fetch_all(pool)
            .await
            .map_err(db_err("read the job leases"))?;
    rows.iter().map(job_lease_from_row).collect()
}

pub(crate) async fn grant_counts(pool: &Pool<Db>) -> Result<BTreeMap<String, u64>, StoreError> {
    let rows = sqlx::query(
        "SELECT state, CAST(COUNT(*) AS BIGINT) FROM grants GROUP BY state ORDER BY state",
    )
    .fetch_all(pool)
    .await
    .map_err(db_err("count the grants by state"))?;
    let decode = db_err("decode a grant count");
    let mut out = BTreeMap::new();
    for row in &rows {
        let state: String = row.try_get(0).map_err(&decode)?;
        let n: i64 = row.try_get(1).map_err(&decode)?;
        out.insert(state, to_u64(n));
    }
    Ok(out)
}

/// How many finished runs `last_sync_by_workspace` looks back over: enough for every workspace
/// of a config that syncs them one run each, without reading a long history.
const RECENT_RUNS: i64 = 1000;

pub(crate) async fn last_sync_by_workspace(
    pool: &Pool<Db>,
) -> Result<BTreeMap<WorkspaceSlug, DateTime<Utc>>, StoreError> {
    let rows = sqlx::query(
        "SELECT workspaces, finished_at FROM sync_runs WHERE finished_at IS NOT NULL \
         ORDER BY id DESC LIMIT $1",
    )
    .bind(RECENT_RUNS)
    .fetch_all(pool)
    .await
    .map_err(db_err("read the finished sync runs"))?;
    let decode = db_err("decode a finished sync run");
    let mut out: BTreeMap<WorkspaceSlug, DateTime<Utc>> = BTreeMap::new();
    for row in &rows {
        let workspaces: String = row.try_get(0).map_err(&decode)?;
        let finished: DateTime<Utc> = row.try_get(1).map_err(&decode)?;
        for ws in parse_workspaces(&workspaces)? {
            let entry = out.entry(ws).or_insert(finished);
            *entry = (*entry).max(finished);
        }
    }
    Ok(out)
}

pub(crate) async fn oldest_read_by_workspace(
    pool: &Pool<Db>,
) -> Result<BTreeMap<WorkspaceSlug, DateTime<Utc>>, StoreError> {
    // The index on (workspace, read_at) answers this without reading every listing. SQLite
    // compares its text timestamps in time order: they are all UTC, written the same way.
    let rows = sqlx::query(
        "SELECT workspace, MIN(read_at) FROM listing_freshness GROUP BY workspace ORDER BY workspace",
    )
    .fetch_all(pool)
    .await
    .map_err(db_err("read the oldest listing of each workspace"))?;
    let decode = db_err("decode the oldest listing of a workspace");
    let mut out = BTreeMap::new();
    for row in &rows {
        let ws = ws_slug(row.try_get(0).map_err(&decode)?)?;
        let oldest: DateTime<Utc> = row.try_get(1).map_err(&decode)?;
        out.insert(ws, oldest);
    }
    Ok(out)
}
