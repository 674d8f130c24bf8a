//! The hand-over point between a credential source and the connection pool.
//!
//! A source publishes complete connect options as a new [`Credential`]
//! generation; the pool opens new connections with the newest generation and
//! stops giving work to connections of an older one, which close once the
//! queries they carry are answered, so no request is cut off. Rules: a generation is published only after it has logged in once
//! (a bad secret never replaces a good one), and a source may retire what an
//! old generation stands for (revoke a Vault lease) only once the pool holds
//! no connection of it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use tokio::sync::watch;

/// One set of connect options, credentials included.
pub struct Credential {
    /// Increases by one with every rotation.
    pub generation: u64,
    pub options: PgConnectOptions,
    /// When the database stops accepting these credentials, if known.
    pub valid_until: Option<SystemTime>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("generation", &self.generation)
            .field("user", &self.options.get_username())
            .field("valid_until", &self.valid_until)
            .finish_non_exhaustive()
    }
}

/// The pool's side: always holds the current generation.
pub type CredentialReceiver = watch::Receiver<Arc<Credential>>;

/// A source's side: proves and publishes new generations.
#[derive(Debug)]
pub struct Rotation {
    sender: watch::Sender<Arc<Credential>>,
    next: AtomicU64,
    status: Arc<CredentialStatus>,
}

impl Rotation {
    pub fn new(
        first: PgConnectOptions,
        valid_until: Option<SystemTime>,
        source: &'static str,
    ) -> Self {
        let (sender, _) = watch::channel(Arc::new(Credential {
            generation: 0,
            options: first,
            valid_until,
        }));
        let status = Arc::new(CredentialStatus::new(source));
        status.set_valid_until(valid_until);
        Self {
            sender,
            next: AtomicU64::new(1),
            status,
        }
    }

    pub fn subscribe(&self) -> CredentialReceiver {
        self.sender.subscribe()
    }

    pub fn status(&self) -> Arc<CredentialStatus> {
        self.status.clone()
    }

    /// Logs in once with `options`; on success makes them current and
    /// returns the generation they replaced, to be drained.
    pub async fn switch(
        &self,
        options: PgConnectOptions,
        valid_until: Option<SystemTime>,
    ) -> Result<Retired, sqlx::Error> {
        PgConnection::connect_with(&options).await?.close().await?;
        let generation = self.next.fetch_add(1, Ordering::Relaxed);
        let user = options.get_username().to_owned();
        let old = self.sender.send_replace(Arc::new(Credential {
            generation,
            options,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn options(user: &str) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .username(user)
            .password("pw-not-real")
    }

    #[tokio::test]
    async fn a_retired_generation_drains_when_its_last_holder_goes() {
        let rotation = Rotation::new(options("a"), None, "test");
        let held = rotation.sender.borrow().clone();
        let (sender, old) = (&rotation.sender, held.clone());
        sender.send_replace(Arc::new(Credential {
            generation: 1,
            options: options("b"),
            valid_until: None,
        }));
        let retired = Retired(Arc::downgrade(&old));
        drop(old);
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
            options: options("a"),
            valid_until: None,
        });
        let retired = Retired(Arc::downgrade(&keep));
        assert!(!retired.drained(Duration::from_millis(200)).await);
    }

    #[test]
    fn the_status_keeps_the_first_failure_time_and_clears_on_success() {
        let status = CredentialStatus::new("vault");
        assert_eq!(status.problem(), None);
        status.set_valid_until(Some(SystemTime::UNIX_EPOCH + Duration::from_secs(60)));
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
            options: options("app"),
            valid_until: None,
        };
        let shown = format!("{credential:?}");
        assert!(
            shown.contains("app") && !shown.contains("pw-not-real"),
            "{shown}"
        );
    }
}
