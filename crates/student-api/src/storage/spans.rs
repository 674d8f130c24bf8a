//! The OpenTelemetry span of each database call the store makes for a
//! traced request, after the semantic conventions for database clients:
//! named `{operation} {table}`, with the system, the operation and the
//! table, never a statement's parameters.
//!
//! Rules: a call outside a request's span (migrations at start) starts no
//! trace of its own; a failed call marks its span an error with the
//! error's class, never the driver's message (it may quote a value).

use std::future::Future;

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;

use super::StorageError;

/// What one call of the store does, for its span.
#[derive(Debug, Clone, Copy)]
pub(super) struct Call {
    /// `db.operation.name`: SELECT, INSERT, UPDATE, DELETE.
    pub operation: &'static str,
    /// `db.collection.name`, when the call reads or writes one table.
    pub table: Option<&'static str>,
}

/// Runs `call` with a span of its own, a child of the current span, when
/// there is a tracer and a current span; just runs it otherwise.
pub(super) async fn traced<T>(
    tracer: Option<&SdkTracer>,
    system: &'static str,
    call: Call,
    run: impl Future<Output = Result<T, StorageError>>,
) -> Result<T, StorageError> {
    let Some(tracer) = tracer else {
        return run.await;
    };
    let parent = Context::current();
    if !parent.has_active_span() {
        return run.await;
    }
    let name = match call.table {
        Some(table) => format!("{} {table}", call.operation),
        None => call.operation.to_owned(),
    };
    let mut attributes = vec![
        KeyValue::new("db.system.name", system),
        // The name before the conventions' 1.26: what Tempo's service
        // graph and many backends still read to draw a database.
        KeyValue::new("db.system", system),
        KeyValue::new("db.operation.name", call.operation),
    ];
    if let Some(table) = call.table {
        attributes.push(KeyValue::new("db.collection.name", table));
    }
    let span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Client)
        .with_attributes(attributes)
        .start_with_context(tracer, &parent);
    let cx = parent.with_span(span);
    let result = run.with_context(cx.clone()).await;
    let span = cx.span();
    if let Err(err) = &result {
        span.set_attribute(KeyValue::new("error.type", error_class(err)));
        span.set_status(Status::error(err.to_string()));
    }
    span.end();
    result
}

/// A low-cardinality name for the kind of failure.
fn error_class(err: &StorageError) -> &'static str {
    match err {
        StorageError::EmailTaken => "email_taken",
        StorageError::Unavailable(_) => "unavailable",
        StorageError::Fault(..) => "storage_fault",
        StorageError::Query(_) => "query",
        StorageError::Migration(_) => "migration",
    }
}
