//! Whether the SQLite database is still the file at its path.
//!
//! SQLite keeps writing to the files it opened even after they were removed
//! or replaced: in WAL mode it does not notice at all (its own check,
//! SQLITE_FCNTL_HAS_MOVED, needs the raw handle, which sqlx gives only to
//! unsafe code). Those writes succeed and vanish at the next start. So the
//! identity (device and inode) of the database file and of its write-ahead
//! log, taken when the store opened them, is compared with what the path
//! names now: before a write (so none goes to a file that is gone), after it
//! (so none is acknowledged that did not go to the file at the path) and in
//! readiness. A `stat` of each file costs microseconds, next to the sync of
//! every commit.
//!
//! Rules: the WAL keeps its identity only while a connection stays open
//! (SQLite deletes it when the last one closes), so the store keeps its
//! connections for the life of the process; a missing or different file is a
//! [`StorageFault::Moved`] fault, an error of `stat` itself an I/O fault.

use std::io;
#[cfg(unix)]
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::storage::{DbError, StorageError, StorageFault};

/// Device and inode of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    device: u64,
    inode: u64,
}

impl Identity {
    #[cfg(unix)]
    fn of(path: &Path) -> io::Result<Self> {
        let metadata = std::fs::metadata(path)?;
        Ok(Self {
            device: metadata.dev(),
            inode: metadata.ino(),
        })
    }

    /// Elsewhere only presence is checked.
    #[cfg(not(unix))]
    fn of(path: &Path) -> io::Result<Self> {
        std::fs::metadata(path).map(|_| Self {
            device: 0,
            inode: 0,
        })
    }
}

/// The files of one database as the store opened them.
#[derive(Debug)]
pub(super) struct DatabaseFiles {
    files: Vec<(PathBuf, Identity)>,
}

impl DatabaseFiles {
    /// Takes the identity of the database at `path` and of its WAL, as
    /// they are now. `None` when there is no file (an in-memory database).
    pub(super) fn capture(path: &Path) -> Option<Self> {
        let database = Identity::of(path).ok()?;
        let mut files = vec![(path.to_owned(), database)];
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        if let Ok(identity) = Identity::of(&wal) {
            files.push((wal, identity));
        }
        Some(Self { files })
    }

    /// `Ok` when every path still names the file that was opened.
    pub(super) fn check(&self) -> Result<(), StorageError> {
        for (path, opened) in &self.files {
            match Identity::of(path) {
                Ok(now) if now == *opened => {}
                Ok(_) => return Err(moved(path)),
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(moved(path)),
                Err(err) => {
                    return Err(StorageError::Fault(
                        StorageFault::Io,
                        DbError::FileCheck(path.clone(), err),
                    ))
                }
            }
        }
        Ok(())
    }
}

fn moved(path: &Path) -> StorageError {
    StorageError::Fault(StorageFault::Moved, DbError::FileMoved(path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_or_replaced_file_is_moved_and_a_restored_one_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("students.db");
        std::fs::write(&path, b"one").unwrap();
        std::fs::write(dir.path().join("students.db-wal"), b"wal").unwrap();
        let files = DatabaseFiles::capture(&path).unwrap();
        assert_eq!(files.files.len(), 2);
        files.check().unwrap();

        std::fs::rename(&path, dir.path().join("aside")).unwrap();
        assert_eq!(
            files.check().unwrap_err().fault(),
            Some(StorageFault::Moved)
        );
        std::fs::write(&path, b"one").unwrap();
        assert_eq!(
            files.check().unwrap_err().fault(),
            Some(StorageFault::Moved)
        );
        std::fs::rename(dir.path().join("aside"), &path).unwrap();
        files.check().unwrap();

        std::fs::remove_file(dir.path().join("students.db-wal")).unwrap();
        assert_eq!(
            files.check().unwrap_err().fault(),
            Some(StorageFault::Moved)
        );
    }

    #[test]
    fn no_file_means_nothing_to_check() {
        assert!(DatabaseFiles::capture(Path::new("/nonexistent/students.db")).is_none());
    }
}
