//! The store's error type.
//!
//! No sqlx type leaves the store: database errors are kept as text, with any password of the
//! URL removed (by [`crate::config::DatabaseUrl::scrub`]), so a `StoreError` can be logged or
//! shown as is. Every message names the store (its redacted URL or file) when the fault is the
//! store's, and says what to do.

use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one the store understands.
    #[error(
        "unsupported database URL {url}: it {reason}; use sqlite://PATH (a file, created if \
         missing) or postgres://USER@HOST/DB"
    )]
    UnsupportedUrl {
        /// The URL with its password removed.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database could not be opened or reached.
    #[error("cannot open the {backend} database at {url}: {message}")]
    Connect {
        /// `SQLite` or `PostgreSQL`.
        backend: &'static str,
        /// The URL with its password removed.
        url: String,
        /// What the driver said.
        message: String,
    },
    /// The database did not answer within the connect timeout.
    #[error(
        "the {backend} database at {url} did not answer within {seconds} s: check that the \
         server is up and is the database server (not another service on that port)"
    )]
    Timeout {
        /// `SQLite` or `PostgreSQL`.
        backend: &'static str,
        /// The URL with its password removed.
        url: String,
        /// The timeout that passed.
        seconds: u64,
    },
    /// Applying the embedded migrations failed.
    #[error("cannot apply the database migrations to {url}: {message}")]
    Migrate {
        /// The URL with its password removed.
        url: String,
        /// What the driver said.
        message: String,
    },
    /// A read-only command met a store whose schema is older than this program's.
    #[error(
        "the store at {url} is not at this program's schema ({reason}): run \
         `bitbucket-access migrate` first"
    )]
    NotMigrated {
        /// The URL with its password removed.
        url: String,
        /// What is missing.
        reason: String,
    },
    /// A read-only command met a store file that does not exist.
    #[error(
        "there is no store at {path}: run `bitbucket-access sync` (or `migrate`) to create it, \
         or check `database_url`"
    )]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The SQLite file failed its integrity check.
    #[error(
        "the SQLite file {path} is damaged ({detail}): restore it from a backup, or move it \
         away and run `bitbucket-access sync` to rebuild it"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },
    /// The SQLite file the store opened was removed or replaced while it was open.
    #[error(
        "the SQLite file {path} {what} while the store had it open: nothing more is written; \
         restore the file or run `bitbucket-access sync` again"
    )]
    FileChanged {
        /// The file.
        path: PathBuf,
        /// `was removed` or `was replaced by another file`.
        what: &'static str,
    },
    /// A query failed.
    #[error("database error while trying to {action}: {message}")]
    Database {
        /// What the store was doing.
        action: &'static str,
        /// What the driver said.
        message: String,
    },
    /// A fact passed to `replace_listing` does not belong to the listing's kind.
    #[error("listing {listing} cannot hold a fact of kind {fact}")]
    FactMismatch {
        /// The listing.
        listing: String,
        /// The offending fact's kind.
        fact: &'static str,
    },
    /// A stored value could not be read back.
    #[error("the store holds an unreadable {what}: {detail}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Why it is unreadable.
        detail: String,
    },
    /// A number is out of the range the store can hold.
    #[error("{what} is out of range: {value}")]
    OutOfRange {
        /// Which number.
        what: &'static str,
        /// Its value.
        value: String,
    },
}
