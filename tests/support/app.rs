//! The application side of the operator-rendered tests: its caller-token secret (as the Secret an
//! `auth.secretRef` names) and a caller token signed with it.

use k8s_openapi::api::core::v1::Secret;
use serde_json::json;

/// The HS256 secret the application signs its users' JWTs with.
pub const HS_SECRET: &str = "application-user-jwt-secret-0123456789";

/// The Secret `app-jwt` (namespace `apps`) holding [`HS_SECRET`] under `hs-secret`.
pub fn jwt_secret() -> Secret {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "app-jwt", "namespace": "apps"},
        "stringData": {"hs-secret": HS_SECRET},
    }))
    .expect("a Secret")
}

/// A ten-minute caller token for `alice` (name `Alice`) with `JOIN_CHANNEL` on every room.
pub fn caller() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "alice", "name": "Alice", "exp": now + 600, "permissions": ["JOIN_CHANNEL"]}),
        &jsonwebtoken::EncodingKey::from_secret(HS_SECRET.as_bytes()),
    )
    .expect("HS256 signs")
}
