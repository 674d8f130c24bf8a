//! Which database to use and how to reach it.
//!
//! Precedence: `DATABASE_URL` (or `DATABASE_URL_FILE`); else PostgreSQL from
//! `POSTGRES_*` when `POSTGRES_HOST` is set; else the embedded SQLite file
//! `./data/students.db`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::sqlite::SqliteConnectOptions;

use super::{parse_duration, read_secret_file, ConfigError};
use crate::storage::PoolSettings;

/// The embedded default, relative to the working directory.
pub const DEFAULT_SQLITE_PATH: &str = "./data/students.db";

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
    pub postgres_sslmode: PgSslMode,
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

/// A resolved database: connect options carry credentials, so `Debug`
/// prints only where the database is.
#[derive(Clone)]
pub enum DatabaseTarget {
    Postgres(PgConnectOptions),
    Sqlite(SqliteConnectOptions),
}

impl fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Postgres(o) => f
                .debug_struct("Postgres")
                .field("host", &o.get_host())
                .field("port", &o.get_port())
                .field("database", &o.get_database())
                .field("user", &o.get_username())
                .finish_non_exhaustive(),
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
            Self::Postgres(o) => write!(
                f,
                "postgres at {}:{}/{}",
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or_default()
            ),
            Self::Sqlite(o) => write!(f, "sqlite at {}", o.get_filename().display()),
        }
    }
}

impl DatabaseArgs {
    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            max_connections: self.db_max_connections,
            acquire_timeout: self.db_acquire_timeout,
            statement_timeout: self.db_statement_timeout,
        }
    }

    /// `DATABASE_URL`, or the content of the file `DATABASE_URL_FILE` names.
    fn database_url(&self) -> Result<Option<SecretString>, ConfigError> {
        secret_or_file(
            "DATABASE_URL",
            self.database_url.as_ref(),
            "DATABASE_URL_FILE",
            self.database_url_file.as_ref(),
        )
    }

    /// Picks the backend by the precedence in the module docs.
    pub fn target(&self) -> Result<DatabaseTarget, ConfigError> {
        if let Some(url) = self.database_url()? {
            return parse_database_url(url.expose_secret());
        }
        if let Some(host) = &self.postgres_host {
            return self.postgres_from_parts(host).map(DatabaseTarget::Postgres);
        }
        Ok(DatabaseTarget::Sqlite(
            SqliteConnectOptions::new().filename(DEFAULT_SQLITE_PATH),
        ))
    }

    /// Where PostgreSQL is, for credentials that come from Vault: user and
    /// password, if given, are replaced by Vault's.
    pub fn vault_base(&self) -> Result<PgConnectOptions, ConfigError> {
        const WHEN: &str = "when database credentials come from Vault (VAULT_ADDR)";
        if let Some(url) = self.database_url()? {
            return match parse_database_url(url.expose_secret())? {
                DatabaseTarget::Postgres(options) => Ok(options),
                DatabaseTarget::Sqlite(_) => Err(ConfigError::Invalid {
                    var: "DATABASE_URL",
                    reason: format!("must be a postgres:// URL {WHEN}"),
                }),
            };
        }
        let host = self.postgres_host.as_deref().ok_or(ConfigError::Missing {
            var: "POSTGRES_HOST (or DATABASE_URL)",
            when: WHEN,
        })?;
        let database = self.postgres_db.as_deref().ok_or(ConfigError::Missing {
            var: "POSTGRES_DB",
            when: WHEN,
        })?;
        Ok(PgConnectOptions::new_without_pgpass()
            .host(host)
            .port(self.postgres_port)
            .database(database)
            .ssl_mode(self.postgres_sslmode))
    }

    fn postgres_from_parts(&self, host: &str) -> Result<PgConnectOptions, ConfigError> {
        const WHEN: &str = "when POSTGRES_HOST is set";
        let user = secret_or_file(
            "POSTGRES_USER",
            self.postgres_user.clone().map(SecretString::from).as_ref(),
            "POSTGRES_USER_FILE",
            self.postgres_user_file.as_ref(),
        )?
        .ok_or(ConfigError::Missing {
            var: "POSTGRES_USER",
            when: WHEN,
        })?;
        let password = secret_or_file(
            "POSTGRES_PASSWORD",
            self.postgres_password.as_ref(),
            "POSTGRES_PASSWORD_FILE",
            self.postgres_password_file.as_ref(),
        )?
        .ok_or(ConfigError::Missing {
            var: "POSTGRES_PASSWORD",
            when: WHEN,
        })?;
        let user = user.expose_secret();
        let database = self.postgres_db.as_deref().unwrap_or(user);
        Ok(PgConnectOptions::new_without_pgpass()
            .host(host)
            .port(self.postgres_port)
            .username(user)
            .password(password.expose_secret())
            .database(database)
            .ssl_mode(self.postgres_sslmode))
    }
}

/// The value of `var`, or the content of the file named by `file_var`.
fn secret_or_file(
    var: &'static str,
    value: Option<&SecretString>,
    file_var: &'static str,
    file: Option<&PathBuf>,
) -> Result<Option<SecretString>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(ConfigError::Conflict(var, file_var)),
        (Some(value), None) => Ok(Some(value.clone())),
        (None, Some(path)) => read_secret_file(file_var, path).map(Some),
        (None, None) => Ok(None),
    }
}

/// Parses a `postgres://`, `postgresql://` or `sqlite:` URL. Errors describe
/// the problem without echoing the URL, which may hold a password.
fn parse_database_url(url: &str) -> Result<DatabaseTarget, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        var: "DATABASE_URL",
        reason,
    };
    let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
    match scheme {
        "postgres" | "postgresql" => {
            check_unambiguous(url).map_err(invalid)?;
            url::Url::parse(url).map_err(|e| invalid(format!("not a valid URL: {e}")))?;
            PgConnectOptions::from_str(url)
                .map(DatabaseTarget::Postgres)
                .map_err(|_| invalid("not a valid PostgreSQL URL".to_owned()))
        }
        "sqlite" => SqliteConnectOptions::from_str(url)
            .map(DatabaseTarget::Sqlite)
            .map_err(|_| invalid("not a valid SQLite URL".to_owned())),
        _ => Err(invalid(
            "unsupported scheme; use postgres://user:password@host:port/db or sqlite://path"
                .to_owned(),
        )),
    }
}

/// Refuses a PostgreSQL URL that parsers would read differently from what
/// was meant: a password holding an unencoded `#` makes the rest a
/// fragment, and an unencoded `@`, `/` or `?` in it moves the host into the
/// password or the password into the host (which the log then shows). A
/// connection URL has no fragment and exactly one `@`, before the host.
fn check_unambiguous(url: &str) -> Result<(), String> {
    const ENCODE: &str = "percent-encode them in the user name and password \
                          ('@' as %40, '#' as %23, '/' as %2F, '?' as %3F)";
    if url.contains('#') {
        return Err(format!(
            "contains '#', which starts a URL fragment; {ENCODE}"
        ));
    }
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if authority.matches('@').count() > 1 || tail.contains('@') {
        return Err(format!(
            "has an '@' other than the one before the host; {ENCODE}"
        ));
    }
    Ok(())
}

/// Accepts `5432` and the `tcp://10.0.0.7:5432` value Kubernetes injects into
/// `POSTGRES_PORT` when a Service named `postgres` exists in the namespace.
pub fn parse_postgres_port(raw: &str) -> Result<u16, String> {
    let port = raw.strip_prefix("tcp://").map_or(raw, |addr| {
        addr.rsplit_once(':').map_or("", |(_, port)| port)
    });
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err("expected a port number (1-65535) or tcp://host:port".to_owned()),
    }
}

fn parse_ssl_mode(raw: &str) -> Result<PgSslMode, String> {
    PgSslMode::from_str(raw).map_err(|_| {
        "expected disable, allow, prefer, require, verify-ca or verify-full".to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(flags: &[&str]) -> DatabaseArgs {
        let mut argv = vec!["student-api"];
        argv.extend_from_slice(flags);
        crate::config::Cli::try_parse_from(argv).unwrap().database
    }

    #[test]
    fn sqlite_file_in_data_dir_is_the_default() {
        let target = args(&[]).target().unwrap();
        assert_eq!(target.to_string(), "sqlite at ./data/students.db");
    }

    #[test]
    fn database_url_selects_the_backend() {
        let pg = args(&["--database-url=postgres://u:pw@db.internal:6543/school"])
            .target()
            .unwrap();
        assert_eq!(pg.to_string(), "postgres at db.internal:6543/school");
        let lite = args(&["--database-url=sqlite:///tmp/x.db"])
            .target()
            .unwrap();
        assert_eq!(lite.to_string(), "sqlite at /tmp/x.db");
    }

    #[test]
    fn database_url_errors_never_echo_the_url() {
        let err = args(&["--database-url=mysql://u:hunter2hunter2@h/db"])
            .target()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("DATABASE_URL: unsupported scheme"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = args(&["--database-url=postgres://u:hunter2hunter2@h:notaport/db"])
            .target()
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
            let err = args(&[&format!("--database-url={url}")])
                .target()
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
            args(&["--database-url=postgres://app:p%40ss%23w%2Fd@db.internal:5432/school"])
                .target()
                .unwrap();
        assert_eq!(target.to_string(), "postgres at db.internal:5432/school");
    }

    #[test]
    fn postgres_parts_are_used_when_host_is_set() {
        let target = args(&[
            "--postgres-host=pg",
            "--postgres-user=app",
            "--postgres-password=pw",
            "--postgres-port=tcp://10.96.0.12:5433",
        ])
        .target()
        .unwrap();
        assert_eq!(target.to_string(), "postgres at pg:5433/app");
    }

    #[test]
    fn postgres_parts_name_the_missing_variable() {
        let err = args(&["--postgres-host=pg", "--postgres-password=pw"])
            .target()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "POSTGRES_USER is required when POSTGRES_HOST is set"
        );
        let err = args(&["--postgres-host=pg", "--postgres-user=app"])
            .target()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "POSTGRES_PASSWORD is required when POSTGRES_HOST is set"
        );
    }

    #[test]
    fn a_value_and_its_file_variant_conflict() {
        let err = args(&[
            "--database-url=sqlite://a.db",
            "--database-url-file=/run/secrets/url",
        ])
        .target()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "DATABASE_URL and DATABASE_URL_FILE are both set; set only one of them"
        );
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let target = args(&["--database-url=postgres://u:hunter2hunter2@h/db"])
            .target()
            .unwrap();
        assert!(!format!("{target:?}").contains("hunter2"));
    }

    #[test]
    fn kubernetes_service_link_port_is_accepted() {
        assert_eq!(parse_postgres_port("5432"), Ok(5432));
        assert_eq!(parse_postgres_port("tcp://10.96.0.12:5432"), Ok(5432));
        assert!(parse_postgres_port("tcp://10.96.0.12").is_err());
        assert!(parse_postgres_port("0").is_err());
        assert!(parse_postgres_port("http").is_err());
    }
}
