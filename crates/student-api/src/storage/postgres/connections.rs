//! A few PostgreSQL connections that every request shares, with queries
//! pipelined on each.
//!
//! Why not one connection per query: on a small machine the server process
//! that sleeps between the queries of its own client costs more to wake than
//! the query costs to run. tokio-postgres sends the queries that tasks issue
//! on one connection at the same time back to back, so the server reads them
//! in one go and answers without sleeping in between (`bench/README.md` has
//! the figures).
//!
//! Rules:
//! - a request uses the first open connection with fewer than
//!   [`PIPELINE_DEPTH`] queries in flight; a new connection opens (one at a
//!   time) only when every open one has that many, up to `max_connections`,
//!   and then the least busy one takes the query;
//! - a connection that closed, that logged in with credentials since
//!   rotated, or that reached [`MAX_LIFETIME`] leaves the set at once; the
//!   queries it carries finish, then it ends, and only then is its
//!   credential generation released (so a retired Vault lease is revoked
//!   after its last session ended);
//! - waiting for a connection to open is bounded by `acquire_timeout`.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnection;
use sqlx::Connection as _;
use tokio::sync::OnceCell;
use tokio_postgres::{Client, Statement};

use super::connect;
use super::queries::Query;
use crate::secrets::CredentialReceiver;
use crate::storage::{DbError, PoolSettings, PoolStats, StorageError};

/// Queries in flight on every open connection before another one opens.
/// Deeper pipelines batch better; shallower ones let a slow query hold up
/// fewer of the queries queued behind it.
pub(super) const PIPELINE_DEPTH: usize = 8;

/// Connections are replaced after this long, so that server-side memory is
/// returned and changes such as a failover reach every connection.
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// One open session and what the set needs to know about it.
pub(super) struct Connection {
    client: Client,
    generation: u64,
    opened_at: Instant,
    in_flight: AtomicUsize,
    statements: [OnceCell<Statement>; Query::ALL.len()],
}

impl Connection {
    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    /// `query` prepared on this connection, on first use.
    pub(super) async fn statement(&self, query: Query) -> Result<Statement, tokio_postgres::Error> {
        self.statements[query as usize]
            .get_or_try_init(|| self.client.prepare(query.sql()))
            .await
            .cloned()
    }
}

/// A connection in use by one request; counts as in flight until dropped.
pub(super) struct Lease(Arc<Connection>);

impl Lease {
    fn new(connection: &Arc<Connection>) -> Self {
        connection.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(connection.clone())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Deref for Lease {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.0
    }
}

pub(super) struct Connections {
    credentials: CredentialReceiver,
    settings: PoolSettings,
    open: Mutex<Vec<Arc<Connection>>>,
    /// Held while a connection opens, so a burst opens one, not one each.
    opening: tokio::sync::Mutex<()>,
    closed: AtomicBool,
}

impl Connections {
    pub(super) fn new(credentials: CredentialReceiver, settings: PoolSettings) -> Self {
        Self {
            credentials,
            settings,
            open: Mutex::default(),
            opening: tokio::sync::Mutex::default(),
            closed: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Connection>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection for one request, opening one when the set needs it.
    pub(super) async fn acquire(&self) -> Result<Lease, StorageError> {
        if let Some(lease) = self.pick(false)? {
            return Ok(lease);
        }
        let limit = self.settings.acquire_timeout;
        tokio::time::timeout(limit, self.open_or_share())
            .await
            .unwrap_or(Err(StorageError::Unavailable(DbError::TimedOut)))
    }

    async fn open_or_share(&self) -> Result<Lease, StorageError> {
        let _opening = self.opening.lock().await;
        // Another request may have opened one while this one waited.
        if let Some(lease) = self.pick(false)? {
            return Ok(lease);
        }
        match self.open().await {
            Ok(connection) => {
                let connection = Arc::new(connection);
                let lease = Lease::new(&connection);
                self.lock().push(connection);
                Ok(lease)
            }
            // Busy connections still serve while a new one cannot open.
            Err(err) => self.pick(true)?.ok_or(err),
        }
    }

    /// The first usable connection with fewer than [`PIPELINE_DEPTH`]
    /// queries in flight, so queries gather on as few connections as the
    /// load needs. `None` when a new one should open (every open one is at
    /// the depth and the set may grow); when it may not grow, or `any` asks
    /// for a busy one rather than none, the least busy one.
    fn pick(&self, any: bool) -> Result<Option<Lease>, StorageError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(StorageError::Unavailable(DbError::Closed));
        }
        let current = self.credentials.borrow().generation;
        let mut open = self.lock();
        open.retain(|c| {
            !c.client.is_closed() && c.generation == current && c.opened_at.elapsed() < MAX_LIFETIME
        });
        let in_flight = |c: &&Arc<Connection>| c.in_flight.load(Ordering::Relaxed);
        if let Some(free) = open.iter().find(|c| in_flight(c) < PIPELINE_DEPTH) {
            return Ok(Some(Lease::new(free)));
        }
        let full = open.len() >= self.settings.max_connections as usize;
        Ok(open
            .iter()
            .filter(|_| any || full)
            .min_by_key(in_flight)
            .map(Lease::new))
    }

    async fn open(&self) -> Result<Connection, StorageError> {
        let credential = self.credentials.borrow().clone();
        let plan = connect::plan(
            &credential.options,
            self.settings.statement_timeout,
            self.settings.acquire_timeout,
        )
        .map_err(|e| StorageError::Query(DbError::Config(e)))?;
        let (client, session) = plan.config.connect(plan.tls).await?;
        let generation = credential.generation;
        tokio::spawn(async move {
            if let Err(err) = session.await {
                tracing::warn!(error = %err, "a PostgreSQL connection ended with an error");
            }
            // The generation stays in use until the session has ended.
            drop(credential);
        });
        Ok(Connection {
            client,
            generation,
            opened_at: Instant::now(),
            in_flight: AtomicUsize::new(0),
            statements: Default::default(),
        })
    }

    /// A sqlx connection outside the set, with the current credentials and
    /// the same session settings, for work a shared connection cannot carry:
    /// sqlx's migrator takes an advisory lock and runs each file in a
    /// transaction.
    pub(super) async fn open_unshared(&self) -> Result<PgConnection, StorageError> {
        let credential = self.credentials.borrow().clone();
        let options = credential
            .options
            .clone()
            .application_name("student-api")
            .options([(
                "statement_timeout",
                self.settings.statement_timeout.as_millis(),
            )]);
        tokio::time::timeout(
            self.settings.acquire_timeout,
            PgConnection::connect_with(&options),
        )
        .await
        .map_err(|_| StorageError::Unavailable(DbError::TimedOut))?
        .map_err(StorageError::from)
    }

    /// Drops the connections of older credentials at once; their sessions
    /// end as soon as their queries are answered. Ends when the source stops.
    pub(super) async fn retire_rotated(self: Arc<Self>) {
        let mut credentials = self.credentials.clone();
        while credentials.changed().await.is_ok() {
            let current = credentials.borrow_and_update().generation;
            self.lock().retain(|c| c.generation == current);
        }
    }

    pub(super) fn stats(&self) -> PoolStats {
        let open = self.lock();
        let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        PoolStats {
            size: to_u32(open.len()),
            idle: to_u32(
                open.iter()
                    .filter(|c| c.in_flight.load(Ordering::Relaxed) == 0)
                    .count(),
            ),
            max: self.settings.max_connections,
        }
    }

    /// No new work: later requests get 503; sessions end as their queries do.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.lock().clear();
    }
}
