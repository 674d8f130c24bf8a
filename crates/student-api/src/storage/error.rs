//! Storage errors, classified once from driver errors.
//!
//! `Unavailable` means "try again later" (the database is down, unreachable
//! or saturated) and becomes a 503; `EmailTaken` is the unique index on
//! `lower(email)`; everything else is a bug or an unexpected state and
//! becomes an opaque 500 with the cause in the log.

/// SQLSTATE classes and codes that mean the server cannot serve right now.
const PG_UNAVAILABLE_CODES: &[&str] = &[
    "53300", // too_many_connections
    "57P01", // admin_shutdown
    "57P02", // crash_shutdown
    "57P03", // cannot_connect_now (starting up, recovering)
    "57014", // query_canceled, raised by statement_timeout
];

/// SQLite result codes for a locked database (SQLITE_BUSY, SQLITE_LOCKED).
const SQLITE_BUSY_CODES: &[&str] = &["5", "6", "261", "262", "517"];

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("email address is already used by another student")]
    EmailTaken,
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database query failed")]
    Query(#[source] sqlx::Error),
    #[error("database migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        if is_unavailable(&err) {
            return Self::Unavailable(err);
        }
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::EmailTaken,
            _ => Self::Query(err),
        }
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
            code.starts_with("08") // connection_exception class
                || PG_UNAVAILABLE_CODES.contains(&code.as_ref())
                || SQLITE_BUSY_CODES.contains(&code.as_ref())
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
    fn a_missing_row_is_a_query_error() {
        assert!(matches!(
            StorageError::from(sqlx::Error::RowNotFound),
            StorageError::Query(_)
        ));
    }
}
