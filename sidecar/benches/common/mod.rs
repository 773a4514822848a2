//! What the benches share: the caller keys of `tests/fixtures` and a caller token for each algorithm,
//! configured like `bench/run.sh` (issuer `https://auth.bench.local`, audience `kraken`).

use std::path::Path;

use jsonwebtoken::{EncodingKey, Header};
use livekit_contract::{Algorithm, Secret};
use livekit_sidecar::auth::CallerKeyMaterial;
use serde_json::json;

pub const ISSUER: &str = "https://auth.bench.local";
pub const AUDIENCE: &str = "kraken";
const HS_SECRET: &str = "bench-caller-hs-secret-0123456789abcdefghij";

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn public_key(pem: &str) -> CallerKeyMaterial {
    CallerKeyMaterial {
        hmac_secret: None,
        public_keys_pem: Some(fixture(pem)),
    }
}

/// The sidecar's key material for `algorithm`, and an `Authorization` value it accepts.
pub fn caller(algorithm: Algorithm) -> (CallerKeyMaterial, String) {
    let (jwt_alg, encoding, material) = match algorithm {
        Algorithm::HS256 => (
            jsonwebtoken::Algorithm::HS256,
            EncodingKey::from_secret(HS_SECRET.as_bytes()),
            CallerKeyMaterial {
                hmac_secret: Some(Secret::new(HS_SECRET)),
                public_keys_pem: None,
            },
        ),
        Algorithm::RS256 => (
            jsonwebtoken::Algorithm::RS256,
            EncodingKey::from_rsa_pem(fixture("rsa-private.pem").as_bytes()).unwrap(),
            public_key("rsa-public.pem"),
        ),
        Algorithm::ES256 => (
            jsonwebtoken::Algorithm::ES256,
            EncodingKey::from_ec_pem(fixture("ec-private.pem").as_bytes()).unwrap(),
            public_key("ec-public.pem"),
        ),
        Algorithm::EdDSA => (
            jsonwebtoken::Algorithm::EdDSA,
            EncodingKey::from_ed_pem(fixture("ed-private.pem").as_bytes()).unwrap(),
            public_key("ed-public.pem"),
        ),
        other => panic!("no benchmark case for {other:?}"),
    };
    let claims = json!({
        "sub": "user-64f7b1234567890abcdef456",
        "name": "Bench User",
        "permissions": ["JOIN_CHANNEL"],
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": 1_700_000_000u64,
        "exp": 4_000_000_000u64,
    });
    let token = jsonwebtoken::encode(&Header::new(jwt_alg), &claims, &encoding).unwrap();
    (material, format!("Bearer {token}"))
}
