//! Admission as the API server does it for this CRD, for tests: apply schema defaults, check the
//! OpenAPI bounds the schema states (a small subset validator: type, enum, required, unknown
//! fields, min/max, lengths, item counts, patterns) and evaluate every `x-kubernetes-validations`
//! CEL rule with kube's own evaluator (`kube::core::cel`, the kube-cel crate behind kube's `cel`
//! feature).

use kube::CustomResourceExt;
use livekit_operator::LiveKitConfig;
use serde_json::Value;

pub fn schema() -> Value {
    let crd = LiveKitConfig::crd();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .unwrap(),
    )
    .unwrap()
}

/// All problems with `object` (a whole LiveKitConfig as JSON), as "path: message" strings.
pub fn admit(object: &Value) -> Result<Value, Vec<String>> {
    let schema = schema();
    let defaulted = kube::core::cel::apply_defaults(&schema, object);
    let mut errors = Vec::new();
    check(&schema, &defaulted, "", &mut errors);
    if let Err(e) = kube::core::cel::Validator::new().validate(&schema, &defaulted, None) {
        for err in e.into_vec() {
            errors.push(format!("{}: {}", err.field_path, err.message));
        }
    }
    if errors.is_empty() {
        Ok(defaulted)
    } else {
        Err(errors)
    }
}

fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            errors.push(format!("{path}: must not be null"));
        }
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str);
    let type_ok = match ty {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.as_i64().is_some() || value.as_u64().is_some(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        errors.push(format!("{path}: must be of type {}", ty.unwrap_or("?")));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{path}: unsupported value {value}"));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            errors.push(format!("{path}: must be greater than or equal to {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            errors.push(format!("{path}: must be less than or equal to {max}"));
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            errors.push(format!("{path}: should be at least {min} chars long"));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            errors.push(format!("{path}: may not be more than {max} bytes"));
        }
        if let Some(p) = schema.get("pattern").and_then(Value::as_str)
            && !regex::Regex::new(p).unwrap().is_match(s)
        {
            errors.push(format!("{path}: should match '{p}'"));
        }
    }
    if let Some(items) = value.as_array() {
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            errors.push(format!("{path}: should have at least {min} items"));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && items.len() as u64 > max
        {
            errors.push(format!("{path}: must have at most {max} items"));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(item_schema, item, &format!("{path}[{i}]"), errors);
            }
        }
    }
    if let Some(map) = value.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let req = req.as_str().unwrap();
            if !map.contains_key(req) {
                errors.push(format!("{path}.{req}: Required value"));
            }
        }
        // metadata is validated by the API server itself, not by this schema.
        if path == ".metadata" || props.is_none() {
            return;
        }
        let props = props.unwrap();
        for (k, v) in map {
            let sub = format!("{path}.{k}");
            match props.get(k) {
                Some(s) => check(s, v, &sub, errors),
                None if path.is_empty()
                    && ["apiVersion", "kind", "metadata"].contains(&k.as_str()) => {}
                None => errors.push(format!("{sub}: unknown field")),
            }
        }
    }
}

/// A valid minimal object to mutate in tests.
pub fn minimal() -> Value {
    serde_json::json!({
        "apiVersion": "livekit.kraken.dev/v1alpha1",
        "kind": "LiveKitConfig",
        "metadata": {"name": "chat", "namespace": "apps"},
        "spec": {
            "serverUrl": "wss://livekit.example.com",
            "credentials": {"generate": {}},
            "auth": {
                "issuer": "https://auth.example.com",
                "audiences": ["kraken"],
                "algorithms": ["RS256"],
                "jwksUrl": "https://auth.example.com/jwks.json"
            }
        }
    })
}
