//! The composition root: the only module that knows every other one. It
//! wires configuration, the credential source, the store, the HTTP router
//! and the server together; binds the listeners, serves until told to stop,
//! and shuts down in order (readiness off and `Connection: close` for
//! SHUTDOWN_DELAY while still serving, then stop accepting, answer the
//! requests already started within SHUTDOWN_TIMEOUT, close the pool, then
//! release the credentials; the last spans are exported while the pool
//! closes, within the same bound).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, DatabaseTarget};
use crate::credentials::CredentialStatus;
use crate::http::error::cause_chain;
use crate::http::{self, AppState, Dependency, FaultSwitch, Health, Metrics, RouterOptions};
use crate::secrets::Credentials;
use crate::server::{self, ConnectionMetrics, Limits, Server, Stage};
use crate::storage::{StorageError, Store};
use crate::telemetry::Tracing;

/// Connections the separate metrics listener holds at most (scrapers and probes).
const METRICS_MAX_CONNECTIONS: usize = 16;

pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    metrics_listener: Option<TcpListener>,
    metrics_addr: Option<SocketAddr>,
    state: AppState,
    credentials: Option<Credentials>,
    config: Config,
    limits: Limits,
    connection_metrics: ConnectionMetrics,
    tracing: Option<Tracing>,
}

impl Application {
    /// Connects the store (migrating SQLite), and binds the listeners.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // First, before anything opens a descriptor: the cap on client
        // connections must leave room under the limit for the rest.
        let open_files = server::raise_open_file_limit();
        let metrics_connections = if config.server.metrics_addr.is_some() {
            METRICS_MAX_CONNECTIONS
        } else {
            0
        };
        let max_connections = server::connection_cap(
            usize::try_from(config.server.http_max_connections).unwrap_or(usize::MAX),
            open_files,
            server::reserved_descriptors(config.pool.max_connections, metrics_connections),
        )
        .context("HTTP_MAX_CONNECTIONS")?;
        let limits = Limits {
            header_timeout: config.server.http_header_timeout,
            idle_timeout: config.server.http_idle_timeout,
            max_connections,
        };
        let OpenStore { store, credentials } = OpenStore::open(&config).await?;
        if store.is_embedded() {
            // The embedded default migrates itself so a first run just works;
            // PostgreSQL is migrated by `student-api migrate` (an init container).
            let applied = store
                .migrate()
                .await
                .context("cannot migrate the SQLite database")?;
            tracing::info!(applied, "sqlite migrations applied");
        }
        let mut metrics = Metrics::new();
        let connection_metrics =
            ConnectionMetrics::register(metrics.registry_mut(), max_connections);
        // `Config` has refused the switch without a separate metrics address.
        let faults = config
            .server
            .fault_injection
            .then(|| FaultSwitch::new(metrics.registry_mut()));
        if faults.is_some() {
            tracing::warn!(
                path = http::FAULT_ADMIN_PATH,
                "fault injection is on: the metrics address serves the drills' admin endpoint"
            );
        }
        let state = AppState {
            store,
            metrics: Arc::new(metrics),
            health: Arc::new(Health::new(
                config.server.readiness_timeout,
                credentials
                    .as_ref()
                    .and_then(Credentials::status)
                    .map(|status| status as Arc<dyn Dependency>),
            )),
            openapi: http::openapi::document()
                .context("cannot render the OpenAPI document")?
                .into(),
            tracer: None,
            faults,
        };
        let (listener, local_addr) = bind(config.server.listen_addr, "LISTEN_ADDR").await?;
        let (metrics_listener, metrics_addr) = match config.server.metrics_addr {
            Some(addr) => {
                let (listener, addr) = bind(addr, "METRICS_ADDR").await?;
                (Some(listener), Some(addr))
            }
            None => (None, None),
        };
        Ok(Self {
            listener,
            local_addr,
            metrics_listener,
            metrics_addr,
            state,
            credentials,
            config,
            limits,
            connection_metrics,
            tracing: None,
        })
    }

    /// Traces requests and their database calls with `tracing`'s tracer,
    /// and exports the last spans at shutdown.
    #[must_use]
    pub fn with_tracing(mut self, tracing: Tracing) -> Self {
        let tracer = tracing.tracer();
        self.state.store = self.state.store.clone().with_tracer(Some(tracer.clone()));
        self.state.tracer = Some(tracer);
        self.tracing = Some(tracing);
        self
    }

    /// The address the API is listening on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The readiness state, shared with the `/ready` handler.
    pub fn health(&self) -> Arc<Health> {
        self.state.health.clone()
    }

    /// The address `/metrics` is served on, when separate.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Serves until `shutdown` completes, then drains and closes.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            local_addr,
            metrics_listener,
            metrics_addr,
            state,
            credentials,
            config,
            limits,
            connection_metrics,
            tracing,
        } = self;
        let options = RouterOptions {
            request_timeout: config.server.request_timeout,
            serve_metrics: metrics_listener.is_none(),
        };
        let (stage_tx, stage_rx) = watch::channel(Stage::Serving);
        let health = state.health.clone();
        let delay = config.server.shutdown_delay;
        tokio::spawn(async move {
            shutdown.await;
            health.begin_shutdown();
            let _ = stage_tx.send(Stage::Draining);
            // Load balancers notice readiness failing (and Kubernetes removes
            // the endpoint) some time after the signal: keep answering what
            // they still send meanwhile, telling clients to reconnect.
            tracing::info!(
                delay = %humantime::format_duration(delay),
                "shutdown requested: readiness is now failing; still serving, with Connection: close, for SHUTDOWN_DELAY"
            );
            tokio::time::sleep(delay).await;
            let _ = stage_tx.send(Stage::Stopping);
        });

        let metrics_server = metrics_listener.zip(metrics_addr).map(|(listener, addr)| {
            tracing::info!(%addr, "serving metrics");
            let limits = Limits {
                max_connections: METRICS_MAX_CONNECTIONS,
                ..limits
            };
            Server::new(
                listener,
                http::metrics_router(state.clone()),
                "metrics",
                limits,
                None,
            )
            .serve(stage_rx.clone())
        });

        tracing::info!(
            addr = %local_addr,
            database = %config.database,
            version = env!("CARGO_PKG_VERSION"),
            max_connections = limits.max_connections,
            "serving the API"
        );
        let api_server = Server::new(
            listener,
            http::router(state.clone(), options),
            "api",
            limits,
            Some(connection_metrics),
        )
        .serve(stage_rx.clone());
        {
            let servers = pin!(async move {
                match metrics_server {
                    Some(metrics_server) => {
                        tokio::join!(api_server, metrics_server);
                    }
                    None => api_server.await,
                }
            });
            // Bound the drain: once accepting stops, the requests already
            // started get SHUTDOWN_TIMEOUT to finish; dropping the servers
            // then closes whatever is left.
            tokio::select! {
                () = servers => {}
                () = async {
                    stopped(stage_rx).await;
                    tokio::time::sleep(config.server.shutdown_timeout).await;
                } => {
                    tracing::warn!(timeout = ?config.server.shutdown_timeout, "in-flight requests did not finish in time; stopping anyway");
                }
            }
        }
        // A connection still being opened to a hung database would hold
        // close() until its connect gives up; do not wait longer than the bound.
        let store = state.store.clone();
        drop(state);
        let limit = config.server.shutdown_timeout;
        tokio::join!(OpenStore { store, credentials }.close(limit), async {
            if let Some(tracing) = tracing {
                tracing.shutdown(limit).await;
            }
        });
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// Resolves once the servers are told to stop accepting.
async fn stopped(mut rx: watch::Receiver<Stage>) {
    let _ = rx.wait_for(|stage| *stage == Stage::Stopping).await;
}

async fn bind(addr: SocketAddr, var: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("{var}: cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// A store and, for PostgreSQL, the source that keeps its credentials fresh.
struct OpenStore {
    store: Store,
    credentials: Option<Credentials>,
}

impl OpenStore {
    async fn open(config: &Config) -> anyhow::Result<Self> {
        let (store, credentials) = match &config.database {
            DatabaseTarget::Postgres(base) => {
                // Before asking any credential source: a root certificate
                // that cannot be read is a setting to fix, not an outage.
                crate::storage::check_postgres_settings(base)
                    .context("DATABASE_URL: its sslrootcert cannot be used")?;
                let login = crate::storage::postgres_login(&config.pool);
                let credentials = Credentials::start(&config.credentials, base.clone(), login)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot get credentials for the database ({})",
                            config.database
                        )
                    })?;
                let store = Store::postgres(credentials.receiver(), &config.pool);
                (Ok(store), Some(credentials))
            }
            DatabaseTarget::Sqlite(options) => {
                (Store::sqlite(options.clone(), &config.pool).await, None)
            }
        };
        let store =
            store.with_context(|| format!("cannot open the database ({})", config.database))?;
        Ok(Self { store, credentials })
    }

    /// Closes the pool, then releases the credentials (a Vault database
    /// user is revoked only once no connection uses it).
    async fn close(self, limit: Duration) {
        if tokio::time::timeout(limit, self.store.close())
            .await
            .is_err()
        {
            tracing::warn!("the database pool did not close in time");
        }
        if let Some(credentials) = self.credentials {
            credentials.stop().await;
        }
    }
}

/// `student-api migrate`: applies pending migrations and reports how many
/// ran, first waiting up to `wait` for the database to accept connections.
pub async fn migrate(config: &Config, wait: Option<Duration>) -> anyhow::Result<usize> {
    let open = OpenStore::open(config).await?;
    if let Some(wait) = wait {
        if let Err(err) = wait_for_database(&open.store, wait).await {
            open.close(config.server.shutdown_timeout).await;
            return Err(anyhow::Error::new(err).context(format!(
                "the database ({}) did not accept connections within {}",
                config.database,
                humantime::format_duration(wait)
            )));
        }
    }
    let result = open.store.migrate().await;
    open.close(config.server.shutdown_timeout).await;
    result.map_err(|err: StorageError| {
        anyhow::Error::new(err).context(format!("cannot migrate {}", config.database))
    })
}

/// Pings until the database answers or `limit` has passed; returns the last error.
async fn wait_for_database(store: &Store, limit: Duration) -> Result<(), StorageError> {
    const PAUSE: Duration = Duration::from_secs(1);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match store.ping().await {
            Ok(()) => return Ok(()),
            Err(err) if tokio::time::Instant::now() + PAUSE >= deadline => return Err(err),
            Err(err) => {
                tracing::info!(error = %cause_chain(&err), "waiting for the database");
                tokio::time::sleep(PAUSE).await;
            }
        }
    }
}

/// Readiness shows the credential source's refresh state.
impl Dependency for CredentialStatus {
    fn check_name(&self) -> String {
        format!("credentials ({})", self.source)
    }

    fn problem(&self) -> Option<String> {
        CredentialStatus::problem(self)
    }
}

/// `student-api healthcheck`: GET `/healthcheck` from the service listening
/// on `listen` (an unspecified address is reached through loopback).
pub async fn healthcheck(listen: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let mut target = listen;
    if target.ip().is_unspecified() {
        target.set_ip(match target {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let url = format!("http://{target}/healthcheck");
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
        .context("cannot build an HTTP client")?;
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("no answer from {url}"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "{url} answered {}",
        response.status()
    );
    Ok(())
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!(signal = "SIGINT", "signal received"),
        () = terminate => tracing::info!(signal = "SIGTERM", "signal received"),
    }
}
