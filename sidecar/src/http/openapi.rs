//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' annotations in [`crate::http`]
//! and the schema types next to the code they describe (never edited by hand).
//!
//! `livekit-sidecar openapi` prints it; `sidecar/openapi.json` is the committed copy, and
//! `sidecar/tests/openapi.rs` fails when the two differ. The probes of the metrics port (`/livez`,
//! `/readyz`, `/metrics`) are not part of the API and not in the document.

use std::collections::BTreeMap;

use http::StatusCode;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi};

/// The name of the security scheme every operation but health requires.
pub const BEARER: &str = "bearerAuth";

/// The command that rewrites the committed document.
pub const REGENERATE: &str = "cargo run -q -p livekit-sidecar -- openapi > sidecar/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "LiveKit token sidecar API",
        description = "Issues LiveKit access tokens to the application next to it, after verifying the \
            caller's JWT and its JOIN_CHANNEL permission.\n\n\
            Every error has a NestJS-style body `{statusCode, message, error}` where `message` is a \
            string, or an array of strings for validation errors. Every route may answer 503 when too \
            many requests are in progress. Unknown routes answer 404 (`Cannot GET /path`) and known \
            routes called with another method answer 405, both with the same error body.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::token::issue_token,
        super::token::issue_token_source,
        super::info::connection_info,
        super::info::health,
    ),
    components(schemas(super::error::ErrorBody)),
    modifiers(&BearerScheme),
    tags((name = "livekit", description = "LiveKit access tokens and connection details")),
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The application's user JWT, verified with the configured secret or \
                         public keys; token requests also need its JOIN_CHANNEL permission.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as pretty JSON with a final newline: what `livekit-sidecar openapi` prints and what
/// `sidecar/openapi.json` holds.
pub fn json() -> String {
    let mut text = document()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    text.push('\n');
    text
}

/// An error response with the NestJS body.
fn error(status: StatusCode, description: &str) -> (String, RefOr<Response>) {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    );
    if status == StatusCode::UNAUTHORIZED {
        response = response.header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(["Bearer"])),
                )
                .description(Some("Always `Bearer`."))
                .build(),
        );
    }
    (status.as_str().to_owned(), response.build().into())
}

fn unauthorized() -> (String, RefOr<Response>) {
    error(
        StatusCode::UNAUTHORIZED,
        "No, malformed, expired or otherwise invalid caller token (missing Authorization header, \
         bad signature, wrong issuer or audience, not yet valid, expired).",
    )
}

fn not_configured() -> (String, RefOr<Response>) {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The sidecar has no LiveKit credentials (`LiveKit service not configured properly`), or an \
         unexpected internal error (`Internal server error`).",
    )
}

fn unavailable() -> (String, RefOr<Response>) {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "Too many requests in progress, or a dependency needed to decide \
         (caller signing keys from a JWKS URL, the authorization webhook) is unavailable. Retry later.",
    )
}

/// Every error the two token endpoints can answer.
pub struct TokenErrors;

impl IntoResponses for TokenErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([
            error(
                StatusCode::BAD_REQUEST,
                "The body is not a JSON object (string message), or fails validation: every problem \
                 at once, as an array of class-validator messages such as `roomId should not be \
                 empty`.",
            ),
            unauthorized(),
            error(
                StatusCode::FORBIDDEN,
                "The caller lacks JOIN_CHANNEL for the room (`Insufficient permissions. Required: \
                 JOIN_CHANNEL`), or asks for another identity while identity override is off.",
            ),
            error(
                StatusCode::NOT_FOUND,
                "The authorization webhook does not know the room (`Channel with ID <roomId> not \
                 found`).",
            ),
            error(
                StatusCode::REQUEST_TIMEOUT,
                "The body was not received in time.",
            ),
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The body is larger than the limit (16 KiB by default).",
            ),
            error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type is not `application/json` (or `application/*+json`) in UTF-8.",
            ),
            not_configured(),
            unavailable(),
        ])
    }
}

/// Every error `GET /api/livekit/connection-info` can answer.
pub struct ConnectionInfoErrors;

impl IntoResponses for ConnectionInfoErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([unauthorized(), not_configured(), unavailable()])
    }
}

/// Every error `GET /api/livekit/health` can answer.
pub struct HealthErrors;

impl IntoResponses for HealthErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many requests in progress. Retry later.",
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn is_openapi_3_1_with_the_four_operations() {
        let doc: Value = serde_json::from_str(&json()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        let mut operations: Vec<String> = paths
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .map(move |method| format!("{method} {path}"))
            })
            .collect();
        operations.sort();
        assert_eq!(
            operations,
            [
                "get /api/livekit/connection-info",
                "get /api/livekit/health",
                "post /api/livekit/token",
                "post /api/livekit/token-source",
            ]
        );
        // Health is the only operation without authentication.
        assert!(
            paths["/api/livekit/health"]["get"]
                .get("security")
                .is_none()
        );
        assert!(doc.get("security").is_none());
        assert_eq!(
            paths["/api/livekit/token"]["post"]["security"],
            serde_json::json!([{ BEARER: [] }])
        );
    }
}
