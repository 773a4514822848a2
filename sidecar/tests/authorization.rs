//! JOIN_CHANNEL decided by the application's webhook: allow, deny, unknown channel, and every way the
//! webhook can fail, which must refuse the token.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use livekit_contract::{AuthorizationMode, WebhookAuthorization};
use serde_json::json;

async fn with_webhook(
    hook: &Webhook,
    timeout_ms: u32,
    cache_ttl_seconds: u32,
    flags: &[&str],
) -> (TestSidecar, LocalServer) {
    let server = hook.serve().await;
    let mut settings = hs_settings();
    settings.authorization.mode = AuthorizationMode::Webhook;
    let mut webhook = WebhookAuthorization::new(format!("http://{}/authorize", server.addr));
    webhook.timeout_ms = timeout_ms;
    webhook.cache_ttl_seconds = cache_ttl_seconds;
    settings.authorization.webhook = Some(webhook);
    (
        TestSidecar::start_with(input(settings, hs_keys()), flags).await,
        server,
    )
}

/// In webhook mode the token needs no permission claim at all.
fn caller() -> String {
    hs_token(&caller_claims("alice", &[]))
}

fn metric(text: &str, outcome: &str) -> u64 {
    let prefix = format!("livekit_sidecar_authz_webhook_requests_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {outcome} series in\n{text}"))
        .parse()
        .unwrap()
}

/// The whole contract, one answer at a time: only 204 and 200 `{"allow": true}` allow, a wrong URL or
/// an answer outside the contract never does, and each answer counts under its own metric outcome.
#[tokio::test]
async fn webhook_semantics_table() {
    let hook = Webhook::default();
    let (sidecar, _server) = with_webhook(&hook, 500, 0, &[]).await;
    let (status, body) = sidecar
        .post_token(Some(&caller()), json!({"roomId": "allow-1"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        hook.last_body.lock().unwrap().clone().unwrap(),
        json!({"subject": "alice", "identity": "alice", "roomId": "allow-1", "permission": "JOIN_CHANNEL"})
    );
    let forbidden = nest(
        403,
        json!("Insufficient permissions. Required: JOIN_CHANNEL"),
    );
    let unavailable = nest(
        503,
        json!("Authorization service unavailable, please retry later"),
    );
    let table = [
        ("allowjson-1", 200, "allow"),
        ("denyjson-1", 403, "deny"),
        ("deny-1", 403, "deny"),
        ("unauth-1", 403, "deny"),
        ("denybody-1", 403, "deny"),
        ("missing-64f7b1", 404, "not_found"),
        ("bare-1", 503, "invalid_answer"),
        ("html-1", 503, "invalid_answer"),
        ("accepted-1", 503, "invalid_answer"),
        ("redirect-1", 503, "invalid_answer"),
        ("huge-1", 503, "invalid_answer"),
        ("broken-1", 503, "error"),
        ("stall-1", 503, "timeout"),
        ("slow-1", 503, "timeout"),
    ];
    for (room, expected, outcome) in table {
        let before = metric(&sidecar.metrics_text().await, outcome);
        let started = std::time::Instant::now();
        let (status, body) = sidecar
            .post_token(Some(&caller()), json!({"roomId": room}))
            .await;
        assert_eq!(status, expected, "{room}: {body}");
        match expected {
            200 => assert!(body["token"].is_string(), "{room}: {body}"),
            403 => assert_eq!(body, forbidden, "{room}"),
            404 => assert_eq!(
                body,
                nest(404, json!(format!("Channel with ID {room} not found")))
            ),
            _ => assert_eq!(body, unavailable, "{room}"),
        }
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{room}: the webhook time-out bounds status and body"
        );
        assert_eq!(
            metric(&sidecar.metrics_text().await, outcome),
            before + 1,
            "{room} counts as {outcome}"
        );
    }
    assert_eq!(hook.redirected_calls(), 0, "a redirect is never followed");
}

#[tokio::test]
async fn webhook_down_fails_closed() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings = hs_settings();
    settings.authorization.mode = AuthorizationMode::Webhook;
    settings.authorization.webhook = Some(WebhookAuthorization::new(format!(
        "http://127.0.0.1:{port}/authorize"
    )));
    let sidecar = TestSidecar::start(input(settings, hs_keys())).await;
    let (status, body) = sidecar
        .post_token(Some(&caller()), json!({"roomId": "allow-1"}))
        .await;
    assert_eq!(status, 503, "{body}");
}

#[tokio::test]
async fn answers_are_cached_per_caller_and_room() {
    let hook = Webhook::default();
    let (sidecar, _server) = with_webhook(&hook, 500, 30, &[]).await;
    for _ in 0..3 {
        assert_eq!(
            sidecar
                .post_token(Some(&caller()), json!({"roomId": "allow-a"}))
                .await
                .0,
            200
        );
        assert_eq!(
            sidecar
                .post_token(Some(&caller()), json!({"roomId": "deny-a"}))
                .await
                .0,
            403
        );
    }
    assert_eq!(hook.calls(), 2);
    let bob = hs_token(&caller_claims("bob", &[]));
    assert_eq!(
        sidecar
            .post_token(Some(&bob), json!({"roomId": "allow-a"}))
            .await
            .0,
        200
    );
    assert_eq!(hook.calls(), 3, "another caller is asked about separately");
    for _ in 0..2 {
        let (status, _) = sidecar
            .post_token(Some(&caller()), json!({"roomId": "missing-a"}))
            .await;
        assert_eq!(status, 404);
    }
    assert_eq!(hook.calls(), 4, "an unknown channel is cached too");
    let before = hook.calls();
    // Failures are not cached: the next request asks again.
    sidecar
        .post_token(Some(&caller()), json!({"roomId": "broken-a"}))
        .await;
    sidecar
        .post_token(Some(&caller()), json!({"roomId": "broken-a"}))
        .await;
    assert_eq!(hook.calls(), before + 2);
}

#[tokio::test]
async fn excess_concurrency_is_refused_not_queued() {
    let hook = Webhook::default();
    let (sidecar, _server) = with_webhook(&hook, 10_000, 0, &["--max-concurrency", "1"]).await;
    let held = {
        let client = sidecar.client.clone();
        let url = format!("{}/api/livekit/token", sidecar.base);
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(caller())
                .json(&json!({"roomId": "held-1"}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // The held request is in its webhook call, so it holds the only slot until released: wait for
    // that, not for a guessed time (the deadline only stops a hang).
    let deadline = Instant::now() + Duration::from_secs(30);
    while hook.calls.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the held request never reached the webhook"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        sidecar
            .get("/api/livekit/connection-info", Some(&caller()))
            .await,
        (
            503,
            nest(503, json!("Too many requests in progress, please retry"))
        )
    );
    // Health takes no slot: a busy sidecar is not reported down.
    assert_eq!(sidecar.get("/api/livekit/health", None).await.0, 200);
    hook.release.notify_one();
    assert_eq!(held.await.unwrap(), 200);
    assert_eq!(sidecar.get("/api/livekit/health", None).await.0, 200);
}

/// A caller that trickles its body holds no concurrency slot: others are still served.
///
/// No fixed sleep decides when the slow request is "in its body": the other callers are checked
/// again and again over a window long enough for the sidecar to take the slow request's head (on
/// the old code, every call after that point was refused with 503), and the slow caller is then
/// served too, which proves its request was alive and being read the whole time.
#[tokio::test]
async fn trickled_bodies_do_not_take_concurrency_slots() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sidecar =
        TestSidecar::start_with(input(hs_settings(), hs_keys()), &["--max-concurrency", "1"]).await;
    let addr = sidecar.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = br#"{"roomId":"slow-room"}"#;
    let (first, rest) = body.split_at(5);
    let head = format!(
        "POST /api/livekit/token HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        hs_token(&caller_claims("alice", &["JOIN_CHANNEL"])),
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(first).await.unwrap();
    let window = Instant::now() + Duration::from_secs(1);
    let mut served = 0;
    while Instant::now() < window {
        let (status, reply) = sidecar
            .post_token(
                Some(&hs_token(&caller_claims("bob", &["JOIN_CHANNEL"]))),
                json!({"roomId": "r"}),
            )
            .await;
        assert_eq!(status, 200, "served {served} before: {reply}");
        served += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sidecar.get("/api/livekit/health", None).await.0, 200);
    // The slow caller finishes its body and gets its token: its request was pending all along.
    slow.write_all(rest).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), slow.read_to_end(&mut answer))
        .await
        .expect("the slow caller was never answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("slow-room"), "{answer}");
}
