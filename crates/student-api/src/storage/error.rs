//! Storage errors, classified once from driver errors.
//!
//! `Unavailable` means "try again later" (the database is down, unreachable,
//! saturated, or refuses our login) and becomes a 503; `EmailTaken` is the unique index on
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

impl From<deadpool::managed::PoolError<sqlx::Error>> for StorageError {
    fn from(err: deadpool::managed::PoolError<sqlx::Error>) -> Self {
        use deadpool::managed::PoolError;
        match err {
            // Refused at login (SQLSTATE class 28): credentials expired or
            // were rotated on the server first. Retrying later can succeed.
            PoolError::Backend(sqlx::Error::Database(db))
                if db.code().is_some_and(|code| code.starts_with("28")) =>
            {
                Self::Unavailable(sqlx::Error::Database(db))
            }
            PoolError::Backend(err) => err.into(),
            // Waiting for a free connection or for a new one to open took too long.
            PoolError::Timeout(_) => Self::Unavailable(sqlx::Error::PoolTimedOut),
            PoolError::Closed => Self::Unavailable(sqlx::Error::PoolClosed),
            other => Self::Query(sqlx::Error::Configuration(other.to_string().into())),
        }
    }
}

/// True when `err` leaves the connection unusable, so it must not go back
/// to the pool: the socket failed or the server ended the session.
pub(super) fn breaks_connection(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
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
    fn socket_failures_break_the_connection_but_pool_timeouts_do_not() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(breaks_connection(&io));
        assert!(breaks_connection(&sqlx::Error::Protocol(
            "unexpected message".into()
        )));
        assert!(!breaks_connection(&sqlx::Error::PoolTimedOut));
        assert!(!breaks_connection(&sqlx::Error::RowNotFound));
    }

    #[test]
    fn pool_timeouts_are_unavailable() {
        use deadpool::managed::{PoolError, TimeoutType};
        let err = StorageError::from(PoolError::<sqlx::Error>::Timeout(TimeoutType::Create));
        assert!(matches!(
            err,
            StorageError::Unavailable(sqlx::Error::PoolTimedOut)
        ));
        let err = StorageError::from(PoolError::<sqlx::Error>::Closed);
        assert!(matches!(
            err,
            StorageError::Unavailable(sqlx::Error::PoolClosed)
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
