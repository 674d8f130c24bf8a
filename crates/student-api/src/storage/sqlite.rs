//! SQLite backend: the embedded default, one file, WAL journal.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::Sqlite;

use super::migrations::APPLIED_SQL;
use super::{DbError, ListQuery, Page, PoolSettings, PoolStats, StorageError, StudentRecord};
use crate::domain::{Email, FieldOfStudy, Gpa, NewStudent, StudentChanges, StudentName};

macro_rules! columns {
    () => {
        "id, name, email, domain, gpa, created_at, updated_at"
    };
}

/// Case-insensitive substring match on name or email; `?1` null matches all.
/// SQLite's `lower()` folds ASCII letters only.
macro_rules! search_filter {
    () => {
        "(?1 is null or instr(lower(name), lower(?1)) > 0 or instr(lower(email), lower(?1)) > 0)"
    };
}

/// The current time as the RFC 3339 text the timestamp columns hold.
macro_rules! now_utc {
    () => {
        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
    };
}

const INSERT: &str = concat!(
    "insert into students (name, email, domain, gpa) values (?1, ?2, ?3, ?4) returning ",
    columns!()
);
const SELECT_ONE: &str = concat!("select ", columns!(), " from students where id = ?1");
const COUNT: &str = concat!("select count(*) from students where ", search_filter!());
const SELECT_PAGE: &str = concat!(
    "select ",
    columns!(),
    " from students where ",
    search_filter!(),
    " order by id limit ?2 offset ?3"
);
const UPDATE: &str = concat!(
    "update students set name = coalesce(?2, name), email = coalesce(?3, email), ",
    "domain = coalesce(?4, domain), gpa = coalesce(?5, gpa), updated_at = ",
    now_utc!(),
    " where id = ?1 returning ",
    columns!()
);
static MIGRATOR: &sqlx::migrate::Migrator = &super::migrations::SQLITE;
const DELETE: &str = "delete from students where id = ?1";

/// How long a writer waits for another writer's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection from sqlx's pool; it returns itself when dropped.
struct Checkout(PoolConnection<Sqlite>);

impl Checkout {
    #[allow(clippy::unused_self)] // the same call shape as the PostgreSQL checkout
    fn finish<T>(self, result: Result<T, sqlx::Error>) -> Result<T, StorageError> {
        result.map_err(StorageError::from)
    }
}

impl Deref for Checkout {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.0
    }
}

impl DerefMut for Checkout {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.0
    }
}

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(
        options: SqliteConnectOptions,
        settings: &PoolSettings,
    ) -> Result<Self, StorageError> {
        if let Some(dir) = options
            .get_filename()
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StorageError::Unavailable(sqlx::Error::Io(e).into()))?;
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable across application crashes in WAL mode and
            // only risks the last commits on power loss.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    async fn checkout(&self) -> Result<Checkout, StorageError> {
        Ok(Checkout(self.pool.acquire().await?))
    }

    student_queries!();

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
        conn.finish(applied)
    }
}
