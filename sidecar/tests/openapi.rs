//! The committed OpenAPI document (`sidecar/openapi.json`) is the one the code generates, and the
//! operations it lists are the routes the sidecar serves, no more, no fewer.

mod common;

use common::*;
use serde_json::{Value, json};

const COMMITTED: &str = include_str!("../openapi.json");

#[test]
fn committed_document_is_the_generated_one() {
    let generated = livekit_sidecar::http::openapi::json();
    assert!(
        COMMITTED == generated,
        "sidecar/openapi.json is out of date with the code; regenerate it with\n\n    {}\n\nand commit it",
        livekit_sidecar::http::openapi::REGENERATE
    );
}

/// `(method, path, documented status codes)` of every operation of the document.
fn operations() -> Vec<(String, String, Vec<u16>)> {
    let doc: Value = serde_json::from_str(&livekit_sidecar::http::openapi::json()).unwrap();
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let statuses = operation["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|s| s.parse().unwrap())
                .collect();
            operations.push((method.to_uppercase(), path.clone(), statuses));
        }
    }
    operations
}

#[tokio::test]
async fn documented_operations_are_the_served_routes() {
    let sidecar = TestSidecar::start(input(hs_settings(), hs_keys())).await;
    let bearer = hs_token(&caller_claims("alice", &["JOIN_CHANNEL"]));
    let operations = operations();
    assert_eq!(operations.len(), 4);
    for (method, path, statuses) in &operations {
        let url = format!("{}{path}", sidecar.base);
        let mut request = sidecar
            .client
            .request(method.parse().unwrap(), &url)
            .bearer_auth(&bearer);
        if method == "POST" {
            request = request.json(&json!({"roomId": "r1", "room_name": "r1"}));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{method} {path}");
        assert!(statuses.contains(&200));
        // Every other method of a documented path is not served.
        for other in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if operations.iter().any(|(m, p, _)| m == other && p == path) {
                continue;
            }
            let response = sidecar
                .client
                .request(other.parse().unwrap(), &url)
                .bearer_auth(&bearer)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 405, "{other} {path}");
        }
    }
    // A path next to the documented ones is not served either.
    let (status, _) = sidecar.get("/api/livekit/tokens", Some(&bearer)).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn answers_without_a_caller_token_are_documented() {
    let sidecar = TestSidecar::start(input(hs_settings(), hs_keys())).await;
    for (method, path, statuses) in operations() {
        let response = sidecar
            .client
            .request(method.parse().unwrap(), format!("{}{path}", sidecar.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!(
            statuses.contains(&status),
            "{method} {path} answered {status}, not in {statuses:?}"
        );
    }
}
