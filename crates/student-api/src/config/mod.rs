//! Configuration: one typed structure, read from command-line flags and the
//! environment (flags win), validated before anything starts.
//!
//! Rules: every failure names the variable and the reason and is fatal at
//! start-up; secret values live in [`SecretString`] and are never printed,
//! not in `--help`, not in errors, not in `Debug`.

mod database;
mod secret_file;
mod vault;

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use database::{DatabaseArgs, DatabaseTarget};
pub use secret_file::read_secret_file;
pub use vault::{CredentialArgs, VaultAuth, VaultConfig, VaultSecret, DEFAULT_K8S_TOKEN_FILE};

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

#[derive(Debug, Parser)]
#[command(name = "student-api", version, about = "REST API for student records")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub credentials: CredentialArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Serve the API (the default when no command is given).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate(MigrateArgs),
    /// Ask the running service at LISTEN_ADDR for `/healthcheck`; exit 0
    /// when it answers 200 (a container HEALTHCHECK; the image has no shell).
    Healthcheck(HealthcheckArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct HealthcheckArgs {
    /// Longest to wait for the answer.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct MigrateArgs {
    /// Wait up to this long for the database to accept connections before
    /// migrating (an init container starting before its database).
    #[arg(long, env = "MIGRATE_WAIT", value_name = "MIGRATE_WAIT", value_parser = parse_duration)]
    pub wait: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `json` when standard output is not a terminal, `pretty` when it is.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable, coloured when the terminal supports it.
    Pretty,
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto, global = true)]
    pub log_format: LogFormat,
    /// Log filter directives, e.g. `info` or `info,student_api=debug`.
    #[arg(
        long,
        env = "RUST_LOG",
        value_name = "RUST_LOG",
        default_value = "info,sqlx=warn",
        global = true
    )]
    pub log_filter: String,
}

#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address the API listens on.
    #[arg(
        long,
        env = "LISTEN_ADDR",
        value_name = "LISTEN_ADDR",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen_addr: SocketAddr,
    /// Serve `/metrics` on this separate address instead of the API address.
    #[arg(long, env = "METRICS_ADDR", value_name = "METRICS_ADDR", global = true)]
    pub metrics_addr: Option<SocketAddr>,
    /// Longest a request may take before it is answered with 503.
    #[arg(long, env = "REQUEST_TIMEOUT", value_name = "REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration, global = true)]
    pub request_timeout: Duration,
    /// Once accepting stops (SHUTDOWN_DELAY after SIGTERM), longest the
    /// requests already started may run before the process exits.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", value_name = "SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = parse_duration, global = true)]
    pub shutdown_timeout: Duration,
    /// Longest the readiness check waits for the database.
    #[arg(long, env = "READINESS_TIMEOUT", value_name = "READINESS_TIMEOUT", default_value = "1s", value_parser = parse_duration, global = true)]
    pub readiness_timeout: Duration,
    /// After SIGTERM, how long to keep accepting and serving (readiness failing,
    /// every response with `Connection: close`) before connections stop; 0s for none.
    #[arg(long, env = "SHUTDOWN_DELAY", value_name = "SHUTDOWN_DELAY", default_value = "5s", value_parser = parse_duration_or_zero, global = true)]
    pub shutdown_delay: Duration,
    /// Longest a client may take to send a request's headers, from its first
    /// byte (on a new connection, from the connection's opening).
    #[arg(long, env = "HTTP_HEADER_TIMEOUT", value_name = "HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration, global = true)]
    pub http_header_timeout: Duration,
    /// Longest a keep-alive connection may wait for its next request.
    #[arg(long, env = "HTTP_IDLE_TIMEOUT", value_name = "HTTP_IDLE_TIMEOUT", default_value = "2m", value_parser = parse_duration, global = true)]
    pub http_idle_timeout: Duration,
    /// Most client connections open at once; lowered to fit the open-file limit.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", value_name = "HTTP_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub http_max_connections: u32,
}

/// Parses durations such as `500ms`, `3s` or `1m 30s`.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let duration =
        humantime::parse_duration(raw).map_err(|e| format!("{e} (examples: 500ms, 3s, 1m)"))?;
    if duration.is_zero() {
        return Err("must be greater than zero".to_owned());
    }
    Ok(duration)
}

/// Like [`parse_duration`], but `0s` is allowed (the setting is then off).
pub fn parse_duration_or_zero(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw).map_err(|e| format!("{e} (examples: 0s, 500ms, 3s, 1m)"))
}

/// Where PostgreSQL credentials come from while the service runs.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// Set once at start (environment or URL).
    Fixed,
    /// `*_FILE` secrets, re-read every `poll`.
    Files {
        database: DatabaseArgs,
        poll: Duration,
    },
    /// Vault: a dynamic database user or a KV secret.
    Vault(VaultConfig),
}

/// Everything `serve` needs, resolved and validated.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub database: DatabaseTarget,
    pub credentials: CredentialSource,
    pub pool: crate::storage::PoolSettings,
    pub server: ServerArgs,
}

impl Cli {
    /// Resolves the database settings (reading `*_FILE` secrets) and checks
    /// the combinations clap cannot check alone.
    pub fn serve_config(&self) -> Result<ServeConfig, ConfigError> {
        let listen = self.server.listen_addr;
        if listen.port() != 0 && self.server.metrics_addr == Some(listen) {
            return Err(ConfigError::Invalid {
                var: "METRICS_ADDR",
                reason: "must differ from LISTEN_ADDR".to_owned(),
            });
        }
        let (database, credentials) = self.database_and_credentials()?;
        Ok(ServeConfig {
            database,
            credentials,
            pool: self.database.pool_settings(),
            server: self.server.clone(),
        })
    }

    fn database_and_credentials(&self) -> Result<(DatabaseTarget, CredentialSource), ConfigError> {
        if let Some(vault) = self.credentials.vault()? {
            let base = self.database.vault_base()?;
            return Ok((
                DatabaseTarget::Postgres(base),
                CredentialSource::Vault(vault),
            ));
        }
        let target = self.database.target()?;
        let credentials = match target {
            DatabaseTarget::Postgres(_) if crate::secrets::uses_files(&self.database) => {
                CredentialSource::Files {
                    database: self.database.clone(),
                    poll: self.credentials.secret_file_poll_interval,
                }
            }
            _ => CredentialSource::Fixed,
        };
        Ok((target, credentials))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_units_and_reject_zero() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m 30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_duration_or_zero("0s").unwrap(), Duration::ZERO);
        assert!(parse_duration_or_zero("soon").is_err());
    }

    #[test]
    fn the_metrics_address_must_differ_from_the_listen_address() {
        let cli = Cli::try_parse_from([
            "student-api",
            "--listen-addr=127.0.0.1:9000",
            "--metrics-addr=127.0.0.1:9000",
            "--database-url=sqlite://x.db",
        ])
        .unwrap();
        let err = cli.serve_config().unwrap_err().to_string();
        assert_eq!(err, "METRICS_ADDR: must differ from LISTEN_ADDR");
    }

    #[test]
    fn migrate_takes_a_bounded_wait() {
        let cli = Cli::try_parse_from(["student-api", "migrate", "--wait", "2m"]).unwrap();
        assert_eq!(
            cli.command,
            Some(Command::Migrate(MigrateArgs {
                wait: Some(Duration::from_secs(120))
            }))
        );
        assert!(Cli::try_parse_from(["student-api", "migrate", "--wait", "0s"]).is_err());
    }

    #[test]
    fn flags_may_follow_the_subcommand() {
        let cli =
            Cli::try_parse_from(["student-api", "serve", "--listen-addr=127.0.0.1:9001"]).unwrap();
        assert_eq!(cli.command, Some(Command::Serve));
        assert_eq!(cli.server.listen_addr.port(), 9001);
    }
}
