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

pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    if state.is_healthy() {
        "ready".into_response()
    } else if state.snapshot().is_configured() {
        error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "LiveKit server is not reachable".into(),
        )
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
