//! The OpenTelemetry span of each request, after the semantic conventions
//! for HTTP servers: named `{method} {route}`, with the route template,
//! never the raw path, as `http.route`, and continued from the caller's
//! W3C `traceparent` (a trace started at the Gateway or a client stays
//! whole).
//!
//! Rules: attributes hold nothing a log line would not (no query string,
//! no body, no header but the user agent and the first address of
//! X-Forwarded-For); a 5xx marks the span an error,
//! a 4xx does not (the server did its job). No tracer, no work: with
//! tracing off nothing here runs.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, Method, StatusCode, Version};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, TraceId, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracer;

/// Starts the server span of `request`, matched to `route` (`None`: no
/// route matched), as a child of the caller's span when it sent one; the
/// returned context holds it.
pub fn start(tracer: &SdkTracer, request: &Request, route: Option<&str>) -> Context {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
    let method = request.method();
    let known = known_method(method);
    let name = match route {
        Some(route) => format!("{} {route}", known.unwrap_or("HTTP")),
        None => known.unwrap_or("HTTP").to_owned(),
    };
    let mut attributes = Vec::with_capacity(12);
    attributes.push(KeyValue::new(
        "http.request.method",
        known.unwrap_or("_OTHER"),
    ));
    if known.is_none() {
        attributes.push(KeyValue::new(
            "http.request.method_original",
            method.as_str().to_owned(),
        ));
    }
    if let Some(route) = route {
        attributes.push(KeyValue::new("http.route", route.to_owned()));
    }
    attributes.push(KeyValue::new("url.path", request.uri().path().to_owned()));
    attributes.push(KeyValue::new("url.scheme", "http"));
    attributes.push(KeyValue::new(
        "network.protocol.version",
        match request.version() {
            Version::HTTP_10 => "1.0",
            Version::HTTP_2 => "2",
            _ => "1.1",
        },
    ));
    if let Some((host, port)) = request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .and_then(|host| host.parse::<axum::http::uri::Authority>().ok())
        .map(|authority| (authority.host().to_owned(), authority.port_u16()))
    {
        attributes.push(KeyValue::new("server.address", host));
        if let Some(port) = port {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
    }
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        attributes.push(KeyValue::new("network.peer.address", peer.ip().to_string()));
        attributes.push(KeyValue::new("network.peer.port", i64::from(peer.port())));
    }
    // The original client: the first hop the Gateway's X-Forwarded-For
    // names (the conventions' choice), else the socket's peer.
    let forwarded = request
        .headers()
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(',').next())
        .map(str::trim)
        .and_then(|first| first.parse::<IpAddr>().ok());
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    if let Some(client) = forwarded.or(peer) {
        attributes.push(KeyValue::new("client.address", client.to_string()));
    }
    if let Some(agent) = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|agent| agent.to_str().ok())
    {
        attributes.push(KeyValue::new("user_agent.original", agent.to_owned()));
    }
    let span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
        .start_with_context(tracer, &parent);
    parent.with_span(span)
}

/// Records the answer on the span of `cx` and ends it.
pub fn finish(cx: &Context, status: StatusCode) {
    let span = cx.span();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status.as_u16()),
    ));
    if status.is_server_error() {
        span.set_attribute(KeyValue::new("error.type", status.as_str().to_owned()));
        span.set_status(Status::error(""));
    }
    span.end();
}

/// The trace of `cx` when it is sampled (kept): the exemplar and the log
/// line name only a trace that can be opened.
pub fn sampled_trace(cx: &Context) -> Option<TraceId> {
    let span = cx.span();
    let context = span.span_context();
    context.is_sampled().then(|| context.trace_id())
}

/// The methods of HTTP; any other is `_OTHER` in the conventions.
fn known_method(method: &Method) -> Option<&'static str> {
    Some(match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => return None,
    })
}
