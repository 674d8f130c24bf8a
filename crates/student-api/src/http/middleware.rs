//! Cross-cutting request handling: request ids, the access log, HTTP
//! metrics and the request's span, limits on the request line, header fields and declared body
//! size, timeouts, panics, and the JSON answers for unknown routes and
//! methods.
//!
//! Rules: every response, including those made here, is JSON and carries
//! `X-Request-Id`; the access log line holds every request field itself.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use opentelemetry::context::FutureExt as _;
use opentelemetry_sdk::trace::SdkTracer;
use tower::BoxError;
use tracing::Instrument;

use super::error::ApiError;
use super::extract::BODY_LIMIT_BYTES;
use super::metrics::{Metrics, UNMATCHED_ROUTE};
use super::spans;

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied request id we keep; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Drops a client-supplied `X-Request-Id` that is too long or not printable
/// ASCII, so a fresh one is generated and logs stay clean.
pub fn drop_unusable_request_id(mut request: Request) -> Request {
    let usable = request
        .headers()
        .get(&REQUEST_ID)
        .is_none_or(is_usable_request_id);
    if !usable {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

fn is_usable_request_id(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty() && bytes.len() <= MAX_REQUEST_ID_LEN && bytes.iter().all(u8::is_ascii_graphic)
}

/// Decrements the in-flight gauge even when the request future is dropped.
struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

/// What [`observe`] records each request with.
#[derive(Clone)]
pub struct Observer {
    pub metrics: Arc<Metrics>,
    /// `None` when tracing is off.
    pub tracer: Option<SdkTracer>,
}

/// Wraps each request in a span (and, with tracing on, an OpenTelemetry
/// span that is current while the request runs), records its metrics and
/// writes the access log.
pub async fn observe(State(observer): State<Observer>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    // Cheap clones (reference-counted): this runs on every request.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched
        .as_ref()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    let request_id = request.headers().get(&REQUEST_ID).cloned();
    let request_id = request_id
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let otel = observer
        .tracer
        .as_ref()
        .map(|tracer| spans::start(tracer, &request, matched.as_ref().map(MatchedPath::as_str)));

    let metrics = &observer.metrics;
    metrics.in_flight.inc();
    let guard = InFlight(metrics);
    let span = tracing::info_span!("request", request_id, method = %method, route);
    let response = match &otel {
        Some(cx) => {
            next.run(request)
                .instrument(span)
                .with_context(cx.clone())
                .await
        }
        None => next.run(request).instrument(span).await,
    };
    drop(guard);

    let status = response.status();
    let elapsed = start.elapsed();
    let trace = otel.as_ref().and_then(spans::sampled_trace);
    metrics.observe(&method, route, status, elapsed, trace);
    // The access-log line carries the request's trace id: it is written
    // with the request's span current.
    let _current = otel.as_ref().map(|cx| cx.clone().attach());
    tracing::info!(
        request_id,
        method = %method,
        route,
        status = status.as_u16(),
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request completed"
    );
    if let Some(cx) = &otel {
        spans::finish(cx, status);
    }
    response
}

/// Longest request target (path and query) answered; longer is a 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Largest header section (names, values, separators) answered; larger is a 431.
/// The HTTP parser reads heads up to twice that (`server::MAX_HEAD_BYTES`),
/// so these requests get a problem document, not the parser's empty answer.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Refuses, before anything reads the body, a request over the limits: a
/// declared `Content-Length` above the body limit is answered 413 at once,
/// so an `Expect: 100-continue` client is never invited to send it.
pub async fn enforce_request_limits(request: Request, next: Next) -> Response {
    match check_request_limits(&request) {
        Ok(()) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}

fn check_request_limits(request: &Request) -> Result<(), ApiError> {
    let uri = request.uri();
    let target = uri.path().len() + uri.query().map_or(0, |query| query.len() + 1);
    if target > MAX_URI_BYTES {
        return Err(ApiError::UriTooLong {
            limit_kib: MAX_URI_BYTES / 1024,
        });
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(ApiError::HeadersTooLarge {
            limit_kib: MAX_HEADER_BYTES / 1024,
        });
    }
    // The HTTP parser has already refused a Content-Length that is not a number.
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > BODY_LIMIT_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge {
            limit_kib: BODY_LIMIT_BYTES / 1024,
        });
    }
    Ok(())
}

/// Turns a panic in a handler into an opaque 500; the panic message is logged.
#[allow(clippy::needless_pass_by_value)] // the signature CatchPanicLayer requires
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    ApiError::Internal(anyhow::anyhow!("handler panicked: {message}")).into_response()
}

/// Answers a request that exceeded the request timeout (or another layer error).
pub async fn layer_error_response(err: BoxError) -> Response {
    if err.is::<tower::timeout::error::Elapsed>() {
        ApiError::Timeout.into_response()
    } else {
        ApiError::Internal(anyhow::anyhow!(err)).into_response()
    }
}

/// 404 for any path no route matches.
pub async fn route_not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound(uri.path().to_owned())
}

/// 405 for a known path with a method it does not support.
pub async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;
    use tower_http::catch_panic::CatchPanicLayer;

    async fn boom() -> &'static str {
        panic!("secret internal state")
    }

    #[tokio::test]
    async fn a_panicking_handler_becomes_an_opaque_500_problem() {
        let app = Router::new()
            .route("/boom", get(boom))
            .layer(CatchPanicLayer::custom(panic_response));

        let response = app
            .oneshot(
                axum::http::Request::get("/boom")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();

        assert_eq!(response.status(), 500);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["detail"], "internal error");
        assert!(!String::from_utf8_lossy(&body).contains("secret"));
    }

    #[test]
    fn request_ids_must_be_short_printable_ascii() {
        assert!(is_usable_request_id(&HeaderValue::from_static(
            "req-123_ABC.x"
        )));
        assert!(!is_usable_request_id(&HeaderValue::from_static("")));
        assert!(!is_usable_request_id(&HeaderValue::from_static(
            "has space"
        )));
        assert!(!is_usable_request_id(
            &HeaderValue::from_str(&"x".repeat(129)).unwrap()
        ));
    }
}
