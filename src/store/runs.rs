// Sync runs: their records, ownership (claims, leases, heartbeats) and the requests they spent.
// Like `sql.rs`, this file is not a module of its own: `sqlite.rs` and `postgres.rs` each
// `include!` it after `sql.rs`, whose helpers (`db_err`, `micros`, `to_i64`...) and backend
// constants (`Db`, `BEGIN_WRITE`, `LOCK_LISTING`) it uses.
//
// A claim reads the unfinished runs and writes its own in one write transaction that no other
// claim can interleave with: SQLite's `BEGIN IMMEDIATE` takes the database's write lock at the
// start, and PostgreSQL takes a transaction-scoped advisory lock (through `LOCK_LISTING` with a
// key no listing has). Two syncs started together therefore see each other's claim: the second
// finds the first's live lease and neither resumes nor reads the same workspace.

use crate::store::run_types::{ClaimOutcome, ClaimRequest, HeldWorkspace, Heartbeat, RunOwner};
use crate::store::types::{SyncOutcome, SyncRun, SyncRunFinish, SyncRunId};

/// The advisory lock key serialising claims on PostgreSQL (listing keys never contain `#`).
const CLAIM_LOCK_KEY: &str = "#sync-run-claims";

/// The owner stored for runs started without one (`start_sync_run`).
const NO_OWNER: &str = "";

/// The start of the minute holding `at`: the width of a request bucket.
fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
    let seconds = at.timestamp() - at.timestamp().rem_euclid(60);
    DateTime::from_timestamp(seconds, 0).unwrap_or(at)
}

fn workspaces_json(workspaces: &[WorkspaceSlug]) -> String {
    let names: Vec<&str> = workspaces.iter().map(WorkspaceSlug::as_str).collect();
    serde_json::json!(names).to_string()
}

fn parse_workspaces(text: &str) -> Result<Vec<WorkspaceSlug>, StoreError> {
    let names: Vec<String> =
        serde_json::from_str(text).map_err(|e| corrupt("sync run workspaces")(e.to_string()))?;
    names.into_iter().map(ws_slug).collect()
}

/// Records the start of a run without an owner (its lease counts as expired at once).
pub(crate) async fn start_sync_run(
    pool: &Pool<Db>,
    started_at: DateTime<Utc>,
    workspaces: &[WorkspaceSlug],
) -> Result<SyncRunId, StoreError> {
    let row =
        sqlx::query("INSERT INTO sync_runs (started_at, workspaces) VALUES ($1, $2) RETURNING id")
            .bind(micros(started_at))
            .bind(workspaces_json(workspaces))
            .fetch_one(pool)
            .await
            .map_err(db_err("start a sync run"))?;
    Ok(SyncRunId(
        row.try_get(0).map_err(db_err("decode a sync run id"))?,
    ))
}

/// An unfinished run as the claim sees it.
struct OpenRun {
    id: SyncRunId,
    started_at: DateTime<Utc>,
    workspaces: Vec<WorkspaceSlug>,
    owner: Option<String>,
    lease_until: Option<DateTime<Utc>>,
}

/// Claims the workspaces no live run holds, taking over an interrupted run of exactly those
/// workspaces when its owner is gone and it is recent enough, else starting a new run.
pub(crate) async fn claim_sync_run(
    pool: &Pool<Db>,
    request: &ClaimRequest,
) -> Result<ClaimOutcome, StoreError> {
    let now = micros(request.now);
    let lease_until = micros(request.lease_until);
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db_err("begin a sync run claim"))?;
    if let Some(lock) = LOCK_LISTING {
        sqlx::query(lock)
            .bind(CLAIM_LOCK_KEY)
            .execute(&mut *tx)
            .await
            .map_err(db_err("lock the sync run claims"))?;
    }
    let rows = sqlx::query(
        "SELECT id, started_at, workspaces, owner, lease_until FROM sync_runs \
         WHERE finished_at IS NULL ORDER BY id DESC",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db_err("read the unfinished sync runs"))?;
    let decode = db_err("decode an unfinished sync run");
    let mut open = Vec::with_capacity(rows.len());
    for row in &rows {
        let workspaces: String = row.try_get(2).map_err(&decode)?;
        open.push(OpenRun {
            id: SyncRunId(row.try_get(0).map_err(&decode)?),
            started_at: row.try_get(1).map_err(&decode)?,
            workspaces: parse_workspaces(&workspaces)?,
            owner: row.try_get(3).map_err(&decode)?,
            lease_until: row.try_get(4).map_err(&decode)?,
        });
    }
    let live = |run: &OpenRun| run.lease_until.is_some_and(|until| until > now);

    let mut held = Vec::new();
    let mut claimed = Vec::new();
    for ws in &request.workspaces {
        let holder = open
            .iter()
            .find(|run| live(run) && run.workspaces.contains(ws));
        match holder {
            Some(run) => held.push(HeldWorkspace {
                workspace: ws.clone(),
                run: run.id,
                owner: RunOwner::named(run.owner.clone().unwrap_or_default()),
                lease_until: run.lease_until.unwrap_or(now),
            }),
            None => claimed.push(ws.clone()),
        }
    }

    // Only the most recent interrupted run is a candidate, as before leases: an older one was
    // already passed over by the runs after it.
    let resumable = open
        .iter()
        .find(|run| !live(run))
        .filter(|run| {
            !claimed.is_empty()
                && run.workspaces == claimed
                && run.started_at >= micros(request.resume_after)
        })
        .map(|run| run.id);
    let run = match resumable {
        Some(id) => {
            sqlx::query("UPDATE sync_runs SET owner = $1, lease_until = $2 WHERE id = $3")
                .bind(request.owner.as_str())
                .bind(lease_until)
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(db_err("take over an interrupted sync run"))?;
            id
        }
        None => {
            let row = sqlx::query(
                "INSERT INTO sync_runs (started_at, workspaces, owner, lease_until) \
                 VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(now)
            .bind(workspaces_json(&claimed))
            .bind(request.owner.as_str())
            .bind(lease_until)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err("start a sync run"))?;
            SyncRunId(row.try_get(0).map_err(db_err("decode a sync run id"))?)
        }
    };
    tx.commit().await.map_err(db_err("commit a sync run claim"))?;
    Ok(ClaimOutcome {
        run,
        resumed: resumable.is_some(),
        claimed,
        held,
    })
}

/// Adds `requests` to the bucket of (`run`, `owner`, the minute of `at`).
async fn add_requests(
    tx: &mut Tx,
    run: SyncRunId,
    owner: &str,
    at: DateTime<Utc>,
    requests: u64,
) -> Result<(), StoreError> {
    if requests == 0 {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO sync_requests (run_id, owner, minute, requests) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (run_id, owner, minute) \
         DO UPDATE SET requests = sync_requests.requests + excluded.requests",
    )
    .bind(run.0)
    .bind(owner)
    .bind(minute_of(at))
    .bind(to_i64("requests", requests)?)
    .execute(&mut **tx)
    .await
    .map_err(db_err("count the requests of a sync run"))?;
    Ok(())
}

/// Renews the lease of a run its caller still owns and records the requests sent since the
/// last heartbeat. Returns `false` (changing nothing) when the run has another owner or ended.
pub(crate) async fn heartbeat_sync_run(
    pool: &Pool<Db>,
    beat: &Heartbeat,
) -> Result<bool, StoreError> {
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db_err("begin a sync run heartbeat"))?;
    let renewed = sqlx::query(
        "UPDATE sync_runs SET lease_until = $1 \
         WHERE id = $2 AND owner = $3 AND finished_at IS NULL",
    )
    .bind(micros(beat.lease_until))
    .bind(beat.run.0)
    .bind(beat.owner.as_str())
    .execute(&mut *tx)
    .await
    .map_err(db_err("renew a sync run lease"))?
    .rows_affected()
        == 1;
    if renewed {
        add_requests(&mut tx, beat.run, beat.owner.as_str(), beat.at, beat.requests).await?;
    }
    tx.commit().await.map_err(db_err("commit a sync run heartbeat"))?;
    Ok(renewed)
}

/// Records the end of a run and ends its lease. The requests of `finish` are its current
/// owner's for the whole run; what the heartbeats have not counted yet goes into the bucket of
/// the minute it finished.
pub(crate) async fn finish_sync_run(
    pool: &Pool<Db>,
    run: SyncRunId,
    finish: &SyncRunFinish,
) -> Result<(), StoreError> {
    let mut tx = pool
        .begin_with(BEGIN_WRITE)
        .await
        .map_err(db_err("begin finishing a sync run"))?;
    let row = sqlx::query(
        "SELECT COALESCE(owner, ''), CAST(COALESCE((SELECT SUM(q.requests) FROM sync_requests q \
         WHERE q.run_id = r.id AND q.owner = COALESCE(r.owner, '')), 0) AS BIGINT) \
         FROM sync_runs r WHERE r.id = $1",
    )
    .bind(run.0)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_err("read the requests of a sync run"))?;
    if let Some(row) = row {
        let decode = db_err("decode the requests of a sync run");
        let owner: String = row.try_get(0).map_err(&decode)?;
        let counted = to_u64(row.try_get(1).map_err(&decode)?);
        let owner = if owner.is_empty() { NO_OWNER } else { &owner };
        let rest = finish.requests_used.saturating_sub(counted);
        add_requests(&mut tx, run, owner, finish.finished_at, rest).await?;
    }
    sqlx::query(
        "UPDATE sync_runs SET finished_at = $1, outcome = $2, counts = $3, requests_used = $4, \
         minimum_requests = $5, lease_until = NULL WHERE id = $6",
    )
    .bind(micros(finish.finished_at))
    .bind(finish.outcome.as_str())
    .bind(json_text(&finish.counts))
    .bind(to_i64("requests used", finish.requests_used)?)
    .bind(to_i64("minimum requests", finish.minimum_requests)?)
    .bind(run.0)
    .execute(&mut *tx)
    .await
    .map_err(db_err("finish a sync run"))?;
    tx.commit().await.map_err(db_err("commit the end of a sync run"))?;
    Ok(())
}

const SYNC_RUN_COLS: &str =
    "id, started_at, workspaces, finished_at, outcome, counts, requests_used, minimum_requests";

fn sync_run_from_row(row: &<Db as sqlx::Database>::Row) -> Result<SyncRun, StoreError> {
    let decode = db_err("decode a sync run");
    let workspaces: String = row.try_get(2).map_err(&decode)?;
    let outcome: Option<String> = row.try_get(4).map_err(&decode)?;
    let counts: String = row.try_get(5).map_err(&decode)?;
    Ok(SyncRun {
        id: SyncRunId(row.try_get(0).map_err(&decode)?),
        started_at: row.try_get(1).map_err(&decode)?,
        workspaces: parse_workspaces(&workspaces)?,
        finished_at: row.try_get(3).map_err(&decode)?,
        outcome: outcome.as_deref().map(SyncOutcome::parse).transpose()?,
        counts: parse_json("sync run counts", &counts)?,
        requests_used: to_u64(row.try_get(6).map_err(&decode)?),
        minimum_requests: to_u64(row.try_get(7).map_err(&decode)?),
    })
}

/// Requests counted in the buckets from the minute holding `since` on, leaving out those of
/// run `excluding` (the caller's own, which its budget already knows).
pub(crate) async fn requests_since(
    pool: &Pool<Db>,
    since: DateTime<Utc>,
    excluding: Option<SyncRunId>,
) -> Result<u64, StoreError> {
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) FROM sync_requests \
         WHERE minute >= $1 AND run_id <> $2",
    )
    .bind(minute_of(since))
    // Run ids start at 1, so -1 excludes nothing.
    .bind(excluding.map_or(-1, |run| run.0))
    .fetch_one(pool)
    .await
    .map_err(db_err("sum the requests of recent sync runs"))?;
    let n: i64 = row.try_get(0).map_err(db_err("decode a request count"))?;
    Ok(to_u64(n))
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
