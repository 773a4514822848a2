//! The one error type of the HTTP API, rendered as a NestJS-style body `{statusCode, message, error}` so
//! clients written against the original backend keep working. The domain modules return their own
//! errors, free of HTTP; this is the one place that gives each its status and message.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::auth::{AuthFailure, VerifyError};
use crate::authz::{AuthzError, JOIN_CHANNEL};
use crate::state::Busy;
use crate::token::{IdentityOverrideRefused, SignError};

/// The message the spec gives for every configuration problem.
pub const NOT_CONFIGURED: &str = "LiveKit service not configured properly";

/// How long a path may be before it is cut when echoed in a 404/405 message.
const MAX_ECHOED_PATH: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// class-validator style messages, all problems of one request together.
    #[error("validation failed: {}", .0.join("; "))]
    Validation(Vec<String>),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(AuthFailure),
    #[error("{0}")]
    Forbidden(String),
    #[error("Channel with ID {0} not found")]
    ChannelNotFound(String),
    #[error("Cannot {method} {path}")]
    RouteNotFound { method: String, path: String },
    #[error("Method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("Request body was not received in time")]
    RequestTimeout,
    #[error("Request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("{NOT_CONFIGURED}")]
    NotConfigured,
    /// A dependency the sidecar needs to decide is down; the request is refused (fail closed).
    #[error("{0}")]
    Unavailable(String),
    /// Never shown to the client; logged where it is raised.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn insufficient_permissions() -> Self {
        Self::Forbidden(format!(
            "Insufficient permissions. Required: {JOIN_CHANNEL}"
        ))
    }

    pub fn route_not_found(method: &http::Method, path: &str) -> Self {
        Self::RouteNotFound {
            method: method.to_string(),
            path: truncate(path),
        }
    }

    pub fn method_not_allowed(method: &http::Method, path: &str) -> Self {
        Self::MethodNotAllowed {
            method: method.to_string(),
            path: truncate(path),
        }
    }

    /// The label of [`crate::metrics::TOKEN_OUTCOMES`] a token request that failed this way counts under.
    pub fn token_outcome(&self) -> &'static str {
        match self {
            Self::Validation(_)
            | Self::BadRequest(_)
            | Self::RequestTimeout
            | Self::PayloadTooLarge { .. }
            | Self::UnsupportedMediaType => "invalid_request",
            Self::Unauthorized(_) => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
            Self::ChannelNotFound(_) => "not_found",
            Self::Unavailable(_) => "unavailable",
            Self::NotConfigured => "not_configured",
            Self::RouteNotFound { .. } | Self::MethodNotAllowed { .. } | Self::Internal(_) => {
                "error"
            }
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::ChannelNotFound(_) | Self::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotConfigured | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The token outcome of an error response, read by the layer that counts token requests.
    pub fn outcome(response: &Response) -> Option<&'static str> {
        response.extensions().get::<Outcome>().map(|o| o.0)
    }

    fn message(&self) -> Message {
        match self {
            Self::Validation(messages) => Message::Many(messages.clone()),
            Self::Internal(_) => Message::One("Internal server error".into()),
            other => Message::One(other.to_string()),
        }
    }
}

fn truncate(path: &str) -> String {
    if path.len() <= MAX_ECHOED_PATH {
        return path.to_owned();
    }
    let mut end = MAX_ECHOED_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}

/// One message, or every validation message of a request.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum Message {
    One(String),
    Many(Vec<String>),
}

/// The NestJS error body.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"statusCode": 403, "message": "Insufficient permissions. Required: JOIN_CHANNEL", "error": "Forbidden"}))]
pub(crate) struct ErrorBody {
    /// The HTTP status code, repeated.
    #[schema(minimum = 400, maximum = 599)]
    status_code: u16,
    /// What went wrong: a string, or an array of class-validator messages for validation errors.
    message: Message,
    /// The status code's reason phrase, such as `Bad Request` or `Unauthorized`.
    error: &'static str,
}

/// Renders any status with a NestJS body; used for errors raised outside handlers too.
pub fn error_response(status: StatusCode, message: String) -> Response {
    body_response(status, Message::One(message))
}

fn body_response(status: StatusCode, message: Message) -> Response {
    let body = ErrorBody {
        status_code: status.as_u16(),
        message,
        error: status.canonical_reason().unwrap_or("Error"),
    };
    (status, Json(body)).into_response()
}

/// Carries [`ApiError::token_outcome`] from the handler to the metrics layer.
#[derive(Debug, Clone, Copy)]
struct Outcome(&'static str);

impl From<VerifyError> for ApiError {
    fn from(error: VerifyError) -> Self {
        match error {
            VerifyError::Refused(failure) => Self::Unauthorized(failure),
            VerifyError::KeysUnavailable(_) => {
                Self::Unavailable("Caller signing keys are unavailable, please retry later".into())
            }
        }
    }
}

impl From<AuthzError> for ApiError {
    fn from(error: AuthzError) -> Self {
        match error {
            AuthzError::Denied => Self::insufficient_permissions(),
            AuthzError::ChannelNotFound { room_id } => Self::ChannelNotFound(room_id),
            AuthzError::Unavailable => {
                Self::Unavailable("Authorization service unavailable, please retry later".into())
            }
        }
    }
}

impl From<IdentityOverrideRefused> for ApiError {
    fn from(_: IdentityOverrideRefused) -> Self {
        Self::Forbidden(
            "Insufficient permissions. Requesting a token for another identity is not allowed"
                .into(),
        )
    }
}

impl From<SignError> for ApiError {
    fn from(error: SignError) -> Self {
        Self::Internal(error.to_string())
    }
}

impl From<Busy> for ApiError {
    fn from(_: Busy) -> Self {
        Self::Unavailable("Too many requests in progress, please retry".into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Internal(detail) = &self {
            tracing::error!(%detail, "request failed");
        }
        let mut response = body_response(status, self.message());
        response
            .extensions_mut()
            .insert(Outcome(self.token_outcome()));
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(error: ApiError) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn bodies_have_the_nestjs_shape() {
        let (status, body) = body_of(ApiError::insufficient_permissions()).await;
        assert_eq!(status, 403);
        assert_eq!(
            body,
            serde_json::json!({"statusCode": 403, "message": "Insufficient permissions. Required: JOIN_CHANNEL", "error": "Forbidden"})
        );
        let (_, body) = body_of(ApiError::Validation(vec!["a".into(), "b".into()])).await;
        assert_eq!(body["message"], serde_json::json!(["a", "b"]));
        assert_eq!(body["error"], "Bad Request");
        let (status, body) = body_of(ApiError::NotConfigured).await;
        assert_eq!(status, 500);
        assert_eq!(body["message"], NOT_CONFIGURED);
        assert_eq!(body["error"], "Internal Server Error");
    }

    #[tokio::test]
    async fn internal_details_are_not_shown() {
        let (_, body) = body_of(ApiError::Internal("secret detail".into())).await;
        assert_eq!(body["message"], "Internal server error");
    }

    #[tokio::test]
    async fn domain_errors_map_to_the_spec_statuses() {
        let (status, body) = body_of(AuthzError::Denied.into()).await;
        assert_eq!(status, 403);
        assert_eq!(
            body["message"],
            "Insufficient permissions. Required: JOIN_CHANNEL"
        );
        let (status, body) = body_of(
            AuthzError::ChannelNotFound {
                room_id: "abc".into(),
            }
            .into(),
        )
        .await;
        assert_eq!(status, 404);
        assert_eq!(body["message"], "Channel with ID abc not found");
        assert_eq!(body_of(AuthzError::Unavailable.into()).await.0, 503);
        assert_eq!(body_of(IdentityOverrideRefused.into()).await.0, 403);
        assert_eq!(body_of(Busy.into()).await.0, 503);
        let keys = VerifyError::KeysUnavailable("jwks down".into());
        let (status, body) = body_of(keys.into()).await;
        assert_eq!(status, 503);
        assert!(!body["message"].as_str().unwrap().contains("jwks down"));
        let refused = VerifyError::Refused(AuthFailure::Expired);
        assert_eq!(body_of(refused.into()).await.0, 401);
    }

    #[test]
    fn outcomes_travel_with_the_response() {
        let response = ApiError::NotConfigured.into_response();
        assert_eq!(ApiError::outcome(&response), Some("not_configured"));
        let response = ApiError::Unauthorized(AuthFailure::Expired).into_response();
        assert_eq!(ApiError::outcome(&response), Some("unauthenticated"));
    }

    #[test]
    fn long_paths_are_cut_on_a_char_boundary() {
        let path = format!("/{}", "é".repeat(300));
        let ApiError::RouteNotFound { path: echoed, .. } =
            ApiError::route_not_found(&http::Method::GET, &path)
        else {
            unreachable!()
        };
        assert!(echoed.len() <= MAX_ECHOED_PATH + '…'.len_utf8());
    }
}
