//! Traces over OTLP/HTTP to a stub receiver that decodes the protocol's
//! own messages: a span per request and per database call, with the
//! semantic conventions' attributes; the caller's `traceparent`
//! continued; the spans exported at SIGTERM; the same trace and span ids
//! in the request's log line; exemplars on the latency histogram in
//! OpenMetrics only. And nothing of it when no endpoint is set.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::Value;

use crate::support::{request, Conn, RawResponse, Service};

/// One span as the receiver got it, with its resource's `service.name`.
#[derive(Debug, Clone)]
struct Received {
    service_name: Option<String>,
    span: Span,
}

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
    content_types: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    /// Serves `POST /v1/traces` on a free loopback port; returns the
    /// endpoint to give the service.
    async fn start() -> (Self, String) {
        let receiver = Self::default();
        let app = Router::new()
            .route("/v1/traces", post(export))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, endpoint)
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }
}

async fn export(
    State(receiver): State<Receiver>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    if let Some(kind) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        receiver.content_types.lock().unwrap().push(kind.to_owned());
    }
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    let mut spans = receiver.spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let service_name = resource_spans
            .resource
            .as_ref()
            .and_then(|resource| text(&resource.attributes, "service.name"));
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                spans.push(Received {
                    service_name: service_name.clone(),
                    span,
                });
            }
        }
    }
    (
        StatusCode::OK,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

/// An attribute's value as text (strings and integers).
fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    match value.value.as_ref()? {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    text(&span.attributes, key)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut text, b| {
        let _ = write!(text, "{b:02x}");
        text
    })
}

fn random_hex(bytes: usize) -> String {
    hex(&(0..bytes).map(|_| fastrand::u8(1..)).collect::<Vec<_>>())
}

async fn send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> RawResponse {
    let mut conn = Conn::open(port).await.unwrap();
    conn.write(request(method, path, headers, body).as_bytes())
        .await
        .unwrap();
    conn.read_response(Duration::from_secs(10)).await.unwrap()
}

fn tracing_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_owned()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
        ("OTEL_SERVICE_NAME", "student-api-under-test".to_owned()),
        ("SHUTDOWN_DELAY", "0s".to_owned()),
    ]
}

fn as_env<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The `request completed` log line of the request with this id.
fn access_line(service: &Service, response: &RawResponse) -> Value {
    let id = response.header("x-request-id").expect("a request id");
    service
        .log_lines()
        .into_iter()
        .find(|line| line["message"] == "request completed" && line["request_id"] == id)
        .unwrap_or_else(|| panic!("no access log line for {id}:\n{}", service.log_text()))
}

/// OTLP/HTTP with protobuf, and the resource named by OTEL_SERVICE_NAME.
fn assert_sent_as_configured(receiver: &Receiver, spans: &[Received]) {
    assert!(
        receiver
            .content_types
            .lock()
            .unwrap()
            .iter()
            .all(|kind| kind == "application/x-protobuf"),
        "OTLP/HTTP with protobuf"
    );
    assert!(
        spans
            .iter()
            .all(|s| s.service_name.as_deref() == Some("student-api-under-test")),
        "service.name from OTEL_SERVICE_NAME: {spans:?}"
    );
}

/// The span of `GET /api/v1/students/{id}`, after the HTTP conventions.
fn assert_request_span(server: &Span, id: i64) {
    assert_eq!(server.name, "GET /api/v1/students/{id}");
    assert_eq!(
        attr(server, "http.route").as_deref(),
        Some("/api/v1/students/{id}")
    );
    assert_eq!(attr(server, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(
        attr(server, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attr(server, "url.path"),
        Some(format!("/api/v1/students/{id}"))
    );
    assert_eq!(attr(server, "url.scheme").as_deref(), Some("http"));
    assert_eq!(attr(server, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        attr(server, "user_agent.original").as_deref(),
        Some("trace-test")
    );
    // The first hop the proxy names, and the socket's own peer.
    assert_eq!(
        attr(server, "client.address").as_deref(),
        Some("203.0.113.7")
    );
    assert_eq!(
        attr(server, "network.peer.address").as_deref(),
        Some("127.0.0.1")
    );
    assert!(attr(server, "network.peer.port").is_some_and(|port| port != "0"));
    assert_ne!(
        server.status.as_ref().map(|s| s.code),
        Some(SpanStatus::Error as i32)
    );
}

/// The span of its `SELECT`, after the database conventions, inside it.
fn assert_query_span(query: &Span, server: &Span) {
    assert_eq!(query.parent_span_id, server.span_id);
    assert_eq!(query.name, "SELECT students");
    assert_eq!(attr(query, "db.system").as_deref(), Some("sqlite"));
    assert_eq!(attr(query, "db.system.name").as_deref(), Some("sqlite"));
    assert_eq!(attr(query, "db.operation.name").as_deref(), Some("SELECT"));
    assert_eq!(
        attr(query, "db.collection.name").as_deref(),
        Some("students")
    );
    for key in ["db.query.text", "db.statement", "db.query.parameter.0"] {
        assert_eq!(attr(query, key), None, "{key} on {query:?}");
    }
    assert!(query.start_time_unix_nano >= server.start_time_unix_nano);
    assert!(query.end_time_unix_nano <= server.end_time_unix_nano);
}

#[tokio::test]
async fn a_request_is_one_trace_from_its_traceparent_to_its_database_call_and_log_line() {
    let (receiver, endpoint) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = tracing_env(&endpoint);
    let mut service = Service::start(dir.path(), &as_env(&env)).await;

    let created = send(
        service.port,
        "POST",
        "/api/v1/students",
        &[],
        Some(
            r#"{"name":"Ada Lovelace","email":"ada@example.org","domain":"Mathematics","gpa":9.5}"#,
        ),
    )
    .await;
    assert_eq!(created.status, 201);
    let id = created.json()["id"].as_i64().unwrap();

    // A request continued from the caller's trace...
    let trace_id = random_hex(16);
    let caller_span = random_hex(8);
    let traceparent = format!("00-{trace_id}-{caller_span}-01");
    let read = send(
        service.port,
        "GET",
        &format!("/api/v1/students/{id}"),
        &[
            ("traceparent", &traceparent),
            ("User-Agent", "trace-test"),
            ("X-Forwarded-For", "203.0.113.7, 10.0.0.1"),
        ],
        None,
    )
    .await;
    assert_eq!(read.status, 200);
    // ...and one whose caller decided not to keep it.
    let unsampled_trace = random_hex(16);
    let unsampled = send(
        service.port,
        "GET",
        &format!("/api/v1/students/{id}"),
        &[(
            "traceparent",
            &format!("00-{unsampled_trace}-{}-00", random_hex(8)),
        )],
        None,
    )
    .await;
    assert_eq!(unsampled.status, 200);

    // The spans still queued are exported at SIGTERM.
    service.terminate();
    assert!(service.wait_exit(Duration::from_secs(15)).await.success());
    let spans = receiver.spans();
    assert_sent_as_configured(&receiver, &spans);

    // The request's span: a child of the caller's, after the conventions.
    let in_trace: Vec<&Span> = spans
        .iter()
        .map(|s| &s.span)
        .filter(|s| hex(&s.trace_id) == trace_id)
        .collect();
    let server = in_trace
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .unwrap_or_else(|| panic!("no server span in the caller's trace: {spans:?}"));
    assert_eq!(hex(&server.parent_span_id), caller_span);
    assert_request_span(server, id);

    // Its database call: a child of it, without the statement's values.
    let query = in_trace
        .iter()
        .find(|s| s.kind == SpanKind::Client as i32)
        .unwrap_or_else(|| panic!("no database span in the trace: {in_trace:?}"));
    assert_query_span(query, server);

    // The POST started a trace of its own, with an INSERT in it.
    let post = spans
        .iter()
        .map(|s| &s.span)
        .find(|s| s.name == "POST /api/v1/students")
        .expect("the POST's span");
    assert!(post.parent_span_id.is_empty(), "a root span");
    assert_eq!(
        attr(post, "http.response.status_code").as_deref(),
        Some("201")
    );
    assert_eq!(attr(post, "client.address").as_deref(), Some("127.0.0.1"));
    assert!(spans.iter().any(|s| s.span.trace_id == post.trace_id
        && s.span.name == "INSERT students"
        && attr(&s.span, "db.operation.name").as_deref() == Some("INSERT")));

    // A caller that does not sample is followed: nothing is exported.
    assert!(
        !spans
            .iter()
            .any(|s| hex(&s.span.trace_id) == unsampled_trace),
        "an unsampled request was exported"
    );

    // The log line names the same trace and span.
    let line = access_line(&service, &read);
    assert_eq!(line["trace_id"], trace_id, "{line}");
    assert_eq!(line["span_id"], hex(&server.span_id), "{line}");
    let line = access_line(&service, &created);
    assert_eq!(line["trace_id"], hex(&post.trace_id), "{line}");
    let line = access_line(&service, &unsampled);
    assert!(line.get("trace_id").is_none(), "{line}");
    // Lines outside any request name no trace.
    let started = service.log_line("serving the API").expect("startup line");
    assert!(started.get("trace_id").is_none(), "{started}");
}

#[tokio::test]
async fn a_server_error_marks_its_span_failed() {
    let (receiver, endpoint) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let metrics_addr = format!("127.0.0.1:{}", crate::support::free_port());
    let mut env = tracing_env(&endpoint);
    env.push(("METRICS_ADDR", metrics_addr.clone()));
    env.push(("FAULT_INJECTION", "on".to_owned()));
    let mut service = Service::start(dir.path(), &as_env(&env)).await;
    let metrics_port: u16 = metrics_addr.rsplit(':').next().unwrap().parse().unwrap();

    let set = send(
        metrics_port,
        "PUT",
        "/admin/fault",
        &[],
        Some(r#"{"error_ratio": 1.0, "status": 503}"#),
    )
    .await;
    assert_eq!(set.status, 200);
    let failed = send(service.port, "GET", "/api/v1/students", &[], None).await;
    assert_eq!(failed.status, 503);
    service.terminate();
    assert!(service.wait_exit(Duration::from_secs(15)).await.success());

    let line = access_line(&service, &failed);
    let trace_id = line["trace_id"].as_str().expect("a trace id").to_owned();
    let spans = receiver.spans();
    let server = spans
        .iter()
        .map(|s| &s.span)
        .find(|s| hex(&s.trace_id) == trace_id && s.kind == SpanKind::Server as i32)
        .expect("the failed request's span");
    assert_eq!(
        attr(server, "http.response.status_code").as_deref(),
        Some("503")
    );
    assert_eq!(attr(server, "error.type").as_deref(), Some("503"));
    assert_eq!(
        server.status.as_ref().map(|s| s.code),
        Some(SpanStatus::Error as i32)
    );
    // The drill's own log lines say what happened.
    let log = service.log_text();
    assert!(log.contains("fault injection changed"), "{log}");
    assert!(
        log.contains("fault injected: request failed on purpose"),
        "{log}"
    );
}

#[tokio::test]
async fn exemplars_name_the_trace_of_a_request_in_openmetrics_only() {
    let (_receiver, endpoint) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = tracing_env(&endpoint);
    let service = Service::start(dir.path(), &as_env(&env)).await;

    let trace_id = random_hex(16);
    let traceparent = format!("00-{trace_id}-{}-01", random_hex(8));
    let listed = send(
        service.port,
        "GET",
        "/api/v1/students?limit=1",
        &[("traceparent", &traceparent)],
        None,
    )
    .await;
    assert_eq!(listed.status, 200);

    let openmetrics = send(
        service.port,
        "GET",
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
        None,
    )
    .await;
    assert_eq!(openmetrics.status, 200);
    assert!(
        openmetrics
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{openmetrics:?}"
    );
    let text = String::from_utf8(openmetrics.body).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let exemplar = format!("# {{trace_id=\"{trace_id}\"}}");
    let bucket = text
        .lines()
        .find(|line| line.contains(&exemplar))
        .unwrap_or_else(|| panic!("no exemplar of {trace_id}:\n{text}"));
    assert!(
        bucket.starts_with("http_request_duration_seconds_bucket{")
            && bucket.contains(r#"route="/api/v1/students""#),
        "{bucket}"
    );

    let classic = send(service.port, "GET", "/metrics", &[], None).await;
    assert_eq!(
        classic.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(classic.body).unwrap();
    assert!(!text.contains("trace_id"), "{text}");
    assert!(!text.contains("# EOF"), "{text}");
    for series in [
        r#"http_requests_total{method="GET",route="/api/v1/students",status="200"} 1"#,
        r#"http_request_duration_seconds_bucket{method="GET",route="/api/v1/students",le="+Inf"} 1"#,
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_traced() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(dir.path(), &[]).await;
    let trace_id = random_hex(16);
    let response = send(
        service.port,
        "GET",
        "/api/v1/students?limit=1",
        &[(
            "traceparent",
            &format!("00-{trace_id}-{}-01", random_hex(8)),
        )],
        None,
    )
    .await;
    assert_eq!(response.status, 200);
    let line = access_line(&service, &response);
    assert!(line.get("trace_id").is_none(), "{line}");
    assert!(line.get("span_id").is_none(), "{line}");
    let metrics = send(
        service.port,
        "GET",
        "/metrics",
        &[("Accept", "application/openmetrics-text")],
        None,
    )
    .await;
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(!text.contains("trace_id"), "{text}");
}

#[tokio::test]
async fn a_setting_the_sdk_would_ignore_stops_the_service_at_start() {
    for (var, value) in [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_student-api"))
            .env_clear()
            .current_dir(dir.path())
            .env("LOG_FORMAT", "json")
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
            .env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
            .env(var, value)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
    }
}
