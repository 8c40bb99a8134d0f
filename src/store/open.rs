//! Opening the store: the URL's backend picks the pool, the mode decides whether the store may
//! create, migrate and write, and [`SqlStore`] keeps what it needs to check itself later (its
//! mode, and the identity of its SQLite file).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::health::StoreHealth;
use super::{file, postgres, redact_url, sqlite, Backend, DatabaseUrl, Store, StoreError};

/// How long connecting (and waiting for a pooled connection) may take before the store gives up
/// with an error naming the database, instead of hanging on a server that never answers.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a command opens the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Creates a missing SQLite file and applies pending migrations (`sync`, `migrate`).
    ReadWrite,
    /// Never writes and never migrates: an SQLite file is opened read-only (so a read-only file
    /// or folder works), and a store behind this program's schema is refused (`access`).
    ReadOnly,
}

/// Opens the store the URL names and applies its migrations.
///
/// `sqlite://PATH` (or `sqlite:PATH`, `sqlite::memory:`) opens an SQLite file, creating it and
/// its folder if missing; `postgres://` or `postgresql://` connects to PostgreSQL. An SQLite file
/// that fails its integrity check is refused, naming it.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_with(&parse_url(url)?, OpenMode::ReadWrite).await
}

/// Opens the store read-only, for commands that only read (see [`OpenMode::ReadOnly`]).
pub async fn open_read_only(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_with(&parse_url(url)?, OpenMode::ReadOnly).await
}

/// Opens the store in the given mode: migrating in [`OpenMode::ReadWrite`], checking that no
/// migration is pending in [`OpenMode::ReadOnly`].
pub async fn open_with(url: &DatabaseUrl, mode: OpenMode) -> Result<Arc<dyn Store>, StoreError> {
    let store = SqlStore::connect_with(url, mode).await?;
    match mode {
        OpenMode::ReadWrite => store.migrate().await?,
        OpenMode::ReadOnly => {
            if let Some(reason) = store.pending_migrations().await? {
                return Err(StoreError::NotMigrated {
                    url: url.redacted().to_owned(),
                    reason,
                });
            }
        }
    }
    Ok(Arc::new(store))
}

/// Parses a URL given as text (relative SQLite paths stay relative to the working directory).
fn parse_url(url: &str) -> Result<DatabaseUrl, StoreError> {
    DatabaseUrl::parse(url, Path::new("")).map_err(|reason| StoreError::UnsupportedUrl {
        url: redact_url(url),
        reason,
    })
}

pub(super) enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// The sqlx implementation of [`Store`] for both backends.
pub struct SqlStore {
    pub(super) pool: Pool,
    pub(super) url: DatabaseUrl,
    mode: OpenMode,
    /// The SQLite file and its identity when opened, to notice a removal or replacement.
    pub(super) file: Option<file::FileIdentity>,
}

/// How [`Store::health`] begins the problem of a store opened read-only.
pub(super) const READ_ONLY_PROBLEM: &str = "the store was opened read-only";

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend())
            .field("url", &self.url)
            .finish()
    }
}

impl SqlStore {
    /// Connects read-write without applying migrations (use [`open`] unless you mean to migrate
    /// yourself).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(&parse_url(url)?, OpenMode::ReadWrite).await
    }

    /// Connects in the given mode without applying migrations. An SQLite file is checked for
    /// integrity first.
    pub async fn connect_with(url: &DatabaseUrl, mode: OpenMode) -> Result<Self, StoreError> {
        let (pool, file) = match url.backend() {
            Backend::Sqlite => {
                let (pool, path) = sqlite::connect(url, mode).await?;
                let file = path.map(|p| file::FileIdentity::of(&p)).transpose()?;
                (Pool::Sqlite(pool), file)
            }
            Backend::Postgres => (Pool::Postgres(postgres::connect(url, mode).await?), None),
        };
        Ok(Self {
            pool,
            url: url.clone(),
            mode,
            file,
        })
    }

    /// The URL with its password hidden.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Closes the connections (tests drop their database afterwards).
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }

    pub(super) async fn probe_health(&self) -> StoreHealth {
        let (reachable, pending) = match &self.pool {
            Pool::Sqlite(pool) => (
                sqlite::ping(pool).await,
                sqlite::pending_migrations(pool).await,
            ),
            Pool::Postgres(pool) => (
                postgres::ping(pool).await,
                postgres::pending_migrations(pool).await,
            ),
        };
        let writable = match self.mode {
            OpenMode::ReadOnly => Err(format!(
                "{READ_ONLY_PROBLEM}: open it read-write to check that it takes writes"
            )),
            OpenMode::ReadWrite => self.write_probe().await,
        };
        let writable = writable.and_then(|()| self.check_file().map_err(|e| e.to_string()));
        StoreHealth::from_probes(
            reachable.map_err(|e| format!("the store at {} does not answer: {e}", self.url)),
            writable,
            pending.map_err(|e| e.to_string()),
        )
    }

    /// Tries a write in a transaction that is rolled back; the error says why it failed.
    pub(super) async fn write_probe(&self) -> Result<(), String> {
        let probe = match &self.pool {
            Pool::Sqlite(pool) => sqlite::write_probe(pool).await,
            Pool::Postgres(pool) => postgres::write_probe(pool).await,
        };
        probe.map_err(|e| {
            format!(
                "the store at {} does not take writes ({}): check the file's and its folder's \
                 permissions, or the database user's privileges",
                self.url,
                self.url.scrub(e)
            )
        })
    }

    /// Why the schema is behind this program's migrations, `None` when it is current.
    async fn pending_migrations(&self) -> Result<Option<String>, StoreError> {
        match &self.pool {
            Pool::Sqlite(pool) => sqlite::pending_migrations(pool).await,
            Pool::Postgres(pool) => postgres::pending_migrations(pool).await,
        }
    }
}
