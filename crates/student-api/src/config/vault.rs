//! Vault (OpenBao) settings: where it is, how the service authenticates,
//! and which secret holds the database credentials.
//!
//! Rules: Vault is used exactly when `VAULT_ADDR` is set; then one way to
//! authenticate and one kind of secret must be chosen, and the database must
//! be PostgreSQL. Tokens stay in [`SecretString`].

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::ConfigError;

/// Where Kubernetes mounts a pod's projected service-account token.
pub const DEFAULT_K8S_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// How the service proves itself to Vault.
#[derive(Debug, Clone)]
pub enum VaultAuth {
    Token(SecretString),
    /// The token is re-read from this file whenever it is needed anew.
    TokenFile(PathBuf),
    Kubernetes {
        role: String,
        mount: String,
        jwt_file: PathBuf,
    },
}

/// Which Vault secret holds the database credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultSecret {
    /// A database secrets engine role: each read issues a new, short-lived user.
    Dynamic { path: String },
    /// A KV v2 secret, read again every `refresh`.
    Kv {
        mount: String,
        path: String,
        refresh: Duration,
    },
}

#[derive(Debug, Clone)]
pub struct VaultConfig {
    pub addr: Url,
    pub ca_cert: Option<PathBuf>,
    pub auth: VaultAuth,
    pub secret: VaultSecret,
    pub timeout: Duration,
}

/// Trims slashes and refuses empty or relative segments.
pub fn vault_path(var: &'static str, raw: &str) -> Result<String, ConfigError> {
    let path = raw.trim_matches('/');
    if path.is_empty()
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(ConfigError::Invalid {
            var,
            reason: "expected a Vault path such as mount/name".to_owned(),
        });
    }
    Ok(path.to_owned())
}

/// Splits a KV v2 path into its mount and the secret's path inside it. The
/// logical form `secret/student-api/db` (the CLI's) and the API form
/// `secret/data/student-api/db` are both accepted.
pub fn kv_v2_path(path: &str) -> Result<(String, String), ConfigError> {
    let (mount, rest) = match path.split_once("/data/") {
        Some((mount, rest)) => (mount, rest),
        None => path.split_once('/').ok_or(ConfigError::Invalid {
            var: "VAULT_KV_PATH",
            reason: "expected mount/path, e.g. secret/student-api/db".to_owned(),
        })?,
    };
    Ok((mount.to_owned(), rest.to_owned()))
}
