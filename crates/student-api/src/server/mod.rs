//! Serving HTTP/1.1 connections on a listener: accepting within a cap,
//! bounding how long a client may hold a connection without using it, and
//! draining without dropping a request at shutdown.
//!
//! Rules:
//! - At most `max_connections` connections are open. At the cap the
//!   connection idle the longest is closed to make room (a keep-alive one,
//!   or a new one that has sent nothing for `FRESH_GRACE`), responses
//!   carry `Connection: close`, and when no connection is idle accepting
//!   pauses: new clients wait in the kernel's backlog, nothing is accepted
//!   only to be dropped.
//! - `accept` errors (out of descriptors) pause accepting with a growing
//!   back-off and close an idle connection; they never spin.
//! - [`Stage::Draining`]: still accepting and serving, every response with
//!   `Connection: close`. [`Stage::Stopping`]: connections the kernel has
//!   already completed are taken in, the listener closes, idle keep-alive
//!   connections close, and every request already started is answered
//!   (with `Connection: close`). The caller bounds how long that may take
//!   and drops [`Server::serve`], which aborts what is left.
//!
//! Imports: hyper, tokio, the router as a tower service, and
//! prometheus-client for its own metrics; nothing from the rest of the crate (it knows nothing of
//! storage or configuration).

mod connection;
mod open_files;

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use connection::{Activity, Ended, Phase};
pub use open_files::{connection_cap, raise_open_file_limit, reserved_descriptors};

/// Largest request head (request line and header fields) hyper reads, and
/// its read buffer. An incomplete head that fills it is answered 431 with
/// an empty body (one read may take in somewhat more, and a head complete
/// by then is parsed). It is well above what the router accepts (see
/// `http::middleware`), so that realistic oversized requests reach the
/// router and get a problem document; it also bounds the memory a client
/// can make the service hold for a request head.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A new connection that has sent nothing is not closed to make room before
/// this age: its request is probably on its way.
const FRESH_GRACE: Duration = Duration::from_secs(1);

/// How often accepting re-checks for an idle connection to close while at the cap.
const RECHECK_AT_CAP: Duration = Duration::from_millis(100);

const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Where the server is in its life; sent by the owner through a watch channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    Serving = 0,
    Draining = 1,
    Stopping = 2,
}

/// Bounds on connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest a new connection may take to send its first request's
    /// headers, and any request its headers from their first byte.
    pub header_timeout: Duration,
    /// Longest a keep-alive connection may wait for its next request, and
    /// a client may leave its response unread.
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Connection metrics of one listener.
#[derive(Clone)]
pub struct ConnectionMetrics {
    open: Gauge,
    closed: Family<ReasonLabels, Counter>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

impl ConnectionMetrics {
    /// Registers the series; `max_connections` is published as a constant gauge.
    pub fn register(registry: &mut Registry, max_connections: usize) -> Self {
        let open = Gauge::default();
        registry.register(
            "http_connections_open",
            "Client connections open",
            open.clone(),
        );
        let max = Gauge::<i64>::default();
        max.set(i64::try_from(max_connections).unwrap_or(i64::MAX));
        registry.register(
            "http_connections_max",
            "Most client connections open at once (HTTP_MAX_CONNECTIONS fitted to the open-file limit)",
            max,
        );
        // Registered without `_total`, which the exposition adds.
        let closed = Family::default();
        registry.register(
            "http_connections_closed",
            "Client connections the service closed, by reason: header_timeout, idle_timeout, \
             evicted (idle, to make room at the cap), shutdown, malformed (a request the HTTP parser rejected)",
            closed.clone(),
        );
        Self { open, closed }
    }
}

/// What the server and its connection tasks share.
struct Shared {
    /// Labels the listener in logs (`api`, `metrics`).
    name: &'static str,
    epoch: Instant,
    limits: Limits,
    stage: AtomicU8,
    open: AtomicUsize,
    next_id: AtomicU64,
    connections: Mutex<HashMap<u64, Arc<Activity>>>,
    metrics: Option<ConnectionMetrics>,
    /// Milliseconds since `epoch` of the last "connection cap reached" warning.
    last_full_warning_ms: AtomicU64,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn instant(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    fn stage(&self) -> Stage {
        match self.stage.load(Ordering::Acquire) {
            0 => Stage::Serving,
            1 => Stage::Draining,
            _ => Stage::Stopping,
        }
    }

    fn is_stopping(&self) -> bool {
        self.stage() == Stage::Stopping
    }

    /// Responses close their connection while draining or at the cap.
    fn wants_connections_back(&self) -> bool {
        self.stage() != Stage::Serving
            || self.open.load(Ordering::Relaxed) >= self.limits.max_connections
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Activity>>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self, activity: Arc<Activity>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.connections().insert(id, activity);
        self.open.fetch_add(1, Ordering::Relaxed);
        if let Some(metrics) = &self.metrics {
            metrics.open.inc();
        }
        id
    }

    fn unregister(&self, id: u64) {
        self.connections().remove(&id);
        self.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(metrics) = &self.metrics {
            metrics.open.dec();
        }
    }

    /// Asks the connection idle the longest to close; false when none may be.
    fn evict_longest_idle(&self) -> bool {
        let now = self.now_ms();
        let grace = u64::try_from(FRESH_GRACE.as_millis()).unwrap_or(u64::MAX);
        let connections = self.connections();
        let victim = connections
            .values()
            .filter(|a| a.phase() == Phase::Idle && !a.is_close_requested())
            .filter(|a| a.has_served() || now.saturating_sub(a.since_ms()) >= grace)
            .min_by_key(|a| a.since_ms());
        match victim {
            Some(activity) => {
                activity.request_close();
                true
            }
            None => false,
        }
    }

    fn enter(&self, stage: Stage) {
        let previous = self.stage.swap(stage as u8, Ordering::AcqRel);
        if stage == Stage::Stopping && previous != stage as u8 {
            // Idle keep-alive connections close now; the others look again.
            for activity in self.connections().values() {
                activity.nudge();
            }
        }
    }

    fn warn_full(&self) {
        const EVERY_MS: u64 = 10_000;
        let name = self.name;
        let now = self.now_ms();
        let last = self.last_full_warning_ms.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= EVERY_MS)
            && self
                .last_full_warning_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                listener = name,
                max_connections = self.limits.max_connections,
                "connection limit reached: closing idle connections to make room; \
                 new connections wait in the backlog until one closes"
            );
        }
    }

    fn record(&self, ended: &Ended) {
        let name = self.name;
        let reason = match ended {
            Ended::Closed => return,
            Ended::Failed(err) if err.is_parse() || err.is_parse_too_large() => {
                // hyper has answered with a bodiless 400, 414 or 431.
                tracing::info!(listener = name, error = %err, "request rejected by the HTTP parser");
                "malformed"
            }
            Ended::Failed(err) => {
                tracing::debug!(listener = name, error = %err, "connection failed");
                return;
            }
            Ended::HeaderTimeout => "header_timeout",
            Ended::IdleTimeout => "idle_timeout",
            Ended::Evicted => "evicted",
            Ended::Stopped => "shutdown",
        };
        tracing::debug!(listener = name, reason, "connection closed by the service");
        if let Some(metrics) = &self.metrics {
            metrics.closed.get_or_create(&ReasonLabels { reason }).inc();
        }
    }
}

/// One listener and the router it serves.
pub struct Server {
    listener: TcpListener,
    router: Router,
    shared: Arc<Shared>,
}

impl Server {
    /// `name` labels the listener in logs (`api`, `metrics`).
    pub fn new(
        listener: TcpListener,
        router: Router,
        name: &'static str,
        limits: Limits,
        metrics: Option<ConnectionMetrics>,
    ) -> Self {
        Self {
            listener,
            router,
            shared: Arc::new(Shared {
                name,
                epoch: Instant::now(),
                limits,
                stage: AtomicU8::new(Stage::Serving as u8),
                open: AtomicUsize::new(0),
                next_id: AtomicU64::new(0),
                connections: Mutex::new(HashMap::new()),
                metrics,
                last_full_warning_ms: AtomicU64::new(0),
            }),
        }
    }

    /// Serves until `stage` says [`Stage::Stopping`] (or its sender is
    /// gone), then finishes the requests in progress and returns once every
    /// connection is closed. Dropping the future aborts the connections.
    pub async fn serve(self, mut stage: watch::Receiver<Stage>) {
        let mut http = http1::Builder::new();
        // No hyper timer: the timeouts are kept per connection (see `connection`).
        http.keep_alive(true)
            .max_buf_size(MAX_HEAD_BYTES)
            .max_header_size(MAX_HEAD_BYTES);
        let mut acceptor = Acceptor {
            listener: self.listener,
            connections: Connections {
                slots: Arc::new(Semaphore::new(self.shared.limits.max_connections)),
                router: self.router,
                shared: self.shared,
                http,
                tasks: JoinSet::new(),
            },
            failures: 0,
        };
        loop {
            let current = *stage.borrow_and_update();
            acceptor.connections.shared.enter(current);
            if current == Stage::Stopping {
                break;
            }
            tokio::select! {
                biased;
                changed = stage.changed() => {
                    if changed.is_err() {
                        acceptor.connections.shared.enter(Stage::Stopping);
                        break;
                    }
                }
                () = acceptor.accept_one() => {}
            }
        }
        let mut tasks = acceptor.close_listener();
        while tasks.join_next().await.is_some() {}
    }
}

/// A connection in the registry, for as long as its task lives.
struct Registered {
    shared: Arc<Shared>,
    id: u64,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared.unregister(self.id);
    }
}

/// The accepting half of [`Server::serve`].
struct Acceptor {
    listener: TcpListener,
    connections: Connections,
    /// Consecutive `accept` failures.
    failures: u32,
}

impl Acceptor {
    /// Waits for a free slot, accepts one connection and spawns its task.
    /// Cancel-safe: dropped while waiting, nothing is lost.
    async fn accept_one(&mut self) {
        let permit = self.connections.room().await;
        match self.listener.accept().await {
            Ok((stream, _peer)) => {
                if self.failures > 0 {
                    tracing::info!(
                        listener = self.connections.shared.name,
                        failures = self.failures,
                        "accepting connections again"
                    );
                    self.failures = 0;
                }
                self.connections.spawn(stream, permit);
            }
            Err(err) if is_per_connection(&err) => {}
            Err(err) => {
                drop(permit);
                self.back_off(&err).await;
            }
        }
        while self.connections.tasks.try_join_next().is_some() {}
    }

    /// Out of descriptors (or memory): free one if a connection is idle,
    /// and wait before trying again, longer each time.
    async fn back_off(&mut self, err: &io::Error) {
        self.failures = self.failures.saturating_add(1);
        let pause = ACCEPT_BACKOFF_MIN
            .saturating_mul(1 << self.failures.min(8))
            .min(ACCEPT_BACKOFF_MAX);
        let shared = &self.connections.shared;
        if self.failures == 1 {
            tracing::error!(
                listener = self.connections.shared.name,
                error = %err,
                open = shared.open.load(Ordering::Relaxed),
                "cannot accept connections; closing an idle one and pausing accepts"
            );
        }
        shared.evict_longest_idle();
        tokio::time::sleep(pause).await;
    }

    /// Takes in the connections the kernel has completed (their clients may
    /// have written requests already), within the cap, then closes the
    /// listener so new ones are refused. Returns the connection tasks.
    fn close_listener(self) -> JoinSet<()> {
        let Self {
            listener,
            mut connections,
            ..
        } = self;
        match listener.into_std() {
            Ok(listener) => {
                while let Ok(permit) = connections.slots.clone().try_acquire_owned() {
                    // A real accept(2), not tokio's cached readiness:
                    // connections that completed a moment ago count too.
                    let stream = listener
                        .accept()
                        .and_then(|(stream, _)| stream.set_nonblocking(true).map(|()| stream))
                        .and_then(TcpStream::from_std);
                    match stream {
                        Ok(stream) => connections.spawn(stream, permit),
                        Err(_) => break,
                    }
                }
            }
            Err(err) => {
                tracing::warn!(listener = connections.shared.name, error = %err, "cannot take in pending connections");
            }
        }
        tracing::info!(
            listener = connections.shared.name,
            open = connections.shared.open.load(Ordering::Relaxed),
            "stopped accepting connections; finishing the requests in progress"
        );
        connections.tasks
    }
}

/// The open connections of a listener and what starting one needs.
struct Connections {
    slots: Arc<Semaphore>,
    router: Router,
    shared: Arc<Shared>,
    http: http1::Builder,
    tasks: JoinSet<()>,
}

impl Connections {
    /// A free connection slot; at the cap, makes room by closing idle
    /// connections and otherwise waits for one to close.
    async fn room(&self) -> OwnedSemaphorePermit {
        loop {
            if let Ok(permit) = self.slots.clone().try_acquire_owned() {
                return permit;
            }
            self.shared.warn_full();
            self.shared.evict_longest_idle();
            if let Ok(Ok(permit)) =
                tokio::time::timeout(RECHECK_AT_CAP, self.slots.clone().acquire_owned()).await
            {
                return permit;
            }
        }
    }

    fn spawn(&mut self, stream: TcpStream, permit: OwnedSemaphorePermit) {
        let shared = self.shared.clone();
        let router = self.router.clone();
        let http = self.http.clone();
        let activity = Arc::new(Activity::new(shared.now_ms()));
        let id = shared.register(activity.clone());
        self.tasks.spawn(async move {
            // Unregisters and frees the slot even when the task is aborted.
            let registered = Registered {
                shared,
                id,
                _permit: permit,
            };
            connection::drive(stream, router, &http, &registered.shared, &activity).await;
        });
    }
}

/// Errors about one connection that went away while queued: accept the next.
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}
