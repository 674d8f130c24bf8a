//! PostgreSQL backend: the production store.

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::migrations::APPLIED_SQL;
use super::{ListQuery, Page, PoolSettings, PoolStats, StorageError, StudentRecord};
use crate::domain::{Email, FieldOfStudy, Gpa, NewStudent, StudentChanges, StudentName};

macro_rules! columns {
    () => {
        "id, name, email, domain, gpa, created_at, updated_at"
    };
}

/// Case-insensitive substring match on name or email; `$1` null matches all.
macro_rules! search_filter {
    () => {
        "($1::text is null or strpos(lower(name), lower($1)) > 0 or strpos(lower(email), lower($1)) > 0)"
    };
}

const INSERT: &str = concat!(
    "insert into students (name, email, domain, gpa) values ($1, $2, $3, $4) returning ",
    columns!()
);
const SELECT_ONE: &str = concat!("select ", columns!(), " from students where id = $1");
const COUNT: &str = concat!("select count(*) from students where ", search_filter!());
const SELECT_PAGE: &str = concat!(
    "select ",
    columns!(),
    " from students where ",
    search_filter!(),
    " order by id limit $2 offset $3"
);
const UPDATE: &str = concat!(
    "update students set name = coalesce($2, name), email = coalesce($3, email), ",
    "domain = coalesce($4, domain), gpa = coalesce($5, gpa), updated_at = now() ",
    "where id = $1 returning ",
    columns!()
);
static MIGRATOR: &sqlx::migrate::Migrator = &super::migrations::POSTGRES;
const DELETE: &str = "delete from students where id = $1";

/// SQLSTATE for a missing table: the migrations table before the first migration.
const UNDEFINED_TABLE: &str = "42P01";

#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub fn connect_lazy(options: PgConnectOptions, settings: &PoolSettings) -> Self {
        let options = options
            .application_name("student-api")
            .options([("statement_timeout", settings.statement_timeout.as_millis())]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .min_connections(0)
            .acquire_timeout(settings.acquire_timeout)
            // A ping before every checkout would double the round trips of
            // every request; a connection broken by a server restart fails
            // one request (503) and is then discarded by the pool.
            .test_before_acquire(false)
            .idle_timeout(Some(std::time::Duration::from_secs(600)))
            .max_lifetime(Some(std::time::Duration::from_secs(1800)))
            .connect_lazy_with(options);
        Self { pool }
    }

    student_queries!();

    async fn applied(&self) -> Result<Vec<(i64, Vec<u8>)>, StorageError> {
        match sqlx::query_as(APPLIED_SQL).fetch_all(&self.pool).await {
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some(UNDEFINED_TABLE) => {
                Ok(Vec::new())
            }
            other => Ok(other?),
        }
    }
}
