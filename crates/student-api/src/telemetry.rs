//! Logs and traces: the one log subscriber of the process (JSON lines in
//! production), and the OpenTelemetry tracer provider that exports spans
//! over OTLP when an endpoint is set.
//!
//! Rules: request fields (request id, method, route, status, latency) are
//! recorded on the access-log event itself so each JSON line stands alone;
//! a JSON line written while a sampled span is current also carries its
//! `trace_id` and `span_id`, so a log line opens its trace and a trace its
//! log lines; secrets never reach a log field or a span attribute
//! (configuration types redact themselves). Spans are exported from a
//! thread of the SDK, never on a request's path: a slow or absent
//! collector costs dropped spans, not latency. May import `config` only.

use std::io::IsTerminal;
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::{ConfigError, LogFormat, LogSettings, TraceSampler, TracingSettings};

/// The instrumentation scope of every span the service makes.
const SCOPE: &str = env!("CARGO_PKG_NAME");

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(settings: &LogSettings) -> Result<(), ConfigError> {
    let filter = EnvFilter::try_new(&settings.filter).map_err(|e| ConfigError::Invalid {
        var: "RUST_LOG",
        reason: e.to_string(),
    })?;
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        let mut layer = json_subscriber::fmt::layer()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_target(true);
        let inner = layer.inner_layer_mut();
        inner.add_dynamic_field("trace_id", |_, _| {
            sampled_span().map(|(trace, _)| trace.to_string())
        });
        inner.add_dynamic_field("span_id", |_, _| {
            sampled_span().map(|(_, span)| span.to_string())
        });
        registry.with(layer).init();
    } else {
        registry.with(fmt::layer().with_target(false)).init();
    }
    Ok(())
}

/// The ids of the current OpenTelemetry span, if it is sampled: a line
/// names only a trace that is kept (an unsampled one opens nothing).
fn sampled_span() -> Option<(TraceId, SpanId)> {
    opentelemetry::Context::map_current(|cx| {
        let span = cx.span();
        let context = span.span_context();
        context
            .is_sampled()
            .then(|| (context.trace_id(), context.span_id()))
    })
}

/// The tracer provider: spans are batched and exported over OTLP/HTTP by
/// a thread of its own. Dropping it without [`Tracing::shutdown`] loses
/// the spans not yet exported.
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Tracing {
    /// Builds the exporter (which reads the endpoint, headers, timeout and
    /// compression from the OTEL_EXPORTER_OTLP_* variables itself) and
    /// the provider, whose resource reads OTEL_RESOURCE_ATTRIBUTES itself.
    /// Needs no runtime: the exporter's HTTP
    /// client and the batch processor run on their own threads.
    pub fn start(settings: &TracingSettings) -> Result<Self, ConfigError> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
            .map_err(|err| ConfigError::Invalid {
                var: "OTEL_EXPORTER_OTLP_*",
                reason: err.to_string(),
            })?;
        let mut resource = Resource::builder();
        if let Some(name) = &settings.service_name {
            resource = resource.with_service_name(name.clone());
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(sampler(settings.sampler))
            .with_resource(resource.build())
            .build();
        let tracer = provider.tracer(SCOPE);
        Ok(Self { provider, tracer })
    }

    /// The tracer the HTTP layer and the store start their spans with.
    pub fn tracer(&self) -> SdkTracer {
        self.tracer.clone()
    }

    /// Exports the spans still queued, within `limit`; what the collector
    /// has not taken by then is lost, and said so.
    pub async fn shutdown(self, limit: Duration) {
        let provider = self.provider;
        let flushed = tokio::time::timeout(
            limit,
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(limit)),
        )
        .await;
        match flushed {
            Ok(Ok(Ok(()))) => tracing::info!("spans exported"),
            Ok(Ok(Err(err))) => tracing::warn!(error = %err, "spans not exported at shutdown"),
            Ok(Err(_)) | Err(_) => {
                tracing::warn!(limit = ?limit, "spans not exported at shutdown within the bound");
            }
        }
    }
}

fn sampler(sampler: TraceSampler) -> Sampler {
    let root = if sampler.ratio >= 1.0 {
        Sampler::AlwaysOn
    } else if sampler.ratio <= 0.0 {
        Sampler::AlwaysOff
    } else {
        Sampler::TraceIdRatioBased(sampler.ratio)
    };
    if sampler.parent_based {
        Sampler::ParentBased(Box::new(root))
    } else {
        root
    }
}
