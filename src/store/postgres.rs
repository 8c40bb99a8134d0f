//! The PostgreSQL backend, for production and for several instances sharing one store.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::error::DatabaseUrl;

type Db = sqlx::Postgres;
const BEGIN_WRITE: &str = "BEGIN";

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

include!("sql.rs");

/// Connects to the PostgreSQL database the URL names.
pub(crate) async fn connect(url: &DatabaseUrl) -> Result<PgPool, StoreError> {
    let fail = |message: String| StoreError::Connect {
        backend: "PostgreSQL",
        url: url.redacted().to_owned(),
        message,
    };
    let options = PgConnectOptions::from_str(url.expose()).map_err(|e| fail(url.scrub(e)))?;
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
