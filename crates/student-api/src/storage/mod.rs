//! Persistence of students behind one interface, [`Store`], with one
//! implementation per backend: PostgreSQL in production, SQLite embedded.
//!
//! Rules: callers pass validated domain types only; SQL lives in the backend
//! files and in `migrations/`; driver errors are classified here once
//! (constraint violation, database unavailable, storage fault, anything
//! else) so the HTTP layer never inspects a driver error itself; every
//! result passes the fault monitor (`faults`) on its way out. One driver per
//! backend: tokio-postgres for PostgreSQL, sqlx for SQLite. May import
//! `domain`, `config` and `credentials`.

mod error;
mod faults;
mod migrations;
mod postgres;
mod record;
mod spans;
mod sqlite;

use std::sync::Arc;

pub use error::{DbError, MigrationError, StorageError};
pub use faults::StorageFault;
pub use record::{
    CountMode, ListQuery, Page, PoolStats, Position, Sort, SortKey, Start, StudentRecord,
};

/// Up to this many matches, the default count (`CountMode::Estimated`) is
/// exact; beyond, it is the database's estimate. Counting stops at one
/// match more, so what a list request counts is bounded at any size.
pub const EXACT_COUNT_LIMIT: i64 = 1_000;

/// The number of matches from which a search in an order walks the
/// order's index rather than reading its matches: with `rows` students and
/// M matches spread through them, the walk finds the `limit + 1` rows it
/// needs (plus an offset's) after about `(limit + 1) × rows / M` rows, and
/// reading the matches reads M rows. At M = sqrt((limit + 1) × rows) both
/// read M rows: about 4,600 for a page of 20 of a million students.
fn walk_threshold(rows: i64, limit: i64) -> i64 {
    (limit + 1).saturating_mul(rows.max(0)).isqrt().max(1)
}

/// A walk stops after this many times [`walk_threshold`] rows: matches that
/// all sort beyond (a first name in name order) are read instead, so that
/// no walk reads a number of rows that grows with the table, short of its
/// square root.
const WALK_WINDOW: i64 = 4;

/// A statement and the plan the database chose for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPlan {
    pub statement: String,
    pub plan: String,
}

/// Trims a page fetched with one row more than `limit` and says whether
/// that extra row was there.
fn split_page(mut records: Vec<StudentRecord>, limit: i64) -> (Vec<StudentRecord>, bool) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let has_more = records.len() > limit;
    records.truncate(limit);
    (records, has_more)
}

use faults::{FaultMonitor, Operation};
use opentelemetry_sdk::trace::SdkTracer;
use spans::Call;
use sqlx::sqlite::SqliteConnectOptions;

use crate::config::{PoolSettings, PostgresTarget};
use crate::credentials::{CredentialReceiver, LoginCheck};
use crate::domain::{NewStudent, StudentChanges};

/// The table of students, for the spans of the calls.
const TABLE: &str = "students";

/// The student store; cheap to clone (it wraps a connection pool).
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    faults: Arc<FaultMonitor>,
    /// Starts a span per call made for a traced request; `None`: tracing is off.
    tracer: Option<SdkTracer>,
}

#[derive(Clone, Debug)]
enum Backend {
    Postgres(postgres::PgStore),
    Sqlite(sqlite::SqliteStore),
}

/// Forwards one call to whichever backend this store is.
macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match &$self.backend {
            Backend::Postgres($store) => $call,
            Backend::Sqlite($store) => $call,
        }
    };
}

/// Checks the PostgreSQL settings that do not depend on credentials (the
/// TLS root certificate in `sslrootcert`), so that an unusable one stops
/// the service at start rather than failing every connection later.
pub fn check_postgres_settings(target: &PostgresTarget) -> Result<(), DbError> {
    postgres::check_settings(target).map_err(DbError::Config)
}

/// What proves new PostgreSQL credentials before the pool takes them: one
/// login, with the same driver and settings as the pool's connections.
pub fn postgres_login(settings: &PoolSettings) -> Arc<dyn LoginCheck> {
    Arc::new(postgres::PgLogin::new(settings))
}

impl Store {
    fn new(backend: Backend) -> Self {
        Self {
            backend,
            faults: Arc::default(),
            tracer: None,
        }
    }

    /// The same store, with a span for each call made for a traced request.
    #[must_use]
    pub fn with_tracer(mut self, tracer: Option<SdkTracer>) -> Self {
        self.tracer = tracer;
        self
    }

    /// `db.system.name` of the backend.
    fn system(&self) -> &'static str {
        match self.backend {
            Backend::Postgres(_) => "postgresql",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// Runs one call of the store in its span (when traced).
    async fn traced<T>(
        &self,
        operation: &'static str,
        table: Option<&'static str>,
        run: impl std::future::Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        spans::traced(
            self.tracer.as_ref(),
            self.system(),
            Call { operation, table },
            run,
        )
        .await
    }

    /// Opens a PostgreSQL pool. It connects lazily, so the service starts
    /// (and reports not-ready) while the database is still coming up, and
    /// each new connection logs in with the credentials current at the time.
    pub fn postgres(credentials: CredentialReceiver, settings: &PoolSettings) -> Self {
        Self::new(Backend::Postgres(postgres::PgStore::connect_lazy(
            credentials,
            settings,
        )))
    }

    /// Opens the SQLite file at once, creating it when missing.
    pub async fn sqlite(
        options: SqliteConnectOptions,
        settings: &PoolSettings,
    ) -> Result<Self, StorageError> {
        sqlite::SqliteStore::connect(options, settings)
            .await
            .map(|store| Self::new(Backend::Sqlite(store)))
    }

    /// True for the embedded SQLite store, which migrates itself at start.
    pub fn is_embedded(&self) -> bool {
        matches!(self.backend, Backend::Sqlite(_))
    }

    /// Applies every embedded migration not yet applied; returns how many ran.
    pub async fn migrate(&self) -> Result<usize, StorageError> {
        dispatch!(self, s => s.migrate().await)
    }

    /// True when every migration embedded in this binary has been applied.
    /// Migrations newer than the binary are tolerated so that old replicas stay
    /// ready while a rolling update runs the new version's migrations.
    pub async fn migrations_current(&self) -> Result<bool, StorageError> {
        self.traced("SELECT", Some("_sqlx_migrations"), async {
            dispatch!(self, s => s.migrations_current().await)
        })
        .await
    }

    /// One round trip to the database (SQLite: after checking that its
    /// file is still the one at its path).
    pub async fn ping(&self) -> Result<(), StorageError> {
        let result = self
            .traced("SELECT", None, async {
                dispatch!(self, s => s.ping().await)
            })
            .await;
        self.observe(Operation::FileCheck, result)
    }

    pub async fn create(&self, student: &NewStudent) -> Result<StudentRecord, StorageError> {
        let result = self
            .traced("INSERT", Some(TABLE), async {
                dispatch!(self, s => s.create(student).await)
            })
            .await;
        self.observe(Operation::Write, result)
    }

    pub async fn get(&self, id: i64) -> Result<Option<StudentRecord>, StorageError> {
        let result = self
            .traced("SELECT", Some(TABLE), async {
                dispatch!(self, s => s.get(id).await)
            })
            .await;
        self.observe(Operation::Read, result)
    }

    pub async fn list(&self, query: &ListQuery) -> Result<Page, StorageError> {
        let result = self
            .traced("SELECT", Some(TABLE), async {
                dispatch!(self, s => s.list(query).await)
            })
            .await;
        self.observe(Operation::Read, result)
    }

    /// The query plans of the statements `list` runs for `query` (the
    /// counting ones as far as they read rows), each as the statement and
    /// its plan, one line per node: for tests that prove every shape is
    /// served by an index, and for operators and benchmarks.
    pub async fn explain_list(&self, query: &ListQuery) -> Result<Vec<QueryPlan>, StorageError> {
        dispatch!(self, s => s.explain_list(query).await)
    }

    /// Applies `changes` and returns the updated row, or `None` when `id` does not exist.
    pub async fn update(
        &self,
        id: i64,
        changes: &StudentChanges,
    ) -> Result<Option<StudentRecord>, StorageError> {
        let result = self
            .traced("UPDATE", Some(TABLE), async {
                dispatch!(self, s => s.update(id, changes).await)
            })
            .await;
        self.observe(Operation::Write, result)
    }

    /// Returns whether a row was deleted.
    pub async fn delete(&self, id: i64) -> Result<bool, StorageError> {
        let result = self
            .traced("DELETE", Some(TABLE), async {
                dispatch!(self, s => s.delete(id).await)
            })
            .await;
        self.observe(Operation::Write, result)
    }

    pub fn pool_stats(&self) -> PoolStats {
        dispatch!(self, s => s.pool_stats())
    }

    /// Storage faults met since the start, by kind, for `/metrics`.
    pub fn storage_faults(&self) -> [(StorageFault, u64); StorageFault::ALL.len()] {
        self.faults.counts()
    }

    /// The storage fault that writes currently meet, with since when, for
    /// readiness; `None` when writes work (or none has been tried).
    pub fn storage_condition(&self) -> Option<String> {
        self.faults.condition()
    }

    /// Closes the pool: idle connections now, busy ones as their work
    /// ends; returns once every connection has closed.
    pub async fn close(&self) {
        dispatch!(self, s => s.close().await);
    }

    fn observe<T>(
        &self,
        operation: Operation,
        result: Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        self.faults.record(operation, &result);
        result
    }
}
