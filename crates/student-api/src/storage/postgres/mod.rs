//! PostgreSQL backend: the production store.
//!
//! Queries go through tokio-postgres on a small set of shared, pipelined
//! connections (`connections`); migrations run through sqlx's migrator on a
//! connection of their own. Rows are decoded here into storage records.

mod connect;
mod connections;
mod queries;

use std::sync::Arc;

use sqlx::Connection as _;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

pub use self::connect::{check_settings, ConnectConfigError};
use self::connections::Connections;
use self::queries::Query;
use super::migrations::APPLIED_SQL;
use super::{DbError, ListQuery, Page, PoolSettings, PoolStats, StorageError, StudentRecord};
use crate::domain::{Email, FieldOfStudy, Gpa, NewStudent, StudentChanges, StudentName};
use crate::secrets::CredentialReceiver;

static MIGRATOR: &sqlx::migrate::Migrator = &super::migrations::POSTGRES;

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
    connections: Arc<Connections>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool_stats())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Sets up the connection set; connections open on first use, with
    /// whatever credentials `credentials` holds at that moment.
    pub fn connect_lazy(credentials: CredentialReceiver, settings: &PoolSettings) -> Self {
        let connections = Arc::new(Connections::new(credentials, settings.clone()));
        tokio::spawn(connections.clone().retire_rotated());
        Self { connections }
    }

    /// Runs `query` with `params` on a shared connection.
    async fn rows(
        &self,
        query: Query,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StorageError> {
        let connection = self.connections.acquire().await?;
        let statement = connection.statement(query).await?;
        Ok(connection.client().query(&statement, params).await?)
    }

    /// Applies the embedded migrations on a connection of their own.
    pub async fn migrate(&self) -> Result<usize, StorageError> {
        let before = self.applied().await?.len();
        let mut conn = self.connections.open_unshared().await?;
        let result = MIGRATOR.run(&mut conn).await.map_err(StorageError::from);
        // The outcome is the migrator's; a failed goodbye changes nothing.
        let _ = conn.close().await;
        result?;
        Ok(self.applied().await?.len().saturating_sub(before))
    }

    pub async fn migrations_current(&self) -> Result<bool, StorageError> {
        Ok(super::migrations::is_current(
            MIGRATOR,
            &self.applied().await?,
        ))
    }

    async fn applied(&self) -> Result<Vec<(i64, Vec<u8>)>, StorageError> {
        let connection = self.connections.acquire().await?;
        match connection.client().query_typed(APPLIED_SQL, &[]).await {
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
        let connection = self.connections.acquire().await?;
        Ok(connection.client().batch_execute("select 1").await?)
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

    #[tracing::instrument(name = "db.list", skip_all, fields(limit = query.limit, offset = query.offset))]
    pub async fn list(&self, query: &ListQuery) -> Result<Page, StorageError> {
        let search = query.search.as_deref();
        // Both go out at once on the same connection: one round trip.
        let connection = self.connections.acquire().await?;
        let count = connection.statement(Query::Count).await?;
        let page = connection.statement(Query::SelectPage).await?;
        let client = connection.client();
        let count_params: [&(dyn ToSql + Sync); 1] = [&search];
        let page_params: [&(dyn ToSql + Sync); 3] = [&search, &query.limit, &query.offset];
        let (total, rows) = tokio::try_join!(
            client.query_one(&count, &count_params),
            client.query(&page, &page_params),
        )?;
        Ok(Page {
            records: rows.iter().map(record).collect::<Result<_, _>>()?,
            total: total.try_get(0)?,
        })
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
                    &changes.domain.as_ref().map(FieldOfStudy::as_str),
                    &changes.gpa.map(Gpa::value),
                    &changes.email.as_ref().map(Email::key),
                ],
            )
            .await?;
        first_record(&rows)
    }

    #[tracing::instrument(name = "db.delete", skip(self))]
    pub async fn delete(&self, id: i64) -> Result<bool, StorageError> {
        let connection = self.connections.acquire().await?;
        let statement = connection.statement(Query::Delete).await?;
        Ok(connection.client().execute(&statement, &[&id]).await? > 0)
    }

    pub fn pool_stats(&self) -> PoolStats {
        self.connections.stats()
    }

    /// Refuses new work; open sessions end once their queries are answered.
    pub fn close(&self) {
        self.connections.close();
    }
}
