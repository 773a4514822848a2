//! The HTTP API of `../shared/spec/livekit-api.md`, and the probes of the metrics port.
//!
//! Order of checks on the token endpoint: configuration (500), caller authentication (401) before any
//! byte of the body is read, then the body (415/413/408/400), validation (400), identity override (403),
//! authorization (403/404/503), and only then signing.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use axum::Json;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::{AuthFailure, Caller, VerifyError};
use crate::config::{Service, Snapshot};
use crate::error::{ApiError, error_response};
use crate::metrics::Metrics;
use crate::openapi::{ConnectionInfoErrors, HealthErrors, TokenErrors};
use crate::probe::{ProbeSettings, Reachability, ReachabilityCell};
use crate::token::{claims_for, iso8601_millis, resolve_identity};
use crate::validation::{
    TokenRequestBody, TokenSourceRequestBody, validate_token_request, validate_token_source_request,
};

/// The paths of the API, shared by the router and the OpenAPI document ([`crate::openapi`]).
pub const TOKEN_PATH: &str = "/api/livekit/token";
pub const TOKEN_SOURCE_PATH: &str = "/api/livekit/token-source";
pub const CONNECTION_INFO_PATH: &str = "/api/livekit/connection-info";
pub const HEALTH_PATH: &str = "/api/livekit/health";

/// Limits applied to every API request.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// How long a client may take to send its body.
    pub body_timeout: Duration,
    /// Safety net for a whole request (webhooks and JWKS have their own, shorter, timeouts).
    pub request_timeout: Duration,
    /// Requests handled at once; more are refused with 503 rather than queued without bound.
    pub max_concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024,
            body_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_concurrency: 512,
        }
    }
}

/// What every handler shares: the current configuration snapshot, limits, metrics and reachability.
#[derive(Clone)]
pub struct AppState {
    config: Arc<ArcSwap<Snapshot>>,
    limits: Arc<Limits>,
    in_flight: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    reachability: Arc<ReachabilityCell>,
    probe: Arc<ProbeSettings>,
}

impl AppState {
    pub fn new(snapshot: Snapshot, limits: Limits, probe: ProbeSettings) -> Self {
        let state = Self {
            config: Arc::new(ArcSwap::from_pointee(snapshot)),
            in_flight: Arc::new(Semaphore::new(limits.max_concurrency)),
            limits: Arc::new(limits),
            metrics: Arc::new(Metrics::new()),
            reachability: Arc::new(ReachabilityCell::default()),
            probe: Arc::new(probe),
        };
        state.metrics.record_reload(true);
        state.refresh_health_gauges();
        state
    }

    /// The snapshot a request works with from start to end, whatever a reload does meanwhile.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.config.load_full()
    }

    /// Swaps in a new, already validated snapshot.
    pub fn replace(&self, snapshot: Snapshot) {
        self.config.store(Arc::new(snapshot));
        self.refresh_health_gauges();
    }

    /// A slot among `--max-concurrency` requests at work; refused (503), never queued without bound.
    fn try_enter(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.in_flight.clone().try_acquire_owned().map_err(|_| {
            ApiError::Unavailable("Too many requests in progress, please retry".into())
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn reachability(&self) -> &ReachabilityCell {
        &self.reachability
    }

    /// Configured, and — when the setting asks for it and probing is on — the LiveKit server answers.
    pub fn is_healthy(&self) -> bool {
        let configured = self.snapshot().is_configured();
        let probing = !self.probe.interval.is_zero();
        let reachable = self.reachability.get() == Reachability::Reachable;
        configured && (reachable || !probing || !self.probe.unreachable_is_unhealthy)
    }

    pub fn refresh_health_gauges(&self) {
        let m = &self.metrics;
        m.configured.set(i64::from(self.snapshot().is_configured()));
        m.healthy.set(i64::from(self.is_healthy()));
        m.livekit_reachable.set(i64::from(
            self.reachability.get() == Reachability::Reachable,
        ));
    }
}

/// The API router with all its layers.
pub fn api_router(state: AppState) -> Router {
    Router::new()
        .route(TOKEN_PATH, post(issue_token))
        .route(TOKEN_SOURCE_PATH, post(issue_token_source))
        .route(CONNECTION_INFO_PATH, get(connection_info))
        .route(HEALTH_PATH, get(health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(CatchPanicLayer::custom(|_| {
            error_response(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error".into(),
            )
        }))
        .with_state(state)
}

/// `/livez` and `/readyz` for the kubelet, on the metrics port.
pub fn probe_router(state: AppState) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
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

/// Bounds concurrency and total time of every request, and counts it by route and status.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    // Requests with a body take their slot once the body is in (see `token_response`), so clients
    // that trickle bodies cannot hold every slot; they are bounded by the body timeout instead.
    let permit = if request.method() == Method::POST {
        Ok(None)
    } else {
        state.try_enter().map(Some)
    };
    let response = match permit {
        Err(error) => error.into_response(),
        Ok(_permit) => {
            match tokio::time::timeout(state.limits.request_timeout, next.run(request)).await {
                Ok(response) => response,
                Err(_) => ApiError::Unavailable("Request timed out".into()).into_response(),
            }
        }
    };
    state
        .metrics
        .observe_request(&route, response.status().as_u16(), started.elapsed());
    response
}

/// A LiveKit access token and what it grants.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct TokenResponse {
    /// The LiveKit access token (a JWT signed with the LiveKit API secret).
    token: String,
    /// The participant identity in the token.
    identity: String,
    /// The room the token lets its holder join.
    room_id: String,
    /// The participant's display name, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// When the token expires (ISO 8601, UTC, milliseconds).
    #[schema(format = DateTime)]
    expires_at: String,
}

/// The two token endpoints: the documented API, and LiveKit's standard token endpoint that
/// `livekit-client`'s `TokenSource.endpoint()` calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Documented,
    TokenSource,
}

#[utoipa::path(
    post,
    path = TOKEN_PATH,
    tag = "livekit",
    operation_id = "issueToken",
    summary = "Issue a LiveKit access token",
    description = "Checks the caller token (401), the body (415/413/408/400), the identity override \
        (403) and the caller's JOIN_CHANNEL permission for the room (403/404/503), then signs.",
    request_body(content = TokenRequestBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The token.", body = TokenResponse,
            headers(("Cache-Control" = String, description = "Always `no-store`."))),
        TokenErrors,
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn issue_token(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    counted(
        &state,
        token_response(&state, request, Flavor::Documented).await,
    )
}

#[utoipa::path(
    post,
    path = TOKEN_SOURCE_PATH,
    tag = "livekit",
    operation_id = "issueTokenSource",
    summary = "LiveKit's standard token endpoint",
    description = "The request and response of the LiveKit client SDKs' token server endpoint \
        (`TokenSource.endpoint()`), with the same caller authentication, JOIN_CHANNEL authorization \
        and errors as `POST /api/livekit/token`.",
    request_body(content = TokenSourceRequestBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The server URL and the token.", body = TokenSourceResponse,
            headers(("Cache-Control" = String, description = "Always `no-store`."))),
        TokenErrors,
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn issue_token_source(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    counted(
        &state,
        token_response(&state, request, Flavor::TokenSource).await,
    )
}

fn counted(state: &AppState, result: Result<Response, ApiError>) -> Result<Response, ApiError> {
    let outcome = match &result {
        Ok(_) => "issued",
        Err(error) => error.token_outcome(),
    };
    state.metrics.observe_token(outcome);
    result
}

async fn token_response(
    state: &AppState,
    request: Request,
    flavor: Flavor,
) -> Result<Response, ApiError> {
    let snapshot = state.snapshot();
    let service = configured(&snapshot)?;
    let caller = authenticate(state, service, request.headers()).await?;
    let body = read_json_object(request, &state.limits).await?;
    let _permit = state.try_enter()?;
    let settings = &service.settings.token;
    let token_request = match flavor {
        Flavor::Documented => validate_token_request(&body, settings.max_ttl_seconds),
        Flavor::TokenSource => validate_token_source_request(&body),
    }
    .map_err(ApiError::Validation)?;
    let identity = resolve_identity(&token_request, &caller, settings.allow_identity_override)?;
    service
        .authorizer
        .authorize(&caller, &token_request.room_id, &state.metrics)
        .await?;

    let claims = claims_for(
        &token_request,
        identity,
        &caller,
        settings,
        service.signer.api_key(),
        unix_now(),
    );
    let token = service.signer.sign(&claims)?;
    // Per token at debug only: the metrics count tokens, and a line per request costs a fifth of the CPU.
    tracing::debug!(ttl = claims.exp - claims.nbf, "token issued");
    let mut response = match flavor {
        Flavor::Documented => Json(TokenResponse {
            token,
            expires_at: iso8601_millis(claims.exp),
            identity: claims.sub,
            room_id: claims.video.room,
            name: claims.name,
        })
        .into_response(),
        Flavor::TokenSource => Json(TokenSourceResponse {
            server_url: &service.settings.server_url,
            participant_token: token,
        })
        .into_response(),
    };
    // A bearer credential: no cache may keep it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// LiveKit's standard token endpoint response (`TokenSourceResponse`, proto field names).
#[derive(Serialize, utoipa::ToSchema)]
struct TokenSourceResponse<'a> {
    /// The LiveKit server URL clients connect to.
    server_url: &'a str,
    /// The LiveKit access token.
    participant_token: String,
}

/// Where and how clients connect.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ConnectionInfo<'a> {
    /// The LiveKit server URL clients connect to.
    server_url: &'a str,
    /// The deployment's region, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'a str>,
    /// Always true in a 200 answer.
    configured: bool,
    #[schema(value_type = FeaturesDoc)]
    features: &'a livekit_contract::Features,
}

// `livekit_contract::Features`, documented here because that crate does not depend on utoipa; a test
// checks the field names against its JSON.
/// What the deployment offers to clients.
#[derive(utoipa::ToSchema)]
#[schema(as = Features)]
#[allow(dead_code)]
pub(crate) struct FeaturesDoc {
    audio: bool,
    video: bool,
    #[schema(rename = "screenShare")]
    screen_share: bool,
    recording: bool,
}

#[utoipa::path(
    get,
    path = CONNECTION_INFO_PATH,
    tag = "livekit",
    operation_id = "connectionInfo",
    summary = "Where and how clients connect",
    responses(
        (status = 200, description = "The connection details.", body = ConnectionInfo),
        ConnectionInfoErrors,
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn connection_info(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let snapshot = state.snapshot();
    let service = configured(&snapshot)?;
    authenticate(&state, service, &headers).await?;
    let settings = &service.settings;
    Ok(Json(ConnectionInfo {
        server_url: &settings.server_url,
        region: settings.region.as_deref(),
        configured: true,
        features: &settings.features,
    })
    .into_response())
}

/// Whether the sidecar can issue tokens.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// `healthy` when configured and, if probing is on and required, the LiveKit server answers.
    #[schema(value_type = HealthStatus)]
    status: &'static str,
    /// Whether LiveKit credentials are configured.
    configured: bool,
}

/// `healthy` when the sidecar can issue tokens.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum HealthStatus {
    Healthy,
    Unhealthy,
}

#[utoipa::path(
    get,
    path = HEALTH_PATH,
    tag = "livekit",
    operation_id = "health",
    summary = "Health, without authentication",
    description = "Always 200 while the sidecar runs; `status` says whether it can issue tokens.",
    responses(
        (status = 200, description = "The health.", body = Health),
        HealthErrors,
    ),
)]
pub(crate) async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: if state.is_healthy() {
            "healthy"
        } else {
            "unhealthy"
        },
        configured: state.snapshot().is_configured(),
    })
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.is_healthy() {
        "ready".into_response()
    } else if state.snapshot().is_configured() {
        error_response(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "LiveKit server is not reachable".into(),
        )
    } else {
        error_response(
            http::StatusCode::SERVICE_UNAVAILABLE,
            crate::error::NOT_CONFIGURED.into(),
        )
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    state.refresh_health_gauges();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::route_not_found(&method, uri.path())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(&method, uri.path())
}

fn configured(snapshot: &Snapshot) -> Result<&Service, ApiError> {
    snapshot.service.as_ref().ok_or(ApiError::NotConfigured)
}

async fn authenticate(
    state: &AppState,
    service: &Service,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    let header = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::Unauthorized(AuthFailure::Malformed))?,
        ),
    };
    service
        .verifier
        .verify_header(header)
        .await
        .map_err(|error| match error {
            VerifyError::Refused(failure) => {
                tracing::info!(reason = failure.reason(), "caller refused");
                state
                    .metrics
                    .auth_failures
                    .with_label_values(&[failure.reason()])
                    .inc();
                ApiError::Unauthorized(failure)
            }
            VerifyError::KeysUnavailable(detail) => {
                state
                    .metrics
                    .auth_failures
                    .with_label_values(&["keys_unavailable"])
                    .inc();
                tracing::warn!(%detail, "caller keys unavailable");
                ApiError::Unavailable(
                    "Caller signing keys are unavailable, please retry later".into(),
                )
            }
        })
}

/// Reads a JSON object body within the size and time limits. An empty body counts as `{}`, as NestJS
/// would treat it, so that validation names the missing fields.
async fn read_json_object(
    request: Request,
    limits: &Limits,
) -> Result<Map<String, Value>, ApiError> {
    let (parts, body) = request.into_parts();
    if !is_json(&parts.headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let limit = limits.max_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let collected = tokio::time::timeout(limits.body_timeout, Limited::new(body, limit).collect())
        .await
        .map_err(|_| ApiError::RequestTimeout)?;
    let bytes = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        Err(_) => {
            return Err(ApiError::BadRequest(
                "Request body could not be read".into(),
            ));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::BadRequest(
            "Request body must be a JSON object".into(),
        )),
        Err(error) => Err(ApiError::BadRequest(format!(
            "Request body is not valid JSON: {error}"
        ))),
    }
}

/// `application/json` or any `+json` type, in UTF-8 if a charset is named.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';').map(str::trim);
    let essence = parts.next().unwrap_or("").to_ascii_lowercase();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    let utf8 = parts.all(|param| match param.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    });
    json && utf8
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        h
    }

    #[test]
    fn documented_features_are_the_served_ones() {
        let served = serde_json::to_value(livekit_contract::Features::default()).unwrap();
        let documented =
            serde_json::to_value(<FeaturesDoc as utoipa::PartialSchema>::schema()).unwrap();
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&served), keys(&documented["properties"]));
        assert_eq!(keys(&served), {
            let mut required: Vec<String> =
                serde_json::from_value(documented["required"].clone()).unwrap();
            required.sort();
            required
        });
    }

    #[test]
    fn json_content_types() {
        assert!(is_json(&headers("application/json")));
        assert!(is_json(&headers("Application/JSON; charset=UTF-8")));
        assert!(is_json(&headers("application/vnd.api+json")));
        assert!(!is_json(&headers("text/plain")));
        assert!(!is_json(&headers("application/json; charset=latin1")));
        assert!(!is_json(&headers("application/x-www-form-urlencoded")));
        assert!(!is_json(&HeaderMap::new()));
    }
}
