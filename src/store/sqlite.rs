//! The SQLite backend: a file created on first use, in WAL mode with foreign keys on.
//!
//! Write transactions start with `BEGIN IMMEDIATE` so that two writers queue on SQLite's lock
//! (with a busy timeout) instead of failing when a read transaction tries to upgrade.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use super::error::DatabaseUrl;

type Db = sqlx::Sqlite;
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

// `BEGIN IMMEDIATE` already serialises every write transaction.
const LOCK_LISTING: Option<&str> = None;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

include!("sql.rs");
include!("runs.rs");

/// Opens (creating if missing) the SQLite file the URL names.
pub(crate) async fn connect(url: &DatabaseUrl) -> Result<SqlitePool, StoreError> {
    let fail = |message: String| StoreError::Connect {
        backend: "SQLite",
        url: url.redacted().to_owned(),
        message,
    };
    let options = SqliteConnectOptions::from_str(url.expose())
        .map_err(|e| fail(url.scrub(e)))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30));
    let filename = options.get_filename().to_path_buf();
    let in_memory = url.expose().contains(":memory:") || url.expose().contains("mode=memory");
    if !in_memory {
        if let Some(parent) = filename.parent().filter(|p| !p.as_os_str().is_empty()) {
            // SQLite creates the file but not its folder; a fresh install should just work.
            std::fs::create_dir_all(parent)
                .map_err(|e| fail(format!("cannot create folder {}: {e}", parent.display())))?;
        }
    }
    // An in-memory database lives in one connection; a pool of several would see several databases.
    let max = if in_memory { 1 } else { 4 };
    SqlitePoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .map_err(|e| fail(url.scrub(e)))
}

/// Applies the embedded SQLite migrations (idempotent).
pub(crate) async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await.map_err(|e| StoreError::Migrate {
        message: e.to_string(),
    })
}
