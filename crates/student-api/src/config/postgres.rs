//! Which database to use and how to reach PostgreSQL, as plain data.
//!
//! Precedence: `DATABASE_URL` (or `DATABASE_URL_FILE`); else PostgreSQL from
//! `POSTGRES_*` when `POSTGRES_HOST` is set; else the embedded SQLite file
//! `./data/students.db`. [`TargetSource`] records where each value comes
//! from (given, or a `*_FILE` to read), so that the secret files are named
//! in one place and re-reading them resolves by the same rules as at start.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use sqlx::sqlite::SqliteConnectOptions;
use url::Url;

use super::{read_secret_file, ConfigError, DatabaseTarget, DEFAULT_SQLITE_PATH};

/// The connection parameters a `postgres://` URL may carry.
const URL_PARAMETERS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "host",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
];

/// TLS to PostgreSQL, with libpq's meaning for each mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    Allow,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        Ok(match raw {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => {
                return Err(
                    "expected disable, allow, prefer, require, verify-ca or verify-full".to_owned(),
                )
            }
        })
    }
}

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostgresHost {
    /// A host name or an IP address.
    Tcp(String),
    /// The directory of a Unix socket.
    Socket(PathBuf),
}

/// A PostgreSQL server, a database and a login. `Debug` shows no password.
#[derive(Clone)]
pub struct PostgresTarget {
    pub host: PostgresHost,
    pub port: u16,
    pub user: String,
    pub password: Option<SecretString>,
    /// The user name when not set (as libpq does).
    pub database: Option<String>,
    pub ssl_mode: SslMode,
    /// `sslrootcert`: a PEM file, or PEM text given inline.
    pub ssl_root_cert: Option<String>,
    pub application_name: Option<String>,
}

impl PostgresTarget {
    /// The database to connect to.
    pub fn database(&self) -> &str {
        self.database.as_deref().unwrap_or(&self.user)
    }

    /// The same server and database, as another user.
    #[must_use]
    pub fn with_login(&self, user: &str, password: &SecretString) -> Self {
        Self {
            database: Some(self.database().to_owned()),
            user: user.to_owned(),
            password: Some(password.clone()),
            ..self.clone()
        }
    }
}

impl PartialEq for PostgresTarget {
    fn eq(&self, other: &Self) -> bool {
        let password = |t: &Self| t.password.as_ref().map(|p| p.expose_secret().to_owned());
        self.host == other.host
            && self.port == other.port
            && self.user == other.user
            && password(self) == password(other)
            && self.database == other.database
            && self.ssl_mode == other.ssl_mode
            && self.ssl_root_cert == other.ssl_root_cert
            && self.application_name == other.application_name
    }
}

impl fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Postgres")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database())
            .field("user", &self.user)
            .field("ssl_mode", &self.ssl_mode)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for PostgresTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.host {
            PostgresHost::Tcp(host) => host.clone(),
            PostgresHost::Socket(dir) => dir.display().to_string(),
        };
        write!(f, "postgres at {host}:{}/{}", self.port, self.database())
    }
}

/// A setting given directly, or the file that holds it (`*_FILE`).
#[derive(Debug, Clone)]
pub enum Value {
    Given(SecretString),
    File { var: &'static str, path: PathBuf },
}

impl Value {
    /// The value, from `var` or from the file `file_var` names; both set is an error.
    pub fn either(
        var: &'static str,
        value: Option<SecretString>,
        file_var: &'static str,
        file: Option<PathBuf>,
    ) -> Result<Option<Self>, ConfigError> {
        match (value, file) {
            (Some(_), Some(_)) => Err(ConfigError::Conflict(var, file_var)),
            (Some(value), None) => Ok(Some(Self::Given(value))),
            (None, Some(path)) => Ok(Some(Self::File {
                var: file_var,
                path,
            })),
            (None, None) => Ok(None),
        }
    }

    fn read(&self) -> Result<SecretString, ConfigError> {
        match self {
            Self::Given(value) => Ok(value.clone()),
            Self::File { var, path } => read_secret_file(var, path),
        }
    }

    fn is_file(&self) -> bool {
        matches!(self, Self::File { .. })
    }
}

/// Where the database settings come from: the rules of the module docs,
/// with each secret given or named by its file.
#[derive(Debug, Clone)]
pub enum TargetSource {
    /// `DATABASE_URL` or `DATABASE_URL_FILE`.
    Url(Value),
    /// `POSTGRES_HOST` and the other `POSTGRES_*` variables.
    Parts {
        host: String,
        port: u16,
        user: Option<Value>,
        password: Option<Value>,
        database: Option<String>,
        ssl_mode: SslMode,
    },
    /// Nothing set: the embedded SQLite file.
    Embedded,
}

impl TargetSource {
    /// True when some database secret is read from a file (and so may
    /// change while the service runs).
    pub fn uses_files(&self) -> bool {
        match self {
            Self::Url(url) => url.is_file(),
            Self::Parts { user, password, .. } => {
                user.as_ref().is_some_and(Value::is_file)
                    || password.as_ref().is_some_and(Value::is_file)
            }
            Self::Embedded => false,
        }
    }

    /// Reads what is to be read (files included) and builds the target.
    pub fn resolve(&self) -> Result<DatabaseTarget, ConfigError> {
        match self {
            Self::Url(url) => parse_database_url(url.read()?.expose_secret()),
            Self::Parts {
                host,
                port,
                user,
                password,
                database,
                ssl_mode,
            } => {
                const WHEN: &str = "when POSTGRES_HOST is set";
                let user = user.as_ref().ok_or(ConfigError::Missing {
                    var: "POSTGRES_USER",
                    when: WHEN,
                })?;
                let password = password.as_ref().ok_or(ConfigError::Missing {
                    var: "POSTGRES_PASSWORD",
                    when: WHEN,
                })?;
                Ok(DatabaseTarget::Postgres(PostgresTarget {
                    host: PostgresHost::Tcp(host.clone()),
                    port: *port,
                    user: user.read()?.expose_secret().to_owned(),
                    password: Some(password.read()?),
                    database: database.clone(),
                    ssl_mode: *ssl_mode,
                    ssl_root_cert: None,
                    application_name: None,
                }))
            }
            Self::Embedded => Ok(DatabaseTarget::Sqlite(
                SqliteConnectOptions::new().filename(DEFAULT_SQLITE_PATH),
            )),
        }
    }

    /// Like [`Self::resolve`], for a running PostgreSQL store: another
    /// backend is an error.
    pub fn resolve_postgres(&self) -> Result<PostgresTarget, ConfigError> {
        match self.resolve()? {
            DatabaseTarget::Postgres(target) => Ok(target),
            DatabaseTarget::Sqlite(_) => Err(ConfigError::Invalid {
                var: "DATABASE_URL_FILE",
                reason: "now names an SQLite database; a running service cannot change backends"
                    .to_owned(),
            }),
        }
    }

    /// Where PostgreSQL is, for credentials that come from Vault: user and
    /// password, if given, are left out (Vault supplies them).
    pub fn vault_base(&self) -> Result<PostgresTarget, ConfigError> {
        const WHEN: &str = "when database credentials come from Vault (VAULT_ADDR)";
        match self {
            Self::Url(url) => match parse_database_url(url.read()?.expose_secret())? {
                DatabaseTarget::Postgres(target) => Ok(PostgresTarget {
                    database: Some(target.database().to_owned()),
                    user: String::new(),
                    password: None,
                    ..target
                }),
                DatabaseTarget::Sqlite(_) => Err(ConfigError::Invalid {
                    var: "DATABASE_URL",
                    reason: format!("must be a postgres:// URL {WHEN}"),
                }),
            },
            Self::Parts {
                host,
                port,
                database,
                ssl_mode,
                ..
            } => {
                let database = database.clone().ok_or(ConfigError::Missing {
                    var: "POSTGRES_DB",
                    when: WHEN,
                })?;
                Ok(PostgresTarget {
                    host: PostgresHost::Tcp(host.clone()),
                    port: *port,
                    user: String::new(),
                    password: None,
                    database: Some(database),
                    ssl_mode: *ssl_mode,
                    ssl_root_cert: None,
                    application_name: None,
                })
            }
            Self::Embedded => Err(ConfigError::Missing {
                var: "POSTGRES_HOST (or DATABASE_URL)",
                when: WHEN,
            }),
        }
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
            let parsed = Url::parse(url).map_err(|e| invalid(format!("not a valid URL: {e}")))?;
            postgres_from_url(&parsed)
                .map(DatabaseTarget::Postgres)
                .map_err(invalid)
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

/// The target a parsed `postgres://` URL names, with libpq's defaults.
fn postgres_from_url(url: &Url) -> Result<PostgresTarget, String> {
    let decode = |raw: &str| {
        percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map(std::borrow::Cow::into_owned)
            .map_err(|_| "is not UTF-8 once percent-decoded".to_owned())
    };
    let mut target = PostgresTarget {
        host: PostgresHost::Tcp(
            url.host_str()
                .filter(|h| !h.is_empty())
                .unwrap_or("localhost")
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        ),
        port: url.port().unwrap_or(5432),
        user: decode(url.username())?,
        password: url
            .password()
            .map(decode)
            .transpose()?
            .map(SecretString::from),
        database: Some(decode(url.path().trim_start_matches('/'))?).filter(|d| !d.is_empty()),
        ssl_mode: SslMode::default(),
        ssl_root_cert: None,
        application_name: None,
    };
    for (key, value) in url.query_pairs() {
        let value = value.into_owned();
        match key.as_ref() {
            "sslmode" => target.ssl_mode = value.parse().map_err(|e| format!("sslmode: {e}"))?,
            "sslrootcert" => target.ssl_root_cert = Some(value),
            "host" if value.starts_with('/') => target.host = PostgresHost::Socket(value.into()),
            "host" => target.host = PostgresHost::Tcp(value),
            "port" => {
                target.port = parse_postgres_port(&value).map_err(|e| format!("port: {e}"))?;
            }
            "dbname" => target.database = Some(value),
            "user" => target.user = value,
            "password" => target.password = Some(SecretString::from(value)),
            "application_name" => target.application_name = Some(value),
            other => {
                // The key only: a value could be a secret.
                return Err(format!(
                    "unsupported connection parameter {other:?}; supported: {}",
                    URL_PARAMETERS.join(", ")
                ));
            }
        }
    }
    if target.user.is_empty() {
        return Err("names no user (postgres://user:password@host/db)".to_owned());
    }
    Ok(target)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn url(raw: &str) -> Result<DatabaseTarget, ConfigError> {
        TargetSource::Url(Value::Given(SecretString::from(raw))).resolve()
    }

    fn postgres(raw: &str) -> PostgresTarget {
        match url(raw).unwrap() {
            DatabaseTarget::Postgres(target) => target,
            DatabaseTarget::Sqlite(_) => panic!("not PostgreSQL"),
        }
    }

    #[test]
    fn every_part_of_a_postgres_url_is_read_and_decoded() {
        let target = postgres(
            "postgresql://app:p%40ss%3Aw%2Frd%25@db.internal:6543/students?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=x",
        );
        assert_eq!(target.host, PostgresHost::Tcp("db.internal".to_owned()));
        assert_eq!(target.port, 6543);
        assert_eq!(target.user, "app");
        assert_eq!(
            target.password.as_ref().unwrap().expose_secret(),
            "p@ss:w/rd%"
        );
        assert_eq!(target.database(), "students");
        assert_eq!(target.ssl_mode, SslMode::VerifyFull);
        assert_eq!(target.ssl_root_cert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(target.application_name.as_deref(), Some("x"));
    }

    #[test]
    fn libpq_defaults_apply_to_what_the_url_leaves_out() {
        let target = postgres("postgres://app@[::1]");
        assert_eq!(target.host, PostgresHost::Tcp("::1".to_owned()));
        assert_eq!(target.port, 5432);
        assert_eq!(target.database(), "app");
        assert_eq!(target.ssl_mode, SslMode::Prefer);
        assert!(target.password.is_none());
        let socket = postgres("postgres:///school?host=/run/postgresql&user=app");
        assert_eq!(socket.host, PostgresHost::Socket("/run/postgresql".into()));
    }

    #[test]
    fn an_unknown_parameter_is_refused_by_name_without_its_value() {
        let err = url("postgres://u:pw@h/db?sslkey=hunter2hunter2")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("DATABASE_URL: unsupported connection parameter \"sslkey\""),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        assert!(url("postgres://u:pw@h/db?sslmode=sometimes").is_err());
    }

    #[test]
    fn the_vault_base_keeps_the_place_and_drops_the_login() {
        let source = TargetSource::Url(Value::Given(SecretString::from(
            "postgres://u:pw@h:1234/db?sslmode=require",
        )));
        let base = source.vault_base().unwrap();
        assert_eq!(base.to_string(), "postgres at h:1234/db");
        assert!(base.password.is_none());
        let login = base.with_login("v-user", &SecretString::from("pw2"));
        assert_eq!(login.user, "v-user");
        assert_eq!(login.database(), "db");
        assert_eq!(login.ssl_mode, SslMode::Require);
    }

    #[test]
    fn targets_compare_by_password_too() {
        let a = postgres("postgres://u:one@h/db");
        assert_eq!(a, postgres("postgres://u:one@h/db"));
        assert_ne!(a, postgres("postgres://u:two@h/db"));
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
