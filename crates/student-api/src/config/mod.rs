//! Configuration: what the service runs with, resolved once at start into
//! plain data (the command line, `cli`, fills it in).
//!
//! Rules: every failure names the variable and the reason and is fatal at
//! start-up; secret values live in [`SecretString`](secrecy::SecretString)
//! and are never printed, not in errors, not in `Debug`. This module imports
//! nothing from the rest of the crate: everything else reads it.

mod postgres;
mod secret_file;
mod vault;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;

pub use postgres::{
    parse_postgres_port, PostgresHost, PostgresTarget, SslMode, TargetSource, Value,
};
pub use secret_file::read_secret_file;
pub use vault::{
    kv_v2_path, vault_path, VaultAuth, VaultConfig, VaultSecret, DEFAULT_K8S_TOKEN_FILE,
};

/// The embedded default, relative to the working directory.
pub const DEFAULT_SQLITE_PATH: &str = "./data/students.db";

/// A configuration problem, always naming the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("{var} is required {when}")]
    Missing {
        var: &'static str,
        when: &'static str,
    },
    #[error("{0} and {1} are both set; set only one of them")]
    Conflict(&'static str, &'static str),
}

/// Everything `serve` and `migrate` need, resolved and validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseTarget,
    pub credentials: CredentialSource,
    pub pool: PoolSettings,
    pub server: ServerSettings,
}

/// A resolved database.
#[derive(Clone)]
pub enum DatabaseTarget {
    Postgres(PostgresTarget),
    /// SQLite's own URL options (mode, cache, …) are sqlx's, the one SQLite driver.
    Sqlite(SqliteConnectOptions),
}

impl fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres(target) => target.fmt(f),
            Self::Sqlite(o) => f
                .debug_struct("Sqlite")
                .field("path", &o.get_filename())
                .finish(),
        }
    }
}

impl fmt::Display for DatabaseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres(target) => target.fmt(f),
            Self::Sqlite(o) => write!(f, "sqlite at {}", o.get_filename().display()),
        }
    }
}

/// Where PostgreSQL credentials come from while the service runs.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// Set once at start (environment or URL).
    Fixed,
    /// `*_FILE` secrets, re-read every `poll`; `source` says which variables
    /// are files and how the target is built from them.
    Files {
        source: TargetSource,
        poll: Duration,
    },
    /// Vault: a dynamic database user or a KV secret; `base` is where the
    /// database is, without user and password.
    Vault(VaultConfig),
}

/// Connection pool settings shared by both backends.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// Longest a request waits for a connection before it gets a 503.
    pub acquire_timeout: Duration,
    /// Server-side limit on one statement (PostgreSQL only).
    pub statement_timeout: Duration,
}

/// The HTTP side: listeners, timeouts, the shutdown sequence.
#[derive(Debug, Clone, Copy)]
pub struct ServerSettings {
    pub listen_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub request_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub readiness_timeout: Duration,
    pub shutdown_delay: Duration,
    pub http_header_timeout: Duration,
    pub http_idle_timeout: Duration,
    pub http_max_connections: u32,
    /// Drills: `/admin/fault` on the metrics address makes API requests
    /// fail or wait on purpose (`FAULT_INJECTION=on`).
    pub fault_injection: bool,
}

impl ServerSettings {
    /// Checks the combinations of settings that no single value can break.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let listen = self.listen_addr;
        if listen.port() != 0 && self.metrics_addr == Some(listen) {
            return Err(ConfigError::Invalid {
                var: "METRICS_ADDR",
                reason: "must differ from LISTEN_ADDR".to_owned(),
            });
        }
        // The switch is an operator's tool: it must never be reachable
        // where the API's users are.
        if self.fault_injection && self.metrics_addr.is_none() {
            return Err(ConfigError::Invalid {
                var: "FAULT_INJECTION",
                reason: "on needs METRICS_ADDR: its endpoint is served only on the separate metrics address, never on the API's"
                    .to_owned(),
            });
        }
        Ok(())
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `json` when standard output is not a terminal, `pretty` when it is.
    Auto,
    Json,
    Pretty,
}

/// What the log subscriber is set up with (before anything else is read).
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    /// `RUST_LOG` directives.
    pub filter: String,
}

/// Traces over OTLP, from the OpenTelemetry SDK's own environment
/// variables; `None` where they are resolved means tracing is off.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingSettings {
    /// Where spans go, without any user or password, for the log.
    pub endpoint: String,
    /// `service.name` of the spans: OTEL_SERVICE_NAME, or the service's
    /// own name; `None` when OTEL_RESOURCE_ATTRIBUTES names it.
    pub service_name: Option<String>,
    pub sampler: TraceSampler,
}

/// Which traces are kept (`OTEL_TRACES_SAMPLER` and its argument).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceSampler {
    /// A request whose `traceparent` says whether it is sampled follows it.
    pub parent_based: bool,
    /// Share of the other traces kept, 0 to 1 (`always_on` is 1).
    pub ratio: f64,
}
