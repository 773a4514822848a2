//! What changes while the sidecar runs: the operator's files (hot reload), the LiveKit server's
//! reachability (health and readiness), and the metrics that report both.

mod common;

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

fn token_issuer(token: &str) -> String {
    let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(token).unwrap();
    claims["iss"].as_str().unwrap().to_owned()
}

fn verifies_with(token: &str, api_key: &str, api_secret: &str) -> bool {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[api_key]);
    jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(api_secret.as_bytes()),
        &validation,
    )
    .is_ok()
}

fn caller() -> String {
    hs_token(&caller_claims("alice", &["JOIN_CHANNEL"]))
}

#[tokio::test]
async fn rotated_credentials_reach_new_tokens_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let settings = hs_settings();
    kubelet_write(
        dir.path(),
        &dir_files(&settings, "APIold", "old-secret-0123456789abcdefghijklmnop"),
    );
    let sidecar = TestSidecar::start_dir(dir.path(), &[]).await;
    let (status, body) = sidecar
        .post_token(Some(&caller()), json!({"roomId": "r"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(verifies_with(
        body["token"].as_str().unwrap(),
        "APIold",
        "old-secret-0123456789abcdefghijklmnop"
    ));

    kubelet_write(
        dir.path(),
        &dir_files(&settings, "APInew", "new-secret-0123456789abcdefghijklmnop"),
    );
    let swapped = Instant::now();
    loop {
        let (status, body) = sidecar
            .post_token(Some(&caller()), json!({"roomId": "r"}))
            .await;
        assert_eq!(status, 200, "{body}");
        let token = body["token"].as_str().unwrap();
        if token_issuer(token) == "APInew" {
            assert!(verifies_with(
                token,
                "APInew",
                "new-secret-0123456789abcdefghijklmnop"
            ));
            break;
        }
        assert!(
            verifies_with(token, "APIold", "old-secret-0123456789abcdefghijklmnop"),
            "a token mixed old and new"
        );
        // Typically well under a second (debounce + reload); the bound only stops a broken reload
        // from hanging the test and is generous for a loaded 2-core machine.
        assert!(
            swapped.elapsed() < Duration::from_secs(30),
            "rotation not picked up within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = sidecar.metrics_text().await;
    assert!(
        metrics.contains("livekit_sidecar_config_reloads_total{result=\"success\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_bad_update_keeps_the_last_good_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let settings = hs_settings();
    kubelet_write(
        dir.path(),
        &dir_files(
            &settings,
            "APIgood",
            "good-secret-0123456789abcdefghijklmnop",
        ),
    );
    let sidecar = TestSidecar::start_dir(dir.path(), &[]).await;

    let mut broken = dir_files(&settings, "APIbad", "bad-secret-0123456789abcdefghijklmnop");
    broken[0].1 = "serverUrl: ftp://nowhere\nauth:\n  algorithms: [HS256]\n".into();
    kubelet_write(dir.path(), &broken);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = sidecar.metrics_text().await;
        if metrics.contains("livekit_sidecar_config_reloads_total{result=\"failure\"} 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the failed reload is not visible in metrics: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = sidecar
        .post_token(Some(&caller()), json!({"roomId": "r"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(verifies_with(
        body["token"].as_str().unwrap(),
        "APIgood",
        "good-secret-0123456789abcdefghijklmnop"
    ));
    assert_eq!(
        sidecar.get("/api/livekit/health", None).await,
        (200, json!({"status": "healthy", "configured": true}))
    );
}

/// The slow re-check alone (file events off, as on a file system without inotify) picks up an update.
#[tokio::test]
async fn the_timer_reloads_with_the_watcher_off() {
    let dir = tempfile::tempdir().unwrap();
    let settings = hs_settings();
    kubelet_write(
        dir.path(),
        &dir_files(&settings, "APIone", "one-secret-0123456789abcdefghijklmnop"),
    );
    let sidecar = TestSidecar::start_dir(
        dir.path(),
        &["--reload-check-seconds", "1", "--watch-config-dir", "false"],
    )
    .await;
    kubelet_write(
        dir.path(),
        &dir_files(&settings, "APItwo", "two-secret-0123456789abcdefghijklmnop"),
    );
    // Waits for the reload to be observed; the deadline only stops a broken timer from hanging the
    // test, generous for a loaded machine (the timer fires every second).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = sidecar
            .post_token(Some(&caller()), json!({"roomId": "r"}))
            .await;
        if token_issuer(body["token"].as_str().unwrap()) == "APItwo" {
            break;
        }
        assert!(Instant::now() < deadline, "the timer never reloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = sidecar.metrics_text().await;
    assert!(
        metrics.contains("livekit_sidecar_config_reloads_total{result=\"success\"} 2"),
        "{metrics}"
    );
}

/// A stand-in LiveKit server whose behaviour the test switches: 0 answers, 1 answers slowly,
/// 2 fails with 500.
async fn livekit_stub(mode: std::sync::Arc<std::sync::atomic::AtomicU8>) -> LocalServer {
    serve_local(Router::new().route(
        "/",
        get(move || {
            let mode = mode.clone();
            async move {
                match mode.load(std::sync::atomic::Ordering::SeqCst) {
                    0 => (axum::http::StatusCode::OK, "OK"),
                    1 => {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        (axum::http::StatusCode::OK, "OK")
                    }
                    _ => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "down"),
                }
            }
        }),
    ))
    .await
}

async fn wait_for_health(sidecar: &TestSidecar, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = sidecar.get("/api/livekit/health", None).await;
        if body["status"] == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "health never became {expected}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn health_follows_livekit_reachability() {
    let mode = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(0));
    let stub = livekit_stub(mode.clone()).await;
    let mut settings = hs_settings();
    settings.server_url = format!("ws://{}", stub.addr);
    let flags = [
        "--livekit-probe-interval-seconds",
        "1",
        "--livekit-probe-timeout-ms",
        "300",
    ];
    let sidecar = TestSidecar::start_with(input(settings.clone(), hs_keys()), &flags).await;
    let readyz = |s: &TestSidecar| reqwest::get(format!("{}/readyz", s.metrics_base));

    wait_for_health(&sidecar, "healthy").await;
    assert_eq!(readyz(&sidecar).await.unwrap().status(), 200);
    assert!(
        sidecar
            .metrics_text()
            .await
            .contains("livekit_sidecar_livekit_reachable 1")
    );

    mode.store(1, std::sync::atomic::Ordering::SeqCst); // slower than the probe timeout
    wait_for_health(&sidecar, "unhealthy").await;
    let (_, body) = sidecar.get("/api/livekit/health", None).await;
    assert_eq!(body, json!({"status": "unhealthy", "configured": true}));
    assert_eq!(
        readyz(&sidecar).await.unwrap().status(),
        200,
        "an unreachable LiveKit does not take the app pod out of its Service"
    );

    mode.store(0, std::sync::atomic::Ordering::SeqCst);
    wait_for_health(&sidecar, "healthy").await;
    mode.store(2, std::sync::atomic::Ordering::SeqCst); // fails
    wait_for_health(&sidecar, "unhealthy").await;
    mode.store(0, std::sync::atomic::Ordering::SeqCst);
    wait_for_health(&sidecar, "healthy").await;
    drop(stub); // disappears
    wait_for_health(&sidecar, "unhealthy").await;
    assert!(
        sidecar
            .metrics_text()
            .await
            .contains("livekit_sidecar_livekit_reachable 0")
    );
    // Tokens are still issued: reachability is reported, not enforced.
    assert_eq!(
        sidecar
            .post_token(Some(&caller()), json!({"roomId": "r"}))
            .await
            .0,
        200
    );

    // The documented setting: an unreachable server does not make the sidecar unhealthy.
    let tolerant = TestSidecar::start_with(
        input(settings, hs_keys()),
        &[&flags[..], &["--unreachable-is-unhealthy", "false"]].concat(),
    )
    .await;
    // Wait until the probe has seen the server down, then health must still say healthy.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tolerant
        .metrics_text()
        .await
        .contains("livekit_sidecar_livekit_reachable 0")
    {
        assert!(Instant::now() < deadline, "the probe never reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        tolerant.get("/api/livekit/health", None).await,
        (200, json!({"status": "healthy", "configured": true}))
    );
    assert!(
        tolerant
            .metrics_text()
            .await
            .contains("livekit_sidecar_livekit_reachable 0")
    );
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_failures_with_bounded_labels() {
    let sidecar = TestSidecar::start(input(hs_settings(), hs_keys())).await;
    assert_eq!(
        sidecar
            .post_token(Some(&caller()), json!({"roomId": "secret-room-name"}))
            .await
            .0,
        200
    );
    assert_eq!(
        sidecar.post_token(None, json!({"roomId": "r"})).await.0,
        401
    );
    assert_eq!(sidecar.post_token(Some(&caller()), json!({})).await.0, 400);
    assert_eq!(sidecar.get("/nope/user-1234", None).await.0, 404);
    let text = sidecar.metrics_text().await;
    for expected in [
        "livekit_sidecar_tokens_total{outcome=\"issued\"} 1",
        "livekit_sidecar_tokens_total{outcome=\"unauthenticated\"} 1",
        "livekit_sidecar_tokens_total{outcome=\"invalid_request\"} 1",
        "livekit_sidecar_caller_auth_failures_total{reason=\"missing_token\"} 1",
        "livekit_sidecar_http_requests_total{route=\"/api/livekit/token\",status_class=\"2xx\"} 1",
        "livekit_sidecar_http_requests_total{route=\"/api/livekit/token\",status_class=\"4xx\"} 2",
        "livekit_sidecar_http_requests_total{route=\"unmatched\",status_class=\"4xx\"} 1",
        "livekit_sidecar_http_request_duration_seconds_count{route=\"/api/livekit/token\"} 3",
        "livekit_sidecar_configured 1",
        "livekit_sidecar_healthy 1",
        "process_resident_memory_bytes",
    ] {
        assert!(text.contains(expected), "missing {expected}:\n{text}");
    }
    for leaked in ["secret-room-name", "alice", "user-1234"] {
        assert!(!text.contains(leaked), "{leaked} leaked into a label");
    }
}
