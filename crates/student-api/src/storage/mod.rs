//! Persistence of students behind one interface, [`Store`], with one
//! implementation per backend: PostgreSQL in production, SQLite embedded.
//!
//! Rules: callers pass validated domain types only; SQL lives in the backend
//! files and in `migrations/`; driver errors are classified here once
//! (constraint violation, database unavailable, anything else) so the HTTP
//! layer never inspects a driver error itself.

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
