//! Prometheus metrics of the service, one registry per application instance
//! (no globals, so tests can run many instances in one process).
//!
//! Rules: HTTP series are labelled by the matched route template, never the
//! raw path, so cardinality is bounded; unmatched requests share one label.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use super::AppState;
use crate::storage::{PoolStats, StorageFault};

/// Route label for requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Fine enough to read p50 to p99 anywhere between 0.5 ms and 5 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.3, 0.5,
    0.75, 1.0, 2.0, 3.0, 5.0,
];

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    pub in_flight: IntGauge,
    pool_size: IntGauge,
    pool_idle: IntGauge,
    pool_max: IntGauge,
    storage_errors: IntCounterVec,
    /// Held while the storage counters catch up with the store's counts, so
    /// that concurrent scrapes do not both add the same difference.
    storage_sync: std::sync::Mutex<()>,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by method, route template and status",
            ),
            &["method", "route", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency, by method and route template",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route"],
        )?;
        let in_flight = IntGauge::new("http_requests_in_flight", "HTTP requests being served")?;
        let pool_size = IntGauge::new(
            "db_pool_connections",
            "Open database connections, idle or in use",
        )?;
        let pool_idle = IntGauge::new("db_pool_idle_connections", "Idle database connections")?;
        let pool_max = IntGauge::new(
            "db_pool_max_connections",
            "Most database connections the pool may open",
        )?;
        let storage_errors = IntCounterVec::new(
            Opts::new(
                "db_storage_errors_total",
                "Operations that failed on the database's storage, by kind: full, read_only, io, corrupt, moved",
            ),
            &["kind"],
        )?;
        // Every kind from 0, so that the first fault is an increase.
        for fault in StorageFault::ALL {
            storage_errors.with_label_values(&[fault.label()]);
        }
        let build_info = IntGaugeVec::new(
            Opts::new(
                "student_api_build_info",
                "Always 1; the labels describe the running build",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(pool_size.clone()))?;
        registry.register(Box::new(pool_idle.clone()))?;
        registry.register(Box::new(pool_max.clone()))?;
        registry.register(Box::new(storage_errors.clone()))?;
        registry.register(Box::new(build_info))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        Ok(Self {
            registry,
            requests,
            duration,
            in_flight,
            pool_size,
            pool_idle,
            pool_max,
            storage_errors,
            storage_sync: std::sync::Mutex::default(),
        })
    }

    /// The registry, for series kept by other modules (connections).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records one answered request.
    pub fn observe(&self, method: &Method, route: &str, status: StatusCode, elapsed: Duration) {
        self.requests
            .with_label_values(&[method.as_str(), route, status.as_str()])
            .inc();
        self.duration
            .with_label_values(&[method.as_str(), route])
            .observe(elapsed.as_secs_f64());
    }

    /// Renders every metric in the Prometheus text format; `faults` are the
    /// store's counts of storage faults since the start.
    pub fn render(
        &self,
        pool: PoolStats,
        faults: &[(StorageFault, u64)],
    ) -> Result<Vec<u8>, prometheus::Error> {
        let _sync = self
            .storage_sync
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (fault, count) in faults {
            let counter = self.storage_errors.with_label_values(&[fault.label()]);
            counter.inc_by(count.saturating_sub(counter.get()));
        }
        self.pool_size.set(i64::from(pool.size));
        self.pool_idle.set(i64::from(pool.idle));
        self.pool_max.set(i64::from(pool.max));
        let mut buffer = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        Ok(buffer)
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses((status = 200, description = "Metrics in the Prometheus text format", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    match state
        .metrics
        .render(state.store.pool_stats(), &state.store.storage_faults())
    {
        Ok(body) => {
            let mut response = body.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        Err(err) => super::error::ApiError::Internal(err.into()).into_response(),
    }
}
