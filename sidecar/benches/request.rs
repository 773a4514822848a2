//! The whole hot path of `POST /api/livekit/token` through the API router (layers, extractors, caller
//! verification, validation, claims authorization, signing, response body), without sockets: what one
//! request costs the server beyond hyper's connection handling.
//!
//! `cargo bench -p livekit-sidecar --bench request`
//!
//! Instruction counts, repeatable on a noisy machine: `HOT_PATH_REQUESTS=N` sends N requests per
//! caller algorithm (HS256, then RS256; `HOT_PATH_ALG=HS256` for one of them) in a fixed loop instead
//! of running criterion, e.g.
//! `HOT_PATH_REQUESTS=20000 valgrind --tool=callgrind target/release/deps/request-<hash>`.

mod common;

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use criterion::Criterion;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use livekit_contract::{Algorithm, Secret, SidecarSettings};
use livekit_sidecar::config::{ConfigInput, Credentials, Snapshot, Source};
use livekit_sidecar::health::ProbeSettings;
use livekit_sidecar::http::api_router;
use livekit_sidecar::state::{AppState, Limits};
use tower::ServiceExt;

const BODY: &str = r#"{"roomId":"64f7b1234567890abcdef123","name":"Bench User","ttl":3600}"#;

/// The router of a sidecar configured like `bench/run.sh`'s, and an `Authorization` value it accepts.
fn case(algorithm: Algorithm) -> (Router, String) {
    let (caller_keys, authorization) = common::caller(algorithm);
    let mut settings = SidecarSettings::new("ws://127.0.0.1:7880");
    settings.auth.algorithms = vec![algorithm];
    settings.auth.issuer = Some(common::ISSUER.into());
    settings.auth.audiences = vec![common::AUDIENCE.into()];
    let input = ConfigInput {
        source: Source::Env,
        configured: Some((
            settings,
            Credentials {
                api_key: "APIbenchkey".into(),
                api_secret: Secret::new("bench-livekit-api-secret-0123456789abcdefghij"),
            },
        )),
        caller_keys,
        fingerprint: None,
    };
    let snapshot = Snapshot::build(input, None).expect("a valid configuration");
    let probe = ProbeSettings {
        interval: std::time::Duration::ZERO,
        ..ProbeSettings::default()
    };
    let router = api_router(AppState::new(snapshot, Limits::default(), probe));
    (router, authorization)
}

/// One request, answered and its body read, as a client would.
async fn issue(router: &Router, authorization: &str) -> usize {
    let request = Request::post("/api/livekit/token")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, authorization)
        .body(Body::from(BODY))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .len()
}

fn main() {
    livekit_sidecar::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cases = [("HS256", Algorithm::HS256), ("RS256", Algorithm::RS256)]
        .map(|(name, algorithm)| (name, case(algorithm)));

    if let Some(count) = std::env::var("HOT_PATH_REQUESTS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        let only = std::env::var("HOT_PATH_ALG").ok();
        for (name, (router, authorization)) in &cases {
            if only.as_deref().is_some_and(|alg| alg != *name) {
                continue;
            }
            let bytes = runtime.block_on(async {
                let mut bytes = 0;
                for _ in 0..count {
                    bytes += issue(router, authorization).await;
                }
                bytes
            });
            println!("{name}: {count} requests, {bytes} response bytes");
        }
        return;
    }

    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("request");
    for (name, (router, authorization)) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| runtime.block_on(issue(router, black_box(authorization))))
        });
    }
    group.finish();
    criterion.final_summary();
}
