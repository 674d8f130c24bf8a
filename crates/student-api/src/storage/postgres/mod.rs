//! PostgreSQL backend: the production store, on one driver (tokio-postgres)
//! over one TLS stack (rustls, `connect`).
//!
//! Queries go through a small set of shared, pipelined connections
//! (`pool`); the list's statements are assembled in `queries`, chosen and
//! ordered in `list`, with estimates of searches from `statistics`;
//! migrations run on a connection of their own (`migrate`); new
//! credentials are proven by one login ([`PgLogin`]). Rows are decoded here
//! into storage records. May import `config`, `credentials`, `domain` and
//! the rest of `storage`.

mod connect;
mod list;
mod migrate;
mod pool;
mod queries;
mod statistics;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row, Statement};

pub use self::connect::{check_settings, ConnectConfigError};
use self::pool::{Connector, Lease, Limits, Pool, PoolError, Session};
use self::queries::Query;
use self::statistics::Statistics;
use super::migrations::APPLIED_SQL;
use super::{
    CountMode, DbError, ListQuery, Page, PoolStats, QueryPlan, StorageError, StudentRecord,
};
use crate::config::{PoolSettings, PostgresTarget};
use crate::credentials::{Credential, CredentialReceiver, LoginCheck, LoginError};
use crate::domain::{Email, Gpa, NewStudent, StudentChanges, StudentDomain, StudentName};

static MIGRATOR: &sqlx::migrate::Migrator = &super::migrations::POSTGRES;

/// Queries in flight on every open connection before another one opens.
/// Deeper pipelines batch better; shallower ones let a slow query hold up
/// fewer of the queries queued behind it.
const PIPELINE_DEPTH: usize = 8;

/// List statements prepared on a connection, at most: enough for every
/// order, kind of start and count at a few page sizes. A statement holds
/// memory in the server for as long as it is prepared.
const MAX_PREPARED_LISTS: usize = 64;

/// Connections are replaced after this long, so that server-side memory is
/// returned and changes such as a failover reach every connection.
const MAX_LIFETIME: Duration = Duration::from_mins(30);

/// Opens sessions with the service's settings.
#[derive(Debug, Clone, Copy)]
struct PgConnector {
    statement_timeout: Duration,
    connect_timeout: Duration,
}

impl PgConnector {
    async fn open(&self, target: &PostgresTarget) -> Result<(Client, Session), StorageError> {
        let plan = connect::plan(target, self.statement_timeout, self.connect_timeout)
            .map_err(|e| StorageError::Query(DbError::Config(e)))?;
        let (client, connection) = plan.config.connect(plan.tls).await?;
        let session: Session = Box::pin(async move {
            if let Err(err) = connection.await {
                tracing::warn!(error = %err, "a PostgreSQL connection ended with an error");
            }
        });
        Ok((client, session))
    }
}

/// A shared connection with its prepared statements.
struct PgClient {
    client: Client,
    statements: [OnceCell<Statement>; Query::ALL.len()],
    /// List statements that need no plan of their own values, by their
    /// text: one per order, kind of start and page size (`queries` says
    /// why), at most [`MAX_PREPARED_LISTS`].
    lists: Mutex<HashMap<String, Statement>>,
}

impl PgClient {
    /// `query` prepared on this connection, on first use.
    async fn statement(&self, query: Query) -> Result<Statement, tokio_postgres::Error> {
        self.statements[query as usize]
            .get_or_try_init(|| self.client.prepare(query.sql()))
            .await
            .cloned()
    }

    /// Runs an assembled list statement: unnamed, so planned with its
    /// values, when it needs that, and otherwise prepared on this
    /// connection on first use.
    async fn run(&self, statement: &queries::Statement) -> Result<Vec<Row>, tokio_postgres::Error> {
        let params = statement.typed_params();
        if statement.plan_with_values {
            return self.client.query_typed(&statement.sql, &params).await;
        }
        let cached = self.lists().get(&statement.sql).cloned();
        let prepared = if let Some(prepared) = cached {
            prepared
        } else {
            let types: Vec<Type> = params.iter().map(|(_, ty)| ty.clone()).collect();
            let prepared = self.client.prepare_typed(&statement.sql, &types).await?;
            let mut lists = self.lists();
            if lists.len() >= MAX_PREPARED_LISTS {
                // Only a client cycling through page sizes gets here.
                lists.clear();
            }
            // Two requests may prepare the same text at once; either
            // statement serves, and the one not kept is closed on drop.
            lists
                .entry(statement.sql.clone())
                .or_insert(prepared)
                .clone()
        };
        let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(value, _)| *value).collect();
        self.client.query(&prepared, &values).await
    }

    fn lists(&self) -> MutexGuard<'_, HashMap<String, Statement>> {
        // The map is valid whatever a panicking holder was doing.
        self.lists.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Connector for PgConnector {
    type Client = PgClient;
    type Error = StorageError;

    async fn connect(&self, credential: &Credential) -> Result<(PgClient, Session), StorageError> {
        let (client, session) = self.open(&credential.target).await?;
        let client = PgClient {
            client,
            statements: Default::default(),
            lists: Mutex::default(),
        };
        Ok((client, session))
    }

    fn is_closed(client: &PgClient) -> bool {
        client.client.is_closed()
    }
}

/// Proves new credentials with one login, over the same driver and TLS
/// settings the pool will use.
#[derive(Debug, Clone, Copy)]
pub struct PgLogin(PgConnector);

impl PgLogin {
    pub fn new(settings: &PoolSettings) -> Self {
        Self(PgConnector {
            statement_timeout: settings.statement_timeout,
            connect_timeout: settings.acquire_timeout,
        })
    }
}

impl LoginCheck for PgLogin {
    fn log_in<'a>(
        &'a self,
        target: &'a PostgresTarget,
    ) -> Pin<Box<dyn Future<Output = Result<(), LoginError>> + Send + 'a>> {
        Box::pin(async move {
            let (client, session) = self.0.open(target).await.map_err(Box::new)?;
            // Dropping the client says goodbye; the session then ends.
            drop(client);
            session.await;
            Ok(())
        })
    }
}

fn record(row: &Row) -> Result<StudentRecord, tokio_postgres::Error> {
    Ok(StudentRecord {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        email: row.try_get(2)?,
        domain: row.try_get(3)?,
        gpa: row.try_get(4)?,
        created_at: row.try_get(5)?,
        updated_at: row.try_get(6)?,
    })
}

fn first_record(rows: &[Row]) -> Result<Option<StudentRecord>, StorageError> {
    Ok(rows.first().map(record).transpose()?)
}

#[derive(Clone)]
pub struct PgStore {
    pool: Arc<Pool<PgConnector>>,
    connector: PgConnector,
    credentials: CredentialReceiver,
    statistics: Arc<Statistics>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool_stats())
            .finish_non_exhaustive()
    }
}

impl From<PoolError<StorageError>> for StorageError {
    fn from(err: PoolError<StorageError>) -> Self {
        match err {
            PoolError::Closed => Self::Unavailable(DbError::Closed),
            PoolError::TimedOut => Self::Unavailable(DbError::TimedOut),
            PoolError::Open(err) => err,
        }
    }
}

impl PgStore {
    /// Sets up the pool; connections open on first use, with whatever
    /// credentials `credentials` holds at that moment.
    pub fn connect_lazy(credentials: CredentialReceiver, settings: &PoolSettings) -> Self {
        let connector = PgConnector {
            statement_timeout: settings.statement_timeout,
            connect_timeout: settings.acquire_timeout,
        };
        let limits = Limits {
            max_connections: settings.max_connections as usize,
            depth: PIPELINE_DEPTH,
            acquire_timeout: settings.acquire_timeout,
            max_lifetime: MAX_LIFETIME,
        };
        let pool = Arc::new(Pool::new(connector, credentials.clone(), limits));
        tokio::spawn(pool.clone().retire_rotated());
        Self {
            pool,
            connector,
            credentials,
            statistics: Arc::default(),
        }
    }

    async fn acquire(&self) -> Result<Lease<PgClient>, StorageError> {
        Ok(self.pool.acquire().await?)
    }

    /// Runs `query` with `params` on a shared connection.
    async fn rows(
        &self,
        query: Query,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StorageError> {
        let connection = self.acquire().await?;
        let statement = connection.statement(query).await?;
        Ok(connection.client.query(&statement, params).await?)
    }

    /// Applies the embedded migrations on a connection of their own (a
    /// transaction and an advisory lock need a session to themselves).
    pub async fn migrate(&self) -> Result<usize, StorageError> {
        let credential = self.credentials.borrow().clone();
        let connector = self.connector;
        let (mut client, session) = tokio::time::timeout(
            connector.connect_timeout,
            connector.open(&credential.target),
        )
        .await
        .map_err(|_| StorageError::Unavailable(DbError::TimedOut))??;
        let session = tokio::spawn(session);
        let result = migrate::run(&mut client, MIGRATOR).await;
        drop(client);
        // The outcome is the migrator's; how the session ends changes nothing.
        let _ = session.await;
        result.map_err(StorageError::Migration)
    }

    pub async fn migrations_current(&self) -> Result<bool, StorageError> {
        Ok(super::migrations::is_current(
            MIGRATOR,
            &self.applied().await?,
        ))
    }

    async fn applied(&self) -> Result<Vec<(i64, Vec<u8>)>, StorageError> {
        let connection = self.acquire().await?;
        match connection.client.query_typed(APPLIED_SQL, &[]).await {
            Ok(rows) => Ok(rows
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<_, tokio_postgres::Error>>()?),
            // Before the first migration the table does not exist.
            Err(err) if err.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(Vec::new()),
            Err(err) => Err(err.into()),
        }
    }

    pub async fn ping(&self) -> Result<(), StorageError> {
        let connection = self.acquire().await?;
        Ok(connection.client.batch_execute("select 1").await?)
    }

    #[tracing::instrument(name = "db.create", skip_all)]
    pub async fn create(&self, student: &NewStudent) -> Result<StudentRecord, StorageError> {
        let gpa = student.gpa.value();
        let rows = self
            .rows(
                Query::Insert,
                &[
                    &student.name.as_str(),
                    &student.email.as_str(),
                    &student.email.key(),
                    &student.domain.as_str(),
                    &gpa,
                ],
            )
            .await?;
        first_record(&rows)?.ok_or(StorageError::Query(DbError::NoRow))
    }

    #[tracing::instrument(name = "db.get", skip(self))]
    pub async fn get(&self, id: i64) -> Result<Option<StudentRecord>, StorageError> {
        first_record(&self.rows(Query::SelectOne, &[&id]).await?)
    }

    #[tracing::instrument(name = "db.list", skip_all, fields(limit = query.limit))]
    pub async fn list(&self, query: &ListQuery) -> Result<Page, StorageError> {
        let connection = self.acquire().await?;
        let client: &PgClient = &connection;
        let (rows, total) = if list::is_estimated_search(query) {
            list::estimated_search(client, &self.statistics, query).await?
        } else {
            let page = queries::page(query);
            // The page and its count go out at once on the same connection:
            // one round trip (two when an estimate follows a bounded count).
            tokio::try_join!(client.run(&page), list::count(client, query))?
        };
        let records = rows.iter().map(record).collect::<Result<_, _>>()?;
        let (records, has_more) = super::split_page(records, query.limit);
        Ok(Page {
            records,
            total,
            has_more,
        })
    }

    pub async fn explain_list(&self, query: &ListQuery) -> Result<Vec<QueryPlan>, StorageError> {
        let connection = self.acquire().await?;
        let client: &PgClient = &connection;
        let mut statements = Vec::new();
        match query.count {
            CountMode::Exact => {
                statements.extend([queries::page(query), queries::exact_count(query)]);
            }
            // Itself a plan: it reads no row.
            CountMode::Planned => statements.push(queries::page(query)),
            // What `estimated_search` runs first; a page from all the
            // matches follows where that finds too few.
            CountMode::Estimated if list::is_estimated_search(query) => {
                statements.push(list::search_route(client, &self.statistics, query).await?.1);
            }
            // The bounded count, where `count` would run it.
            CountMode::Estimated => {
                statements.push(queries::page(query));
                if list::expects_few(list::estimate(client, query).await?) {
                    statements.push(queries::bounded_count(query));
                }
            }
        }
        let mut plans = Vec::new();
        for statement in statements {
            let params = statement.typed_params();
            let rows = client
                .client
                .query_typed(&format!("explain {}", statement.sql), &params)
                .await?;
            let lines = rows
                .iter()
                .map(|row| row.try_get::<_, String>(0))
                .collect::<Result<Vec<_>, _>>()?;
            plans.push(QueryPlan {
                statement: statement.sql,
                plan: lines.join("\n"),
            });
        }
        Ok(plans)
    }

    #[tracing::instrument(name = "db.update", skip(self, changes))]
    pub async fn update(
        &self,
        id: i64,
        changes: &StudentChanges,
    ) -> Result<Option<StudentRecord>, StorageError> {
        let rows = self
            .rows(
                Query::Update,
                &[
                    &id,
                    &changes.name.as_ref().map(StudentName::as_str),
                    &changes.email.as_ref().map(Email::as_str),
                    &changes.domain.as_ref().map(StudentDomain::as_str),
                    &changes.gpa.map(Gpa::value),
                    &changes.email.as_ref().map(Email::key),
                ],
            )
            .await?;
        first_record(&rows)
    }

    #[tracing::instrument(name = "db.delete", skip(self))]
    pub async fn delete(&self, id: i64) -> Result<bool, StorageError> {
        let connection = self.acquire().await?;
        let statement = connection.statement(Query::Delete).await?;
        Ok(connection.client.execute(&statement, &[&id]).await? > 0)
    }

    pub fn pool_stats(&self) -> PoolStats {
        let occupancy = self.pool.occupancy();
        let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        PoolStats {
            size: to_u32(occupancy.open),
            idle: to_u32(occupancy.idle),
            max: to_u32(self.pool.max_connections()),
        }
    }

    /// Refuses new work; open sessions end once their queries are answered.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
