//! Request validation with class-validator's words, so clients of the original NestJS backend see the
//! same messages. Every problem of a request is reported at once; unknown fields are ignored.

use serde_json::{Map, Value};

use crate::auth::MAX_IDENTITY_CHARS;

/// A validated token request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub identity: Option<String>,
    pub room_id: String,
    pub name: Option<String>,
    pub ttl: Option<u32>,
}

/// Validates the JSON object of `POST /api/livekit/token`; `max_ttl` is the configured ceiling.
pub fn validate_token_request(
    body: &Map<String, Value>,
    max_ttl: u32,
) -> Result<TokenRequest, Vec<String>> {
    let mut errors = Vec::new();

    let identity = optional_string(body, "identity", "participant identity", &mut errors);
    let room_id = required_string(body, "roomId", "room name", &mut errors);
    let name = optional_string(body, "name", "participant name", &mut errors);
    let ttl = optional_ttl(body, max_ttl, &mut errors);

    match (errors.is_empty(), room_id) {
        (true, Some(room_id)) => Ok(TokenRequest {
            identity,
            room_id,
            name,
            ttl,
        }),
        _ => Err(errors),
    }
}

fn required_string(
    body: &Map<String, Value>,
    field: &str,
    livekit_name: &str,
    errors: &mut Vec<String>,
) -> Option<String> {
    match body.get(field) {
        None | Some(Value::Null) => {
            errors.push(format!("{field} should not be empty"));
            errors.push(format!("{field} must be a string"));
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

fn optional_string(
    body: &Map<String, Value>,
    field: &str,
    livekit_name: &str,
    errors: &mut Vec<String>,
) -> Option<String> {
    match body.get(field) {
        None | Some(Value::Null) => None,
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
    if s.chars().any(char::is_control) {
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
mod tests {
    use super::*;
    use serde_json::json;

    fn check(body: Value) -> Result<TokenRequest, Vec<String>> {
        validate_token_request(body.as_object().unwrap(), 86_400)
    }

    #[test]
    fn minimal_and_full_requests() {
        assert_eq!(
            check(json!({"roomId": "r1"})).unwrap(),
            TokenRequest {
                identity: None,
                room_id: "r1".into(),
                name: None,
                ttl: None
            }
        );
        let full =
            check(json!({"roomId": "r", "identity": "i", "name": "N", "ttl": 7200, "extra": [1]}))
                .unwrap();
        assert_eq!(full.ttl, Some(7200));
        assert_eq!(full.identity.as_deref(), Some("i"));
        assert_eq!(full.name.as_deref(), Some("N"));
        assert_eq!(
            check(json!({"roomId": "r", "ttl": 7.0e3})).unwrap().ttl,
            Some(7000)
        );
        assert_eq!(
            check(json!({"roomId": "r", "name": null})).unwrap().name,
            None
        );
    }

    #[test]
    fn the_spec_example_messages() {
        assert_eq!(
            check(json!({"ttl": 0})).unwrap_err(),
            vec![
                "roomId should not be empty",
                "roomId must be a string",
                "ttl must not be less than 1"
            ]
        );
        assert_eq!(
            check(json!({"roomId": ""})).unwrap_err(),
            vec!["roomId should not be empty"]
        );
    }

    #[test]
    fn type_errors() {
        assert_eq!(
            check(json!({"roomId": 5, "identity": true, "name": {}, "ttl": "60"})).unwrap_err(),
            vec![
                "identity must be a string",
                "roomId must be a string",
                "name must be a string",
                "ttl must be an integer number"
            ]
        );
    }

    #[test]
    fn ttl_bounds() {
        assert_eq!(
            check(json!({"roomId": "r", "ttl": 1.5})).unwrap_err(),
            vec!["ttl must be an integer number"]
        );
        assert_eq!(
            check(json!({"roomId": "r", "ttl": -0.5})).unwrap_err(),
            vec![
                "ttl must be an integer number",
                "ttl must not be less than 1"
            ]
        );
        assert_eq!(
            check(json!({"roomId": "r", "ttl": 86_401})).unwrap_err(),
            vec!["ttl must not be greater than 86400"]
        );
        assert_eq!(
            check(json!({"roomId": "r", "ttl": 1e300})).unwrap_err(),
            vec!["ttl must not be greater than 86400"]
        );
        assert_eq!(
            check(json!({"roomId": "r", "ttl": 86_400})).unwrap().ttl,
            Some(86_400)
        );
        assert_eq!(
            check(json!({"roomId": "r", "ttl": 1})).unwrap().ttl,
            Some(1)
        );
    }

    #[test]
    fn length_and_character_limits() {
        let long = "x".repeat(257);
        let errors =
            check(json!({"roomId": long, "identity": "a\u{0}b", "name": " "})).unwrap_err();
        assert_eq!(
            errors,
            vec![
                "identity must not contain control characters",
                "roomId must be shorter than or equal to 256 characters (LiveKit's room name limit)",
                "name should not be empty"
            ]
        );
        // Characters, not bytes.
        assert!(check(json!({"roomId": "é".repeat(256)})).is_ok());
    }
}
