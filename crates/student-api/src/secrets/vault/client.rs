//! The few Vault (OpenBao) HTTP API calls the service makes.
//!
//! Rules: a token travels only in the `X-Vault-Token` header and is never
//! part of an error; an error says which operation failed, and whether
//! Vault refused it (4xx, permanent until someone changes Vault) or could
//! not be asked (network, 5xx, sealed: worth retrying).

use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use crate::config::VaultConfig;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("cannot reach Vault for {operation}: {source}")]
    Unreachable {
        operation: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Vault refused {operation} (HTTP {status}): {message}")]
    Refused {
        operation: String,
        status: u16,
        message: String,
    },
    #[error("Vault is not available for {operation} (HTTP {status}): {message}")]
    Unavailable {
        operation: String,
        status: u16,
        message: String,
    },
    #[error("unexpected answer from Vault to {operation}: {reason}")]
    Malformed { operation: String, reason: String },
    #[error("cannot set up the Vault client: {0}")]
    Setup(String),
}

impl VaultError {
    /// Retrying will not help until Vault's configuration changes.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }
}

/// A token or lease with the time Vault granted it.
#[derive(Debug, Clone)]
pub struct Grant {
    pub lease_duration: Duration,
    pub renewable: bool,
}

#[derive(Debug)]
pub struct TokenGrant {
    pub token: SecretString,
    pub grant: Grant,
}

#[derive(Debug)]
pub struct DatabaseLease {
    pub lease_id: String,
    pub grant: Grant,
    pub username: String,
    pub password: SecretString,
}

#[derive(Debug)]
pub struct KvCredentials {
    pub username: String,
    pub password: SecretString,
    pub version: u64,
}

#[derive(Debug, Clone)]
pub struct VaultClient {
    http: reqwest::Client,
    addr: Url,
    /// Per [`LeaseOperation`], the [`LeaseForm`] that last worked (0: none yet).
    lease_forms: Arc<[AtomicU8; 2]>,
}

/// A call on a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeaseOperation {
    Renew = 0,
    Revoke = 1,
}

impl LeaseOperation {
    /// The body form's path; the URL form appends `/<lease_id>`.
    fn path(self) -> &'static str {
        match self {
            Self::Renew => "sys/leases/renew",
            Self::Revoke => "sys/leases/revoke",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Renew => "renewal",
            Self::Revoke => "revocation",
        }
    }
}

/// Where the lease id goes: the URL's path, or the JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeaseForm {
    Url = 1,
    Body = 2,
}

impl LeaseForm {
    fn from_u8(raw: u8) -> Option<Self> {
        match raw {
            1 => Some(Self::Url),
            2 => Some(Self::Body),
            _ => None,
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Url => Self::Body,
            Self::Body => Self::Url,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Url => "lease id in the path",
            Self::Body => "lease id in the body",
        }
    }
}

#[derive(Deserialize)]
struct AuthBody {
    auth: AuthData,
}

#[derive(Deserialize)]
struct AuthData {
    client_token: String,
    lease_duration: u64,
    renewable: bool,
}

#[derive(Deserialize)]
struct LookupBody {
    data: LookupData,
}

#[derive(Deserialize)]
struct LookupData {
    ttl: u64,
    renewable: bool,
}

#[derive(Deserialize)]
struct LeaseBody<T> {
    #[serde(default)]
    lease_id: String,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
    data: Option<T>,
}

#[derive(Deserialize)]
struct UserPassword {
    username: String,
    password: String,
}

#[derive(Deserialize)]
struct KvData {
    data: Option<UserPassword>,
    metadata: KvMetadata,
}

#[derive(Deserialize)]
struct KvMetadata {
    version: u64,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<String>,
}

impl VaultClient {
    pub fn new(config: &VaultConfig) -> Result<Self, VaultError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("student-api/", env!("CARGO_PKG_VERSION")))
            .use_preconfigured_tls(tls_config(config.ca_cert.as_deref())?)
            .build()
            .map_err(|e| VaultError::Setup(e.to_string()))?;
        let mut addr = config.addr.clone();
        // Url::join replaces the last segment unless the base ends with '/'.
        if !addr.path().ends_with('/') {
            addr.set_path(&format!("{}/", addr.path()));
        }
        Ok(Self {
            http,
            addr,
            lease_forms: Arc::default(),
        })
    }

    /// Logs in with a Kubernetes service-account token.
    pub async fn login_kubernetes(
        &self,
        mount: &str,
        role: &str,
        jwt: &SecretString,
    ) -> Result<TokenGrant, VaultError> {
        let body = json!({ "role": role, "jwt": jwt.expose_secret() });
        let path = format!("auth/{mount}/login");
        let answer: AuthBody = self.call(Method::POST, &path, None, Some(&body)).await?;
        Ok(token_grant(answer.auth))
    }

    /// What Vault knows of a token it did not issue to us by a login.
    pub async fn lookup_self(&self, token: &SecretString) -> Result<Grant, VaultError> {
        let answer: LookupBody = self
            .call(Method::GET, "auth/token/lookup-self", Some(token), None)
            .await?;
        Ok(Grant {
            lease_duration: Duration::from_secs(answer.data.ttl),
            renewable: answer.data.renewable,
        })
    }

    pub async fn renew_self(&self, token: &SecretString) -> Result<TokenGrant, VaultError> {
        let answer: AuthBody = self
            .call(
                Method::POST,
                "auth/token/renew-self",
                Some(token),
                Some(&json!({})),
            )
            .await?;
        Ok(token_grant(answer.auth))
    }

    /// Issues a new database user from a database secrets engine role.
    pub async fn database_credentials(
        &self,
        token: &SecretString,
        path: &str,
    ) -> Result<DatabaseLease, VaultError> {
        let answer: LeaseBody<UserPassword> =
            self.call(Method::GET, path, Some(token), None).await?;
        let data = answer.data.ok_or_else(|| malformed(path, "no data"))?;
        if answer.lease_id.is_empty() {
            return Err(malformed(
                path,
                "no lease; is this a database secrets engine role?",
            ));
        }
        Ok(DatabaseLease {
            lease_id: answer.lease_id,
            grant: Grant {
                lease_duration: Duration::from_secs(answer.lease_duration),
                renewable: answer.renewable,
            },
            username: data.username,
            password: SecretString::from(data.password),
        })
    }

    /// Extends a lease by `increment`; Vault may grant less (its max TTL).
    pub async fn renew_lease(
        &self,
        token: &SecretString,
        lease_id: &str,
        increment: Duration,
    ) -> Result<Grant, VaultError> {
        let increment = increment.as_secs();
        let answer: LeaseBody<serde_json::Value> = self
            .lease_call(token, LeaseOperation::Renew, lease_id, |form| match form {
                LeaseForm::Url => json!({ "increment": increment }),
                LeaseForm::Body => json!({ "lease_id": lease_id, "increment": increment }),
            })
            .await?
            .json()
            .await
            .map_err(|e| VaultError::Malformed {
                operation: LeaseOperation::Renew.path().to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Grant {
            lease_duration: Duration::from_secs(answer.lease_duration),
            renewable: answer.renewable,
        })
    }

    pub async fn revoke_lease(
        &self,
        token: &SecretString,
        lease_id: &str,
    ) -> Result<(), VaultError> {
        self.lease_call(token, LeaseOperation::Revoke, lease_id, |form| match form {
            LeaseForm::Url => json!({}),
            LeaseForm::Body => json!({ "lease_id": lease_id }),
        })
        .await
        .map(drop)
    }

    /// Renews or revokes a lease in the form the token's policy allows.
    ///
    /// The URL form (`sys/leases/renew/<lease_id>`) lets a policy grant
    /// this only for the role's own leases, as the project's policy does;
    /// most guides (and the official Go client) grant the body form
    /// (`sys/leases/renew` with the id in the body). The form that last
    /// worked goes first; a 403 tries the other, and a change of the form
    /// that works is logged once.
    async fn lease_call(
        &self,
        token: &SecretString,
        operation: LeaseOperation,
        lease_id: &str,
        body: impl Fn(LeaseForm) -> serde_json::Value,
    ) -> Result<reqwest::Response, VaultError> {
        let known = &self.lease_forms[operation as usize];
        let first = LeaseForm::from_u8(known.load(Ordering::Relaxed)).unwrap_or(LeaseForm::Url);
        let mut result = Err(malformed(operation.path(), "not sent"));
        for form in [first, first.other()] {
            let path = match form {
                LeaseForm::Url => format!("{}/{lease_id}", operation.path()),
                LeaseForm::Body => operation.path().to_owned(),
            };
            result = self
                .send(Method::PUT, &path, Some(token), Some(&body(form)))
                .await;
            match &result {
                Ok(_) => {
                    let before = known.swap(form as u8, Ordering::Relaxed);
                    if before != form as u8 {
                        tracing::info!(
                            path = operation.path(),
                            form = form.name(),
                            "Vault lease {} works in this form; using it from now on",
                            operation.name()
                        );
                    }
                    break;
                }
                Err(VaultError::Refused { status: 403, .. }) => {}
                Err(_) => break,
            }
        }
        result
    }

    /// Reads `username` and `password` from a KV v2 secret.
    pub async fn kv_credentials(
        &self,
        token: &SecretString,
        mount: &str,
        path: &str,
    ) -> Result<KvCredentials, VaultError> {
        let api_path = format!("{mount}/data/{path}");
        let answer: LeaseBody<KvData> =
            self.call(Method::GET, &api_path, Some(token), None).await?;
        let kv = answer.data.ok_or_else(|| malformed(&api_path, "no data"))?;
        let data = kv
            .data
            .ok_or_else(|| malformed(&api_path, "the latest version is deleted"))?;
        Ok(KvCredentials {
            username: data.username,
            password: SecretString::from(data.password),
            version: kv.metadata.version,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&SecretString>,
        body: Option<&serde_json::Value>,
    ) -> Result<T, VaultError> {
        let response = self.send(method, path, token, body).await?;
        response
            .json::<T>()
            .await
            .map_err(|e| VaultError::Malformed {
                operation: path.to_owned(),
                // serde's message names the missing field, never a value.
                reason: e.to_string(),
            })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&SecretString>,
        body: Option<&serde_json::Value>,
    ) -> Result<reqwest::Response, VaultError> {
        let url = self
            .addr
            .join(&format!("v1/{path}"))
            .map_err(|e| malformed(path, &e.to_string()))?;
        let mut request = self.http.request(method, url);
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token.expose_secret());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|source| VaultError::Unreachable {
                operation: path.to_owned(),
                source: source.without_url(),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let message = response
            .json::<ErrorBody>()
            .await
            .ok()
            .filter(|b| !b.errors.is_empty())
            .map_or_else(|| "no error message".to_owned(), |b| b.errors.join("; "));
        let operation = path.to_owned();
        let status_code = status.as_u16();
        // 429 (standby or rate limit) and 5xx (sealed, unavailable) pass.
        if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
            Err(VaultError::Refused {
                operation,
                status: status_code,
                message,
            })
        } else {
            Err(VaultError::Unavailable {
                operation,
                status: status_code,
                message,
            })
        }
    }
}

/// TLS to Vault: rustls with ring (the crypto of every TLS connection the
/// service makes), trusting the public web roots and `VAULT_CACERT`.
fn tls_config(ca_cert: Option<&Path>) -> Result<rustls::ClientConfig, VaultError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_cert {
        let not_pem = |e: &dyn std::fmt::Display| {
            VaultError::Setup(format!("{} is not a PEM certificate: {e}", path.display()))
        };
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| not_pem(&e))?;
        if certs.is_empty() {
            return Err(not_pem(&"no certificate in it"));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| not_pem(&e))?;
        }
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| VaultError::Setup(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn token_grant(auth: AuthData) -> TokenGrant {
    TokenGrant {
        token: SecretString::from(auth.client_token),
        grant: Grant {
            lease_duration: Duration::from_secs(auth.lease_duration),
            renewable: auth.renewable,
        },
    }
}

fn malformed(operation: &str, reason: &str) -> VaultError {
    VaultError::Malformed {
        operation: operation.to_owned(),
        reason: reason.to_owned(),
    }
}
