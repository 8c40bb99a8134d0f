//! The store's health as `doctor` shows it: does it answer, does it take writes, does it have
//! every migration of this program. Each problem comes with what to do.

use serde::Serialize;

use super::{Backend, DatabaseUrl, OpenMode, SqlStore};

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
        };
        if let Err(problem) = writable {
            health.note_unwritable(problem);
        }
        match pending {
            Ok(None) => {}
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
