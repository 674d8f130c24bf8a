//! Storage faults: the disk, file system or file under the database failing
//! (full, read-only, I/O errors, damaged, the SQLite file removed). They are
//! neither bugs nor a database that is down, and they usually last until an
//! operator acts, so they are watched here for the operator.
//!
//! Rules: every fault is counted by kind (exported as
//! `db_storage_errors_total`); the fault the last operation able to see it
//! met is kept for readiness, and logged once when it starts or changes
//! kind, with its cause, and once when it ends, not once per request. Only a
//! write that succeeds shows a write fault has ended; only a file check that
//! succeeds shows the file is back. Imports nothing but storage errors.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use super::StorageError;

/// What failed under the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// No space left on the device (SQLITE_FULL, PostgreSQL `disk_full`).
    Full,
    /// The file or its file system refuses writes (SQLITE_READONLY).
    ReadOnly,
    /// The operating system reported an I/O error, or a file could not be
    /// opened (SQLITE_IOERR, SQLITE_CANTOPEN, PostgreSQL `io_error`).
    Io,
    /// The database file is damaged (SQLITE_CORRUPT, SQLITE_NOTADB,
    /// PostgreSQL `data_corrupted`, `index_corrupted`).
    Corrupt,
    /// The SQLite file at the configured path was removed or replaced after
    /// the service opened it: writes would go to a file nobody will see again.
    Moved,
}

impl StorageFault {
    pub const ALL: [Self; 5] = [
        Self::Full,
        Self::ReadOnly,
        Self::Io,
        Self::Corrupt,
        Self::Moved,
    ];

    /// The `kind` label of the metric.
    pub fn label(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::ReadOnly => "read_only",
            Self::Io => "io",
            Self::Corrupt => "corrupt",
            Self::Moved => "moved",
        }
    }
}

impl fmt::Display for StorageFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Full => "no space left on the database's storage",
            Self::ReadOnly => "the database's storage refuses writes",
            Self::Io => "I/O errors on the database's storage",
            Self::Corrupt => "the database file is damaged",
            Self::Moved => "the database file was removed or replaced after the service opened it",
        })
    }
}

/// What an operation could learn about storage faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A write: its success proves every fault over.
    Write,
    /// A read: it may meet a fault but proves nothing over (it may have
    /// been served from memory).
    Read,
    /// A check of the database file: its success proves the file is back.
    FileCheck,
}

#[derive(Debug, Clone, Copy)]
struct Condition {
    fault: StorageFault,
    since: SystemTime,
}

/// Fault counts and the current condition; shared by every clone of a store.
#[derive(Debug, Default)]
pub struct FaultMonitor {
    counts: [AtomicU64; StorageFault::ALL.len()],
    condition: Mutex<Option<Condition>>,
    /// Whether `condition` holds a fault: lets every successful operation
    /// pass without taking the lock while storage is fine.
    faulty: AtomicBool,
}

impl FaultMonitor {
    /// Counts and logs what `result` shows about the storage.
    pub fn record<T>(&self, operation: Operation, result: &Result<T, StorageError>) {
        match result {
            Err(err @ StorageError::Fault(fault, _)) => {
                self.counts[*fault as usize].fetch_add(1, Ordering::Relaxed);
                let mut condition = self.lock();
                if condition.is_none_or(|c| c.fault != *fault) {
                    tracing::error!(
                        fault = fault.label(),
                        error = %cause_chain(err),
                        "storage fault: {fault}; writes fail until it is fixed (docs/runbooks/alerts.md#studentapistoragefault)"
                    );
                    *condition = Some(Condition {
                        fault: *fault,
                        since: SystemTime::now(),
                    });
                    self.faulty.store(true, Ordering::Release);
                }
            }
            Ok(_) if !self.faulty.load(Ordering::Acquire) => {}
            Ok(_) => {
                let mut condition = self.lock();
                let Some(current) = *condition else { return };
                let over = match operation {
                    Operation::Write => true,
                    Operation::FileCheck => current.fault == StorageFault::Moved,
                    Operation::Read => false,
                };
                if over {
                    tracing::info!(
                        fault = current.fault.label(),
                        since = %humantime::format_rfc3339_seconds(current.since),
                        "storage fault over: {}", current.fault
                    );
                    *condition = None;
                    self.faulty.store(false, Ordering::Release);
                }
            }
            Err(_) => {}
        }
    }

    /// How many faults of each kind have been met since the start.
    pub fn counts(&self) -> [(StorageFault, u64); StorageFault::ALL.len()] {
        StorageFault::ALL.map(|fault| (fault, self.counts[fault as usize].load(Ordering::Relaxed)))
    }

    /// The current fault and since when, for readiness; `None` when none.
    pub fn condition(&self) -> Option<String> {
        self.lock().map(|c| {
            format!(
                "{} (since {})",
                c.fault,
                humantime::format_rfc3339_seconds(c.since)
            )
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Condition>> {
        self.condition
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// `outer: inner: root`, for the log.
fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::DbError;

    fn fault(kind: StorageFault) -> Result<(), StorageError> {
        Err(StorageError::Fault(kind, DbError::NoRow))
    }

    #[test]
    fn faults_are_counted_by_kind() {
        let monitor = FaultMonitor::default();
        monitor.record(Operation::Write, &fault(StorageFault::Full));
        monitor.record(Operation::Write, &fault(StorageFault::Full));
        monitor.record(Operation::Read, &fault(StorageFault::Io));
        monitor.record(Operation::Write, &Err::<(), _>(StorageError::EmailTaken));
        let counts = monitor.counts();
        assert_eq!(counts[StorageFault::Full as usize], (StorageFault::Full, 2));
        assert_eq!(counts[StorageFault::Io as usize], (StorageFault::Io, 1));
        assert_eq!(
            counts[StorageFault::Moved as usize],
            (StorageFault::Moved, 0)
        );
    }

    #[test]
    fn only_a_successful_write_ends_a_write_fault() {
        let monitor = FaultMonitor::default();
        monitor.record(Operation::Write, &fault(StorageFault::Full));
        monitor.record(Operation::Read, &Ok(()));
        monitor.record(Operation::FileCheck, &Ok(()));
        assert!(monitor.condition().unwrap().starts_with("no space left"));
        monitor.record(Operation::Write, &Ok(()));
        assert_eq!(monitor.condition(), None);
    }

    #[test]
    fn a_successful_file_check_ends_a_moved_file() {
        let monitor = FaultMonitor::default();
        monitor.record(Operation::FileCheck, &fault(StorageFault::Moved));
        assert!(monitor.condition().is_some());
        monitor.record(Operation::FileCheck, &Ok(()));
        assert_eq!(monitor.condition(), None);
    }
}
