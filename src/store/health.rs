//! The store's health as `doctor` shows it: does it answer, does it take writes, does it have
//! every migration of this program. Each problem comes with what to do.

use serde::Serialize;

use std::path::{Path, PathBuf};

use super::{Backend, DatabaseUrl, OpenMode, SqlStore, StoreError};

/// Why the schema is behind when the store has none at all: a store before its first sync.
pub(crate) const NO_SCHEMA: &str = "it has no schema yet";

/// What a health check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreHealth {
    /// The store answered a query.
    pub reachable: bool,
    /// The store took a write (tried in a transaction that is rolled back).
    pub writable: bool,
    /// Every migration of this program is applied.
    pub migrations_current: bool,
    /// What is wrong, each with what to do; empty when all is well.
    pub problems: Vec<String>,
    /// Something worth knowing that is not a problem (an SQLite file not created yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl StoreHealth {
    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.reachable && self.writable && self.migrations_current
    }

    pub(crate) fn unreachable(problem: String) -> Self {
        Self {
            reachable: false,
            writable: false,
            migrations_current: false,
            problems: vec![problem],
            note: None,
        }
    }

    /// Builds the report from the three probes.
    pub(crate) fn from_probes(
        reachable: Result<(), String>,
        writable: Result<(), String>,
        pending: Result<Option<String>, String>,
    ) -> Self {
        if let Err(problem) = reachable {
            return Self::unreachable(problem);
        }
        let mut health = Self {
            reachable: true,
            writable: true,
            migrations_current: true,
            problems: Vec::new(),
            note: None,
        };
        if let Err(problem) = writable {
            health.note_unwritable(problem);
        }
        match pending {
            Ok(None) => {}
            // Every writing command migrates first, so an empty store is simply new.
            Ok(Some(reason)) if reason == NO_SCHEMA => {
                health.note =
                    Some("the store is empty; the first sync creates its tables".to_owned());
            }
            Ok(Some(reason)) => {
                health.migrations_current = false;
                health.problems.push(format!(
                    "the schema is behind this program ({reason}): run `bitbucket-access migrate`"
                ));
            }
            Err(problem) => {
                health.migrations_current = false;
                health.problems.push(problem);
            }
        }
        health
    }

    pub(crate) fn note_unwritable(&mut self, problem: String) {
        self.writable = false;
        self.problems.push(problem);
    }
}

/// Checks the store a URL names without changing it (the write probe rolls back): an SQLite
/// file is first opened read-only, so a missing one is reported rather than created, and
/// whether it takes writes is then asked of a read-write connection.
pub async fn check_health(url: &DatabaseUrl) -> StoreHealth {
    let mode = match url.backend() {
        Backend::Sqlite => OpenMode::ReadOnly,
        Backend::Postgres => OpenMode::ReadWrite,
    };
    let store = match SqlStore::connect_with(url, mode).await {
        Ok(store) => store,
        // Before the first sync there is no file yet, and that is fine when it can be made.
        Err(StoreError::Missing { path }) => return not_created_yet(&path),
        Err(e) => return StoreHealth::unreachable(e.to_string()),
    };
    let mut health = store.probe_health().await;
    store.close().await;
    if url.backend() == Backend::Sqlite && health.reachable {
        // The read-only connection refuses writes by design; the file's own answer is wanted.
        health.writable = true;
        health
            .problems
            .retain(|p| !p.starts_with(super::open::READ_ONLY_PROBLEM));
        let writable = match SqlStore::connect_with(url, OpenMode::ReadWrite).await {
            Ok(rw) => {
                let probe = rw.write_probe().await;
                rw.close().await;
                probe
            }
            Err(e) => Err(e.to_string()),
        };
        if let Err(problem) = writable {
            health.note_unwritable(problem);
        }
    }
    health
}

/// The health of an SQLite store whose file does not exist yet: fine when its folder exists
/// (or can be created) and takes new files, which is checked without leaving anything behind.
fn not_created_yet(path: &Path) -> StoreHealth {
    let folder = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => parent.to_path_buf(),
        None => PathBuf::from("."),
    };
    // The nearest folder that exists is where the first write will have to create things.
    let existing = folder
        .ancestors()
        .find(|p| p.exists())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    match tempfile::NamedTempFile::new_in(&existing) {
        Ok(_) => StoreHealth {
            reachable: true,
            writable: true,
            migrations_current: true,
            problems: Vec::new(),
            note: Some(format!(
                "{} does not exist yet; the first sync creates it",
                path.display()
            )),
        },
        Err(e) => StoreHealth::unreachable(format!(
            "{} does not exist yet and cannot be created ({e} in {}): make the folder writable \
             or point `database_url` elsewhere",
            path.display(),
            existing.display()
        )),
    }
}
