//! Extractors: the configured snapshot, the authenticated caller and the JSON body of a request. Each
//! rejects with the API error, so handlers only see requests that passed.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::auth::{AuthFailure, Caller, VerifyError};
use crate::config::Service;
use crate::state::{AppState, Limits};

/// The configured part of the snapshot, taken once per request: a reload meanwhile changes nothing
/// for it. Without LiveKit credentials the request is refused (500, as the API document says). The one
/// place that guard lives: handlers get a [`Service`] and never check again.
pub struct Configured(Arc<Service>);

impl std::ops::Deref for Configured {
    type Target = Service;

    fn deref(&self) -> &Service {
        &self.0
    }
}

impl FromRequestParts<AppState> for Configured {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match &state.snapshot().service {
            Some(service) => Ok(Self(Arc::clone(service))),
            None => Err(ApiError::NotConfigured),
        }
    }
}

/// A caller whose bearer token the configured snapshot verified.
pub struct Authenticated {
    pub config: Configured,
    pub caller: Caller,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let config = Configured::from_request_parts(parts, state).await?;
        let caller = authenticate(state, &config, &parts.headers).await?;
        Ok(Self { config, caller })
    }
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
        .map_err(|error| {
            match &error {
                VerifyError::Refused(failure) => crate::log_budget::log_refusal(failure.reason()),
                VerifyError::KeysUnavailable(detail) => {
                    tracing::warn!(%detail, "caller keys unavailable");
                }
            }
            state.metrics().auth_failures.inc(error.reason());
            error.into()
        })
}

/// A JSON object body read within the size and time limits. An empty body counts as `{}`, as NestJS
/// would treat it, so that validation names the missing fields.
pub struct JsonObject(pub Map<String, Value>);

impl FromRequest<AppState> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        read_json_object(request, state.limits()).await.map(Self)
    }
}

async fn read_json_object(
    request: Request,
    limits: &Limits,
) -> Result<Map<String, Value>, ApiError> {
    let (parts, body) = request.into_parts();
    if !is_json(&parts.headers) || !is_identity_encoded(&parts.headers) {
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

/// No `Content-Encoding`, or only `identity`. The sidecar decodes no encoding, and reading a `gzip`
/// body as plain would be a guess a proxy in front may not share: anything else is refused (415).
fn is_identity_encoded(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .all(|value| {
            value.to_str().is_ok_and(|v| {
                v.split(',')
                    .map(str::trim)
                    .all(|coding| coding.is_empty() || coding.eq_ignore_ascii_case("identity"))
            })
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        h
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
