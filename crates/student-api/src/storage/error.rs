//! Storage errors, classified once from driver errors.
//!
//! `Unavailable` means "try again later" (the database is down, unreachable,
//! saturated, or refuses our login) and becomes a 503; `Fault` is the
//! storage under the database failing (full, read-only, I/O errors,
//! damaged, the SQLite file removed) and becomes a 507 (full) or a 503;
//! `EmailTaken` is a violation of the unique index on `email_key`, told by
//! the index's name (any other violation is a bug); everything else is a
//! bug or an unexpected state and becomes an opaque 500 with the cause in
//! the log.

use std::path::PathBuf;

use super::faults::StorageFault;

/// SQLSTATE classes and codes that mean the server cannot serve right now.
const PG_UNAVAILABLE_CODES: &[&str] = &[
    "53300", // too_many_connections
    "57P01", // admin_shutdown
    "57P02", // crash_shutdown
    "57P03", // cannot_connect_now (starting up, recovering)
    "57014", // query_canceled, raised by statement_timeout
];

/// The unique index that makes an email address taken (see `migrations/`).
const EMAIL_INDEX: &str = "students_email_key_key";
/// How SQLite names that index's column in a violation's message.
const SQLITE_EMAIL_COLUMN: &str = "students.email_key";

/// SQLite result codes for a locked database (SQLITE_BUSY, SQLITE_LOCKED).
const SQLITE_BUSY_CODES: &[&str] = &["5", "6", "261", "262", "517"];

/// PostgreSQL SQLSTATEs of storage faults.
const PG_FAULT_CODES: &[(&str, StorageFault)] = &[
    ("53100", StorageFault::Full),    // disk_full
    ("58030", StorageFault::Io),      // io_error
    ("XX001", StorageFault::Corrupt), // data_corrupted
    ("XX002", StorageFault::Corrupt), // index_corrupted
];

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("email address is already used by another student")]
    EmailTaken,
    #[error("database unavailable")]
    Unavailable(#[source] DbError),
    #[error("database storage fault: {0}")]
    Fault(StorageFault, #[source] DbError),
    #[error("database query failed")]
    Query(#[source] DbError),
    #[error("database migration failed")]
    Migration(#[source] MigrationError),
}

/// Why migrations could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// SQLite, through sqlx's migrator.
    #[error(transparent)]
    Sqlite(#[from] sqlx::migrate::MigrateError),
    #[error(
        "migration {0} is recorded as failed; repair the database by hand, then mark it applied"
    )]
    Dirty(i64),
    #[error("migration {0} was applied but its file has changed since")]
    Changed(i64),
    #[error("migration {0} was applied by a newer release than this binary")]
    Unknown(i64),
    #[error("migration {version} failed")]
    Apply {
        version: i64,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
}

/// The cause behind an unavailable database or a failed query.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// PostgreSQL.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error("no database connection became available in time")]
    TimedOut,
    #[error("the connection pool is closed")]
    Closed,
    #[error("invalid PostgreSQL connection settings")]
    Config(#[source] super::postgres::ConnectConfigError),
    #[error("the database returned no row where one was expected")]
    NoRow,
    #[error("{} is no longer the file the service opened", .0.display())]
    FileMoved(PathBuf),
    #[error("cannot check the database file {}", .0.display())]
    FileCheck(PathBuf, #[source] std::io::Error),
}

impl StorageError {
    /// The storage fault behind this error, if it is one.
    pub fn fault(&self) -> Option<StorageFault> {
        match self {
            Self::Fault(fault, _) => Some(*fault),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        if let Some(fault) = sqlite_fault(&err) {
            return Self::Fault(fault, err.into());
        }
        if is_unavailable(&err) {
            return Self::Unavailable(err.into());
        }
        match &err {
            sqlx::Error::Database(db)
                if db.is_unique_violation() && is_sqlite_email_violation(db.message()) =>
            {
                Self::EmailTaken
            }
            _ => Self::Query(err.into()),
        }
    }
}

impl From<tokio_postgres::Error> for StorageError {
    fn from(err: tokio_postgres::Error) -> Self {
        match err.code() {
            Some(code)
                if *code == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
                    && err.as_db_error().and_then(|db| db.constraint()) == Some(EMAIL_INDEX) =>
            {
                Self::EmailTaken
            }
            Some(code) if is_unavailable_code(code.code()) => Self::Unavailable(err.into()),
            Some(code) => match PG_FAULT_CODES.iter().find(|(c, _)| *c == code.code()) {
                Some((_, fault)) => Self::Fault(*fault, err.into()),
                None => Self::Query(err.into()),
            },
            // No SQLSTATE: the session or its socket failed (a refused or
            // timed-out connect, TLS, a server that went away) or a row did
            // not decode; only the latter is ours to fix.
            None if err.is_closed() || has_io_cause(&err) => Self::Unavailable(err.into()),
            _ => Self::Query(err.into()),
        }
    }
}

/// SQLite names the violated index's columns, not the index:
/// "UNIQUE constraint failed: students.email_key".
fn is_sqlite_email_violation(message: &str) -> bool {
    message
        .rsplit_once(": ")
        .is_some_and(|(_, columns)| columns == SQLITE_EMAIL_COLUMN)
}

fn has_io_cause(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = err.source();
    while let Some(err) = cause {
        if err.is::<std::io::Error>() {
            return true;
        }
        cause = err.source();
    }
    false
}

/// SQLSTATEs that mean "not now": connection exceptions (class 08), refused
/// logins (class 28: credentials expired or were rotated on the server
/// first), and the codes listed above.
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("28") || PG_UNAVAILABLE_CODES.contains(&code)
}

/// The storage fault an SQLite error reports.
fn sqlite_fault(err: &sqlx::Error) -> Option<StorageFault> {
    let sqlx::Error::Database(db) = err else {
        return None;
    };
    // PostgreSQL's SQLSTATEs can be digits too: only SQLite's codes count.
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>()?;
    sqlite_fault_code(db.code()?.parse().ok()?)
}

/// The storage fault of an SQLite extended result code, by its primary
/// code (the low byte).
fn sqlite_fault_code(code: i32) -> Option<StorageFault> {
    const SQLITE_READONLY_DBMOVED: i32 = 1032;
    match code & 0xff {
        _ if code == SQLITE_READONLY_DBMOVED => Some(StorageFault::Moved),
        13 => Some(StorageFault::Full),         // SQLITE_FULL
        8 => Some(StorageFault::ReadOnly),      // SQLITE_READONLY
        10 | 14 => Some(StorageFault::Io),      // SQLITE_IOERR, SQLITE_CANTOPEN
        11 | 26 => Some(StorageFault::Corrupt), // SQLITE_CORRUPT, SQLITE_NOTADB
        _ => None,
    }
}

fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            is_unavailable_code(&code) || SQLITE_BUSY_CODES.contains(&code.as_ref())
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unavailable() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            StorageError::from(io),
            StorageError::Unavailable(_)
        ));
        assert!(matches!(
            StorageError::from(sqlx::Error::PoolTimedOut),
            StorageError::Unavailable(_)
        ));
    }

    #[test]
    fn refused_logins_and_server_shutdowns_are_unavailable_but_bad_input_is_not() {
        assert!(is_unavailable_code("28P01")); // invalid_password
        assert!(is_unavailable_code("08006")); // connection_failure
        assert!(is_unavailable_code("57P01")); // admin_shutdown
        assert!(is_unavailable_code("57014")); // statement_timeout
        assert!(!is_unavailable_code("23505")); // unique_violation
        assert!(!is_unavailable_code("42P01")); // undefined_table
    }

    #[test]
    fn sqlite_storage_errors_are_faults_by_kind() {
        let fault = sqlite_fault_code;
        assert_eq!(fault(13), Some(StorageFault::Full));
        assert_eq!(fault(8), Some(StorageFault::ReadOnly));
        assert_eq!(fault(1032), Some(StorageFault::Moved));
        assert_eq!(fault(10), Some(StorageFault::Io));
        assert_eq!(fault(778), Some(StorageFault::Io)); // SQLITE_IOERR_WRITE
        assert_eq!(fault(14), Some(StorageFault::Io));
        assert_eq!(fault(11), Some(StorageFault::Corrupt));
        assert_eq!(fault(2067), None); // SQLITE_CONSTRAINT_UNIQUE
        assert_eq!(fault(5), None); // SQLITE_BUSY
    }

    #[test]
    fn only_the_email_index_makes_an_email_taken() {
        assert!(is_sqlite_email_violation(
            "UNIQUE constraint failed: students.email_key"
        ));
        assert!(!is_sqlite_email_violation(
            "UNIQUE constraint failed: students.id"
        ));
        assert!(!is_sqlite_email_violation(
            "UNIQUE constraint failed: students.email_key, students.name"
        ));
    }

    #[test]
    fn a_missing_row_is_a_query_error() {
        assert!(matches!(
            StorageError::from(sqlx::Error::RowNotFound),
            StorageError::Query(_)
        ));
    }
}
