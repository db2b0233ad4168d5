//! Application state and the HTTP router.

use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use axum::routing::any;
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::api;
use crate::registry::Registry;

/// Shared handles every request handler may use.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
}

/// The full HTTP surface of berth.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v2", any(api::v2::dispatch))
        .route("/v2/", any(api::v2::dispatch))
        .route("/v2/{*path}", any(api::v2::dispatch))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("docker-distribution-api-version"),
            HeaderValue::from_static("registry/2.0"),
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
