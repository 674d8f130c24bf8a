//! The hand-over of database credentials from a source (fixed, secret
//! files, Vault) to the PostgreSQL pool: a [`Credential`] with its
//! generation, the [`Publisher`] a source sends new ones through, and the
//! [`CredentialStatus`] readiness reports.
//!
//! The pool opens new connections with the newest generation and stops
//! giving work to connections of an older one, which close once the queries
//! they carry are answered, so no request is cut off. Rules: a generation is
//! published only after it has logged in once (a bad secret never replaces a
//! good one; the pool's side supplies the [`LoginCheck`]), and a source may
//! retire what an old generation stands for (revoke a Vault lease) only once
//! the pool holds no connection of it ([`Retired::drained`]).
//!
//! May import `config` only: sources and the pool both depend on this
//! module, never on each other.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::config::PostgresTarget;

/// One set of connection settings, credentials included.
pub struct Credential {
    /// Increases by one with every rotation.
    pub generation: u64,
    pub target: PostgresTarget,
    /// When the database stops accepting these credentials, if known.
    pub valid_until: Option<SystemTime>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("generation", &self.generation)
            .field("user", &self.target.user)
            .field("valid_until", &self.valid_until)
            .finish_non_exhaustive()
    }
}

/// The pool's side: always holds the current generation.
pub type CredentialReceiver = watch::Receiver<Arc<Credential>>;

/// Why a login with new credentials failed; the cause chain never holds
/// the password.
pub type LoginError = Box<dyn Error + Send + Sync>;

/// Logs in once with a target and logs out: the proof that new credentials
/// work before they replace the current ones.
pub trait LoginCheck: Send + Sync {
    fn log_in<'a>(
        &'a self,
        target: &'a PostgresTarget,
    ) -> Pin<Box<dyn Future<Output = Result<(), LoginError>> + Send + 'a>>;
}

/// A source's side: proves and publishes new generations.
pub struct Publisher {
    sender: watch::Sender<Arc<Credential>>,
    next: AtomicU64,
    status: Arc<CredentialStatus>,
    check: Arc<dyn LoginCheck>,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("current", &*self.sender.borrow())
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Starts at generation 0 with `first`, which the source has already
    /// obtained (it is proven by the pool's first connection).
    pub fn new(
        first: PostgresTarget,
        valid_until: Option<SystemTime>,
        source: &'static str,
        check: Arc<dyn LoginCheck>,
    ) -> Self {
        let (sender, _) = watch::channel(Arc::new(Credential {
            generation: 0,
            target: first,
            valid_until,
        }));
        let status = Arc::new(CredentialStatus::new(source));
        status.set_valid_until(valid_until);
        Self {
            sender,
            next: AtomicU64::new(1),
            status,
            check,
        }
    }

    pub fn subscribe(&self) -> CredentialReceiver {
        self.sender.subscribe()
    }

    pub fn status(&self) -> Arc<CredentialStatus> {
        self.status.clone()
    }

    /// The settings currently handed to the pool.
    pub fn current(&self) -> PostgresTarget {
        self.sender.borrow().target.clone()
    }

    /// Logs in once with `target`; on success makes it current and returns
    /// the generation it replaced, to be drained.
    pub async fn switch(
        &self,
        target: PostgresTarget,
        valid_until: Option<SystemTime>,
    ) -> Result<Retired, LoginError> {
        self.check.log_in(&target).await?;
        let generation = self.next.fetch_add(1, Ordering::Relaxed);
        let user = target.user.clone();
        let old = self.sender.send_replace(Arc::new(Credential {
            generation,
            target,
            valid_until,
        }));
        self.status.set_valid_until(valid_until);
        tracing::info!(
            generation,
            user,
            source = self.status.source,
            "database credentials rotated; connections of the previous credentials close once their queries are answered"
        );
        Ok(Retired(Arc::downgrade(&old)))
    }
}

/// A replaced generation; gone once the pool drops its last connection of it.
#[derive(Debug)]
pub struct Retired(Weak<Credential>);

impl Retired {
    /// Waits until no connection of this generation is left, at most `limit`.
    /// Returns whether it drained.
    pub async fn drained(self, limit: Duration) -> bool {
        const POLL: Duration = Duration::from_millis(100);
        let deadline = tokio::time::Instant::now() + limit;
        while self.0.strong_count() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
        true
    }
}

/// What readiness reports about the credential source.
#[derive(Debug)]
pub struct CredentialStatus {
    pub source: &'static str,
    state: Mutex<StatusState>,
}

#[derive(Debug, Default)]
struct StatusState {
    problem: Option<(String, SystemTime)>,
    valid_until: Option<SystemTime>,
}

impl CredentialStatus {
    fn new(source: &'static str) -> Self {
        Self {
            source,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatusState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_valid_until(&self, valid_until: Option<SystemTime>) {
        self.lock().valid_until = valid_until;
    }

    /// Records a failed refresh; the first failure's time is kept.
    pub fn report_problem(&self, problem: impl fmt::Display) {
        let mut state = self.lock();
        let since = state
            .problem
            .as_ref()
            .map_or_else(SystemTime::now, |(_, since)| *since);
        state.problem = Some((problem.to_string(), since));
    }

    pub fn report_ok(&self) {
        self.lock().problem = None;
    }

    /// `None` when the last refresh worked; otherwise what failed, since
    /// when, and whether the current credentials have expired.
    pub fn problem(&self) -> Option<String> {
        let state = self.lock();
        let (problem, since) = state.problem.as_ref()?;
        let since = humantime::format_rfc3339_seconds(*since);
        let validity = match state.valid_until {
            Some(until) if until <= SystemTime::now() => format!(
                "; the current credentials expired at {}",
                humantime::format_rfc3339_seconds(until)
            ),
            Some(until) => format!(
                "; the current credentials stay valid until {}",
                humantime::format_rfc3339_seconds(until)
            ),
            None => String::new(),
        };
        Some(format!(
            "{} refresh failing since {since}: {problem}{validity}",
            self.source
        ))
    }
}

/// A check that accepts everything, or refuses every user in `refused`:
/// for tests of sources and pools without a database.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct StubLogin {
    pub refused: Mutex<Vec<String>>,
    pub attempts: AtomicU64,
}

#[cfg(test)]
impl LoginCheck for StubLogin {
    fn log_in<'a>(
        &'a self,
        target: &'a PostgresTarget,
    ) -> Pin<Box<dyn Future<Output = Result<(), LoginError>> + Send + 'a>> {
        Box::pin(async move {
            self.attempts.fetch_add(1, Ordering::Relaxed);
            let refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
            if refused.contains(&target.user) {
                return Err(
                    format!("password authentication failed for user {:?}", target.user).into(),
                );
            }
            Ok(())
        })
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use secrecy::SecretString;

    use crate::config::{PostgresHost, PostgresTarget, SslMode};

    /// A target on a host that is never contacted.
    pub fn target(user: &str) -> PostgresTarget {
        PostgresTarget {
            host: PostgresHost::Tcp("db.invalid".to_owned()),
            port: 5432,
            user: user.to_owned(),
            password: Some(SecretString::from("pw-not-real")),
            database: Some("school".to_owned()),
            ssl_mode: SslMode::Disable,
            ssl_root_cert: None,
            application_name: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::target;
    use super::*;

    fn publisher(check: Arc<StubLogin>) -> Publisher {
        Publisher::new(target("a"), None, "test", check)
    }

    #[tokio::test]
    async fn a_retired_generation_drains_when_its_last_holder_goes() {
        let publisher = publisher(Arc::default());
        let held = publisher.subscribe().borrow().clone();
        let retired = publisher.switch(target("b"), None).await.unwrap();
        let waiter = tokio::spawn(retired.drained(Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            !waiter.is_finished(),
            "a connection still holds the old generation"
        );
        drop(held);
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn draining_gives_up_at_its_limit() {
        let keep = Arc::new(Credential {
            generation: 0,
            target: target("a"),
            valid_until: None,
        });
        let retired = Retired(Arc::downgrade(&keep));
        assert!(!retired.drained(Duration::from_millis(200)).await);
    }

    #[tokio::test]
    async fn credentials_that_cannot_log_in_are_never_published() {
        let check = Arc::new(StubLogin::default());
        check.refused.lock().unwrap().push("wrong".to_owned());
        let publisher = publisher(check.clone());
        let receiver = publisher.subscribe();
        assert!(publisher.switch(target("wrong"), None).await.is_err());
        assert_eq!(receiver.borrow().generation, 0);
        assert_eq!(receiver.borrow().target.user, "a");
        publisher.switch(target("right"), None).await.unwrap();
        assert_eq!(receiver.borrow().generation, 1);
        assert_eq!(check.attempts.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn the_status_keeps_the_first_failure_time_and_clears_on_success() {
        let status = CredentialStatus::new("vault");
        assert_eq!(status.problem(), None);
        status.set_valid_until(Some(SystemTime::UNIX_EPOCH + Duration::from_mins(1)));
        status.report_problem("connection refused");
        let first = status.problem().unwrap();
        status.report_problem("connection refused");
        assert_eq!(status.problem().unwrap(), first);
        assert!(first.starts_with("vault refresh failing since "), "{first}");
        assert!(
            first.ends_with(
                "connection refused; the current credentials expired at 1970-01-01T00:01:00Z"
            ),
            "{first}"
        );
        status.report_ok();
        assert_eq!(status.problem(), None);
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let credential = Credential {
            generation: 3,
            target: target("app"),
            valid_until: None,
        };
        let shown = format!("{credential:?}");
        assert!(
            shown.contains("app") && !shown.contains("pw-not-real"),
            "{shown}"
        );
    }
}
