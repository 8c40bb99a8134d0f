//! The PostgreSQL backend, for production and for several instances sharing one store.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use super::error::DatabaseUrl;

type Db = sqlx::Postgres;
const BEGIN_WRITE: &str = "BEGIN";

const LOCK_LISTING: Option<&str> = Some("SELECT pg_advisory_xact_lock(hashtext($1))");

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

include!("sql.rs");
include!("runs.rs");

/// Connects to the PostgreSQL database the URL names.
pub(crate) async fn connect(url: &DatabaseUrl) -> Result<PgPool, StoreError> {
    let fail = |message: String| StoreError::Connect {
        backend: "PostgreSQL",
        url: url.redacted().to_owned(),
        message,
    };
    let options = PgConnectOptions::from_str(url.expose()).map_err(|e| fail(url.scrub(e)))?;
    // One direct connection first: a pool retries until its timeout and then reports only
    // "timed out", while the direct attempt fails at once with the server's own reason.
    let probe = PgConnection::connect_with(&options)
        .await
        .map_err(|e| fail(url.scrub(e)))?;
    // A failed close of the probe leaves nothing behind that the pool below depends on.
    let _ = probe.close().await;
    PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| fail(url.scrub(e)))
}

/// Applies the embedded PostgreSQL migrations (idempotent; sqlx takes an advisory lock, so
/// several instances starting together apply them once).
pub(crate) async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await.map_err(|e| StoreError::Migrate {
        message: e.to_string(),
    })
}
