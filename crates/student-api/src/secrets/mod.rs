//! Database credentials that may change while the service runs: where they
//! come from (fixed at start, mounted files, Vault) and how a change reaches
//! the connection pool without failing a request.
//!
//! Rules: secrets stay in `SecretString` or in connect options, whose
//! `Debug` this module never prints; a source that cannot refresh keeps the
//! credentials it has and says so through readiness.

mod files;
mod rotation;
mod vault;

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use files::uses_files;
pub use rotation::{Credential, CredentialReceiver, CredentialStatus};
pub use vault::VaultError;

use crate::config::CredentialSource;
use rotation::Rotation;
use vault::VaultSource;

/// How long shutdown waits for a source to release its credentials.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The running credential source of a PostgreSQL store.
#[derive(Debug)]
pub struct Credentials {
    receiver: CredentialReceiver,
    status: Option<Arc<CredentialStatus>>,
    task: Option<JoinHandle<()>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Credentials {
    /// Starts `source`; `base` holds everything but what the source supplies.
    /// Vault is asked once before this returns, so a refused token or role
    /// stops the service at start.
    pub async fn start(
        source: &CredentialSource,
        base: PgConnectOptions,
    ) -> Result<Self, VaultError> {
        match source {
            CredentialSource::Fixed => {
                let rotation = Rotation::new(base, None, "fixed");
                Ok(Self {
                    receiver: rotation.subscribe(),
                    status: None,
                    task: None,
                    stop: None,
                })
            }
            CredentialSource::Files { database, poll } => {
                let rotation = Rotation::new(base, None, "secret files");
                let (receiver, status) = (rotation.subscribe(), rotation.status());
                let task = tokio::spawn(files::watch(database.clone(), *poll, rotation));
                Ok(Self {
                    receiver,
                    status: Some(status),
                    task: Some(task),
                    stop: None,
                })
            }
            CredentialSource::Vault(config) => {
                let (source, first) = VaultSource::start(config.clone(), base).await?;
                let rotation = Rotation::new(first.options, first.valid_until, "vault");
                let (receiver, status) = (rotation.subscribe(), rotation.status());
                let (stop, stopped) = oneshot::channel();
                let task = tokio::spawn(source.run(rotation, stopped));
                Ok(Self {
                    receiver,
                    status: Some(status),
                    task: Some(task),
                    stop: Some(stop),
                })
            }
        }
    }

    pub fn receiver(&self) -> CredentialReceiver {
        self.receiver.clone()
    }

    /// The refresh state, for readiness; `None` for fixed credentials.
    pub fn status(&self) -> Option<Arc<CredentialStatus>> {
        self.status.clone()
    }

    /// Stops refreshing and releases what the source holds (a Vault
    /// database user is revoked). Call once the pool has closed.
    pub async fn stop(mut self) {
        let Some(mut task) = self.task.take() else {
            return;
        };
        match self.stop.take() {
            Some(stop) => {
                let _ = stop.send(());
                if tokio::time::timeout(STOP_TIMEOUT, &mut task).await.is_err() {
                    tracing::warn!("the credential source did not stop in time");
                    task.abort();
                }
            }
            None => task.abort(),
        }
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
