//! The HTTP API of `livekit-api.md`, and the probes of the metrics port.
//!
//! - [`layers`]: what wraps every API request (concurrency, metrics, request ids on errors, panics);
//! - [`extract`]: the configured snapshot, the authenticated caller and the JSON body, each rejecting
//!   with the API error;
//! - [`token`] and [`info`]: the handlers; [`probes`]: `/livez`, `/readyz`, `/metrics`;
//! - [`error`]: the API error and the mapping of domain errors to it; [`openapi`]: the document.
//!
//! Order of checks on the token endpoint: configuration (500), caller authentication (401) before any
//! byte of the body is read, then the body (415/413/408/400), validation (400), identity override (403),
//! authorization (403/404/503), and only then signing.

pub mod error;
pub mod extract;
pub mod info;
pub mod layers;
pub mod openapi;
pub mod probes;
pub mod token;

use axum::Router;
use axum::http::{Method, Uri};
use axum::routing::{get, post};

use crate::state::AppState;
use error::ApiError;

/// The paths of the API, shared by the router and the OpenAPI document.
pub const TOKEN_PATH: &str = "/api/livekit/token";
pub const TOKEN_SOURCE_PATH: &str = "/api/livekit/token-source";
pub const CONNECTION_INFO_PATH: &str = "/api/livekit/connection-info";
pub const HEALTH_PATH: &str = "/api/livekit/health";

/// The API router with all its layers.
pub fn api_router(state: AppState) -> Router {
    let routes = Router::new()
        .route(TOKEN_PATH, post(token::issue_token))
        .route(TOKEN_SOURCE_PATH, post(token::issue_token_source))
        .route(CONNECTION_INFO_PATH, get(info::connection_info))
        .route(HEALTH_PATH, get(info::health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let known = [
        (TOKEN_PATH, true),
        (TOKEN_SOURCE_PATH, true),
        (CONNECTION_INFO_PATH, false),
        (HEALTH_PATH, false),
    ];
    layers::wrap(routes, state.clone(), &known).with_state(state)
}

/// `/livez`, `/readyz` and `/metrics`, on the metrics port.
pub fn probe_router(state: AppState) -> Router {
    Router::new()
        .route("/livez", get(probes::livez))
        .route("/metrics", get(probes::metrics))
        .route("/readyz", get(probes::readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::route_not_found(&method, uri.path())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(&method, uri.path())
}
