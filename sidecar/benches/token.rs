//! LiveKit token construction and signing: `claims_for` and `LiveKitSigner::sign` (HS256).
//!
//! `cargo bench -p livekit-sidecar --bench token`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use livekit_contract::Secret;
use livekit_contract::TokenSettings;
use livekit_sidecar::auth::Caller;
use livekit_sidecar::token::{LiveKitSigner, claims_for, iso8601_millis, resolve_identity};
use livekit_sidecar::validation::TokenRequest;

fn caller() -> Caller {
    Caller {
        subject: "user-64f7b1234567890abcdef456".into(),
        identity: "user-64f7b1234567890abcdef456".into(),
        name: Some("Bench User".into()),
        issuer: Some("https://auth.bench.local".into()),
        permissions: Some(vec!["JOIN_CHANNEL".into()]),
    }
}

fn bench_token(c: &mut Criterion) {
    livekit_sidecar::install_crypto_provider();
    let settings = TokenSettings::default();
    let caller = caller();
    let request = TokenRequest {
        identity: None,
        room_id: "64f7b1234567890abcdef123".into(),
        name: Some("Bench User".into()),
        ttl: Some(3600),
        ..TokenRequest::default()
    };
    let signer = LiveKitSigner::new(
        "APIbenchkey".into(),
        &Secret::new("bench-livekit-api-secret-0123456789abcdefghij"),
    );
    let now = 1_795_000_000;

    let mut group = c.benchmark_group("token");
    group.bench_function("claims_for", |b| {
        b.iter(|| {
            let identity = resolve_identity(black_box(&request), &caller, false).unwrap();
            claims_for(
                black_box(&request),
                identity,
                &caller,
                &settings,
                signer.api_key(),
                black_box(now),
            )
        })
    });
    let claims = claims_for(
        &request,
        caller.identity.clone(),
        &caller,
        &settings,
        signer.api_key(),
        now,
    );
    group.bench_function("sign_hs256", |b| {
        b.iter(|| signer.sign(black_box(&claims)).unwrap())
    });
    group.bench_function("claims_for+sign+expires_at", |b| {
        b.iter(|| {
            let identity = resolve_identity(black_box(&request), &caller, false).unwrap();
            let claims = claims_for(
                black_box(&request),
                identity,
                &caller,
                &settings,
                signer.api_key(),
                black_box(now),
            );
            (signer.sign(&claims).unwrap(), iso8601_millis(claims.exp))
        })
    });
    group.finish();
}

criterion_group!(benches, bench_token);
criterion_main!(benches);
