//! Where database credentials come from when they are not fixed at start:
//! Vault (OpenBao) settings, and how often mounted secret files are re-read.
//!
//! Rules: Vault is used exactly when `VAULT_ADDR` is set; then one way to
//! authenticate and one kind of secret must be chosen, and the database must
//! be PostgreSQL. Tokens stay in [`SecretString`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secrecy::SecretString;
use url::Url;

use super::{parse_duration, read_secret_file, ConfigError};

/// Where Kubernetes mounts a pod's projected service-account token.
pub const DEFAULT_K8S_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

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

impl CredentialArgs {
    /// The Vault settings, or `None` when `VAULT_ADDR` is not set.
    pub fn vault(&self) -> Result<Option<VaultConfig>, ConfigError> {
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
                path: clean_path("VAULT_DB_CREDS_PATH", path)?,
            }),
            (None, Some(path)) => {
                let (mount, path) = kv_v2_path(&clean_path("VAULT_KV_PATH", path)?)?;
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

/// Trims slashes and refuses empty or relative segments.
fn clean_path(var: &'static str, raw: &str) -> Result<String, ConfigError> {
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
fn kv_v2_path(path: &str) -> Result<(String, String), ConfigError> {
    let (mount, rest) = match path.split_once("/data/") {
        Some((mount, rest)) => (mount, rest),
        None => path.split_once('/').ok_or(ConfigError::Invalid {
            var: "VAULT_KV_PATH",
            reason: "expected mount/path, e.g. secret/student-api/db".to_owned(),
        })?,
    };
    Ok((mount.to_owned(), rest.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn vault(flags: &[&str]) -> Result<Option<VaultConfig>, ConfigError> {
        let mut argv = vec!["student-api"];
        argv.extend_from_slice(flags);
        crate::config::Cli::try_parse_from(argv)
            .unwrap()
            .credentials
            .vault()
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
                    refresh: Duration::from_secs(60),
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
