//! Caller (application user) JWT verification per algorithm: `CallerVerifier::verify_header` with the
//! configuration the sidecar builds from SIDECAR_AUTH_* (issuer and audience checked), keys from
//! `tests/fixtures`.
//!
//! `cargo bench -p livekit-sidecar --bench caller_verify`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{EncodingKey, Header};
use livekit_contract::Secret;
use livekit_contract::{Algorithm, CallerAuthSettings};
use livekit_sidecar::auth::{CallerKeyMaterial, CallerVerifier};
use serde_json::json;

const HS_SECRET: &str = "bench-caller-hs-secret-0123456789abcdefghij";

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn settings(algorithm: Algorithm) -> CallerAuthSettings {
    CallerAuthSettings {
        issuer: Some("https://auth.bench.local".into()),
        audiences: vec!["kraken".into()],
        algorithms: vec![algorithm],
        ..CallerAuthSettings::default()
    }
}

/// A verifier for `algorithm` and a caller token it accepts.
fn case(algorithm: Algorithm) -> (CallerVerifier, String) {
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
            CallerKeyMaterial {
                hmac_secret: None,
                public_keys_pem: Some(fixture("rsa-public.pem")),
            },
        ),
        Algorithm::ES256 => (
            jsonwebtoken::Algorithm::ES256,
            EncodingKey::from_ec_pem(fixture("ec-private.pem").as_bytes()).unwrap(),
            CallerKeyMaterial {
                hmac_secret: None,
                public_keys_pem: Some(fixture("ec-public.pem")),
            },
        ),
        Algorithm::EdDSA => (
            jsonwebtoken::Algorithm::EdDSA,
            EncodingKey::from_ed_pem(fixture("ed-private.pem").as_bytes()).unwrap(),
            CallerKeyMaterial {
                hmac_secret: None,
                public_keys_pem: Some(fixture("ed-public.pem")),
            },
        ),
        other => panic!("no benchmark case for {other:?}"),
    };
    let verifier = CallerVerifier::new(&settings(algorithm), &material, None).unwrap();
    let claims = json!({
        "sub": "user-64f7b1234567890abcdef456",
        "name": "Bench User",
        "permissions": ["JOIN_CHANNEL"],
        "iss": "https://auth.bench.local",
        "aud": "kraken",
        "iat": 1_700_000_000u64,
        "exp": 4_000_000_000u64,
    });
    let token = jsonwebtoken::encode(&Header::new(jwt_alg), &claims, &encoding).unwrap();
    (verifier, format!("Bearer {token}"))
}

fn bench_verify(c: &mut Criterion) {
    livekit_sidecar::install_crypto_provider();
    let mut group = c.benchmark_group("caller_verify");
    for (name, algorithm) in [
        ("HS256", Algorithm::HS256),
        ("RS256", Algorithm::RS256),
        ("ES256", Algorithm::ES256),
        ("EdDSA", Algorithm::EdDSA),
    ] {
        let (verifier, header) = case(algorithm);
        // Sanity: the case verifies before it is measured.
        let caller =
            futures::executor::block_on(verifier.verify_header(Some(&header))).expect("verifies");
        assert_eq!(caller.identity, "user-64f7b1234567890abcdef456");
        // With PEM keys (no JWKS) verification never waits, so a trivial executor adds nothing.
        group.bench_function(name, |b| {
            b.iter(|| {
                futures::executor::block_on(verifier.verify_header(Some(black_box(&header))))
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
