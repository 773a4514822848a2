//! The probes of the metrics port: `/livez` for the kubelet's liveness check, `/readyz` ("this sidecar
//! can answer"), and `/metrics` for Prometheus. Not part of the API document.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::{NOT_CONFIGURED, error_response};
use crate::state::AppState;

pub(crate) async fn livez() -> &'static str {
    "ok"
}

/// Ready means "this sidecar can answer": a configuration with credentials is loaded. LiveKit
/// reachability is deliberately not part of it: an outage of LiveKit must not take every app pod out
/// of its Service (non-video features included); it shows in health, metrics and an alert instead.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    if state.snapshot().is_configured() {
        "ready".into_response()
    } else {
        error_response(StatusCode::SERVICE_UNAVAILABLE, NOT_CONFIGURED.into())
    }
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    state.refresh_health_gauges();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics().render(),
    )
        .into_response()
}
