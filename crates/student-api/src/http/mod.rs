//! The HTTP interface: the router the binary serves and the tests drive.
//!
//! Layers, outermost first: request id (sanitised, generated, propagated),
//! access log and metrics, request limits (target, header fields, declared
//! body size), panic catcher, request timeout, compression, body limit.
//! Every route lives in its resource module and is merged here.

pub mod error;
mod extract;
mod health;
mod metrics;
mod middleware;
pub mod openapi;
mod students;
mod ui;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

pub use extract::BODY_LIMIT_BYTES;
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
}

/// Options that shape the router.
#[derive(Debug, Clone, Copy)]
pub struct RouterOptions {
    pub request_timeout: Duration,
    /// Serve `/metrics` on the API router (false when it has its own address).
    pub serve_metrics: bool,
}

/// The API router with every layer applied.
pub fn router(state: AppState, options: RouterOptions) -> Router {
    let mut routes = Router::new()
        .merge(students::router())
        .merge(ui::router())
        .route("/healthcheck", get(health::healthcheck))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/api/v1/openapi.json", get(openapi::openapi_json));
    if options.serve_metrics {
        routes = routes.route("/metrics", get(metrics::metrics));
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
                    state.metrics.clone(),
                    middleware::observe,
                ))
                .layer(axum::middleware::from_fn(
                    middleware::enforce_request_limits,
                ))
                .layer(CatchPanicLayer::custom(middleware::panic_response))
                .layer(HandleErrorLayer::new(middleware::layer_error_response))
                .timeout(options.request_timeout)
                .layer(CompressionLayer::new())
                .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES)),
        )
        .with_state(state)
}

/// The router for a separate metrics address: `/metrics` only.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .fallback(middleware::route_not_found)
        .with_state(state)
}
