//! Database credentials from Vault (OpenBao): a dynamic user from a
//! database secrets engine role, or a static one from a KV v2 secret.
//!
//! One task keeps everything alive: it renews the Vault token at two thirds
//! of its lifetime (logging in again, or re-reading the token file, when
//! renewal no longer extends it), renews the database lease the same way,
//! and issues a new user before the lease reaches its maximum TTL. A new user
//! replaces the old one in the pool only after it has logged in; the old
//! lease is revoked once the pool holds none of its connections. Because
//! Vault revokes a token's leases with the token, a new login is always
//! followed by a new database user.
//!
//! Rules: failures at start are fatal (a wrong token or role must stop the
//! rollout, loudly); failures later are retried with backoff and reported
//! through readiness, and the current credentials stay in use while they
//! still work.

mod client;
#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;
use tokio::time::Instant;

use client::{DatabaseLease, Grant};
pub use client::{VaultClient, VaultError};

use crate::config::{read_secret_file, PostgresTarget, VaultAuth, VaultConfig, VaultSecret};
use crate::credentials::{Publisher, Retired};

/// Renew at this fraction of a token's or lease's lifetime.
const RENEW_FRACTION: f64 = 2.0 / 3.0;
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often a token file is re-read once its token can no longer be renewed.
const TOKEN_FILE_RECHECK: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Token {
    value: SecretString,
    grant: Grant,
    /// The lifetime of the first grant: a renewal giving less has hit the max TTL.
    full: Duration,
    obtained: Instant,
}

impl Token {
    fn new(value: SecretString, grant: Grant) -> Self {
        Self {
            value,
            full: grant.lease_duration,
            grant,
            obtained: Instant::now(),
        }
    }

    /// `None` for a token that never expires (a lease duration of zero).
    fn refresh_at(&self) -> Option<Instant> {
        (!self.grant.lease_duration.is_zero())
            .then(|| self.obtained + self.grant.lease_duration.mul_f64(RENEW_FRACTION))
    }
}

#[derive(Debug)]
struct Lease {
    id: String,
    grant: Grant,
    full: Duration,
    obtained: Instant,
}

impl Lease {
    fn valid_until(&self) -> SystemTime {
        SystemTime::now()
            + self
                .grant
                .lease_duration
                .saturating_sub(self.obtained.elapsed())
    }

    fn refresh_at(&self) -> Instant {
        self.obtained + self.grant.lease_duration.mul_f64(RENEW_FRACTION)
    }
}

/// The state of the Vault source between refreshes.
#[derive(Debug)]
pub struct VaultSource {
    client: VaultClient,
    config: VaultConfig,
    base: PostgresTarget,
    token: Token,
    /// Dynamic mode: the lease of the user the pool connects as.
    lease: Option<Lease>,
    /// KV mode: the values the pool connects with.
    kv_seen: Option<(String, SecretString)>,
    secret_next: Instant,
    token_next: Option<Instant>,
    failures: u32,
}

/// What [`VaultSource::start`] hands to the pool first.
#[derive(Debug)]
pub struct FirstCredentials {
    pub target: PostgresTarget,
    pub valid_until: Option<SystemTime>,
}

impl VaultSource {
    /// Authenticates and fetches the first credentials. Errors are final:
    /// the caller stops the process with them.
    pub async fn start(
        config: VaultConfig,
        base: PostgresTarget,
    ) -> Result<(Self, FirstCredentials), VaultError> {
        let client = VaultClient::new(&config)?;
        let token = authenticate(&client, &config.auth).await?;
        let now = Instant::now();
        let mut source = Self {
            client,
            config,
            base,
            token,
            lease: None,
            kv_seen: None,
            secret_next: now,
            token_next: None,
            failures: 0,
        };
        source.token_next = source.token.refresh_at();
        let first = match source.config.secret.clone() {
            VaultSecret::Dynamic { path } => {
                let issued = source
                    .client
                    .database_credentials(&source.token.value, &path)
                    .await?;
                let target = source.base.with_login(&issued.username, &issued.password);
                tracing::info!(
                    path,
                    user = issued.username,
                    lease_seconds = issued.grant.lease_duration.as_secs(),
                    "database user issued by Vault"
                );
                let lease = Self::adopt(issued);
                let valid_until = Some(lease.valid_until());
                source.secret_next = lease.refresh_at();
                source.lease = Some(lease);
                FirstCredentials {
                    target,
                    valid_until,
                }
            }
            VaultSecret::Kv {
                mount,
                path,
                refresh,
            } => {
                let kv = source
                    .client
                    .kv_credentials(&source.token.value, &mount, &path)
                    .await?;
                tracing::info!(
                    path = format!("{mount}/{path}"),
                    version = kv.version,
                    user = kv.username,
                    "database credentials read from Vault"
                );
                let target = source.base.with_login(&kv.username, &kv.password);
                source.kv_seen = Some((kv.username, kv.password));
                source.secret_next = now + refresh;
                FirstCredentials {
                    target,
                    valid_until: None,
                }
            }
        };
        Ok((source, first))
    }

    /// Keeps token and credentials fresh until `stop` fires, then revokes the
    /// dynamic user (the pool is closed by then).
    pub async fn run(mut self, rotation: Publisher, mut stop: oneshot::Receiver<()>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(self.next_due()) => {}
                _ = &mut stop => break,
            }
            self.step(&rotation).await;
        }
        self.release().await;
    }

    /// When the token or the secret is next due for a refresh.
    fn next_due(&self) -> Instant {
        self.token_next
            .map_or(self.secret_next, |t| t.min(self.secret_next))
    }

    /// Refreshes whatever is due now.
    async fn step(&mut self, rotation: &Publisher) {
        if self.token_next.is_some_and(|t| t <= Instant::now()) {
            self.refresh_token(rotation).await;
        }
        if self.secret_next <= Instant::now() {
            match self.config.secret.clone() {
                VaultSecret::Dynamic { path } => self.refresh_lease(rotation, &path).await,
                VaultSecret::Kv {
                    mount,
                    path,
                    refresh,
                } => {
                    self.refresh_kv(rotation, &mount, &path).await;
                    self.secret_next = Instant::now() + refresh;
                }
            }
        }
    }

    /// Revokes the current database user, if any.
    async fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            match self.client.revoke_lease(&self.token.value, &lease.id).await {
                Ok(()) => tracing::info!(lease_id = lease.id, "database user revoked at shutdown"),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot revoke the database user at shutdown; Vault drops it when its lease expires");
                }
            }
        }
    }

    fn adopt(issued: DatabaseLease) -> Lease {
        Lease {
            id: issued.lease_id,
            full: issued.grant.lease_duration,
            grant: issued.grant,
            obtained: Instant::now(),
        }
    }

    /// Time until the next attempt after a failure: 1 s, 2 s, 4 s … 30 s.
    fn backoff(&mut self) -> Instant {
        self.failures = self.failures.saturating_add(1);
        Instant::now() + backoff_delay(self.failures)
    }

    fn succeeded(&mut self, rotation: &Publisher) {
        self.failures = 0;
        rotation.status().report_ok();
    }

    fn failed(&mut self, rotation: &Publisher, what: &str, err: &dyn std::fmt::Display) -> Instant {
        tracing::warn!(error = %err, "{what}; the current database credentials stay in use");
        rotation.status().report_problem(format!("{what}: {err}"));
        self.backoff()
    }

    async fn refresh_token(&mut self, rotation: &Publisher) {
        let renewed = if self.token.grant.renewable {
            match self.client.renew_self(&self.token.value).await {
                Ok(grant) => Some(grant.grant),
                Err(err) if err.is_refusal() => None,
                Err(err) => {
                    self.token_next =
                        Some(self.failed(rotation, "cannot renew the Vault token", &err));
                    return;
                }
            }
        } else {
            None
        };
        match renewed {
            Some(grant) if grant.lease_duration >= self.token.full => {
                self.token.grant = grant;
                self.token.obtained = Instant::now();
                self.token_next = self.token.refresh_at();
                self.succeeded(rotation);
                return;
            }
            Some(grant) => {
                // Capped by the token's max TTL: keep it, but replace it now.
                self.token.grant = grant;
                self.token.obtained = Instant::now();
            }
            None => {}
        }
        self.replace_token(rotation).await;
    }

    /// Gets a new token by the configured method; with a fixed token there
    /// is nothing to get, so it is used until it expires.
    async fn replace_token(&mut self, rotation: &Publisher) {
        if let VaultAuth::Token(_) = self.config.auth {
            tracing::warn!(
                expires_in = ?self.token.refresh_at().map(|t| t.saturating_duration_since(Instant::now())),
                "the Vault token cannot be renewed any further; give the service a new token (VAULT_TOKEN_FILE or Kubernetes auth renew themselves)"
            );
            self.token_next = None;
            return;
        }
        match authenticate(&self.client, &self.config.auth).await {
            Ok(token) if token.value.expose_secret() == self.token.value.expose_secret() => {
                // The token file still holds the same token: look again soon.
                self.token_next = Some(Instant::now() + TOKEN_FILE_RECHECK);
            }
            Ok(token) => {
                self.token = token;
                self.token_next = self.token.refresh_at();
                self.succeeded(rotation);
                tracing::info!("new Vault token obtained");
                // The old token's leases die with it: move to a user of the new token.
                if let (Some(_), VaultSecret::Dynamic { path }) =
                    (&self.lease, self.config.secret.clone())
                {
                    self.reissue(rotation, &path).await;
                }
            }
            Err(err) => {
                self.token_next = Some(self.failed(rotation, "cannot log in to Vault again", &err));
            }
        }
    }

    async fn refresh_lease(&mut self, rotation: &Publisher, path: &str) {
        let Some(lease) = &self.lease else { return };
        if !lease.grant.renewable {
            return self.reissue(rotation, path).await;
        }
        match self
            .client
            .renew_lease(&self.token.value, &lease.id, lease.full)
            .await
        {
            Ok(grant) => {
                let capped = grant.lease_duration < lease.full;
                if let Some(lease) = &mut self.lease {
                    lease.grant = grant;
                    lease.obtained = Instant::now();
                    rotation.status().set_valid_until(Some(lease.valid_until()));
                    self.secret_next = lease.refresh_at();
                }
                if capped {
                    // The lease cannot outlive its max TTL: move to a new user
                    // while this one still works, so nothing fails at expiry.
                    self.reissue(rotation, path).await;
                } else {
                    self.succeeded(rotation);
                }
            }
            Err(err) if err.is_refusal() => {
                tracing::warn!(error = %err, "Vault no longer renews the database lease; issuing a new user");
                self.reissue(rotation, path).await;
            }
            Err(err) => {
                self.secret_next = self.failed(rotation, "cannot renew the database lease", &err);
            }
        }
    }

    /// Issues a new user, moves the pool to it, and revokes the old one once
    /// drained.
    async fn reissue(&mut self, rotation: &Publisher, path: &str) {
        let issued = match self
            .client
            .database_credentials(&self.token.value, path)
            .await
        {
            Ok(issued) => issued,
            Err(err) => {
                self.secret_next = self.failed(rotation, "cannot issue a new database user", &err);
                return;
            }
        };
        let target = self.base.with_login(&issued.username, &issued.password);
        let lease = Self::adopt(issued);
        match rotation.switch(target, Some(lease.valid_until())).await {
            Ok(retired) => {
                self.secret_next = lease.refresh_at();
                if let Some(old) = self.lease.replace(lease) {
                    self.revoke_when_drained(old, retired);
                }
                self.succeeded(rotation);
            }
            Err(err) => {
                let _ = self.client.revoke_lease(&self.token.value, &lease.id).await;
                self.secret_next =
                    self.failed(rotation, "the new database user cannot log in", &err);
            }
        }
    }

    fn revoke_when_drained(&self, old: Lease, retired: Retired) {
        let client = self.client.clone();
        let token = self.token.value.clone();
        // Revoke no later than just before the lease would lapse anyway.
        let limit = old
            .grant
            .lease_duration
            .saturating_sub(old.obtained.elapsed())
            .saturating_sub(Duration::from_secs(1))
            .max(Duration::from_secs(1));
        tokio::spawn(async move {
            let drained = retired.drained(limit).await;
            match client.revoke_lease(&token, &old.id).await {
                Ok(()) => {
                    tracing::info!(lease_id = old.id, drained, "previous database user revoked");
                }
                Err(err) => {
                    tracing::warn!(error = %err, lease_id = old.id, "cannot revoke the previous database user; Vault drops it when its lease expires");
                }
            }
        });
    }

    async fn refresh_kv(&mut self, rotation: &Publisher, mount: &str, path: &str) {
        let kv = match self
            .client
            .kv_credentials(&self.token.value, mount, path)
            .await
        {
            Ok(kv) => kv,
            Err(err) => {
                self.failed(
                    rotation,
                    "cannot read the database credentials from Vault",
                    &err,
                );
                return;
            }
        };
        let unchanged = self.kv_seen.as_ref().is_some_and(|(user, password)| {
            *user == kv.username && password.expose_secret() == kv.password.expose_secret()
        });
        if unchanged {
            self.succeeded(rotation);
            return;
        }
        let target = self.base.with_login(&kv.username, &kv.password);
        match rotation.switch(target, None).await {
            Ok(_) => {
                tracing::info!(
                    version = kv.version,
                    "database credentials from Vault changed"
                );
                self.kv_seen = Some((kv.username, kv.password));
                self.succeeded(rotation);
            }
            Err(err) => {
                self.failed(
                    rotation,
                    "the changed credentials in Vault cannot log in yet",
                    &err,
                );
            }
        }
    }
}

/// The pause after the `failures`-th failure in a row: doubling from 1 s,
/// at most [`MAX_BACKOFF`].
fn backoff_delay(failures: u32) -> Duration {
    Duration::from_secs(1 << failures.saturating_sub(1).min(5)).min(MAX_BACKOFF)
}

/// Obtains a token by the configured method.
async fn authenticate(client: &VaultClient, auth: &VaultAuth) -> Result<Token, VaultError> {
    match auth {
        VaultAuth::Token(token) => {
            let grant = client.lookup_self(token).await?;
            Ok(Token::new(token.clone(), grant))
        }
        VaultAuth::TokenFile(path) => {
            let token = read_secret_file("VAULT_TOKEN_FILE", path)
                .map_err(|e| VaultError::Setup(e.to_string()))?;
            let grant = client.lookup_self(&token).await?;
            Ok(Token::new(token, grant))
        }
        VaultAuth::Kubernetes {
            role,
            mount,
            jwt_file,
        } => {
            let jwt = read_secret_file("VAULT_K8S_TOKEN_FILE", jwt_file)
                .map_err(|e| VaultError::Setup(e.to_string()))?;
            let login = client.login_kubernetes(mount, role, &jwt).await?;
            Ok(Token::new(login.token, login.grant))
        }
    }
}
