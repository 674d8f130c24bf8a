//! The few Vault (OpenBao) HTTP API calls the service makes.
//!
//! Rules: a token travels only in the `X-Vault-Token` header and is never
//! part of an error; an error says which operation failed, and whether
//! Vault refused it (4xx, permanent until someone changes Vault) or could
//! not be asked (network, 5xx, sealed: worth retrying).

use std::time::Duration;

use reqwest::{Method, StatusCode};
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
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("student-api/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| VaultError::Setup(format!("cannot read {}: {e}", path.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                VaultError::Setup(format!("{} is not a PEM certificate: {e}", path.display()))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| VaultError::Setup(e.to_string()))?;
        let mut addr = config.addr.clone();
        // Url::join replaces the last segment unless the base ends with '/'.
        if !addr.path().ends_with('/') {
            addr.set_path(&format!("{}/", addr.path()));
        }
        Ok(Self { http, addr })
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
        let body = json!({ "increment": increment.as_secs() });
        // The lease id in the path (not the body) lets a policy grant
        // renewal of this role's leases only.
        let path = format!("sys/leases/renew/{lease_id}");
        let answer: LeaseBody<serde_json::Value> = self
            .call(Method::PUT, &path, Some(token), Some(&body))
            .await?;
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
        let path = format!("sys/leases/revoke/{lease_id}");
        self.call_no_content(Method::PUT, &path, Some(token)).await
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

    async fn call_no_content(
        &self,
        method: Method,
        path: &str,
        token: Option<&SecretString>,
    ) -> Result<(), VaultError> {
        self.send(method, path, token, None).await.map(drop)
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
