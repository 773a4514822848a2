use super::*;
use serde_json::json;
use std::collections::BTreeSet;
use utoipa::PartialSchema;

fn check(body: Value) -> Result<TokenRequest, Vec<String>> {
    validate_token_request(body.as_object().unwrap(), 86_400)
}

#[test]
fn minimal_and_full_requests() {
    assert_eq!(
        check(json!({"roomId": "r1"})).unwrap(),
        TokenRequest {
            room_id: "r1".into(),
            ..TokenRequest::default()
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
    let errors = check(json!({"roomId": long, "identity": "a\u{0}b", "name": " "})).unwrap_err();
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

/// The documented properties of a request body schema, and the required ones.
fn documented<T: utoipa::PartialSchema>() -> (BTreeSet<String>, BTreeSet<String>) {
    let schema = serde_json::to_value(T::schema()).unwrap();
    let properties = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let required = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    (properties, required)
}

/// The fields validation reads, found by giving every documented field (and an undocumented
/// one) a value no field accepts, and the fields it requires, found with an empty body.
fn read_by_validation(
    properties: &BTreeSet<String>,
    validate: impl Fn(&Map<String, Value>) -> Result<TokenRequest, Vec<String>>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let field_of = |message: &String| message.split(' ').next().unwrap().to_owned();
    let mut body: Map<String, Value> = properties.iter().map(|p| (p.clone(), json!([]))).collect();
    body.insert("undocumented".into(), json!([]));
    let read = validate(&body).unwrap_err().iter().map(field_of).collect();
    let required = validate(&Map::new())
        .unwrap_err()
        .iter()
        .map(field_of)
        .collect();
    (read, required)
}

#[test]
fn documented_token_request_fields_are_the_validated_ones() {
    let (properties, required) = documented::<TokenRequestBody>();
    let (read, read_required) =
        read_by_validation(&properties, |body| validate_token_request(body, 86_400));
    assert_eq!(properties, read);
    assert_eq!(required, read_required);
    assert_eq!(properties.len(), 4);
}

#[test]
fn documented_limits_are_the_validated_ones() {
    let token = serde_json::to_value(TokenRequestBody::schema()).unwrap();
    let source = serde_json::to_value(TokenSourceRequestBody::schema()).unwrap();
    for (schema, field) in [
        (&token, "identity"),
        (&token, "roomId"),
        (&token, "name"),
        (&source, "room_name"),
        (&source, "participant_identity"),
        (&source, "participant_name"),
    ] {
        assert_eq!(
            schema["properties"][field]["maxLength"], MAX_IDENTITY_CHARS,
            "{field}"
        );
    }
    assert_eq!(
        source["properties"]["participant_metadata"]["maxLength"],
        MAX_METADATA_CHARS
    );
}

#[test]
fn documented_token_source_request_fields_are_the_validated_ones() {
    let (properties, required) = documented::<TokenSourceRequestBody>();
    let (read, read_required) = read_by_validation(&properties, validate_token_source_request);
    assert_eq!(properties, read);
    assert_eq!(required, read_required);
    assert_eq!(properties.len(), 6);
}

fn source(body: Value) -> Result<TokenRequest, Vec<String>> {
    validate_token_source_request(body.as_object().unwrap())
}

#[test]
fn token_source_requests() {
    let full = source(json!({
        "room_name": "r1", "participant_name": "Al", "participant_identity": "al",
        "participant_metadata": "{\"k\":1}", "participant_attributes": {"team": "blue"},
        "room_config": {}
    }))
    .unwrap();
    assert_eq!(full.room_id, "r1");
    assert_eq!(full.name.as_deref(), Some("Al"));
    assert_eq!(full.identity.as_deref(), Some("al"));
    assert_eq!(full.metadata.as_deref(), Some("{\"k\":1}"));
    assert_eq!(full.attributes.unwrap()["team"], "blue");
    assert_eq!(
        source(json!({})).unwrap_err(),
        vec![
            "room_name should not be empty",
            "room_name must be a string"
        ]
    );
}

#[test]
fn token_source_refusals() {
    assert_eq!(
        source(json!({"room_name": "r", "room_config": {"agents": [{"agent_name": "a"}]}}))
            .unwrap_err(),
        vec!["room_config is not accepted by this token server"]
    );
    assert_eq!(
        source(json!({"room_name": "r", "participant_attributes": {"a": 1}})).unwrap_err(),
        vec!["participant_attributes must be an object of strings"]
    );
    assert_eq!(
        source(json!({"room_name": "r", "participant_attributes": ["a"]})).unwrap_err(),
        vec!["participant_attributes must be an object of strings"]
    );
    let many: Map<String, Value> = (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
    assert_eq!(
        source(json!({"room_name": "r", "participant_attributes": many})).unwrap_err(),
        vec!["participant_attributes must not have more than 32 entries"]
    );
    assert_eq!(
        source(json!({"room_name": "r", "participant_metadata": "x".repeat(8193)})).unwrap_err(),
        vec!["participant_metadata must be shorter than or equal to 8192 characters"]
    );
    assert_eq!(
        source(json!({"room_name": 7, "participant_identity": ""})).unwrap_err(),
        vec![
            "room_name must be a string",
            "participant_identity should not be empty"
        ]
    );
}
