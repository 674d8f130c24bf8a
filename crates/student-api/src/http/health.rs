//! Probes. Liveness (`/healthcheck`, `/health`) answers from the process
//! alone; readiness (`/ready`) asks the database, with a timeout, and turns
//! 503 as soon as shutdown begins.
//!
//! Readiness answers "should this instance get traffic": it fails when the
//! instance cannot serve at all or would serve a database that is no
//! longer there (the SQLite file removed or replaced). A storage fault that
//! writes meet (a full disk, read-only storage, I/O errors) is reported in
//! `checks.storage` but leaves the instance ready: reads still work, every
//! instance on the same storage meets the same fault, and routing traffic
//! away would only stop the reads too; the storage alert calls a person.
//!
//! What else readiness reports on (the credential source) comes through the
//! [`Dependency`] interface, so this module knows nothing of where
//! credentials come from.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{cause_chain, Problem};
use super::AppState;
use crate::storage::{StorageError, StorageFault};

/// Something besides the database that readiness reports on. Its problem
/// does not make the service unready while the database answers; it is
/// shown either way and explains a failing database.
pub trait Dependency: Send + Sync + fmt::Debug {
    /// The key under `checks`, e.g. `credentials (vault)`.
    fn check_name(&self) -> String;
    /// `None` when fine; otherwise what is wrong, in words for an operator.
    fn problem(&self) -> Option<String>;
}

/// Shared readiness state of the process.
#[derive(Debug)]
pub struct Health {
    shutting_down: AtomicBool,
    /// Latches once migrations have been seen complete: they cannot go back.
    migrations_current: AtomicBool,
    timeout: Duration,
    /// The refresh state of rotating database credentials, if any.
    credentials: Option<Arc<dyn Dependency>>,
}

impl Health {
    pub fn new(timeout: Duration, credentials: Option<Arc<dyn Dependency>>) -> Self {
        Self {
            shutting_down: AtomicBool::new(false),
            migrations_current: AtomicBool::new(false),
            timeout,
            credentials,
        }
    }

    /// Makes readiness fail from now on, so load balancers stop sending traffic.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

/// Liveness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthStatus {
    #[schema(example = "ok")]
    pub status: &'static str,
    /// Version of the running service.
    #[schema(example = "0.1.0")]
    pub version: &'static str,
}

/// Readiness answer when everything is fine.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyStatus {
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Check name → `ok`.
    pub checks: BTreeMap<String, String>,
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(
    get,
    path = "/healthcheck",
    tag = "operations",
    operation_id = "healthcheck",
    responses((status = 200, description = "The process is alive", body = HealthStatus))
)]
pub async fn healthcheck() -> Json<HealthStatus> {
    Json(HealthStatus {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Liveness (alias of `/healthcheck`).
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    operation_id = "health",
    responses((status = 200, description = "The process is alive", body = HealthStatus))
)]
pub async fn health() -> Json<HealthStatus> {
    healthcheck().await
}

/// Readiness: the database answers and its migrations are current.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    operation_id = "ready",
    responses(
        (status = 200, description = "Ready to serve traffic", body = ReadyStatus),
        (status = 503, description = "Not ready; `checks` says why", body = Problem,
            content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Response {
    let health = &state.health;
    let mut checks = BTreeMap::new();
    if health.is_shutting_down() {
        checks.insert("shutdown".to_owned(), "in progress".to_owned());
        return not_ready("the service is shutting down", checks);
    }
    let (database, migrations) =
        match tokio::time::timeout(health.timeout, check_database(&state)).await {
            Ok(Ok(current)) => ("ok", if current { "ok" } else { "pending" }),
            Ok(Err(err)) if err.fault() == Some(StorageFault::Moved) => {
                ("file removed or replaced", "unknown")
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %cause_chain(&err), "readiness: database check failed");
                ("unavailable", "unknown")
            }
            Err(_) => ("timeout", "unknown"),
        };
    checks.insert("database".to_owned(), database.to_owned());
    checks.insert("migrations".to_owned(), migrations.to_owned());
    // A credential source that cannot refresh does not make the service
    // unready while the database still answers; it is reported either way
    // and explains the failure once the database refuses the credentials.
    let credential_problem = health.credentials.as_ref().and_then(|s| s.problem());
    if let Some(status) = &health.credentials {
        let value = credential_problem
            .clone()
            .unwrap_or_else(|| "ok".to_owned());
        checks.insert(status.check_name(), value);
    }
    if let Some(condition) = state.store.storage_condition() {
        checks.insert("storage".to_owned(), condition);
    }
    match (database, migrations) {
        ("ok", "ok") => Json(ReadyStatus {
            status: "ready",
            checks,
        })
        .into_response(),
        ("ok", _) => not_ready(
            "database migrations are pending; run `student-api migrate`",
            checks,
        ),
        ("file removed or replaced", _) => not_ready(
            "the database file was removed or replaced after the service opened it; \
             writes are refused until it is restored (the service log says more)",
            checks,
        ),
        ("timeout", _) => not_ready(
            &format!(
                "the database did not answer within {} ms",
                health.timeout.as_millis()
            ),
            checks,
        ),
        _ => match credential_problem {
            Some(problem) => not_ready(&format!("the database is unavailable; {problem}"), checks),
            None => not_ready("the database is unavailable", checks),
        },
    }
}

async fn check_database(state: &AppState) -> Result<bool, StorageError> {
    let health = &state.health;
    // The ping also checks that an SQLite file is still the one opened.
    state.store.ping().await?;
    if health.migrations_current.load(Ordering::Relaxed) {
        return Ok(true);
    }
    let current = state.store.migrations_current().await?;
    health.migrations_current.store(current, Ordering::Relaxed);
    Ok(current)
}

fn not_ready(detail: &str, checks: BTreeMap<String, String>) -> Response {
    let mut problem = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", detail);
    problem.checks = Some(checks);
    problem.into_response_with_status()
}
