//! The HTTP interface: the router the binary serves and the tests drive.
//!
//! Layers, outermost first: request id (sanitised, generated, propagated),
//! access log, metrics and the request's span, request limits (target,
//! header fields, declared body size), panic catcher, request timeout,
//! compression, body limit, fault injection (drills only).
//! Every route lives in its resource module, declared once with the
//! `#[utoipa::path]` that documents it, and is merged here; the OpenAPI
//! document is generated from the same routes. May import `domain` and
//! `storage`; readiness learns about anything else through [`Dependency`].

pub mod error;
mod extract;
mod fault_injection;
mod health;
mod metrics;
mod middleware;
pub mod openapi;
mod spans;
mod students;
mod ui;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use opentelemetry_sdk::trace::SdkTracer;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use extract::BODY_LIMIT_BYTES;
pub use fault_injection::{FaultSwitch, ADMIN_PATH as FAULT_ADMIN_PATH};
pub use health::{Dependency, Health};
pub use metrics::Metrics;

use crate::storage::Store;

/// Everything handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// The rendered OpenAPI document.
    pub openapi: Bytes,
    /// Starts each request's span; `None` when tracing is off.
    pub tracer: Option<SdkTracer>,
    /// The drills' fault switch; `None` unless `FAULT_INJECTION=on`.
    pub faults: Option<Arc<FaultSwitch>>,
}

/// Options that shape the router.
#[derive(Debug, Clone, Copy)]
pub struct RouterOptions {
    pub request_timeout: Duration,
    /// Serve `/metrics` on the API router (false when it has its own address).
    pub serve_metrics: bool,
}

/// The routes of the API address that the OpenAPI document describes.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(students::router())
        .routes(routes!(health::healthcheck))
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
        .routes(routes!(openapi::openapi_json))
}

/// `/metrics`, on the API address or on its own.
fn metrics_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics::metrics))
}

/// Every documented route with its documentation, for [`openapi::document`].
fn documented_routes() -> OpenApiRouter<AppState> {
    api_routes().merge(metrics_routes())
}

/// The API router with every layer applied.
pub fn router(state: AppState, options: RouterOptions) -> Router {
    let (mut routes, _) = api_routes().split_for_parts();
    routes = routes.merge(ui::router());
    if options.serve_metrics {
        routes = routes.merge(metrics_routes().split_for_parts().0);
    }
    routes
        .fallback(middleware::route_not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(
            ServiceBuilder::new()
                .map_request(middleware::drop_unusable_request_id)
                .layer(SetRequestIdLayer::new(
                    middleware::REQUEST_ID.clone(),
                    MakeRequestUuid,
                ))
                .layer(PropagateRequestIdLayer::new(middleware::REQUEST_ID.clone()))
                .layer(axum::middleware::from_fn_with_state(
                    middleware::Observer {
                        metrics: state.metrics.clone(),
                        tracer: state.tracer.clone(),
                    },
                    middleware::observe,
                ))
                .layer(axum::middleware::from_fn(
                    middleware::enforce_request_limits,
                ))
                .layer(CatchPanicLayer::custom(middleware::panic_response))
                .layer(HandleErrorLayer::new(middleware::layer_error_response))
                .timeout(options.request_timeout)
                .layer(CompressionLayer::new())
                .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
                // Innermost, so inside the timeout: a delay past
                // REQUEST_TIMEOUT is a 503, as a slow dependency would be.
                .option_layer(state.faults.clone().map(|switch| {
                    axum::middleware::from_fn_with_state(switch, fault_injection::inject)
                })),
        )
        .with_state(state)
}

/// The router for a separate metrics address: `/metrics`, and the drills'
/// `/admin/fault` when fault injection is on.
pub fn metrics_router(state: AppState) -> Router {
    let (mut routes, _) = metrics_routes().split_for_parts();
    if let Some(switch) = state.faults.clone() {
        routes = routes.merge(fault_injection::router(switch));
    }
    routes
        .fallback(middleware::route_not_found)
        .with_state(state)
}
