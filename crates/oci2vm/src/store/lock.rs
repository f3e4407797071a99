//! Advisory file locks (`flock(2)` through rustix) that coordinate processes sharing a store.
//!
//! ```text
//! .lock-gc     shared: every writer (pull, put_blob)   exclusive: prune
//! .lock-index  exclusive: each read-modify-write of index.json
//! ```
//!
//! `flock` locks belong to the open file description, so two handles in one process exclude
//! each other just as two processes do; the lock is released when the handle is dropped.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use super::StoreError;

/// A held lock; dropping it unlocks.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    path: PathBuf,
}

impl StoreLock {
    fn acquire(path: &Path, op: FlockOperation) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        flock(&file, op).map_err(|e| io(e.into()))?;
        Ok(StoreLock {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    /// Waits for a shared lock on `path` (created if missing).
    pub fn shared(path: &Path) -> Result<Self, StoreError> {
        Self::acquire(path, FlockOperation::LockShared)
    }

    /// Waits for an exclusive lock on `path` (created if missing).
    pub fn exclusive(path: &Path) -> Result<Self, StoreError> {
        Self::acquire(path, FlockOperation::LockExclusive)
    }

    /// Takes an exclusive lock only if nobody holds any lock now.
    pub fn try_exclusive(path: &Path) -> Result<Option<Self>, StoreError> {
        match Self::acquire(path, FlockOperation::NonBlockingLockExclusive) {
            Ok(l) => Ok(Some(l)),
            Err(StoreError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::WouldBlock =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_locks_coexist_and_exclude_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        let a = StoreLock::shared(&p).unwrap();
        let b = StoreLock::shared(&p).unwrap();
        assert!(StoreLock::try_exclusive(&p).unwrap().is_none());
        drop(a);
        assert!(StoreLock::try_exclusive(&p).unwrap().is_none());
        drop(b);
        let x = StoreLock::try_exclusive(&p).unwrap();
        assert!(x.is_some());
        assert!(StoreLock::try_exclusive(&p).unwrap().is_none());
    }
}
