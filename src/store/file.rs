//! Which file an SQLite store opened, so that a long run notices when the path no longer names
//! it: a file deleted or replaced under an open connection keeps taking writes that nobody will
//! ever read, and the run would report success over an empty store.

use std::path::{Path, PathBuf};

use super::error::StoreError;

/// An SQLite file's path with the device and inode it had when the store opened it.
#[derive(Debug, Clone)]
pub(crate) struct FileIdentity {
    path: PathBuf,
    id: (u64, u64),
}

impl FileIdentity {
    /// Records the identity of the file at `path`.
    pub(crate) fn of(path: &Path) -> Result<Self, StoreError> {
        let id = identity(path).ok_or_else(|| StoreError::FileChanged {
            path: path.to_owned(),
            what: "was removed",
        })?;
        Ok(Self {
            path: path.to_owned(),
            id,
        })
    }

    /// Fails when the path is gone or names another file now.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        match identity(&self.path) {
            None => Err(StoreError::FileChanged {
                path: self.path.clone(),
                what: "was removed",
            }),
            Some(id) if id != self.id => Err(StoreError::FileChanged {
                path: self.path.clone(),
                what: "was replaced by another file",
            }),
            Some(_) => Ok(()),
        }
    }
}

#[cfg(unix)]
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

// Without inodes only a removal can be told; a replacement passes unnoticed.
#[cfg(not(unix))]
fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|_| (0, 0))
}
