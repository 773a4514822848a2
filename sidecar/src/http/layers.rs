//! The one layer around every API request, written by hand so the hot path pays for nothing it does
//! not use: a concurrency slot for GET routes (token routes take theirs once the body is in), metrics
//! through handles resolved once at start, the token outcome, and a request id on error answers only.
//! No span, no per-request log line at info level, no UUID: those cost a fifth of a request's CPU.
//! A panic still becomes a NestJS 500 (`CatchPanicLayer`, outermost).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};
use tower_http::catch_panic::CatchPanicLayer;

use super::error::{ApiError, error_response};
use crate::metrics::RouteMetrics;
use crate::state::AppState;

pub const REQUEST_ID: &str = "x-request-id";
/// Longest client request id echoed back; longer or odd ones are replaced.
pub const MAX_REQUEST_ID: usize = 64;

/// Wraps the API routes in the layer.
/// `known` names every route path and whether it counts token outcomes.
pub fn wrap(
    routes: Router<AppState>,
    state: AppState,
    known: &[(&'static str, bool)],
) -> Router<AppState> {
    let metrics = Arc::new(state.metrics().routes(known));
    routes
        .layer(ApiLayer { state, metrics })
        .layer(CatchPanicLayer::custom(|_| {
            error_response(
                ::http::StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error".into(),
            )
        }))
}

#[derive(Clone)]
struct ApiLayer {
    state: AppState,
    metrics: Arc<RouteMetrics>,
}

impl<S> Layer<S> for ApiLayer {
    type Service = ApiService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiService {
            inner,
            state: self.state.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ApiService<S> {
    inner: S,
    state: AppState,
    metrics: Arc<RouteMetrics>,
}

impl<S> Service<Request> for ApiService<S>
where
    S: Service<Request, Response = Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        // The clone that was ready serves this request; a fresh one waits for the next (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let route = self.metrics.index(
            request
                .extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str),
        );
        // Exactly one well-formed client id is kept; several, or an odd one, are replaced.
        let mut ids = request.headers().get_all(REQUEST_ID).iter();
        let client_id = match (ids.next(), ids.next()) {
            (Some(id), None) if well_formed_id(id.as_bytes()) => Some(id.clone()),
            _ => None,
        };
        // Requests with a body take their slot once the body is in (see the token handlers), so clients
        // that trickle bodies cannot hold every slot; they are bounded by the body timeout instead.
        // Health answers from a cached value and must keep answering when every slot is taken, so a
        // busy sidecar is not reported down.
        let health = request
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|p| p.as_str() == super::HEALTH_PATH);
        let permit = if request.method() == Method::POST || health {
            Ok(None)
        } else {
            self.state.try_enter().map(Some)
        };
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let mut response = match permit {
                Err(busy) => ApiError::from(busy).into_response(),
                Ok(_permit) => inner.call(request).await?,
            };
            let status = response.status();
            if metrics.counts_tokens(route) {
                let outcome = ApiError::outcome(&response).unwrap_or(if status.is_success() {
                    "issued"
                } else {
                    "error"
                });
                metrics.observe_token(outcome);
            }
            metrics.observe(route, status.as_u16(), started.elapsed());
            let id = match client_id {
                Some(id) => Some(id),
                None if status.is_client_error() || status.is_server_error() => Some(new_id()),
                None => None,
            };
            if let Some(id) = id {
                if status.is_server_error() {
                    tracing::warn!(request_id = ?id, status = status.as_u16(), "request failed");
                }
                response.headers_mut().insert(REQUEST_ID, id);
            }
            Ok(response)
        })
    }
}

/// A client id worth echoing: short, and only characters that cannot forge log lines or headers.
fn well_formed_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A process-unique id: a random prefix fixed at start and a counter. Unique, cheap, not a secret.
fn new_id() -> HeaderValue {
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let seed = std::collections::hash_map::RandomState::new();
        std::hash::BuildHasher::hash_one(&seed, std::process::id()) as u32
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("{prefix:08x}-{n:012x}")).expect("hex is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_echoed() {
        assert!(well_formed_id(b"abc-123_x.y:z"));
        assert!(well_formed_id(&[b'a'; MAX_REQUEST_ID]));
        assert!(!well_formed_id(&[b'a'; MAX_REQUEST_ID + 1]));
        assert!(!well_formed_id(b""));
        assert!(!well_formed_id(b"a b"));
        assert!(!well_formed_id(b"a\"b"));
        assert!(!well_formed_id("é".as_bytes()));
    }

    #[test]
    fn generated_ids_differ() {
        assert_ne!(new_id(), new_id());
    }
}
