//! Prometheus metrics of the service, one registry per application instance
//! (no globals, so tests can run many instances in one process), served in
//! the Prometheus text format or, to a scraper that asks for it, in
//! OpenMetrics with exemplars.
//!
//! Rules: HTTP series are labelled by the matched route template, never the
//! raw path, so cardinality is bounded; unmatched requests share one label.
//! Names, labels and buckets are what the dashboards, rules and tests read:
//! changing one is changing them all. The latency histogram keeps, per
//! bucket, the trace id of the last sampled request that fell in it (an
//! exemplar), so a slow bucket opens a trace of a request that was slow.

mod process;

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use opentelemetry::trace::TraceId;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::AppState;
use crate::storage::{PoolStats, StorageFault};

/// Route label for requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Fine enough to read p50 to p99 anywhere between 0.5 ms and 5 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.3, 0.5,
    0.75, 1.0, 2.0, 3.0, 5.0,
];

/// The classic Prometheus text format, for anyone who does not ask for
/// OpenMetrics (people with curl, older scrapers).
const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// An HTTP method as a label: the standard ones without allocating.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MethodLabel(Cow<'static, str>);

impl From<&Method> for MethodLabel {
    fn from(method: &Method) -> Self {
        Self(match *method {
            Method::GET => Cow::Borrowed("GET"),
            Method::POST => Cow::Borrowed("POST"),
            Method::PUT => Cow::Borrowed("PUT"),
            Method::PATCH => Cow::Borrowed("PATCH"),
            Method::DELETE => Cow::Borrowed("DELETE"),
            Method::HEAD => Cow::Borrowed("HEAD"),
            Method::OPTIONS => Cow::Borrowed("OPTIONS"),
            _ => Cow::Owned(method.as_str().to_owned()),
        })
    }
}

impl EncodeLabelValue for MethodLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: MethodLabel,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    method: MethodLabel,
    route: String,
}

/// The exemplar's labels: the trace a request of that bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TraceLabels {
    trace_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

#[derive(Clone)]
struct LatencyHistogram;

impl MetricConstructor<HistogramWithExemplars<TraceLabels>> for LatencyHistogram {
    fn new_metric(&self) -> HistogramWithExemplars<TraceLabels> {
        HistogramWithExemplars::new(LATENCY_BUCKETS.iter().copied())
    }
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, HistogramWithExemplars<TraceLabels>, LatencyHistogram>,
    pub in_flight: Gauge,
    pool_size: Gauge,
    pool_idle: Gauge,
    pool_max: Gauge,
    storage_errors: Family<KindLabels, Counter>,
    /// Held while the storage counters catch up with the store's counts, so
    /// that concurrent scrapes do not both add the same difference.
    storage_sync: std::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        // Counters are registered without `_total`: both formats add it.
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        let duration = Family::new_with_constructor(LatencyHistogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency, by method and route template",
            duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being served",
            in_flight.clone(),
        );
        let pool_size = Gauge::default();
        registry.register(
            "db_pool_connections",
            "Open database connections, idle or in use",
            pool_size.clone(),
        );
        let pool_idle = Gauge::default();
        registry.register(
            "db_pool_idle_connections",
            "Idle database connections",
            pool_idle.clone(),
        );
        let pool_max = Gauge::default();
        registry.register(
            "db_pool_max_connections",
            "Most database connections the pool may open",
            pool_max.clone(),
        );
        let storage_errors = Family::<KindLabels, Counter>::default();
        registry.register(
            "db_storage_errors",
            "Operations that failed on the database's storage, by kind: full, read_only, io, corrupt, moved",
            storage_errors.clone(),
        );
        // Every kind from 0, so that the first fault is an increase.
        for fault in StorageFault::ALL {
            let _ = storage_errors.get_or_create(&KindLabels {
                kind: fault.label(),
            });
        }
        let build_info = Family::<VersionLabels, Gauge>::default();
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register(
            "student_api_build_info",
            "Always 1; the labels describe the running build",
            build_info,
        );
        #[cfg(target_os = "linux")]
        registry.register_collector(Box::new(process::ProcessCollector::new()));

        Self {
            registry,
            requests,
            duration,
            in_flight,
            pool_size,
            pool_idle,
            pool_max,
            storage_errors,
            storage_sync: std::sync::Mutex::default(),
        }
    }

    /// The registry, for series kept by other modules (connections);
    /// registering needs it before the metrics are shared.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Records one answered request; `trace` is the request's trace when
    /// it is sampled, kept as the exemplar of the bucket it falls in.
    pub fn observe(
        &self,
        method: &Method,
        route: &str,
        status: StatusCode,
        elapsed: Duration,
        trace: Option<TraceId>,
    ) {
        let method = MethodLabel::from(method);
        let route = route.to_owned();
        self.duration
            .get_or_create(&RouteLabels {
                method: method.clone(),
                route: route.clone(),
            })
            .observe(
                elapsed.as_secs_f64(),
                trace.map(|trace| TraceLabels {
                    trace_id: trace.to_string(),
                }),
                trace.map(|_| SystemTime::now()),
            );
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status: status.as_u16(),
            })
            .inc();
    }

    /// Renders every metric, in OpenMetrics (with the exemplars) or in the
    /// Prometheus text format; `faults` are the store's counts of storage
    /// faults since the start.
    pub fn render(
        &self,
        pool: PoolStats,
        faults: &[(StorageFault, u64)],
        format: Format,
    ) -> Result<String, std::fmt::Error> {
        {
            let _sync = self
                .storage_sync
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (fault, count) in faults {
                let counter = self.storage_errors.get_or_create(&KindLabels {
                    kind: fault.label(),
                });
                counter.inc_by(count.saturating_sub(counter.get()));
            }
        }
        self.pool_size.set(i64::from(pool.size));
        self.pool_idle.set(i64::from(pool.idle));
        self.pool_max.set(i64::from(pool.max));
        let mut buffer = String::with_capacity(16 * 1024);
        match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut buffer, &self.registry)?;
            }
            Format::PrometheusText => {
                prometheus_client::encoding::prometheus_text::encode(&mut buffer, &self.registry)?;
            }
        }
        Ok(buffer)
    }
}

/// The exposition format of one scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    PrometheusText,
}

impl Format {
    /// OpenMetrics when the `Accept` header prefers it to plain text (as
    /// Prometheus does: OpenMetrics first, `text/plain` at a lower `q`),
    /// the Prometheus text format otherwise.
    pub fn negotiate(headers: &HeaderMap) -> Self {
        let (mut openmetrics, mut text) = (0.0_f32, 0.0_f32);
        let ranges = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','));
        for range in ranges {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let q = parts
                .filter_map(|param| param.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Self::OpenMetrics
        } else {
            Self::PrometheusText
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => OPENMETRICS_TEXT,
            Self::PrometheusText => PROMETHEUS_TEXT,
        }
    }
}

/// Prometheus metrics: the text exposition format, or OpenMetrics with
/// exemplars when asked for (`Accept: application/openmetrics-text`).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses((status = 200, description = "Metrics in the Prometheus text format, or in OpenMetrics (with exemplars) when the Accept header prefers application/openmetrics-text", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(&headers);
    match state.metrics.render(
        state.store.pool_stats(),
        &state.store.storage_faults(),
        format,
    ) {
        Ok(body) => {
            let mut response = body.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            response
        }
        Err(err) => super::error::ApiError::Internal(err.into()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Format {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        Format::negotiate(&headers)
    }

    #[test]
    fn openmetrics_is_served_only_to_a_scraper_that_prefers_it() {
        // What Prometheus 2.x and 3.x send.
        assert_eq!(
            accept("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            Format::OpenMetrics
        );
        assert_eq!(accept("application/openmetrics-text"), Format::OpenMetrics);
        assert_eq!(Format::negotiate(&HeaderMap::new()), Format::PrometheusText);
        assert_eq!(accept("*/*"), Format::PrometheusText);
        assert_eq!(accept("text/plain;version=0.0.4"), Format::PrometheusText);
        assert_eq!(
            accept("text/plain, application/openmetrics-text;q=0.5"),
            Format::PrometheusText
        );
        assert_eq!(
            accept("application/openmetrics-text;q=0"),
            Format::PrometheusText
        );
    }

    #[test]
    fn standard_methods_are_labelled_without_allocating() {
        assert!(matches!(
            MethodLabel::from(&Method::PATCH).0,
            Cow::Borrowed("PATCH")
        ));
        let odd = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(MethodLabel::from(&odd).0, "PURGE");
    }
}
