//! A few database connections that every request shares, with queries
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
//! - nothing opens before the first query;
//! - a request uses the least busy open connection while it has fewer than
//!   `depth` queries in flight; a new connection opens (one at a time) only
//!   when every open one has that many, up to `max_connections`, and then
//!   the least busy one takes the query all the same;
//! - a slow statement therefore holds up at most `depth - 1` queries queued
//!   behind it on its connection: the next ones go to another connection
//!   (the server's `statement_timeout` bounds how long they wait);
//! - a connection that closed, that logged in with credentials since
//!   rotated, or that reached `max_lifetime` leaves the set at once; the
//!   queries it carries finish, then its session ends, and only then is its
//!   credential generation released (so a retired Vault lease is revoked
//!   after its last session ended);
//! - waiting for a connection to open is bounded by `acquire_timeout`; when
//!   one cannot open, the busy ones still take queries;
//! - once closed, the pool refuses work, and [`Pool::close`] returns when
//!   every session has ended.
//!
//! The pool knows nothing of PostgreSQL: a [`Connector`] opens sessions, so
//! the rules above are tested here without a database. May import
//! `credentials` only.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::credentials::{Credential, CredentialReceiver};

/// The task that carries one connection's traffic; it ends once its client
/// is dropped and the queries it sent are answered, or when the connection fails.
pub type Session = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Opens connections for a [`Pool`].
pub trait Connector: Send + Sync + 'static {
    /// What queries are sent through, shared by the requests of a connection.
    type Client: Send + Sync + 'static;
    type Error: Send + 'static;

    /// Opens a connection that logs in with `credential`.
    fn connect(
        &self,
        credential: &Credential,
    ) -> impl Future<Output = Result<(Self::Client, Session), Self::Error>> + Send;

    /// True once the connection behind `client` has ended.
    fn is_closed(client: &Self::Client) -> bool;
}

/// The pool's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    /// Queries in flight on every open connection before another one opens.
    pub depth: usize,
    pub acquire_timeout: Duration,
    pub max_lifetime: Duration,
}

/// Why no connection could be had.
#[derive(Debug)]
pub enum PoolError<E> {
    Closed,
    TimedOut,
    Open(E),
}

/// One open connection and what the pool needs to know about it.
pub struct Slot<T> {
    client: T,
    generation: u64,
    opened_at: Instant,
    in_flight: AtomicUsize,
}

/// A connection in use by one request; counts as in flight until dropped.
pub struct Lease<T>(Arc<Slot<T>>);

impl<T> Lease<T> {
    fn new(slot: &Arc<Slot<T>>) -> Self {
        slot.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(slot.clone())
    }
}

impl<T> Drop for Lease<T> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<T> Deref for Lease<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0.client
    }
}

/// Occupancy, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occupancy {
    pub open: usize,
    pub idle: usize,
}

pub struct Pool<C: Connector> {
    connector: C,
    credentials: CredentialReceiver,
    limits: Limits,
    open: Mutex<Vec<Arc<Slot<C::Client>>>>,
    /// Held while a connection opens, so a burst opens one, not one each.
    opening: tokio::sync::Mutex<()>,
    closed: AtomicBool,
    /// Each session task holds a clone; `close` waits until none is left.
    sessions: Mutex<Option<mpsc::Sender<()>>>,
    sessions_ended: tokio::sync::Mutex<mpsc::Receiver<()>>,
}

impl<C: Connector> fmt::Debug for Pool<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("limits", &self.limits)
            .field("occupancy", &self.occupancy())
            .finish_non_exhaustive()
    }
}

impl<C: Connector> Pool<C> {
    /// A pool that opens its first connection on first use, with whatever
    /// credentials `credentials` holds at that moment.
    pub fn new(connector: C, credentials: CredentialReceiver, limits: Limits) -> Self {
        let (sessions, sessions_ended) = mpsc::channel(1);
        Self {
            connector,
            credentials,
            limits,
            open: Mutex::default(),
            opening: tokio::sync::Mutex::default(),
            closed: AtomicBool::new(false),
            sessions: Mutex::new(Some(sessions)),
            sessions_ended: tokio::sync::Mutex::new(sessions_ended),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Slot<C::Client>>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection for one request, opening one when the set needs it.
    pub async fn acquire(&self) -> Result<Lease<C::Client>, PoolError<C::Error>> {
        if let Some(lease) = self.pick(false)? {
            return Ok(lease);
        }
        tokio::time::timeout(self.limits.acquire_timeout, self.open_or_share())
            .await
            .unwrap_or(Err(PoolError::TimedOut))
    }

    async fn open_or_share(&self) -> Result<Lease<C::Client>, PoolError<C::Error>> {
        let _opening = self.opening.lock().await;
        // Another request may have opened one while this one waited.
        if let Some(lease) = self.pick(false)? {
            return Ok(lease);
        }
        match self.open_one().await {
            Ok(slot) => {
                let slot = Arc::new(slot);
                let lease = Lease::new(&slot);
                self.lock().push(slot);
                Ok(lease)
            }
            // Busy connections still serve while a new one cannot open.
            Err(err) => self.pick(true)?.ok_or(err),
        }
    }

    /// The least busy usable connection, if it has fewer than `depth`
    /// queries in flight: connections open only as the load needs them, and
    /// those open share it, so that each server process works beside the
    /// others rather than the first one queueing what the others could run.
    /// `None` when a new one should open (every open one is at the depth and
    /// the set may grow); when it may not grow, or `any` asks for a busy one
    /// rather than none, the least busy one all the same.
    fn pick(&self, any: bool) -> Result<Option<Lease<C::Client>>, PoolError<C::Error>> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(PoolError::Closed);
        }
        let current = self.credentials.borrow().generation;
        let max_lifetime = self.limits.max_lifetime;
        let mut open = self.lock();
        open.retain(|slot| {
            !C::is_closed(&slot.client)
                && slot.generation == current
                && slot.opened_at.elapsed() < max_lifetime
        });
        let in_flight = |slot: &&Arc<Slot<C::Client>>| slot.in_flight.load(Ordering::Relaxed);
        let least_busy = open.iter().min_by_key(in_flight);
        let full = open.len() >= self.limits.max_connections;
        Ok(least_busy
            .filter(|slot| any || full || in_flight(slot) < self.limits.depth)
            .map(Lease::new))
    }

    async fn open_one(&self) -> Result<Slot<C::Client>, PoolError<C::Error>> {
        let credential = self.credentials.borrow().clone();
        let Some(ended) = self
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return Err(PoolError::Closed);
        };
        let (client, session) = self
            .connector
            .connect(&credential)
            .await
            .map_err(PoolError::Open)?;
        let generation = credential.generation;
        tokio::spawn(async move {
            session.await;
            // The generation stays in use until the session has ended.
            drop(credential);
            drop(ended);
        });
        Ok(Slot {
            client,
            generation,
            opened_at: Instant::now(),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// Drops the connections of older credentials at once; their sessions
    /// end as soon as their queries are answered. Ends when the source stops.
    pub async fn retire_rotated(self: Arc<Self>) {
        let mut credentials = self.credentials.clone();
        while credentials.changed().await.is_ok() {
            let current = credentials.borrow_and_update().generation;
            self.lock().retain(|slot| slot.generation == current);
        }
    }

    pub fn occupancy(&self) -> Occupancy {
        let open = self.lock();
        Occupancy {
            open: open.len(),
            idle: open
                .iter()
                .filter(|slot| slot.in_flight.load(Ordering::Relaxed) == 0)
                .count(),
        }
    }

    pub fn max_connections(&self) -> usize {
        self.limits.max_connections
    }

    /// No new work: later requests are refused. Returns once every session
    /// has ended, which the requests still holding a connection decide.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.lock().clear();
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut ended = self.sessions_ended.lock().await;
        while ended.recv().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;
    use crate::credentials::testing::target;
    use crate::credentials::{Publisher, StubLogin};

    const DEPTH: usize = 4;

    /// A connection that lives until its client is dropped or `closed` is set.
    struct FakeClient {
        id: usize,
        closed: Arc<AtomicBool>,
        _alive: oneshot::Sender<()>,
    }

    #[derive(Default)]
    struct FakeConnector {
        opened: AtomicUsize,
        /// Opening fails while set.
        failing: AtomicBool,
        /// Opening never finishes while set.
        hanging: AtomicBool,
        generations: Mutex<Vec<u64>>,
    }

    impl Connector for Arc<FakeConnector> {
        type Client = FakeClient;
        type Error = &'static str;

        async fn connect(
            &self,
            credential: &Credential,
        ) -> Result<(FakeClient, Session), Self::Error> {
            if self.hanging.load(Ordering::Relaxed) {
                std::future::pending::<()>().await;
            }
            if self.failing.load(Ordering::Relaxed) {
                return Err("connection refused");
            }
            self.generations.lock().unwrap().push(credential.generation);
            let id = self.opened.fetch_add(1, Ordering::Relaxed) + 1;
            let (alive, dropped) = oneshot::channel();
            let session: Session = Box::pin(async move {
                let _ = dropped.await;
            });
            let client = FakeClient {
                id,
                closed: Arc::default(),
                _alive: alive,
            };
            Ok((client, session))
        }

        fn is_closed(client: &FakeClient) -> bool {
            client.closed.load(Ordering::Relaxed)
        }
    }

    struct Fixture {
        pool: Arc<Pool<Arc<FakeConnector>>>,
        connector: Arc<FakeConnector>,
        publisher: Publisher,
    }

    fn fixture(max_connections: usize) -> Fixture {
        let connector = Arc::new(FakeConnector::default());
        let publisher = Publisher::new(
            target("first"),
            None,
            "test",
            Arc::new(StubLogin::default()),
        );
        let pool = Arc::new(Pool::new(
            connector.clone(),
            publisher.subscribe(),
            Limits {
                max_connections,
                depth: DEPTH,
                acquire_timeout: Duration::from_secs(3),
                max_lifetime: Duration::from_mins(30),
            },
        ));
        tokio::spawn(pool.clone().retire_rotated());
        Fixture {
            pool,
            connector,
            publisher,
        }
    }

    async fn hold(pool: &Pool<Arc<FakeConnector>>, n: usize) -> Vec<Lease<FakeClient>> {
        let mut leases = Vec::new();
        for _ in 0..n {
            leases.push(pool.acquire().await.unwrap());
        }
        leases
    }

    #[tokio::test]
    async fn nothing_opens_before_the_first_query() {
        let f = fixture(10);
        assert_eq!(f.pool.occupancy(), Occupancy { open: 0, idle: 0 });
        assert_eq!(f.connector.opened.load(Ordering::Relaxed), 0);
        let lease = f.pool.acquire().await.unwrap();
        assert_eq!(lease.id, 1);
        drop(lease);
        assert_eq!(f.pool.occupancy(), Occupancy { open: 1, idle: 1 });
    }

    #[tokio::test]
    async fn a_connection_carries_depth_queries_before_another_opens() {
        let f = fixture(10);
        let leases = hold(&f.pool, DEPTH).await;
        assert!(
            leases.iter().all(|l| l.id == 1),
            "all on the first connection"
        );
        assert_eq!(f.connector.opened.load(Ordering::Relaxed), 1);
        let next = f.pool.acquire().await.unwrap();
        assert_eq!(next.id, 2);
        // Once the first has room again, queries go back to it.
        drop(leases);
        assert_eq!(f.pool.acquire().await.unwrap().id, 1);
    }

    #[tokio::test]
    async fn open_connections_share_the_load() {
        let f = fixture(10);
        // A burst opened a second connection; later queries use both, so
        // that neither server process queues what the other could run.
        drop(hold(&f.pool, DEPTH + 1).await);
        let leases = hold(&f.pool, 4).await;
        let ids: Vec<_> = leases.iter().map(|l| l.id).collect();
        assert_eq!(ids, [1, 2, 1, 2]);
        assert_eq!(f.connector.opened.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_slow_statement_holds_up_at_most_depth_minus_one_queries_behind_it() {
        let f = fixture(10);
        // The slow statement keeps its connection busy.
        let slow = f.pool.acquire().await.unwrap();
        let queued = hold(&f.pool, DEPTH - 1).await;
        assert!(queued.iter().all(|l| l.id == slow.id), "queued behind it");
        // Everything after that goes to a connection of its own.
        let later = hold(&f.pool, DEPTH).await;
        assert!(later.iter().all(|l| l.id != slow.id));
        assert_eq!(f.connector.opened.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn the_set_never_grows_past_its_maximum_and_shares_the_least_busy() {
        let f = fixture(2);
        let _full = hold(&f.pool, 2 * DEPTH).await;
        // Both at the depth and no room for a third: the least busy takes it.
        let first = f.pool.acquire().await.unwrap();
        let second = f.pool.acquire().await.unwrap();
        assert_eq!((first.id, second.id), (1, 2));
        assert_eq!(f.connector.opened.load(Ordering::Relaxed), 2);
        assert_eq!(f.pool.occupancy().open, 2);
    }

    #[tokio::test]
    async fn a_rotation_retires_connections_at_once_and_the_generation_after_their_queries() {
        let f = fixture(10);
        let old = f.pool.acquire().await.unwrap();
        let retired = f.publisher.switch(target("second"), None).await.unwrap();
        tokio::task::yield_now().await;
        let new = f.pool.acquire().await.unwrap();
        assert_ne!(new.id, old.id, "no new work for the old connection");
        assert_eq!(*f.connector.generations.lock().unwrap(), [0, 1]);
        assert_eq!(f.pool.occupancy().open, 1);
        let drain = tokio::spawn(retired.drained(Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!drain.is_finished(), "its query is still running");
        drop(old);
        assert!(drain.await.unwrap(), "released once its session ended");
    }

    #[tokio::test]
    async fn closed_connections_and_old_ones_are_replaced() {
        let f = fixture(10);
        let lease = f.pool.acquire().await.unwrap();
        lease.closed.store(true, Ordering::Relaxed);
        drop(lease);
        assert_eq!(f.pool.acquire().await.unwrap().id, 2);

        tokio::time::pause();
        tokio::time::advance(Duration::from_mins(30)).await;
        assert_eq!(f.pool.acquire().await.unwrap().id, 3, "past its lifetime");
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_a_connection_to_open_is_bounded() {
        let f = fixture(10);
        f.connector.hanging.store(true, Ordering::Relaxed);
        let started = Instant::now();
        assert!(matches!(f.pool.acquire().await, Err(PoolError::TimedOut)));
        assert!(started.elapsed() >= Duration::from_secs(3));
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[tokio::test]
    async fn busy_connections_still_serve_while_a_new_one_cannot_open() {
        let f = fixture(10);
        let busy = hold(&f.pool, DEPTH).await;
        f.connector.failing.store(true, Ordering::Relaxed);
        assert_eq!(f.pool.acquire().await.unwrap().id, 1);
        drop(busy);
        let f = fixture(10);
        f.connector.failing.store(true, Ordering::Relaxed);
        assert!(matches!(
            f.pool.acquire().await,
            Err(PoolError::Open("connection refused"))
        ));
    }

    #[tokio::test]
    async fn close_refuses_new_work_and_waits_for_the_sessions_to_end() {
        let f = fixture(10);
        let busy = f.pool.acquire().await.unwrap();
        let pool = f.pool.clone();
        let closing = tokio::spawn(async move { pool.close().await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(matches!(f.pool.acquire().await, Err(PoolError::Closed)));
        assert!(!closing.is_finished(), "a query is still running");
        drop(busy);
        tokio::time::timeout(Duration::from_secs(5), closing)
            .await
            .expect("closed once the last session ended")
            .unwrap();
    }
}
