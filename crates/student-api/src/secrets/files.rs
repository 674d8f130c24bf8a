//! Credentials from mounted files (`DATABASE_URL_FILE`, `POSTGRES_USER_FILE`,
//! `POSTGRES_PASSWORD_FILE`), re-read on a fixed interval.
//!
//! Kubernetes updates a mounted Secret by writing a new directory and
//! swapping a symlink, so the files are read by path on every poll (an open
//! handle or an inode watch would keep seeing the old content). Polling a
//! few small files every few seconds costs nothing measurable and needs no
//! platform-specific watcher. Rules: a change is published only once the new
//! values are complete and log in; a half-written or wrong secret is reported
//! and retried, and the current credentials stay in use meanwhile.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::rotation::Rotation;
use crate::config::{read_secret_file, DatabaseArgs, DatabaseTarget};

/// The files' contents at one moment, compared to spot a change.
struct Snapshot(Vec<SecretString>);

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|(a, b)| a.expose_secret() == b.expose_secret())
    }
}

/// The secret files `args` names, with the variable each comes from.
fn watched_files(args: &DatabaseArgs) -> Vec<(&'static str, PathBuf)> {
    [
        ("DATABASE_URL_FILE", &args.database_url_file),
        ("POSTGRES_USER_FILE", &args.postgres_user_file),
        ("POSTGRES_PASSWORD_FILE", &args.postgres_password_file),
    ]
    .into_iter()
    .filter_map(|(var, path)| path.clone().map(|p| (var, p)))
    .collect()
}

/// True when some database secret comes from a file.
pub fn uses_files(args: &DatabaseArgs) -> bool {
    !watched_files(args).is_empty()
}

fn snapshot(files: &[(&'static str, PathBuf)]) -> Result<Snapshot, String> {
    files
        .iter()
        .map(|(var, path)| read_secret_file(var, path).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()
        .map(Snapshot)
}

/// Polls the files every `interval` until the task is dropped.
pub async fn watch(args: DatabaseArgs, interval: Duration, rotation: Rotation) {
    let files = watched_files(&args);
    let mut seen = match snapshot(&files) {
        Ok(seen) => seen,
        Err(err) => {
            rotation.status().report_problem(&err);
            Snapshot(Vec::new())
        }
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let now = match snapshot(&files) {
            Ok(now) => now,
            Err(err) => {
                tracing::warn!(error = %err, "cannot re-read the database secret files; keeping the current credentials");
                rotation.status().report_problem(err);
                continue;
            }
        };
        if now == seen {
            continue;
        }
        match publish(&args, &rotation).await {
            Ok(()) => {
                seen = now;
                rotation.status().report_ok();
            }
            Err(err) => {
                tracing::warn!(error = %err, "the changed database secret files do not work yet; keeping the current credentials");
                rotation.status().report_problem(err);
            }
        }
    }
}

async fn publish(args: &DatabaseArgs, rotation: &Rotation) -> Result<(), String> {
    let options = match args.target().map_err(|e| e.to_string())? {
        DatabaseTarget::Postgres(options) => options,
        DatabaseTarget::Sqlite(_) => {
            return Err("the secret files now name an SQLite database; a running service cannot change backends".to_owned())
        }
    };
    rotation
        .switch(options, None)
        .await
        .map(drop)
        .map_err(|e| format!("cannot log in with the new credentials: {e}"))
}
