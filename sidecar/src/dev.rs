//! `livekit-sidecar dev-token`: a caller JWT for a `--dev` sidecar, so a newcomer can try the API.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use crate::authz::JOIN_CHANNEL;
use crate::cli::DevTokenArgs;
use crate::config::dev;

/// Mints an HS256 caller token signed with the published dev secret.
pub fn dev_token(args: &DevTokenArgs) -> Result<String, jsonwebtoken::errors::Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let permissions = if args.permissions.is_empty() {
        vec![JOIN_CHANNEL.to_owned()]
    } else {
        args.permissions.clone()
    };
    let mut claims = json!({
        "iss": dev::CALLER_ISSUER,
        "aud": dev::CALLER_AUDIENCE,
        "sub": args.identity,
        "iat": now,
        "exp": now + args.ttl,
        "permissions": permissions,
    });
    if let Some(name) = &args.name {
        claims["name"] = json!(name);
    }
    jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(dev::CALLER_SECRET.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Snapshot;

    #[tokio::test]
    async fn dev_tokens_pass_dev_mode_authentication() {
        let snapshot = Snapshot::build(dev::input(), None).unwrap();
        let verifier = &snapshot.service.as_ref().unwrap().verifier;
        let args = DevTokenArgs {
            identity: "alice".into(),
            name: Some("Alice".into()),
            permissions: vec![],
            ttl: 60,
        };
        let caller = verifier.verify(&dev_token(&args).unwrap()).await.unwrap();
        assert_eq!(caller.identity, "alice");
        assert_eq!(caller.name.as_deref(), Some("Alice"));
        assert_eq!(caller.permissions, Some(vec!["JOIN_CHANNEL".to_owned()]));
    }
}
