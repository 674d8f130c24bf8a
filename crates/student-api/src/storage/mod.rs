//! Persistence of students behind one interface, [`Store`], with one
//! implementation per backend: PostgreSQL in production, SQLite embedded.
//!
//! Rules: callers pass validated domain types only; SQL lives in the backend
//! files and in `migrations/`; driver errors are classified here once
//! (constraint violation, database unavailable, anything else) so the HTTP
//! layer never inspects a driver error itself.

/// The query methods of the sqlx-based backend (SQLite). It defines the
/// constants `INSERT`, `SELECT_ONE`, `COUNT`, `SELECT_PAGE`, `UPDATE`,
/// `DELETE` and `MIGRATOR`, and a `checkout()` method whose guard derefs to
/// a connection and whose `finish` classifies the result. PostgreSQL has
/// its own methods, on pipelined tokio-postgres connections.
///
/// Rows are read with `fetch_all` even where at most one is expected, so a
/// connection always reads its query's answer to the end.
macro_rules! student_queries {
    () => {
        pub async fn migrate(&self) -> Result<usize, StorageError> {
            let before = self.applied().await?.len();
            let mut conn = self.checkout().await?;
            let result = MIGRATOR.run(&mut *conn).await.map_err(StorageError::from);
            conn.finish(Ok(())).and(result)?;
            Ok(self.applied().await?.len().saturating_sub(before))
        }

        pub async fn migrations_current(&self) -> Result<bool, StorageError> {
            Ok(super::migrations::is_current(&MIGRATOR, &self.applied().await?))
        }

        pub async fn ping(&self) -> Result<(), StorageError> {
            let mut conn = self.checkout().await?;
            let result = sqlx::query("select 1").execute(&mut *conn).await;
            conn.finish(result).map(drop)
        }

        #[tracing::instrument(name = "db.create", skip_all)]
        pub async fn create(&self, student: &NewStudent) -> Result<StudentRecord, StorageError> {
            let mut conn = self.checkout().await?;
            let result = sqlx::query_as(INSERT)
                .bind(student.name.as_str())
                .bind(student.email.as_str())
                .bind(student.domain.as_str())
                .bind(student.gpa.value())
                .fetch_all(&mut *conn)
                .await;
            conn.finish(result)?.pop().ok_or(StorageError::Query(DbError::NoRow))
        }

        #[tracing::instrument(name = "db.get", skip(self))]
        pub async fn get(&self, id: i64) -> Result<Option<StudentRecord>, StorageError> {
            let mut conn = self.checkout().await?;
            let result = sqlx::query_as(SELECT_ONE).bind(id).fetch_all(&mut *conn).await;
            Ok(conn.finish(result)?.pop())
        }

        #[tracing::instrument(name = "db.list", skip_all, fields(limit = query.limit, offset = query.offset))]
        pub async fn list(&self, query: &ListQuery) -> Result<Page, StorageError> {
            let search = query.search.as_deref();
            let mut conn = self.checkout().await?;
            let result = async {
                let total: Vec<i64> = sqlx::query_scalar(COUNT).bind(search).fetch_all(&mut *conn).await?;
                let records = sqlx::query_as(SELECT_PAGE)
                    .bind(search)
                    .bind(query.limit)
                    .bind(query.offset)
                    .fetch_all(&mut *conn)
                    .await?;
                Ok(Page { records, total: total.first().copied().unwrap_or_default() })
            }
            .await;
            conn.finish(result)
        }

        #[tracing::instrument(name = "db.update", skip(self, changes))]
        pub async fn update(&self, id: i64, changes: &StudentChanges) -> Result<Option<StudentRecord>, StorageError> {
            let mut conn = self.checkout().await?;
            let result = sqlx::query_as(UPDATE)
                .bind(id)
                .bind(changes.name.as_ref().map(StudentName::as_str))
                .bind(changes.email.as_ref().map(Email::as_str))
                .bind(changes.domain.as_ref().map(FieldOfStudy::as_str))
                .bind(changes.gpa.map(Gpa::value))
                .fetch_all(&mut *conn)
                .await;
            Ok(conn.finish(result)?.pop())
        }

        #[tracing::instrument(name = "db.delete", skip(self))]
        pub async fn delete(&self, id: i64) -> Result<bool, StorageError> {
            let mut conn = self.checkout().await?;
            let result = sqlx::query(DELETE).bind(id).execute(&mut *conn).await;
            Ok(conn.finish(result)?.rows_affected() > 0)
        }
    };
}

mod error;
mod migrations;
mod postgres;
mod record;
mod sqlite;

use std::time::Duration;

pub use error::{DbError, StorageError};
pub use record::{ListQuery, Page, PoolStats, StudentRecord};

use sqlx::sqlite::SqliteConnectOptions;

use crate::domain::{NewStudent, StudentChanges};
use crate::secrets::CredentialReceiver;

/// Connection pool settings shared by both backends.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// Longest a request waits for a connection before it gets a 503.
    pub acquire_timeout: Duration,
    /// Server-side limit on one statement (PostgreSQL only).
    pub statement_timeout: Duration,
}

/// The student store; cheap to clone (it wraps a connection pool).
#[derive(Clone, Debug)]
pub enum Store {
    Postgres(postgres::PgStore),
    Sqlite(sqlite::SqliteStore),
}

/// Forwards one call to whichever backend this store is.
macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Store::Postgres($store) => $call,
            Store::Sqlite($store) => $call,
        }
    };
}

impl Store {
    /// Opens a PostgreSQL pool. It connects lazily, so the service starts
    /// (and reports not-ready) while the database is still coming up, and
    /// each new connection logs in with the credentials current at the time.
    pub fn postgres(credentials: CredentialReceiver, settings: &PoolSettings) -> Self {
        Self::Postgres(postgres::PgStore::connect_lazy(credentials, settings))
    }

    /// Opens the SQLite file at once, creating it when missing.
    pub async fn sqlite(
        options: SqliteConnectOptions,
        settings: &PoolSettings,
    ) -> Result<Self, StorageError> {
        sqlite::SqliteStore::connect(options, settings)
            .await
            .map(Self::Sqlite)
    }

    /// Applies every embedded migration not yet applied; returns how many ran.
    pub async fn migrate(&self) -> Result<usize, StorageError> {
        dispatch!(self, s => s.migrate().await)
    }

    /// True when every migration embedded in this binary has been applied.
    /// Migrations newer than the binary are tolerated so that old replicas stay
    /// ready while a rolling update runs the new version's migrations.
    pub async fn migrations_current(&self) -> Result<bool, StorageError> {
        dispatch!(self, s => s.migrations_current().await)
    }

    /// One round trip to the database.
    pub async fn ping(&self) -> Result<(), StorageError> {
        dispatch!(self, s => s.ping().await)
    }

    pub async fn create(&self, student: &NewStudent) -> Result<StudentRecord, StorageError> {
        dispatch!(self, s => s.create(student).await)
    }

    pub async fn get(&self, id: i64) -> Result<Option<StudentRecord>, StorageError> {
        dispatch!(self, s => s.get(id).await)
    }

    pub async fn list(&self, query: &ListQuery) -> Result<Page, StorageError> {
        dispatch!(self, s => s.list(query).await)
    }

    /// Applies `changes` and returns the updated row, or `None` when `id` does not exist.
    pub async fn update(
        &self,
        id: i64,
        changes: &StudentChanges,
    ) -> Result<Option<StudentRecord>, StorageError> {
        dispatch!(self, s => s.update(id, changes).await)
    }

    /// Returns whether a row was deleted.
    pub async fn delete(&self, id: i64) -> Result<bool, StorageError> {
        dispatch!(self, s => s.delete(id).await)
    }

    pub fn pool_stats(&self) -> PoolStats {
        dispatch!(self, s => s.pool_stats())
    }

    /// Closes the pool: idle connections now, busy ones as their work ends
    /// (SQLite waits for them).
    pub async fn close(&self) {
        match self {
            Self::Postgres(store) => store.close(),
            Self::Sqlite(store) => store.close().await,
        }
    }
}
