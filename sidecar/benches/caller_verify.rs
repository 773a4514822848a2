//! Caller (application user) JWT verification per algorithm: `CallerVerifier::verify_header` with the
//! configuration the sidecar builds from SIDECAR_AUTH_* (issuer and audience checked), keys from
//! `tests/fixtures`.
//!
//! `cargo bench -p livekit-sidecar --bench caller_verify`

mod common;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use livekit_contract::{Algorithm, CallerAuthSettings};
use livekit_sidecar::auth::CallerVerifier;

fn settings(algorithm: Algorithm) -> CallerAuthSettings {
    CallerAuthSettings {
        issuer: Some(common::ISSUER.into()),
        audiences: vec![common::AUDIENCE.into()],
        algorithms: vec![algorithm],
        ..CallerAuthSettings::default()
    }
}

/// A verifier for `algorithm` and a caller token it accepts.
fn case(algorithm: Algorithm) -> (CallerVerifier, String) {
    let (material, header) = common::caller(algorithm);
    let verifier = CallerVerifier::new(&settings(algorithm), &material, None).unwrap();
    (verifier, header)
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
