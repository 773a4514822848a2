//! The two token endpoints: the documented API, and LiveKit's standard token endpoint that
//! `livekit-client`'s `TokenSource.endpoint()` calls.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::ApiError;
use super::extract::{Authenticated, JsonObject};
use super::openapi::TokenErrors;
use super::{TOKEN_PATH, TOKEN_SOURCE_PATH};
use crate::state::AppState;
use crate::token::{SignError, claims_for, iso8601_millis, resolve_identity};
use crate::validation::{
    TokenRequestBody, TokenSourceRequestBody, validate_token_request, validate_token_source_request,
};

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

/// LiveKit's standard token endpoint response (`TokenSourceResponse`, proto field names).
#[derive(Serialize, utoipa::ToSchema)]
struct TokenSourceResponse<'a> {
    /// The LiveKit server URL clients connect to.
    server_url: &'a str,
    /// The LiveKit access token.
    participant_token: String,
}

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
    caller: Authenticated,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    token_response(&state, caller, body, Flavor::Documented).await
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
    caller: Authenticated,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    token_response(&state, caller, body, Flavor::TokenSource).await
}

async fn token_response(
    state: &AppState,
    Authenticated { config, caller }: Authenticated,
    body: serde_json::Map<String, serde_json::Value>,
    flavor: Flavor,
) -> Result<Response, ApiError> {
    // The slot is taken once the body is in, so clients that trickle bodies cannot hold every slot.
    let _permit = state.try_enter()?;
    let service = &*config;
    let settings = &service.settings.token;
    let token_request = match flavor {
        Flavor::Documented => validate_token_request(&body, settings.max_ttl_seconds),
        Flavor::TokenSource => validate_token_source_request(&body),
    }
    .map_err(ApiError::Validation)?;
    let identity = resolve_identity(&token_request, &caller, settings.allow_identity_override)?;
    service
        .authorizer
        .authorize(&caller, &token_request.room_id, state.metrics())
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
    let body = match flavor {
        Flavor::Documented => json_body(&TokenResponse {
            token,
            expires_at: iso8601_millis(claims.exp),
            identity: claims.sub,
            room_id: claims.video.room,
            name: claims.name,
        }),
        Flavor::TokenSource => json_body(&TokenSourceResponse {
            server_url: &service.settings.server_url,
            participant_token: token,
        }),
    }?;
    // A bearer credential: no cache may keep it.
    let response = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response();
    Ok(response)
}

/// A response body that knows a bound on its JSON length (exact up to string escapes).
trait LenHint: Serialize {
    fn len_hint(&self) -> usize;
}

impl LenHint for TokenResponse {
    fn len_hint(&self) -> usize {
        const KEYS: usize = 80; // {"token":"","identity":"","roomId":"","name":"","expiresAt":""}
        KEYS + self.token.len()
            + self.identity.len()
            + self.room_id.len()
            + self.name.as_ref().map_or(0, String::len)
            + self.expires_at.len()
    }
}

impl LenHint for TokenSourceResponse<'_> {
    fn len_hint(&self) -> usize {
        const KEYS: usize = 48; // {"server_url":"","participant_token":""}
        KEYS + self.server_url.len() + self.participant_token.len()
    }
}

/// A JSON body serialized into a buffer sized up front, so it is written without regrowth (axum's
/// `Json` starts at 128 bytes and doubles three times for a token response).
fn json_body(value: &impl LenHint) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::with_capacity(value.len_hint());
    serde_json::to_writer(&mut body, value).map_err(SignError::from)?;
    Ok(body)
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

    /// The buffer is never outgrown by ordinary values (escapes aside), nor far too large.
    #[test]
    fn bodies_fit_the_buffer_sized_for_them() {
        let token = "h".repeat(36) + "." + &"p".repeat(300) + "." + &"s".repeat(43);
        for name in [None, Some("Ünïcode name".to_owned())] {
            let response = TokenResponse {
                token: token.clone(),
                identity: "user-64f7b1234567890abcdef456".into(),
                room_id: "64f7b1234567890abcdef123".into(),
                name,
                expires_at: iso8601_millis(1_704_117_600),
            };
            let body = json_body(&response).unwrap();
            assert!(body.len() <= response.len_hint(), "{}", body.len());
            assert!(response.len_hint() - body.len() < 32);
            assert_eq!(body.capacity(), response.len_hint(), "no regrowth");
        }
        let response = TokenSourceResponse {
            server_url: "wss://livekit.example.com",
            participant_token: token,
        };
        let body = json_body(&response).unwrap();
        assert!(body.len() <= response.len_hint());
        assert_eq!(body.capacity(), response.len_hint(), "no regrowth");
    }
}
