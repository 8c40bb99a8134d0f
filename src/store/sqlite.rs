//! The SQLite backend: a file created on first use, in WAL mode with foreign keys on.
//!
//! Write transactions start with `BEGIN IMMEDIATE` so that two writers queue on SQLite's lock
//! (with a busy timeout) instead of failing when a read transaction tries to upgrade. A file is
//! checked with `PRAGMA quick_check` whenever it is opened, and a damaged one is refused by name.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqlitePool};

use super::{DatabaseUrl, OpenMode};

type Db = sqlx::Sqlite;
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

// `BEGIN IMMEDIATE` already serialises every write transaction.
const LOCK_LISTING: Option<&str> = None;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for another's lock. Longer than the connect timeout: a sync's
/// batches legitimately queue behind each other.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How often `migrate` tries again when another process migrated the same fresh file at the
/// same moment (SQLite has no lock that spans sqlx's migration transactions).
const MIGRATE_ATTEMPTS: u32 = 8;

include!("sql.rs");

/// Nothing to do: `BEGIN IMMEDIATE` already serialises every write transaction.
async fn lock_listings(_tx: &mut Tx, _listings: &[String]) -> Result<(), StoreError> {
    Ok(())
}
include!("runs.rs");
include!("sql/job_leases.rs");

/// Opens the SQLite file the URL names: in [`OpenMode::ReadWrite`] creating it (and its
/// folder) if missing, in [`OpenMode::ReadOnly`] read-only and only if it exists. Returns the
/// pool and the file's path (`None` in memory), after an integrity check.
pub(crate) async fn connect(
    url: &DatabaseUrl,
    mode: OpenMode,
) -> Result<(SqlitePool, Option<PathBuf>), StoreError> {
    let fail = |message: String| StoreError::Connect {
        backend: "SQLite",
        url: url.redacted().to_owned(),
        message,
    };
    let options = SqliteConnectOptions::from_str(url.expose_url())
        .map_err(|e| fail(url.scrub(e)))?
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    let filename = options.get_filename().to_path_buf();
    let in_memory =
        url.expose_url().contains(":memory:") || url.expose_url().contains("mode=memory");
    let path = (!in_memory).then(|| filename.clone());
    let options = match mode {
        OpenMode::ReadWrite => {
            if let Some(parent) = filename.parent().filter(|p| !p.as_os_str().is_empty()) {
                if !in_memory {
                    // SQLite creates the file but not its folder; a fresh install should just work.
                    std::fs::create_dir_all(parent).map_err(|e| {
                        fail(format!("cannot create folder {}: {e}", parent.display()))
                    })?;
                }
            }
            options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
        }
        OpenMode::ReadOnly => {
            if !in_memory && !filename.exists() {
                return Err(StoreError::Missing { path: filename });
            }
            options.read_only(true)
        }
    };
    // An in-memory database lives in one connection; a pool of several would see several databases.
    let max = if in_memory { 1 } else { 4 };
    let pool_options = || {
        SqlitePoolOptions::new()
            .max_connections(max)
            .acquire_timeout(BUSY_TIMEOUT)
    };
    let damaged = |detail: String| StoreError::Damaged {
        path: filename.clone(),
        detail,
    };
    if mode == OpenMode::ReadWrite && !in_memory && !filename.exists() {
        // Create the file with one connection, then open the pool without creating: a pool
        // connection opened after the file was removed must fail, not start an empty store
        // that a sync would fill and report as complete.
        let first = retry_locked(|| {
            let options = options.clone();
            async move { options.connect().await }
        })
        .await
        .map_err(|e| fail(url.scrub(e)))?;
        let _ = first.close().await;
    }
    let options = options.create_if_missing(false);
    let pool = match retry_locked(|| pool_options().connect_with(options.clone())).await {
        Ok(pool) => pool,
        Err(e) if is_damage(&e.to_string()) => return Err(damaged(url.scrub(e))),
        // A WAL file read-only in a read-only folder cannot get its shared-memory file; opened
        // as immutable it can still be read (the command reads once and exits).
        Err(_) if mode == OpenMode::ReadOnly => pool_options()
            .connect_with(options.immutable(true))
            .await
            .map_err(|e| fail(url.scrub(e)))?,
        Err(e) => return Err(fail(url.scrub(e))),
    };
    if !in_memory {
        if let Err(detail) = quick_check(&pool).await {
            pool.close().await;
            return Err(damaged(url.scrub(detail)));
        }
    }
    Ok((pool, path))
}

/// Runs `open` again when SQLite says the file is locked: processes opening one fresh file at
/// the same moment can each wait on the other's first connection (creating the file, switching
/// it to WAL) until the busy timeout; the loser's next attempt finds the file settled.
async fn retry_locked<T, Fut>(mut open: impl FnMut() -> Fut) -> Result<T, sqlx::Error>
where
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempt = 1;
    loop {
        match open().await {
            Err(e)
                if attempt < MIGRATE_ATTEMPTS && e.to_string().contains("database is locked") =>
            {
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Whether a driver message says the file is not a (sound) SQLite database.
fn is_damage(message: &str) -> bool {
    message.contains("not a database") || message.contains("malformed")
}

/// SQLite's fast integrity check: `Ok` when it says `ok`, else what it found.
async fn quick_check(pool: &SqlitePool) -> Result<(), String> {
    let rows = sqlx::query("PRAGMA quick_check")
        .fetch_all(pool)
        .await
        .map_err(|e| e.to_string())?;
    let found: Vec<String> = rows
        .iter()
        .filter_map(|row| row.try_get::<String, _>(0).ok())
        .filter(|line| line != "ok")
        .collect();
    if found.is_empty() {
        Ok(())
    } else {
        Err(found.join("; "))
    }
}

/// Applies the embedded SQLite migrations (idempotent). Two processes opening a fresh file at
/// once both try the first migration; the loser's transaction rolls back, and its next attempt
/// finds the migration applied.
pub(crate) async fn migrate(pool: &SqlitePool, url: &DatabaseUrl) -> Result<(), StoreError> {
    let mut attempt = 1;
    loop {
        match MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
            Err(_) if attempt < MIGRATE_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => {
                return Err(StoreError::Migrate {
                    url: url.redacted().to_owned(),
                    message: url.scrub(e),
                })
            }
        }
    }
}
