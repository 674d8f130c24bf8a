//! PostgreSQL backend: the production store.
//!
//! Connections are pooled with deadpool, not sqlx's own pool: sqlx pings
//! every connection as it returns to its pool, one extra round trip per
//! query, which cost a third of the throughput of a read by id. Instead, a
//! connection goes back to the pool only when its query finished: one whose
//! query future was dropped half-way (client gone, request timeout) or whose
//! socket failed is discarded, since its protocol state is unknown.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult};
use sqlx::postgres::PgConnection;
use sqlx::Connection;

use super::error::breaks_connection;
use super::migrations::APPLIED_SQL;
use super::{ListQuery, Page, PoolSettings, PoolStats, StorageError, StudentRecord};
use crate::domain::{Email, FieldOfStudy, Gpa, NewStudent, StudentChanges, StudentName};
use crate::secrets::{Credential, CredentialReceiver};

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

/// Connections are replaced after this long, so that server-side memory is
/// returned and changes such as a failover reach every connection.
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// Opens connections for the pool and decides whether one may be reused.
#[derive(Debug)]
struct Connector {
    credentials: CredentialReceiver,
    settings: PoolSettings,
}

/// A pooled connection and the credential generation it logged in with.
pub struct PooledConnection {
    conn: PgConnection,
    credential: Arc<Credential>,
}

impl std::fmt::Debug for PooledConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledConnection")
            .field("generation", &self.credential.generation)
            .finish_non_exhaustive()
    }
}

impl managed::Manager for Connector {
    type Type = PooledConnection;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<PooledConnection, sqlx::Error> {
        let credential = self.credentials.borrow().clone();
        let options = credential
            .options
            .clone()
            .application_name("student-api")
            .options([(
                "statement_timeout",
                self.settings.statement_timeout.as_millis(),
            )]);
        let conn = PgConnection::connect_with(&options).await?;
        Ok(PooledConnection { conn, credential })
    }

    async fn recycle(
        &self,
        pooled: &mut PooledConnection,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        // No round trip here: broken connections were already discarded by
        // `Checkout`, and a dead idle one fails its next query with a 503.
        if metrics.age() > MAX_LIFETIME {
            return Err(RecycleError::message(
                "connection reached its maximum lifetime",
            ));
        }
        if pooled.credential.generation != self.credentials.borrow().generation {
            return Err(RecycleError::message(
                "connection uses credentials that have been rotated",
            ));
        }
        Ok(())
    }
}

type Pool = managed::Pool<Connector>;

/// A connection taken from the pool for one unit of work.
struct Checkout(Option<Object<Connector>>);

impl Checkout {
    /// Returns the connection to the pool unless `result` shows it broke.
    fn finish<T>(mut self, result: Result<T, sqlx::Error>) -> Result<T, StorageError> {
        if let (Err(err), Some(conn)) = (&result, self.0.take()) {
            if breaks_connection(err) {
                drop(Object::take(conn));
            }
        }
        result.map_err(StorageError::from)
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        // Still here: the work was abandoned mid-way; do not reuse the connection.
        if let Some(conn) = self.0.take() {
            drop(Object::take(conn));
        }
    }
}

impl Deref for Checkout {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self
            .0
            .as_ref()
            .expect("a checkout holds its connection until finished")
            .conn
    }
}

impl DerefMut for Checkout {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self
            .0
            .as_mut()
            .expect("a checkout holds its connection until finished")
            .conn
    }
}

/// On every rotation, closes the idle connections of older credentials at
/// once (busy ones are retired by `recycle` when they come back), so that the
/// old credentials can be revoked soon. Ends when the source stops.
async fn retire_rotated(pool: Pool, mut credentials: CredentialReceiver) {
    while credentials.changed().await.is_ok() {
        let current = credentials.borrow_and_update().generation;
        let retired = pool.retain(|pooled, _| pooled.credential.generation == current);
        for pooled in retired.removed {
            // Terminate politely so the server does not log a lost connection.
            tokio::spawn(pooled.conn.close());
        }
    }
}

#[derive(Clone, Debug)]
pub struct PgStore {
    pool: Pool,
}

impl PgStore {
    /// Builds the pool; connections open on first use, with whatever
    /// credentials `credentials` holds at that moment.
    pub fn connect_lazy(
        credentials: CredentialReceiver,
        settings: &PoolSettings,
    ) -> Result<Self, StorageError> {
        let connector = Connector {
            credentials: credentials.clone(),
            settings: settings.clone(),
        };
        let pool = Pool::builder(connector)
            .max_size(settings.max_connections as usize)
            .wait_timeout(Some(settings.acquire_timeout))
            .create_timeout(Some(settings.acquire_timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| StorageError::Query(sqlx::Error::Configuration(e.to_string().into())))?;
        tokio::spawn(retire_rotated(pool.clone(), credentials));
        Ok(Self { pool })
    }

    async fn checkout(&self) -> Result<Checkout, StorageError> {
        Ok(Checkout(Some(self.pool.get().await?)))
    }

    student_queries!();

    async fn applied(&self) -> Result<Vec<(i64, Vec<u8>)>, StorageError> {
        let mut conn = self.checkout().await?;
        match sqlx::query_as(APPLIED_SQL).fetch_all(&mut *conn).await {
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some(UNDEFINED_TABLE) => {
                conn.finish(Ok(Vec::new()))
            }
            other => conn.finish(other),
        }
    }

    pub fn pool_stats(&self) -> PoolStats {
        let status = self.pool.status();
        let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        PoolStats {
            size: to_u32(status.size),
            idle: to_u32(status.available),
            max: to_u32(status.max_size),
        }
    }

    /// Closes idle connections now; busy ones close when their work ends.
    pub fn close(&self) {
        self.pool.close();
    }
}
