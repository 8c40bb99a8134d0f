//! The PostgreSQL backend, for production and for several instances sharing one store.
//!
//! Connecting gives up after [`super::CONNECT_TIMEOUT`], so a server that accepts connections
//! but never answers fails the command with an error naming it instead of hanging.

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use super::{DatabaseUrl, OpenMode, CONNECT_TIMEOUT};

type Db = sqlx::Postgres;
const BEGIN_WRITE: &str = "BEGIN";

const LOCK_LISTING: Option<&str> = Some("SELECT pg_advisory_xact_lock(hashtext($1))");

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

include!("sql.rs");

/// Takes the advisory lock of each listing (as `LOCK_LISTING` does for one) in one statement,
/// in the order given, so that concurrent batches, which all lock in key order, cannot deadlock.
async fn lock_listings(tx: &mut Tx, listings: &[String]) -> Result<(), StoreError> {
    if listings.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtext(t.listing)) \
         FROM unnest($1::text[]) WITH ORDINALITY AS t(listing, n) ORDER BY t.n",
    )
    .bind(listings)
    .execute(&mut **tx)
    .await
    .map_err(db_err("lock listings"))?;
    Ok(())
}
include!("runs.rs");
include!("sql/job_leases.rs");

/// Connects to the PostgreSQL database the URL names. The mode changes nothing here: a
/// read-only command simply never writes, and [`super::open_with`] checks the schema version.
pub(crate) async fn connect(url: &DatabaseUrl, _mode: OpenMode) -> Result<PgPool, StoreError> {
    let fail = |message: String| StoreError::Connect {
        backend: "PostgreSQL",
        url: url.redacted().to_owned(),
        message,
    };
    let timed_out = || StoreError::Timeout {
        backend: "PostgreSQL",
        url: url.redacted().to_owned(),
        seconds: CONNECT_TIMEOUT.as_secs(),
    };
    let options = PgConnectOptions::from_str(url.expose_url()).map_err(|e| fail(url.scrub(e)))?;
    // One direct connection first: a pool retries until its timeout and then reports only
    // "timed out", while the direct attempt fails at once with the server's own reason.
    let probe = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| fail(url.scrub(e)))?;
    // A failed close of the probe leaves nothing behind that the pool below depends on.
    let _ = probe.close().await;
    PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|e| fail(url.scrub(e)))
}

/// Applies the embedded PostgreSQL migrations (idempotent; sqlx holds `pg_advisory_lock` while
/// it migrates, so several instances starting together apply them once).
pub(crate) async fn migrate(pool: &PgPool, url: &DatabaseUrl) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await.map_err(|e| StoreError::Migrate {
        url: url.redacted().to_owned(),
        message: url.scrub(e),
    })
}
