//! SQLite backend: the embedded default, one file, WAL journal.
//!
//! Durability: every commit is synced to disk before it is acknowledged
//! (`synchronous=FULL`; NORMAL would lose the last commits on a power loss
//! or a host crash), and a write is acknowledged only while the file at the
//! configured path is still the one the store writes to (`file`).

mod file;
mod list;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Sqlite};

use self::file::DatabaseFiles;
use super::migrations::APPLIED_SQL;
use super::{DbError, ListQuery, Page, PoolStats, QueryPlan, StorageError, StudentRecord};
use crate::config::PoolSettings;
use crate::domain::{Email, Gpa, NewStudent, StudentChanges, StudentDomain, StudentName};

macro_rules! columns {
    () => {
        "id, name, email, domain, gpa, created_at, updated_at"
    };
}

/// The current time as the RFC 3339 text the timestamp columns hold.
macro_rules! now_utc {
    () => {
        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
    };
}

const INSERT: &str = concat!(
    "insert into students (name, email, email_key, domain, gpa) values (?1, ?2, ?3, ?4, ?5) returning ",
    columns!()
);
const SELECT_ONE: &str = concat!("select ", columns!(), " from students where id = ?1");
const UPDATE: &str = concat!(
    "update students set name = coalesce(?2, name), email = coalesce(?3, email), ",
    "email_key = coalesce(?6, email_key), domain = coalesce(?4, domain), gpa = coalesce(?5, gpa), updated_at = ",
    now_utc!(),
    " where id = ?1 returning ",
    columns!()
);
static MIGRATOR: &sqlx::migrate::Migrator = &super::migrations::SQLITE;
const DELETE: &str = "delete from students where id = ?1";

/// The most connections the pool opens: `DB_MAX_CONNECTIONS`, and at most
/// two per core this process may use. SQLite runs each connection's
/// statements on a thread of its own, in this process: beyond about that
/// many, more threads only take turns on the cores and lengthen the tail
/// (at a million students, 16 clients on two cores: p99 16.9 ms with 10
/// connections, 10.1 ms with 4, at the same throughput; bench/README.md).
fn connection_cap(configured: u32) -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let per_cores = u32::try_from(cores.saturating_mul(2)).unwrap_or(u32::MAX);
    configured.min(per_cores)
}

/// How long a writer waits for another writer's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The files as opened; `None` for an in-memory database.
    files: Option<Arc<DatabaseFiles>>,
}

impl SqliteStore {
    pub async fn connect(
        options: SqliteConnectOptions,
        settings: &PoolSettings,
    ) -> Result<Self, StorageError> {
        let path = options.get_filename().to_owned();
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| StorageError::Unavailable(sqlx::Error::Io(e).into()))?;
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A commit is on disk before it is acknowledged. NORMAL would
            // survive a crash of the process but lose the last commits on a
            // power loss or a host crash (bench/README.md has the cost).
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // One connection first, alone: it creates the file and switches it to
        // WAL, which needs the database to itself. The pool opens its
        // connections concurrently, and two of them switching a new file
        // at once would have one fail with SQLITE_BUSY.
        options.connect().await?.close().await?;
        // Connections live as long as the process: the WAL file keeps its
        // identity only while one is open (see `file`), and an SQLite
        // connection is a file handle, nothing a server would reclaim.
        let pool = SqlitePoolOptions::new()
            .max_connections(connection_cap(settings.max_connections))
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await?;
        // SQLite syncs the files it writes but not the directories that
        // name a new database file (and a new data directory): sync them,
        // so the file itself survives a crash.
        let dir = dir.unwrap_or(Path::new("."));
        for dir in [
            Some(dir),
            dir.parent().filter(|p| !p.as_os_str().is_empty()),
        ]
        .into_iter()
        .flatten()
        {
            sync_directory(dir)
                .map_err(|e| StorageError::Unavailable(sqlx::Error::Io(e).into()))?;
        }
        let files = DatabaseFiles::capture(&path).map(Arc::new);
        Ok(Self { pool, files })
    }

    /// Refuses with a [`super::StorageFault::Moved`] fault when the database
    /// at the path is no longer the one this store writes to.
    fn check_files(&self) -> Result<(), StorageError> {
        self.files.as_deref().map_or(Ok(()), DatabaseFiles::check)
    }

    async fn checkout(&self) -> Result<PoolConnection<Sqlite>, StorageError> {
        Ok(self.pool.acquire().await?)
    }

    pub async fn migrate(&self) -> Result<usize, StorageError> {
        let before = self.applied().await?.len();
        let mut conn = self.checkout().await?;
        MIGRATOR
            .run(&mut *conn)
            .await
            .map_err(|e| StorageError::Migration(e.into()))?;
        drop(conn);
        Ok(self.applied().await?.len().saturating_sub(before))
    }

    pub async fn migrations_current(&self) -> Result<bool, StorageError> {
        Ok(super::migrations::is_current(
            MIGRATOR,
            &self.applied().await?,
        ))
    }

    /// The file check, then one query.
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.check_files()?;
        let mut conn = self.checkout().await?;
        let result = sqlx::query("select 1").execute(&mut *conn).await;
        result.map_err(StorageError::from).map(drop)
    }

    #[tracing::instrument(name = "db.create", skip_all)]
    pub async fn create(&self, student: &NewStudent) -> Result<StudentRecord, StorageError> {
        self.check_files()?;
        let mut conn = self.checkout().await?;
        let result = sqlx::query_as(INSERT)
            .bind(student.name.as_str())
            .bind(student.email.as_str())
            .bind(student.email.key())
            .bind(student.domain.as_str())
            .bind(student.gpa.value())
            .fetch_all(&mut *conn)
            .await;
        let record = result
            .map_err(StorageError::from)?
            .pop()
            .ok_or(StorageError::Query(DbError::NoRow))?;
        self.check_files()?;
        Ok(record)
    }

    #[tracing::instrument(name = "db.get", skip(self))]
    pub async fn get(&self, id: i64) -> Result<Option<StudentRecord>, StorageError> {
        let mut conn = self.checkout().await?;
        let result = sqlx::query_as(SELECT_ONE)
            .bind(id)
            .fetch_all(&mut *conn)
            .await;
        Ok(result.map_err(StorageError::from)?.pop())
    }

    #[tracing::instrument(name = "db.list", skip_all, fields(limit = query.limit))]
    pub async fn list(&self, query: &ListQuery) -> Result<Page, StorageError> {
        let mut conn = self.checkout().await?;
        let result: Result<Page, sqlx::Error> = async {
            let counted = list::count(&mut conn, query).await?;
            let total = counted.total;
            let records = list::fetch(&mut conn, query, counted.route).await?;
            let (records, has_more) = super::split_page(records, query.limit);
            Ok(Page {
                records,
                total,
                has_more,
            })
        }
        .await;
        result.map_err(StorageError::from)
    }

    pub async fn explain_list(&self, query: &ListQuery) -> Result<Vec<QueryPlan>, StorageError> {
        let mut conn = self.checkout().await?;
        let result: Result<Vec<QueryPlan>, sqlx::Error> = async {
            // The route the list would take, found as it finds it.
            let counted = list::count(&mut conn, query).await?;
            let mut statements = vec![list::page(query, counted.route)?];
            statements.extend(list::count_statement(query, counted.counting)?);
            let mut plans = Vec::new();
            for statement in statements {
                let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as_with(
                    AssertSqlSafe(format!("explain query plan {}", statement.sql)),
                    statement.arguments,
                )
                .fetch_all(&mut *conn)
                .await?;
                plans.push(QueryPlan {
                    statement: statement.sql,
                    plan: rows
                        .into_iter()
                        .map(|(_, _, _, detail)| detail)
                        .collect::<Vec<_>>()
                        .join("\n"),
                });
            }
            Ok(plans)
        }
        .await;
        result.map_err(StorageError::from)
    }

    #[tracing::instrument(name = "db.update", skip(self, changes))]
    pub async fn update(
        &self,
        id: i64,
        changes: &StudentChanges,
    ) -> Result<Option<StudentRecord>, StorageError> {
        self.check_files()?;
        let mut conn = self.checkout().await?;
        let result = sqlx::query_as(UPDATE)
            .bind(id)
            .bind(changes.name.as_ref().map(StudentName::as_str))
            .bind(changes.email.as_ref().map(Email::as_str))
            .bind(changes.domain.as_ref().map(StudentDomain::as_str))
            .bind(changes.gpa.map(Gpa::value))
            .bind(changes.email.as_ref().map(Email::key))
            .fetch_all(&mut *conn)
            .await;
        let record = result.map_err(StorageError::from)?.pop();
        self.check_files()?;
        Ok(record)
    }

    #[tracing::instrument(name = "db.delete", skip(self))]
    pub async fn delete(&self, id: i64) -> Result<bool, StorageError> {
        self.check_files()?;
        let mut conn = self.checkout().await?;
        let result = sqlx::query(DELETE).bind(id).execute(&mut *conn).await;
        let deleted = result.map_err(StorageError::from)?.rows_affected() > 0;
        self.check_files()?;
        Ok(deleted)
    }

    pub fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn applied(&self) -> Result<Vec<(i64, Vec<u8>)>, StorageError> {
        let mut conn = self.checkout().await?;
        let exists: bool =
            sqlx::query_scalar("select exists (select 1 from sqlite_master where type = 'table' and name = '_sqlx_migrations')")
                .fetch_one(&mut *conn)
                .await?;
        if !exists {
            return Ok(Vec::new());
        }
        let applied = sqlx::query_as(APPLIED_SQL).fetch_all(&mut *conn).await;
        applied.map_err(StorageError::from)
    }
}

/// Makes the entries of `dir` (a newly created file's name) durable.
fn sync_directory(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_opens_the_configured_connections_up_to_two_per_core() {
        let cores = std::thread::available_parallelism().unwrap().get();
        let per_cores = u32::try_from(2 * cores).unwrap();
        assert_eq!(connection_cap(1), 1);
        assert_eq!(connection_cap(1000), per_cores);
        assert_eq!(connection_cap(per_cores), per_cores);
    }

    #[tokio::test]
    async fn every_connection_syncs_each_commit_and_keeps_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let settings = PoolSettings {
            max_connections: 2,
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(5),
        };
        let options = SqliteConnectOptions::new().filename(dir.path().join("data/students.db"));
        let store = SqliteStore::connect(options, &settings).await.unwrap();
        let mut conn = store.checkout().await.unwrap();
        // 2 is FULL: NORMAL (1) would lose the last commits on a power loss.
        let synchronous: i64 = sqlx::query_scalar("pragma synchronous")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(synchronous, 2);
        drop(conn);
        let options = store.pool.options();
        assert_eq!(options.get_idle_timeout(), None);
        assert_eq!(options.get_max_lifetime(), None);
        assert!(store.files.is_some(), "the files are checked");
        store.check_files().unwrap();
    }
}
