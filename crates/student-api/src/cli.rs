//! The command line: flags and environment variables (flags win), parsed by
//! clap and turned once into [`crate::config`]'s plain data.
//!
//! Rules: clap's types stay here; nothing else in the crate sees them. The
//! `--help` text is the doc comment of each argument and shows no secret
//! value. May import `config` only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;
use url::Url;

use crate::config::{
    kv_v2_path, parse_postgres_port, read_secret_file, vault_path, Config, ConfigError,
    CredentialSource, DatabaseTarget, LogFormat, LogSettings, PoolSettings, ServerSettings,
    SslMode, TargetSource, TraceSampler, TracingSettings, Value, VaultAuth, VaultConfig,
    VaultSecret, DEFAULT_K8S_TOKEN_FILE,
};

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
pub enum LogFormatArg {
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
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormatArg::Auto, global = true)]
    pub log_format: LogFormatArg,
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
    /// Drills: `on` serves PUT, GET and DELETE `/admin/fault` on METRICS_ADDR
    /// (required), which make a chosen share of API requests fail or wait.
    #[arg(long, env = "FAULT_INJECTION", value_name = "FAULT_INJECTION", value_enum, default_value_t = Switch::Off, global = true)]
    pub fault_injection: Switch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Database URL: `postgres://user:password@host:5432/db` or `sqlite://path/to/file.db`.
    #[arg(
        long,
        env = "DATABASE_URL",
        value_name = "DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Option<SecretString>,
    /// File holding the database URL (instead of DATABASE_URL).
    #[arg(
        long,
        env = "DATABASE_URL_FILE",
        value_name = "DATABASE_URL_FILE",
        global = true
    )]
    pub database_url_file: Option<PathBuf>,
    /// PostgreSQL host; when set (and no DATABASE_URL), PostgreSQL is used.
    #[arg(
        long,
        env = "POSTGRES_HOST",
        value_name = "POSTGRES_HOST",
        global = true
    )]
    pub postgres_host: Option<String>,
    /// PostgreSQL port; Kubernetes' injected `tcp://ip:port` form is accepted.
    #[arg(long, env = "POSTGRES_PORT", value_name = "POSTGRES_PORT", default_value = "5432", value_parser = parse_postgres_port, global = true)]
    pub postgres_port: u16,
    /// PostgreSQL user.
    #[arg(
        long,
        env = "POSTGRES_USER",
        value_name = "POSTGRES_USER",
        global = true
    )]
    pub postgres_user: Option<String>,
    /// File holding the PostgreSQL user (instead of POSTGRES_USER).
    #[arg(
        long,
        env = "POSTGRES_USER_FILE",
        value_name = "POSTGRES_USER_FILE",
        global = true
    )]
    pub postgres_user_file: Option<PathBuf>,
    /// PostgreSQL password.
    #[arg(
        long,
        env = "POSTGRES_PASSWORD",
        value_name = "POSTGRES_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub postgres_password: Option<SecretString>,
    /// File holding the PostgreSQL password (instead of POSTGRES_PASSWORD).
    #[arg(
        long,
        env = "POSTGRES_PASSWORD_FILE",
        value_name = "POSTGRES_PASSWORD_FILE",
        global = true
    )]
    pub postgres_password_file: Option<PathBuf>,
    /// PostgreSQL database name [default: the user name].
    #[arg(long, env = "POSTGRES_DB", value_name = "POSTGRES_DB", global = true)]
    pub postgres_db: Option<String>,
    /// TLS to PostgreSQL: disable, allow, prefer, require, verify-ca or verify-full.
    #[arg(long, env = "POSTGRES_SSLMODE", value_name = "POSTGRES_SSLMODE", default_value = "prefer", value_parser = parse_ssl_mode, global = true)]
    pub postgres_sslmode: SslMode,
    /// Most open database connections per process.
    #[arg(long, env = "DB_MAX_CONNECTIONS", value_name = "DB_MAX_CONNECTIONS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub db_max_connections: u32,
    /// Longest a request waits for a database connection before a 503.
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT", value_name = "DB_ACQUIRE_TIMEOUT", default_value = "3s", value_parser = parse_duration, global = true)]
    pub db_acquire_timeout: Duration,
    /// Server-side limit on one SQL statement (PostgreSQL).
    #[arg(long, env = "DB_STATEMENT_TIMEOUT", value_name = "DB_STATEMENT_TIMEOUT", default_value = "5s", value_parser = parse_duration, global = true)]
    pub db_statement_timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct CredentialArgs {
    /// Vault (or OpenBao) address; when set, database credentials come from Vault.
    #[arg(long, env = "VAULT_ADDR", value_name = "VAULT_ADDR", global = true)]
    pub vault_addr: Option<Url>,
    /// PEM file of the CA that signed Vault's TLS certificate.
    #[arg(long, env = "VAULT_CACERT", value_name = "VAULT_CACERT", global = true)]
    pub vault_cacert: Option<PathBuf>,
    /// Vault token.
    #[arg(
        long,
        env = "VAULT_TOKEN",
        value_name = "VAULT_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub vault_token: Option<SecretString>,
    /// File holding the Vault token (re-read when the token is renewed).
    #[arg(
        long,
        env = "VAULT_TOKEN_FILE",
        value_name = "VAULT_TOKEN_FILE",
        global = true
    )]
    pub vault_token_file: Option<PathBuf>,
    /// Vault Kubernetes auth role; logs in with the pod's service-account token.
    #[arg(
        long,
        env = "VAULT_K8S_ROLE",
        value_name = "VAULT_K8S_ROLE",
        global = true
    )]
    pub vault_k8s_role: Option<String>,
    /// Service-account token presented to Vault's Kubernetes auth.
    #[arg(long, env = "VAULT_K8S_TOKEN_FILE", value_name = "VAULT_K8S_TOKEN_FILE", default_value = DEFAULT_K8S_TOKEN_FILE, global = true)]
    pub vault_k8s_token_file: PathBuf,
    /// Mount path of Vault's Kubernetes auth method.
    #[arg(
        long,
        env = "VAULT_K8S_MOUNT",
        value_name = "VAULT_K8S_MOUNT",
        default_value = "kubernetes",
        global = true
    )]
    pub vault_k8s_mount: String,
    /// Database secrets engine role path, e.g. `database/creds/student-api` (dynamic users).
    #[arg(
        long,
        env = "VAULT_DB_CREDS_PATH",
        value_name = "VAULT_DB_CREDS_PATH",
        global = true
    )]
    pub vault_db_creds_path: Option<String>,
    /// KV v2 secret holding `username` and `password`, e.g. `secret/student-api/db`.
    #[arg(
        long,
        env = "VAULT_KV_PATH",
        value_name = "VAULT_KV_PATH",
        global = true
    )]
    pub vault_kv_path: Option<String>,
    /// How often the KV secret is re-read.
    #[arg(long, env = "VAULT_REFRESH_INTERVAL", value_name = "VAULT_REFRESH_INTERVAL", default_value = "1m", value_parser = parse_duration, global = true)]
    pub vault_refresh_interval: Duration,
    /// Longest one call to Vault may take.
    #[arg(long, env = "VAULT_TIMEOUT", value_name = "VAULT_TIMEOUT", default_value = "5s", value_parser = parse_duration, global = true)]
    pub vault_timeout: Duration,
    /// How often `*_FILE` database secrets are re-read to pick up rotated values.
    #[arg(long, env = "SECRET_FILE_POLL_INTERVAL", value_name = "SECRET_FILE_POLL_INTERVAL", default_value = "5s", value_parser = parse_duration, global = true)]
    pub secret_file_poll_interval: Duration,
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

fn parse_ssl_mode(raw: &str) -> Result<SslMode, String> {
    raw.parse()
}

impl Cli {
    /// The log settings, needed before anything else is resolved.
    pub fn log(&self) -> LogSettings {
        LogSettings {
            format: match self.log.log_format {
                LogFormatArg::Auto => LogFormat::Auto,
                LogFormatArg::Json => LogFormat::Json,
                LogFormatArg::Pretty => LogFormat::Pretty,
            },
            filter: self.log.log_filter.clone(),
        }
    }

    /// The trace settings, from the OpenTelemetry SDK's own environment
    /// variables (not flags: every OpenTelemetry guide sets these).
    pub fn tracing(&self) -> Result<Option<TracingSettings>, ConfigError> {
        tracing_settings(|name| std::env::var(name).ok())
    }

    /// Resolves everything once (reading `*_FILE` secrets) and checks the
    /// combinations clap cannot check alone.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let server = self.server.settings();
        server.validate()?;
        let (database, credentials) = self.database_and_credentials()?;
        Ok(Config {
            database,
            credentials,
            pool: self.database.pool_settings(),
            server,
        })
    }

    fn database_and_credentials(&self) -> Result<(DatabaseTarget, CredentialSource), ConfigError> {
        let source = self.database.source()?;
        if let Some(vault) = self.credentials.vault()? {
            return Ok((
                DatabaseTarget::Postgres(source.vault_base()?),
                CredentialSource::Vault(vault),
            ));
        }
        let target = source.resolve()?;
        let credentials = match target {
            DatabaseTarget::Postgres(_) if source.uses_files() => CredentialSource::Files {
                source,
                poll: self.credentials.secret_file_poll_interval,
            },
            _ => CredentialSource::Fixed,
        };
        Ok((target, credentials))
    }
}

/// Resolves the OpenTelemetry SDK's variables that decide whether and how
/// requests are traced; `env` reads one variable. Tracing is on when an
/// OTLP endpoint is set, unless OTEL_SDK_DISABLED=true or
/// OTEL_TRACES_EXPORTER=none. The exporter reads the others itself
/// (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION, OTEL_BSP_*,
/// OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES), as the SDK specifies.
/// Values the SDK would ignore with a warning stop the service here.
pub fn tracing_settings(
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<TracingSettings>, ConfigError> {
    let var = |name: &str| {
        env(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let invalid = |var: &'static str, reason: &str| ConfigError::Invalid {
        var,
        reason: reason.to_owned(),
    };
    match var("OTEL_SDK_DISABLED")
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("false") => {}
        Some("true") => return Ok(None),
        Some(_) => return Err(invalid("OTEL_SDK_DISABLED", "expected true or false")),
    }
    match var("OTEL_TRACES_EXPORTER").as_deref() {
        None | Some("otlp") => {}
        Some("none") => return Ok(None),
        Some(_) => {
            return Err(invalid(
                "OTEL_TRACES_EXPORTER",
                "expected otlp or none (the only exporter of this build is OTLP)",
            ))
        }
    }
    let Some((endpoint_var, endpoint)) = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .into_iter()
    .find_map(|name| var(name).map(|value| (name, value))) else {
        return Ok(None);
    };
    // Not echoed: a mistyped value could be anything.
    let url = Url::parse(&endpoint)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
        .ok_or_else(|| {
            invalid(
                endpoint_var,
                "expected an http:// or https:// URL, e.g. http://alloy.observability.svc:4318",
            )
        })?;
    // So that the endpoint holds no secret and may be logged.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            endpoint_var,
            "must not hold a user or password: send credentials in OTEL_EXPORTER_OTLP_HEADERS",
        ));
    }
    for protocol_var in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        match var(protocol_var).as_deref() {
            None | Some("http/protobuf") => {}
            Some("grpc" | "http/json") => {
                return Err(invalid(
                    protocol_var,
                    "this build sends OTLP over HTTP with protobuf only: set http/protobuf (a collector's port 4318)",
                ))
            }
            Some(_) => return Err(invalid(protocol_var, "expected http/protobuf")),
        }
    }
    let sampler = trace_sampler(&var)?;
    // The SDK would say `unknown_service` when no variable names it.
    let named_by_attributes = var("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attributes| {
        attributes
            .split(',')
            .any(|pair| pair.trim_start().starts_with("service.name="))
    });
    let service_name = match var("OTEL_SERVICE_NAME") {
        Some(name) => Some(name),
        None if named_by_attributes => None,
        None => Some(env!("CARGO_PKG_NAME").to_owned()),
    };
    Ok(Some(TracingSettings {
        endpoint: url.to_string(),
        service_name,
        sampler,
    }))
}

/// `OTEL_TRACES_SAMPLER` and its argument, as the SDK reads them; `var`
/// reads one variable, trimmed, `None` when unset or empty.
fn trace_sampler(var: &impl Fn(&str) -> Option<String>) -> Result<TraceSampler, ConfigError> {
    let invalid = |var: &'static str, reason: &str| ConfigError::Invalid {
        var,
        reason: reason.to_owned(),
    };
    let ratio = || -> Result<f64, ConfigError> {
        match var("OTEL_TRACES_SAMPLER_ARG") {
            None => Ok(1.0),
            Some(arg) => arg
                .parse::<f64>()
                .ok()
                .filter(|ratio| (0.0..=1.0).contains(ratio))
                .ok_or_else(|| {
                    invalid(
                        "OTEL_TRACES_SAMPLER_ARG",
                        "expected a ratio between 0 and 1, e.g. 0.1",
                    )
                }),
        }
    };
    let name = var("OTEL_TRACES_SAMPLER");
    // The SDK's default.
    let name = name.as_deref().unwrap_or("parentbased_always_on");
    // Each sampler comes plain and as `parentbased_…`, which follows the
    // parent's decision when a request carries one, and samples a root span
    // as the plain one does.
    let (parent_based, root) = name
        .strip_prefix("parentbased_")
        .map_or((false, name), |root| (true, root));
    let ratio = match root {
        "always_on" => 1.0,
        "always_off" => 0.0,
        "traceidratio" => ratio()?,
        _ => {
            return Err(invalid(
                "OTEL_TRACES_SAMPLER",
                "expected always_on, always_off, traceidratio, parentbased_always_on, \
                 parentbased_always_off or parentbased_traceidratio",
            ))
        }
    };
    Ok(TraceSampler {
        parent_based,
        ratio,
    })
}

impl ServerArgs {
    fn settings(&self) -> ServerSettings {
        ServerSettings {
            listen_addr: self.listen_addr,
            metrics_addr: self.metrics_addr,
            request_timeout: self.request_timeout,
            shutdown_timeout: self.shutdown_timeout,
            readiness_timeout: self.readiness_timeout,
            shutdown_delay: self.shutdown_delay,
            http_header_timeout: self.http_header_timeout,
            http_idle_timeout: self.http_idle_timeout,
            http_max_connections: self.http_max_connections,
            fault_injection: self.fault_injection == Switch::On,
        }
    }
}

impl DatabaseArgs {
    fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            max_connections: self.db_max_connections,
            acquire_timeout: self.db_acquire_timeout,
            statement_timeout: self.db_statement_timeout,
        }
    }

    /// Where each database setting comes from, by the precedence of
    /// [`crate::config`]: the only place that knows which are files.
    fn source(&self) -> Result<TargetSource, ConfigError> {
        let url = Value::either(
            "DATABASE_URL",
            self.database_url.clone(),
            "DATABASE_URL_FILE",
            self.database_url_file.clone(),
        )?;
        if let Some(url) = url {
            return Ok(TargetSource::Url(url));
        }
        let Some(host) = &self.postgres_host else {
            return Ok(TargetSource::Embedded);
        };
        Ok(TargetSource::Parts {
            host: host.clone(),
            port: self.postgres_port,
            user: Value::either(
                "POSTGRES_USER",
                self.postgres_user.clone().map(SecretString::from),
                "POSTGRES_USER_FILE",
                self.postgres_user_file.clone(),
            )?,
            password: Value::either(
                "POSTGRES_PASSWORD",
                self.postgres_password.clone(),
                "POSTGRES_PASSWORD_FILE",
                self.postgres_password_file.clone(),
            )?,
            database: self.postgres_db.clone(),
            ssl_mode: self.postgres_sslmode,
        })
    }
}

impl CredentialArgs {
    /// The Vault settings, or `None` when `VAULT_ADDR` is not set.
    fn vault(&self) -> Result<Option<VaultConfig>, ConfigError> {
        let Some(addr) = self.vault_addr.clone() else {
            return Ok(None);
        };
        if !matches!(addr.scheme(), "http" | "https") {
            return Err(ConfigError::Invalid {
                var: "VAULT_ADDR",
                reason: "expected an http:// or https:// address".to_owned(),
            });
        }
        if let Some(path) = &self.vault_cacert {
            std::fs::metadata(path).map_err(|e| ConfigError::Invalid {
                var: "VAULT_CACERT",
                reason: format!("cannot read {}: {e}", path.display()),
            })?;
        }
        Ok(Some(VaultConfig {
            addr,
            ca_cert: self.vault_cacert.clone(),
            auth: self.vault_auth()?,
            secret: self.vault_secret()?,
            timeout: self.vault_timeout,
        }))
    }

    fn vault_auth(&self) -> Result<VaultAuth, ConfigError> {
        match (
            &self.vault_token,
            &self.vault_token_file,
            &self.vault_k8s_role,
        ) {
            (Some(token), None, None) => Ok(VaultAuth::Token(token.clone())),
            (None, Some(path), None) => {
                // Fail at start, not at the first login, when the file is unusable.
                read_secret_file("VAULT_TOKEN_FILE", path)?;
                Ok(VaultAuth::TokenFile(path.clone()))
            }
            (None, None, Some(role)) => Ok(VaultAuth::Kubernetes {
                role: role.clone(),
                mount: self.vault_k8s_mount.trim_matches('/').to_owned(),
                jwt_file: self.vault_k8s_token_file.clone(),
            }),
            (None, None, None) => Err(ConfigError::Missing {
                var: "VAULT_TOKEN, VAULT_TOKEN_FILE or VAULT_K8S_ROLE",
                when: "when VAULT_ADDR is set",
            }),
            _ => Err(ConfigError::Invalid {
                var: "VAULT_TOKEN",
                reason: "set only one of VAULT_TOKEN, VAULT_TOKEN_FILE and VAULT_K8S_ROLE"
                    .to_owned(),
            }),
        }
    }

    fn vault_secret(&self) -> Result<VaultSecret, ConfigError> {
        match (&self.vault_db_creds_path, &self.vault_kv_path) {
            (Some(path), None) => Ok(VaultSecret::Dynamic {
                path: vault_path("VAULT_DB_CREDS_PATH", path)?,
            }),
            (None, Some(path)) => {
                let (mount, path) = kv_v2_path(&vault_path("VAULT_KV_PATH", path)?)?;
                Ok(VaultSecret::Kv {
                    mount,
                    path,
                    refresh: self.vault_refresh_interval,
                })
            }
            (None, None) => Err(ConfigError::Missing {
                var: "VAULT_DB_CREDS_PATH or VAULT_KV_PATH",
                when: "when VAULT_ADDR is set",
            }),
            (Some(_), Some(_)) => Err(ConfigError::Conflict(
                "VAULT_DB_CREDS_PATH",
                "VAULT_KV_PATH",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(flags: &[&str]) -> Cli {
        let mut argv = vec!["student-api"];
        argv.extend_from_slice(flags);
        Cli::try_parse_from(argv).unwrap()
    }

    fn target(flags: &[&str]) -> Result<DatabaseTarget, ConfigError> {
        cli(flags).config().map(|config| config.database)
    }

    fn vault(flags: &[&str]) -> Result<Option<VaultConfig>, ConfigError> {
        cli(flags).credentials.vault()
    }

    #[test]
    fn durations_accept_units_and_reject_zero() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m 30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_duration_or_zero("0s").unwrap(), Duration::ZERO);
        assert!(parse_duration_or_zero("soon").is_err());
    }

    fn traces(vars: &[(&str, &str)]) -> Result<Option<TracingSettings>, ConfigError> {
        tracing_settings(|name| {
            vars.iter()
                .find(|(var, _)| *var == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn tracing_is_off_without_an_endpoint_or_when_the_sdk_is_disabled() {
        assert_eq!(traces(&[]).unwrap(), None);
        assert_eq!(traces(&[("OTEL_SERVICE_NAME", "x")]).unwrap(), None);
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://alloy:4318");
        assert!(traces(&[endpoint]).unwrap().is_some());
        assert_eq!(
            traces(&[endpoint, ("OTEL_SDK_DISABLED", "true")]).unwrap(),
            None
        );
        assert_eq!(
            traces(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")]).unwrap(),
            None
        );
        assert!(traces(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://alloy:4318/v1/traces"
        )])
        .unwrap()
        .is_some());
    }

    #[test]
    fn tracing_reads_the_sdk_sampler_and_service_name() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://alloy:4318");
        let settings = traces(&[endpoint]).unwrap().unwrap();
        assert_eq!(settings.service_name.as_deref(), Some("student-api"));
        assert_eq!(
            settings.sampler,
            TraceSampler {
                parent_based: true,
                ratio: 1.0
            }
        );
        let settings = traces(&[
            endpoint,
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=prod,service.name=api",
            ),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            settings.sampler,
            TraceSampler {
                parent_based: true,
                ratio: 0.25
            }
        );
        assert_eq!(settings.service_name, None, "the resource names it");
        let settings = traces(&[endpoint, ("OTEL_TRACES_SAMPLER", "always_off")])
            .unwrap()
            .unwrap();
        assert!(!settings.sampler.parent_based);
        assert!(settings.sampler.ratio <= 0.0);
    }

    #[test]
    fn tracing_refuses_what_the_sdk_would_ignore() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://alloy:4318");
        for (vars, var) in [
            (
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "alloy:4318")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (
                vec![(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "http://user:secret-in-url@alloy:4318",
                )],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (
                vec![endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (
                vec![
                    endpoint,
                    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
                ],
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            ),
            (
                vec![endpoint, ("OTEL_TRACES_SAMPLER", "jaeger_remote")],
                "OTEL_TRACES_SAMPLER",
            ),
            (
                vec![
                    endpoint,
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "2"),
                ],
                "OTEL_TRACES_SAMPLER_ARG",
            ),
            (
                vec![endpoint, ("OTEL_TRACES_EXPORTER", "zipkin")],
                "OTEL_TRACES_EXPORTER",
            ),
            (
                vec![endpoint, ("OTEL_SDK_DISABLED", "yes")],
                "OTEL_SDK_DISABLED",
            ),
        ] {
            let err = traces(&vars).unwrap_err().to_string();
            assert!(err.starts_with(var), "{vars:?}: {err}");
            assert!(!err.contains("secret-in-url"), "{err}");
        }
    }

    #[test]
    fn the_metrics_address_must_differ_from_the_listen_address() {
        let err = cli(&[
            "--listen-addr=127.0.0.1:9000",
            "--metrics-addr=127.0.0.1:9000",
            "--database-url=sqlite://x.db",
        ])
        .config()
        .unwrap_err()
        .to_string();
        assert_eq!(err, "METRICS_ADDR: must differ from LISTEN_ADDR");
    }

    #[test]
    fn migrate_takes_a_bounded_wait() {
        let cli = cli(&["migrate", "--wait", "2m"]);
        assert_eq!(
            cli.command,
            Some(Command::Migrate(MigrateArgs {
                wait: Some(Duration::from_mins(2))
            }))
        );
        assert!(Cli::try_parse_from(["student-api", "migrate", "--wait", "0s"]).is_err());
    }

    #[test]
    fn flags_may_follow_the_subcommand() {
        let cli = cli(&["serve", "--listen-addr=127.0.0.1:9001"]);
        assert_eq!(cli.command, Some(Command::Serve));
        assert_eq!(cli.server.listen_addr.port(), 9001);
    }

    #[test]
    fn sqlite_file_in_data_dir_is_the_default() {
        let target = target(&[]).unwrap();
        assert_eq!(target.to_string(), "sqlite at ./data/students.db");
    }

    #[test]
    fn database_url_selects_the_backend() {
        let pg = target(&["--database-url=postgres://u:pw@db.internal:6543/school"]).unwrap();
        assert_eq!(pg.to_string(), "postgres at db.internal:6543/school");
        let lite = target(&["--database-url=sqlite:///tmp/x.db"]).unwrap();
        assert_eq!(lite.to_string(), "sqlite at /tmp/x.db");
    }

    #[test]
    fn database_url_errors_never_echo_the_url() {
        let err = target(&["--database-url=mysql://u:hunter2hunter2@h/db"])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("DATABASE_URL: unsupported scheme"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = target(&["--database-url=postgres://u:hunter2hunter2@h:notaport/db"])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("DATABASE_URL: not a valid URL"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn a_url_with_an_unencoded_hash_or_at_is_refused_without_echoing_it() {
        for url in [
            "postgres://app:Hx7#Qz@db.internal:5432/school",
            "postgres://app:Zq@Vw#K9@db.internal:5432/school",
            "postgres://app:Pz@Qr@db.internal:5432/school",
            "postgres://app:41/Xy@db.internal:5432/school",
            "postgres://app:Mm?Kk@db.internal/school",
        ] {
            let err = target(&[&format!("--database-url={url}")])
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("DATABASE_URL: "), "{err}");
            assert!(err.contains("percent-encode"), "{err}");
            for secret in [
                "Hx7", "Qz", "Zq", "Vw", "K9", "Pz", "Qr", "41", "Xy", "Mm", "Kk",
            ] {
                assert!(!err.contains(secret), "{secret} in {err}");
            }
        }
        let target =
            target(&["--database-url=postgres://app:p%40ss%23w%2Fd@db.internal:5432/school"])
                .unwrap();
        assert_eq!(target.to_string(), "postgres at db.internal:5432/school");
    }

    #[test]
    fn postgres_parts_are_used_when_host_is_set() {
        let target = target(&[
            "--postgres-host=pg",
            "--postgres-user=app",
            "--postgres-password=pw",
            "--postgres-port=tcp://10.96.0.12:5433",
        ])
        .unwrap();
        assert_eq!(target.to_string(), "postgres at pg:5433/app");
    }

    #[test]
    fn postgres_parts_name_the_missing_variable() {
        let err = target(&["--postgres-host=pg", "--postgres-password=pw"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "POSTGRES_USER is required when POSTGRES_HOST is set"
        );
        let err = target(&["--postgres-host=pg", "--postgres-user=app"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "POSTGRES_PASSWORD is required when POSTGRES_HOST is set"
        );
    }

    #[test]
    fn a_value_and_its_file_variant_conflict() {
        let err = target(&[
            "--database-url=sqlite://a.db",
            "--database-url-file=/run/secrets/url",
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "DATABASE_URL and DATABASE_URL_FILE are both set; set only one of them"
        );
    }

    #[test]
    fn secret_files_are_resolved_once_and_named_in_the_credential_source() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "first\n").unwrap();
        let config = cli(&[
            "--postgres-host=pg",
            "--postgres-user=app",
            &format!("--postgres-password-file={}", password.display()),
        ])
        .config()
        .unwrap();
        let CredentialSource::Files { source, .. } = config.credentials else {
            panic!("secret files are watched");
        };
        assert!(source.uses_files());
        std::fs::write(&password, "second\n").unwrap();
        let now = source.resolve_postgres().unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(now.password.as_ref().unwrap()),
            "second"
        );
        let fixed = cli(&["--database-url=postgres://u:pw@h/db"])
            .config()
            .unwrap();
        assert!(matches!(fixed.credentials, CredentialSource::Fixed));
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let target = target(&["--database-url=postgres://u:hunter2hunter2@h/db"]).unwrap();
        assert!(!format!("{target:?}").contains("hunter2"));
    }

    #[test]
    fn vault_is_off_without_an_address() {
        assert!(vault(&["--vault-token=t"]).unwrap().is_none());
    }

    #[test]
    fn kv_paths_are_accepted_in_logical_and_api_form() {
        for path in ["secret/student-api/db", "/secret/data/student-api/db/"] {
            let config = vault(&[
                "--vault-addr=http://127.0.0.1:8200",
                "--vault-token=t",
                &format!("--vault-kv-path={path}"),
            ])
            .unwrap()
            .unwrap();
            assert_eq!(
                config.secret,
                VaultSecret::Kv {
                    mount: "secret".to_owned(),
                    path: "student-api/db".to_owned(),
                    refresh: Duration::from_mins(1),
                }
            );
        }
    }

    #[test]
    fn exactly_one_authentication_is_required() {
        let base = [
            "--vault-addr=http://127.0.0.1:8200",
            "--vault-db-creds-path=database/creds/x",
        ];
        let err = vault(&base).unwrap_err().to_string();
        assert_eq!(
            err,
            "VAULT_TOKEN, VAULT_TOKEN_FILE or VAULT_K8S_ROLE is required when VAULT_ADDR is set"
        );
        let mut both = base.to_vec();
        both.extend(["--vault-token=t", "--vault-k8s-role=student-api"]);
        let err = vault(&both).unwrap_err().to_string();
        assert!(err.starts_with("VAULT_TOKEN: set only one of"), "{err}");
    }

    #[test]
    fn exactly_one_secret_kind_is_required() {
        let base = [
            "--vault-addr=http://127.0.0.1:8200",
            "--vault-k8s-role=student-api",
        ];
        let err = vault(&base).unwrap_err().to_string();
        assert_eq!(
            err,
            "VAULT_DB_CREDS_PATH or VAULT_KV_PATH is required when VAULT_ADDR is set"
        );
        let mut both = base.to_vec();
        both.extend([
            "--vault-db-creds-path=database/creds/x",
            "--vault-kv-path=secret/x",
        ]);
        assert!(vault(&both).is_err());
    }

    #[test]
    fn kubernetes_auth_defaults_to_the_projected_token() {
        let config = vault(&[
            "--vault-addr=https://vault.example:8200",
            "--vault-k8s-role=student-api",
            "--vault-db-creds-path=database/creds/student-api",
        ])
        .unwrap()
        .unwrap();
        match config.auth {
            VaultAuth::Kubernetes {
                role,
                mount,
                jwt_file,
            } => {
                assert_eq!(role, "student-api");
                assert_eq!(mount, "kubernetes");
                assert_eq!(jwt_file, PathBuf::from(DEFAULT_K8S_TOKEN_FILE));
            }
            other => panic!("unexpected auth {other:?}"),
        }
    }

    #[test]
    fn bad_paths_and_schemes_are_refused() {
        assert!(vault(&[
            "--vault-addr=ftp://h",
            "--vault-token=t",
            "--vault-kv-path=secret/x"
        ])
        .is_err());
        assert!(vault(&[
            "--vault-addr=http://h",
            "--vault-token=t",
            "--vault-kv-path=secret"
        ])
        .is_err());
        assert!(vault(&[
            "--vault-addr=http://h",
            "--vault-token=t",
            "--vault-db-creds-path=a/../b"
        ])
        .is_err());
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let config = vault(&[
            "--vault-addr=http://127.0.0.1:8200",
            "--vault-token=hvs.hunter2hunter2",
            "--vault-kv-path=secret/x/y",
        ])
        .unwrap()
        .unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
