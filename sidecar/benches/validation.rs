//! Request validation: `validate_token_request` on a parsed body, and the JSON parse that precedes it.
//!
//! `cargo bench -p livekit-sidecar --bench validation`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use livekit_sidecar::validation::validate_token_request;
use serde_json::{Map, Value};

const BODY: &str = r#"{"roomId":"64f7b1234567890abcdef123","name":"Bench User","ttl":3600}"#;
const INVALID: &str = r#"{"roomId":"","identity":5,"ttl":0}"#;

fn object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text).unwrap() {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object"),
    }
}

fn bench_validation(c: &mut Criterion) {
    let valid = object(BODY);
    let invalid = object(INVALID);
    let mut group = c.benchmark_group("validation");
    group.bench_function("validate_token_request/valid", |b| {
        b.iter(|| validate_token_request(black_box(&valid), 86_400).unwrap())
    });
    group.bench_function("validate_token_request/invalid", |b| {
        b.iter(|| validate_token_request(black_box(&invalid), 86_400).unwrap_err())
    });
    group.bench_function("parse_json+validate", |b| {
        b.iter(|| {
            let body = object(black_box(BODY));
            validate_token_request(&body, 86_400).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_validation);
criterion_main!(benches);
