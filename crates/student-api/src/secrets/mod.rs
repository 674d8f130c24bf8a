//! Database credentials that may change while the service runs: where they
//! come from (fixed at start, mounted files, Vault) and how a source keeps
//! them fresh. Each source publishes through [`crate::credentials`].
//!
//! Rules: secrets stay in `SecretString` or in targets, whose `Debug`
//! redacts them; a source that cannot refresh keeps the credentials it has
//! and says so through readiness. May import `config` and `credentials`
//! only (not the pool: it proves new credentials through a [`LoginCheck`]).

mod files;
mod vault;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use vault::VaultError;

use crate::config::{CredentialSource, PostgresTarget};
use crate::credentials::{CredentialReceiver, CredentialStatus, LoginCheck, Publisher};
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
    /// Starts `source`; `base` holds everything but what the source supplies
    /// (fixed and file sources: everything, as resolved at start). Vault is
    /// asked once before this returns, so a refused token or role stops the
    /// service at start. `check` proves each new credential before the pool
    /// sees it.
    pub async fn start(
        source: &CredentialSource,
        base: PostgresTarget,
        check: Arc<dyn LoginCheck>,
    ) -> Result<Self, VaultError> {
        match source {
            CredentialSource::Fixed => {
                let rotation = Publisher::new(base, None, "fixed", check);
                Ok(Self {
                    receiver: rotation.subscribe(),
                    status: None,
                    task: None,
                    stop: None,
                })
            }
            CredentialSource::Files { source, poll } => {
                let rotation = Publisher::new(base, None, "secret files", check);
                let (receiver, status) = (rotation.subscribe(), rotation.status());
                let task = tokio::spawn(files::watch(source.clone(), *poll, rotation));
                Ok(Self {
                    receiver,
                    status: Some(status),
                    task: Some(task),
                    stop: None,
                })
            }
            CredentialSource::Vault(config) => {
                let (source, first) = VaultSource::start(config.clone(), base).await?;
                let rotation = Publisher::new(first.target, first.valid_until, "vault", check);
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
