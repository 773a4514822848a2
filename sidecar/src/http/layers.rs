//! The layers around every API request: a concurrency slot and a time bound, metrics by route and
//! status (and token outcome), request ids and a span, and a last-resort 500 for a panic.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use super::error::{ApiError, error_response};
use super::{TOKEN_PATH, TOKEN_SOURCE_PATH};
use crate::state::AppState;

/// Wraps the API routes in every layer.
pub fn wrap(routes: Router<AppState>, state: AppState) -> Router<AppState> {
    routes
        .layer(middleware::from_fn_with_state(state, guard))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(middleware::map_request(drop_unusable_request_id))
        .layer(CatchPanicLayer::custom(|_| {
            error_response(
                ::http::StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error".into(),
            )
        }))
}

/// Longest client-supplied `x-request-id` kept; a UUID is 36 characters, a trace id 32.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Whether a client's `x-request-id` may be logged and echoed as is: short, and only characters that
/// cannot forge a log line or a field (letters, digits, `-`, `_`, `.`, `:`).
pub fn request_id_is_usable(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Removes a client `x-request-id` that is not usable, so the sidecar generates one instead.
async fn drop_unusable_request_id(mut request: Request) -> Request {
    let headers = request.headers_mut();
    let usable = headers
        .get_all("x-request-id")
        .iter()
        .map(|v| request_id_is_usable(v.as_bytes()))
        .collect::<Vec<_>>();
    if usable.len() > 1 || usable.first() == Some(&false) {
        headers.remove("x-request-id");
    }
    request
}

/// The span of one request: method, route path (never the query) and the request id.
fn request_span(request: &Request) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
}

/// Bounds concurrency and total time of every request, and counts it by route and status, and token
/// requests by outcome.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    // Requests with a body take their slot once the body is in (see the token handlers), so clients
    // that trickle bodies cannot hold every slot; they are bounded by the body timeout instead.
    let permit = if request.method() == Method::POST {
        Ok(None)
    } else {
        state.try_enter().map(Some)
    };
    let response = match permit {
        Err(busy) => ApiError::from(busy).into_response(),
        Ok(_permit) => {
            match tokio::time::timeout(state.limits().request_timeout, next.run(request)).await {
                Ok(response) => response,
                Err(_) => ApiError::Unavailable("Request timed out".into()).into_response(),
            }
        }
    };
    let status = response.status();
    if route == TOKEN_PATH || route == TOKEN_SOURCE_PATH {
        let outcome = ApiError::outcome(&response).unwrap_or(if status.is_success() {
            "issued"
        } else {
            "error"
        });
        state.metrics().observe_token(outcome);
    }
    state
        .metrics()
        .observe_request(&route, status.as_u16(), started.elapsed());
    response
}
