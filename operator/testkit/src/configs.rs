//! Test LiveKitConfigs and Secrets.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use livekit_operator::LiveKitConfig;
use std::collections::BTreeMap;

pub const NS: &str = "apps";
pub const UID: &str = "0b0e6a3c-0000-4000-8000-000000000001";

/// A config from a spec written as YAML, with the metadata the API server would add.
pub fn config(name: &str, spec_yaml: &str) -> LiveKitConfig {
    let spec: serde_yaml::Value = serde_yaml::from_str(spec_yaml).unwrap();
    let obj = serde_json::json!({
        "apiVersion": "livekit.kraken.dev/v1alpha1",
        "kind": "LiveKitConfig",
        "metadata": {"name": name, "namespace": NS, "uid": UID, "generation": 1, "resourceVersion": "1"},
        "spec": spec,
    });
    // Admit it like the API server would (defaults, schema, CEL), so tests use realistic objects.
    let admitted =
        crate::schema::admit(&obj).unwrap_or_else(|e| panic!("test config rejected: {e:?}"));
    serde_json::from_value(admitted).unwrap()
}

/// `secretRef` credentials, RS256 callers via JWKS.
pub const SECRET_REF_SPEC: &str = r#"
serverUrl: wss://livekit.example.com
region: eu-west-1
credentials:
  secretRef: {name: livekit-keys}
auth:
  issuer: https://auth.example.com
  audiences: [kraken]
  algorithms: [RS256]
  jwksUrl: https://auth.example.com/.well-known/jwks.json
"#;

/// Generated credentials, HS256 callers with the secret from a Secret, webhook authorization.
pub const GENERATE_SPEC: &str = r#"
serverUrl: ws://livekit.livekit.svc:7880
credentials:
  generate: {}
  rotationGraceSeconds: 3600
token: {defaultTtlSeconds: 600, maxTtlSeconds: 3600, grants: {canPublish: false}}
auth:
  algorithms: [HS256]
  secretRef: {name: app-jwt, hsSecretKey: hs-secret}
authorization:
  mode: Webhook
  webhook: {url: "http://app.chat.svc:3001/internal/authorize"}
"#;

/// Generated credentials, ES256 callers with PEM keys from a Secret.
pub const PEM_SPEC: &str = r#"
serverUrl: https://livekit.example.com
credentials:
  generate: {}
auth:
  issuer: https://auth.example.com
  audiences: [kraken]
  algorithms: [ES256]
  secretRef: {name: app-jwt, publicKeysKey: keys.pem}
"#;

pub const PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEPPMk2hWYkitITnIhXiZhJ+Oe2ll\n/gSprLQU5B2xBl3EyNvPh+5lm+HyXKECHfxdOg0kLm2kc3p8s7eZFh3fCA==\n-----END PUBLIC KEY-----\n";

pub fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Secret::default()
    }
}

pub fn livekit_keys(key: &str, secret_value: &str) -> Secret {
    secret(
        "livekit-keys",
        &[("api-key", key), ("api-secret", secret_value)],
    )
}

pub fn app_jwt() -> Secret {
    secret(
        "app-jwt",
        &[
            ("hs-secret", "a-shared-hmac-secret-of-32-bytes!"),
            ("keys.pem", PEM),
        ],
    )
}
