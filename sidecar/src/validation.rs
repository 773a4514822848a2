//! Request validation with class-validator's words, so clients of the original NestJS backend see the
//! same messages. Every problem of a request is reported at once; unknown fields are ignored.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

use crate::auth::{MAX_IDENTITY_CHARS, has_control_chars};

/// A validated token request, from either endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenRequest {
    pub identity: Option<String>,
    pub room_id: String,
    pub name: Option<String>,
    pub ttl: Option<u32>,
    /// Participant metadata (LiveKit's standard token endpoint only).
    pub metadata: Option<String>,
    /// Participant attributes (LiveKit's standard token endpoint only).
    pub attributes: Option<BTreeMap<String, String>>,
}

/// Longest participant metadata accepted.
pub const MAX_METADATA_CHARS: usize = 8192;
/// Most participant attributes accepted, and their key and value lengths.
pub const MAX_ATTRIBUTES: usize = 32;
pub const MAX_ATTRIBUTE_KEY_CHARS: usize = 128;
pub const MAX_ATTRIBUTE_VALUE_CHARS: usize = 1024;

// The two request bodies, for the OpenAPI document only: validation reads the JSON object by hand to
// answer with class-validator's messages. The tests below check that the documented fields are exactly
// the ones validation reads, and that the documented limits are the constants validation uses.

/// The body of `POST /api/livekit/token`. Unknown fields are ignored. Text fields must not be blank
/// nor contain control characters.
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"roomId": "64f7b1234567890abcdef123", "ttl": 3600}))]
pub struct TokenRequestBody {
    /// The participant identity of the token; the caller's identity when absent. Another identity
    /// than the caller's is refused (403) unless identity override is on.
    #[schema(min_length = 1, max_length = 256)]
    pub identity: Option<String>,
    /// The room (channel) to join; the caller needs JOIN_CHANNEL for it.
    #[schema(rename = "roomId", min_length = 1, max_length = 256)]
    pub room_id: String,
    /// The participant's display name; the caller token's name when absent.
    #[schema(min_length = 1, max_length = 256)]
    pub name: Option<String>,
    /// Lifetime of the LiveKit token in seconds, at most the configured maximum (86400 by default);
    /// the configured default when absent.
    #[schema(minimum = 1)]
    pub ttl: Option<u32>,
}

/// The body of LiveKit's standard token endpoint (`TokenSourceRequest` of the LiveKit client SDKs,
/// proto field names). Unknown fields are ignored. Text fields must not be blank nor contain control
/// characters.
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"room_name": "64f7b1234567890abcdef123", "participant_name": "Alice"}))]
pub struct TokenSourceRequestBody {
    /// The room to join; the caller needs JOIN_CHANNEL for it.
    #[schema(min_length = 1, max_length = 256)]
    pub room_name: String,
    /// The participant identity; the caller's identity when absent. Another identity than the
    /// caller's is refused (403) unless identity override is on.
    #[schema(min_length = 1, max_length = 256)]
    pub participant_identity: Option<String>,
    /// The participant's display name; the caller token's name when absent.
    #[schema(min_length = 1, max_length = 256)]
    pub participant_name: Option<String>,
    /// Participant metadata (often JSON text), stored in the token as it is.
    #[schema(max_length = 8192)]
    pub participant_metadata: Option<String>,
    #[schema(schema_with = attributes_schema)]
    pub participant_attributes: Option<BTreeMap<String, String>>,
    #[schema(schema_with = room_config_schema)]
    pub room_config: Option<serde_json::Value>,
}

fn attributes_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(
            [Type::Object, Type::Null]
                .into_iter()
                .collect::<SchemaType>(),
        )
        .max_properties(Some(MAX_ATTRIBUTES))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(MAX_ATTRIBUTE_KEY_CHARS)),
        ))
        .additional_properties(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(MAX_ATTRIBUTE_VALUE_CHARS)),
        ))
        .description(Some(
            "Participant attributes: string keys to string values.",
        ))
        .build()
}

fn room_config_schema() -> Object {
    ObjectBuilder::new()
        .schema_type([Type::Object, Type::Null].into_iter().collect::<SchemaType>())
        .max_properties(Some(0))
        .description(Some(
            "Refused unless empty: a caller must not configure rooms or dispatch agents through its \
             own token.",
        ))
        .build()
}

/// Validates the JSON object of `POST /api/livekit/token`; `max_ttl` is the configured ceiling.
pub fn validate_token_request(
    body: &Map<String, Value>,
    max_ttl: u32,
) -> Result<TokenRequest, Vec<String>> {
    let mut errors = Vec::new();

    let identity = string_field(body, "identity", "participant identity", false, &mut errors);
    let room_id = string_field(body, "roomId", "room name", true, &mut errors);
    let name = string_field(body, "name", "participant name", false, &mut errors);
    let ttl = optional_ttl(body, max_ttl, &mut errors);

    match (errors.is_empty(), room_id) {
        (true, Some(room_id)) => Ok(TokenRequest {
            identity,
            room_id,
            name,
            ttl,
            ..TokenRequest::default()
        }),
        _ => Err(errors),
    }
}

/// Validates the JSON object of LiveKit's standard token endpoint request (`TokenSourceRequest` in the
/// client SDKs, proto field names). `room_config` is refused: a caller must not configure rooms or
/// dispatch agents through its own token.
pub fn validate_token_source_request(
    body: &Map<String, Value>,
) -> Result<TokenRequest, Vec<String>> {
    let mut errors = Vec::new();

    let room_id = string_field(body, "room_name", "room name", true, &mut errors);
    let name = string_field(
        body,
        "participant_name",
        "participant name",
        false,
        &mut errors,
    );
    let identity = string_field(
        body,
        "participant_identity",
        "participant identity",
        false,
        &mut errors,
    );
    let metadata = match body.get("participant_metadata") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() > MAX_METADATA_CHARS => {
            errors.push(format!(
                "participant_metadata must be shorter than or equal to {MAX_METADATA_CHARS} characters"
            ));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push("participant_metadata must be a string".into());
            None
        }
    };
    let attributes = attributes_field(body, &mut errors);
    match body.get("room_config") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) if map.is_empty() => {}
        Some(_) => errors.push("room_config is not accepted by this token server".into()),
    }

    match (errors.is_empty(), room_id) {
        (true, Some(room_id)) => Ok(TokenRequest {
            identity,
            room_id,
            name,
            ttl: None,
            metadata,
            attributes,
        }),
        _ => Err(errors),
    }
}

fn attributes_field(
    body: &Map<String, Value>,
    errors: &mut Vec<String>,
) -> Option<BTreeMap<String, String>> {
    let map = match body.get("participant_attributes") {
        None | Some(Value::Null) => return None,
        Some(Value::Object(map)) => map,
        Some(_) => {
            errors.push("participant_attributes must be an object of strings".into());
            return None;
        }
    };
    if map.len() > MAX_ATTRIBUTES {
        errors.push(format!(
            "participant_attributes must not have more than {MAX_ATTRIBUTES} entries"
        ));
        return None;
    }
    let mut attributes = BTreeMap::new();
    for (key, value) in map {
        let Value::String(value) = value else {
            errors.push("participant_attributes must be an object of strings".into());
            return None;
        };
        if key.is_empty() || key.chars().count() > MAX_ATTRIBUTE_KEY_CHARS {
            errors.push(format!(
                "participant_attributes keys must be 1 to {MAX_ATTRIBUTE_KEY_CHARS} characters"
            ));
            return None;
        }
        if value.chars().count() > MAX_ATTRIBUTE_VALUE_CHARS {
            errors.push(format!(
                "participant_attributes values must be shorter than or equal to {MAX_ATTRIBUTE_VALUE_CHARS} characters"
            ));
            return None;
        }
        attributes.insert(key.clone(), value.clone());
    }
    Some(attributes)
}

/// A string field: absent or null is "should not be empty" only when `required`.
fn string_field(
    body: &Map<String, Value>,
    field: &str,
    livekit_name: &str,
    required: bool,
    errors: &mut Vec<String>,
) -> Option<String> {
    match body.get(field) {
        None | Some(Value::Null) => {
            if required {
                errors.push(format!("{field} should not be empty"));
                errors.push(format!("{field} must be a string"));
            }
            None
        }
        Some(Value::String(s)) => {
            let before = errors.len();
            if s.trim().is_empty() {
                errors.push(format!("{field} should not be empty"));
            }
            check_text(s, field, livekit_name, errors);
            (errors.len() == before).then(|| s.clone())
        }
        Some(_) => {
            errors.push(format!("{field} must be a string"));
            None
        }
    }
}

/// LiveKit bounds room names, identities and participant names; control characters have no place in any.
fn check_text(s: &str, field: &str, livekit_name: &str, errors: &mut Vec<String>) {
    if s.chars().count() > MAX_IDENTITY_CHARS {
        errors.push(format!(
            "{field} must be shorter than or equal to {MAX_IDENTITY_CHARS} characters (LiveKit's {livekit_name} limit)"
        ));
    }
    if has_control_chars(s) {
        errors.push(format!("{field} must not contain control characters"));
    }
}

fn optional_ttl(body: &Map<String, Value>, max_ttl: u32, errors: &mut Vec<String>) -> Option<u32> {
    let value = match body.get("ttl") {
        None | Some(Value::Null) => return None,
        Some(value) => value,
    };
    let Some(number) = value.as_f64() else {
        errors.push("ttl must be an integer number".into());
        return None;
    };
    let before = errors.len();
    if number.fract() != 0.0 || !number.is_finite() {
        errors.push("ttl must be an integer number".into());
    }
    if number < 1.0 {
        errors.push("ttl must not be less than 1".into());
    }
    if number > f64::from(max_ttl) {
        errors.push(format!("ttl must not be greater than {max_ttl}"));
    }
    // In range and whole, so the conversion is exact.
    (errors.len() == before).then_some(number as u32)
}

#[cfg(test)]
mod tests;
