//! Credentials from mounted files (`DATABASE_URL_FILE`, `POSTGRES_USER_FILE`,
//! `POSTGRES_PASSWORD_FILE`), re-read on a fixed interval.
//!
//! Kubernetes updates a mounted Secret by writing a new directory and
//! swapping a symlink, so the files are read by path on every poll (an open
//! handle or an inode watch would keep seeing the old content). Polling a
//! few small files every few seconds costs nothing measurable and needs no
//! platform-specific watcher. Which files to read, and how their contents
//! make a target, is [`TargetSource`]'s: the same rules as at start.
//!
//! Rules: a change is published only once the new values are complete and
//! log in; a half-written or wrong secret is reported and retried, and the
//! current credentials stay in use meanwhile.

use std::time::Duration;

use crate::config::{PostgresTarget, TargetSource};
use crate::credentials::Publisher;

/// Polls the files every `interval` until the task is dropped.
pub async fn watch(source: TargetSource, interval: Duration, publisher: Publisher) {
    // What the files said when the current credentials were taken from them.
    let mut seen: Option<PostgresTarget> = Some(publisher.current());
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        poll(&source, &publisher, &mut seen).await;
    }
}

/// One look at the files; publishes what changed once it logs in.
async fn poll(source: &TargetSource, publisher: &Publisher, seen: &mut Option<PostgresTarget>) {
    let now = match source.resolve_postgres() {
        Ok(now) => now,
        Err(err) => {
            tracing::warn!(error = %err, "cannot re-read the database secret files; keeping the current credentials");
            publisher.status().report_problem(err);
            return;
        }
    };
    if seen.as_ref() == Some(&now) {
        return;
    }
    match publisher.switch(now.clone(), None).await {
        Ok(_) => {
            *seen = Some(now);
            publisher.status().report_ok();
        }
        Err(err) => {
            let err = format!("cannot log in with the new credentials: {err}");
            tracing::warn!(error = %err, "the changed database secret files do not work yet; keeping the current credentials");
            publisher.status().report_problem(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use secrecy::SecretString;

    use super::*;
    use crate::config::{SslMode, Value};
    use crate::credentials::StubLogin;

    fn source(dir: &std::path::Path) -> TargetSource {
        TargetSource::Parts {
            host: "db.invalid".to_owned(),
            port: 5432,
            user: Some(Value::Given(SecretString::from("app"))),
            password: Some(Value::File {
                var: "POSTGRES_PASSWORD_FILE",
                path: dir.join("password"),
            }),
            database: None,
            ssl_mode: SslMode::Disable,
        }
    }

    #[tokio::test]
    async fn a_changed_file_is_published_once_it_logs_in_and_a_broken_one_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("password"), "one\n").unwrap();
        let source = source(dir.path());
        let check = Arc::new(StubLogin::default());
        let first = source.resolve_postgres().unwrap();
        let publisher = Publisher::new(first.clone(), None, "secret files", check.clone());
        let receiver = publisher.subscribe();
        let mut seen = Some(first);

        poll(&source, &publisher, &mut seen).await;
        assert_eq!(receiver.borrow().generation, 0, "nothing changed");

        std::fs::write(dir.path().join("password"), "").unwrap();
        poll(&source, &publisher, &mut seen).await;
        let problem = publisher.status().problem().unwrap();
        assert!(problem.contains("POSTGRES_PASSWORD_FILE"), "{problem}");
        assert_eq!(receiver.borrow().generation, 0);

        std::fs::write(dir.path().join("password"), "two\n").unwrap();
        poll(&source, &publisher, &mut seen).await;
        assert_eq!(receiver.borrow().generation, 1);
        assert_eq!(publisher.status().problem(), None);
        assert_eq!(check.attempts.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
