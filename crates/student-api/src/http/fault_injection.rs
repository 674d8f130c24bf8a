//! Drills: a switch that makes a chosen share of API requests fail with a
//! chosen 5xx, or every API request wait a chosen delay, so that an
//! operator can see the error budget burn, the page fire and resolve, and
//! the runbook work (docs/runbooks/drills.md).
//!
//! Rules: off unless `FAULT_INJECTION=on`; its endpoint (`PUT`, `GET`,
//! `DELETE /admin/fault`) is served on the metrics address only, never on
//! the API's, and the service refuses to start with the switch on and no
//! separate metrics address. Faults touch the routes the SLOs count
//! (`/api/...`) only, never probes, metrics or the web page. Each change
//! of the fault is logged at WARN, each injected failure too, and both
//! kinds are counted in `student_api_faults_injected_total`. A fault lives
//! in this process's memory only: a restart clears it.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Serialize;
use serde_json::Value;

use super::error::{ApiError, FieldErrors};
use super::extract::JsonObject;

/// The path of the admin endpoint, on the metrics address.
pub const ADMIN_PATH: &str = "/admin/fault";

/// Longest delay accepted: a drill of slowness, not a service stopped by a
/// typo (`250s` for `250ms`).
const MAX_DELAY: Duration = Duration::from_mins(1);

/// The fault in force; the default injects nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fault {
    /// Share of API requests answered with `status`, from 0 to 1.
    pub error_ratio: f64,
    /// The 5xx those requests get.
    pub status: StatusCode,
    /// How long every API request waits before it is handled.
    pub delay: Duration,
}

impl Default for Fault {
    fn default() -> Self {
        Self {
            error_ratio: 0.0,
            status: StatusCode::INTERNAL_SERVER_ERROR,
            delay: Duration::ZERO,
        }
    }
}

impl Fault {
    fn is_active(&self) -> bool {
        self.error_ratio > 0.0 || !self.delay.is_zero()
    }
}

/// What `GET`, `PUT` and `DELETE /admin/fault` answer.
#[derive(Debug, Serialize)]
struct FaultView {
    /// Whether any request is affected.
    active: bool,
    error_ratio: f64,
    status: u16,
    /// As `PUT` takes it, e.g. `250ms`; `0s` for none.
    delay: String,
}

impl From<Fault> for FaultView {
    fn from(fault: Fault) -> Self {
        Self {
            active: fault.is_active(),
            error_ratio: fault.error_ratio,
            status: fault.status.as_u16(),
            delay: humantime::format_duration(fault.delay).to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FaultLabels {
    fault: &'static str,
}

/// The switch: the fault in force, shared by the API's requests and the
/// admin endpoint.
pub struct FaultSwitch {
    fault: RwLock<Fault>,
    injected: Family<FaultLabels, Counter>,
}

impl FaultSwitch {
    /// A switch injecting nothing yet; its counter joins `registry`.
    pub fn new(registry: &mut Registry) -> Arc<Self> {
        let injected = Family::<FaultLabels, Counter>::default();
        registry.register(
            "student_api_faults_injected",
            "API requests a drill's fault injection failed (fault=error) or delayed (fault=delay)",
            injected.clone(),
        );
        for fault in ["error", "delay"] {
            let _ = injected.get_or_create(&FaultLabels { fault });
        }
        Arc::new(Self {
            fault: RwLock::default(),
            injected,
        })
    }

    fn get(&self) -> Fault {
        *self.fault.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, fault: Fault) {
        *self.fault.write().unwrap_or_else(PoisonError::into_inner) = fault;
    }

    fn count(&self, fault: &'static str) {
        self.injected.get_or_create(&FaultLabels { fault }).inc();
    }
}

/// Applies the fault in force to a request of an API route: waits the
/// delay, then fails the request with the chosen share.
pub async fn inject(
    State(switch): State<Arc<FaultSwitch>>,
    request: Request,
    next: Next,
) -> Response {
    let api = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|route| route.as_str().starts_with("/api/"));
    let fault = switch.get();
    if !api || !fault.is_active() {
        return next.run(request).await;
    }
    if !fault.delay.is_zero() {
        switch.count("delay");
        tokio::time::sleep(fault.delay).await;
    }
    if fault.error_ratio > 0.0 && fastrand::f64() < fault.error_ratio {
        switch.count("error");
        return ApiError::InjectedFault(fault.status).into_response();
    }
    next.run(request).await
}

/// The admin routes, for the metrics address.
pub fn router<S: Clone + Send + Sync + 'static>(switch: Arc<FaultSwitch>) -> Router<S> {
    Router::new()
        .route(ADMIN_PATH, put(set).get(show).delete(clear))
        .with_state(switch)
}

async fn show(State(switch): State<Arc<FaultSwitch>>) -> Json<FaultView> {
    Json(switch.get().into())
}

/// Replaces the fault in force; a field left out is none of that fault.
async fn set(
    State(switch): State<Arc<FaultSwitch>>,
    JsonObject(body): JsonObject,
) -> Result<Json<FaultView>, ApiError> {
    let fault = parse(&body).map_err(ApiError::Validation)?;
    switch.set(fault);
    let view = FaultView::from(fault);
    tracing::warn!(
        error_ratio = view.error_ratio,
        status = view.status,
        delay = %view.delay,
        "fault injection changed: API requests now fail or wait on purpose"
    );
    Ok(Json(view))
}

async fn clear(State(switch): State<Arc<FaultSwitch>>) -> Json<FaultView> {
    switch.set(Fault::default());
    tracing::warn!("fault injection cleared: no API request fails or waits on purpose");
    Json(Fault::default().into())
}

/// Reads `{"error_ratio": 0.2, "status": 503, "delay": "250ms"}`, each
/// field optional; reports every field that is wrong.
fn parse(body: &serde_json::Map<String, Value>) -> Result<Fault, FieldErrors> {
    let mut fault = Fault::default();
    let mut errors = FieldErrors::new();
    let mut wrong = |field: &str, message: &str| {
        errors
            .entry(field.to_owned())
            .or_default()
            .push(message.to_owned());
    };
    for (field, value) in body {
        match (field.as_str(), value) {
            ("error_ratio", value) => match value.as_f64() {
                Some(ratio) if (0.0..=1.0).contains(&ratio) => fault.error_ratio = ratio,
                _ => wrong(field, "must be a number from 0 to 1"),
            },
            ("status", value) => match value
                .as_u64()
                .and_then(|code| u16::try_from(code).ok())
                .and_then(|code| StatusCode::from_u16(code).ok())
            {
                Some(status) if status.is_server_error() => fault.status = status,
                _ => wrong(field, "must be a 5xx status code, from 500 to 599"),
            },
            ("delay", Value::String(text)) => match humantime::parse_duration(text) {
                Ok(delay) if delay <= MAX_DELAY => fault.delay = delay,
                Ok(_) => wrong(field, "must be at most 1m"),
                Err(_) => wrong(field, "must be a duration such as 250ms, 2s or 0s"),
            },
            ("delay", _) => wrong(field, "must be a duration such as 250ms, 2s or 0s"),
            _ => wrong(
                field,
                "unknown field: expected error_ratio, status or delay",
            ),
        }
    }
    if errors.is_empty() {
        Ok(fault)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(body: &Value) -> Result<Fault, FieldErrors> {
        parse(body.as_object().unwrap())
    }

    #[test]
    fn every_field_is_optional_and_none_injects_nothing() {
        assert_eq!(parsed(&json!({})).unwrap(), Fault::default());
        assert!(!Fault::default().is_active());
        let fault = parsed(&json!({"error_ratio": 0.2, "status": 503, "delay": "250ms"})).unwrap();
        assert_eq!(
            fault,
            Fault {
                error_ratio: 0.2,
                status: StatusCode::SERVICE_UNAVAILABLE,
                delay: Duration::from_millis(250),
            }
        );
        assert!(fault.is_active());
    }

    #[test]
    fn every_wrong_field_is_reported() {
        let errors = parsed(&json!({
            "error_ratio": 1.5, "status": 404, "delay": "soon", "error_rate": 0.1
        }))
        .unwrap_err();
        assert_eq!(
            errors.keys().collect::<Vec<_>>(),
            ["delay", "error_rate", "error_ratio", "status"]
        );
        assert!(parsed(&json!({"delay": "2m"})).is_err());
        assert!(parsed(&json!({"delay": 250})).is_err());
        assert!(parsed(&json!({"status": 600})).is_err());
    }
}
