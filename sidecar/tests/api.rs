//! The HTTP API over real loopback connections: every status code and message of the spec, with
//! caller tokens signed by HS secrets and checked against the claims authorizer.

mod common;

use common::*;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use livekit_sidecar::config::{ConfigInput, Source};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn sidecar() -> TestSidecar {
    TestSidecar::start(input(hs_settings(), hs_keys())).await
}

fn alice() -> String {
    let mut claims = caller_claims("alice", &["JOIN_CHANNEL"]);
    claims["name"] = json!("Alice");
    hs_token(&claims)
}

fn decode_livekit(token: &str) -> Value {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[API_KEY]);
    validation.validate_nbf = true;
    jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(API_SECRET.as_bytes()),
        &validation,
    )
    .unwrap()
    .claims
}

#[tokio::test]
async fn issues_a_token_with_the_documented_shape() {
    let sidecar = sidecar().await;
    let response = sidecar
        .client
        .post(format!("{}/api/livekit/token", sidecar.base))
        .bearer_auth(alice())
        .json(&json!({"roomId": "64f7b1234567890abcdef123", "ttl": 7200}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    // Request ids are for error answers (and echoed when the client sends one).
    assert!(!response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 5, "{body}");
    assert_eq!(body["identity"], "alice");
    assert_eq!(body["roomId"], "64f7b1234567890abcdef123");
    assert_eq!(body["name"], "Alice");

    let claims = decode_livekit(body["token"].as_str().unwrap());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["name"], "Alice");
    assert_eq!(claims["iss"], API_KEY);
    assert_eq!(
        claims["video"],
        json!({"room": "64f7b1234567890abcdef123", "roomJoin": true, "canPublish": true, "canSubscribe": true, "canPublishData": true})
    );
    let exp = claims["exp"].as_u64().unwrap();
    let nbf = claims["nbf"].as_u64().unwrap();
    assert_eq!(exp - nbf, 7200);
    assert_eq!(
        body["expiresAt"],
        livekit_sidecar::token::iso8601_millis(exp)
    );
    assert!(body["expiresAt"].as_str().unwrap().ends_with(".000Z"));
}

#[tokio::test]
async fn defaults_identity_name_and_ttl() {
    let sidecar = sidecar().await;
    let token = hs_token(&caller_claims("bob", &["JOIN_CHANNEL"]));
    let (status, body) = sidecar
        .post_token(Some(&token), json!({"roomId": "r1"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["identity"], "bob");
    assert!(body.get("name").is_none(), "no name anywhere: {body}");
    let claims = decode_livekit(body["token"].as_str().unwrap());
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["nbf"].as_u64().unwrap(),
        3600
    );
}

#[tokio::test]
async fn validation_errors_use_class_validator_words() {
    let sidecar = sidecar().await;
    let (status, body) = sidecar.post_token(Some(&alice()), json!({"ttl": 0})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        nest(
            400,
            json!([
                "roomId should not be empty",
                "roomId must be a string",
                "ttl must not be less than 1"
            ])
        )
    );
    let (status, body) = sidecar
        .post_token(Some(&alice()), json!({"roomId": "r", "ttl": 86_401}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        json!(["ttl must not be greater than 86400"])
    );
    let (_, body) = sidecar
        .post_token(Some(&alice()), json!({"roomId": "r", "ttl": 2.5}))
        .await;
    assert_eq!(body["message"], json!(["ttl must be an integer number"]));
    let (_, body) = sidecar
        .post_token(
            Some(&alice()),
            json!({"roomId": "x".repeat(300), "name": 7}),
        )
        .await;
    assert_eq!(
        body["message"],
        json!([
            "roomId must be shorter than or equal to 256 characters (LiveKit's room name limit)",
            "name must be a string"
        ])
    );
}

async fn raw_post(
    sidecar: &TestSidecar,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut request = sidecar
        .client
        .post(format!("{}/api/livekit/token", sidecar.base))
        .bearer_auth(alice())
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    read(request.send().await.unwrap()).await
}

#[tokio::test]
async fn bodies_that_are_not_json_objects() {
    let sidecar = sidecar().await;
    let (status, body) = raw_post(&sidecar, Some("application/json"), "{\"roomId\": ").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "Bad Request");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Request body is not valid JSON"),
        "{body}"
    );

    let (status, body) = raw_post(&sidecar, Some("application/json"), "[1,2]").await;
    assert_eq!(
        (status, body),
        (400, nest(400, json!("Request body must be a JSON object")))
    );

    let (status, body) = raw_post(&sidecar, Some("application/json"), "").await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        json!(["roomId should not be empty", "roomId must be a string"])
    );

    let (status, body) = raw_post(&sidecar, Some("text/plain"), "{\"roomId\":\"r\"}").await;
    assert_eq!(
        (status, body),
        (
            415,
            nest(415, json!("Content-Type must be application/json"))
        )
    );
    let (status, _) = raw_post(&sidecar, None, "{\"roomId\":\"r\"}").await;
    assert_eq!(status, 415);
    let (status, _) = raw_post(
        &sidecar,
        Some("application/json; charset=utf-8"),
        "{\"roomId\":\"r\"}",
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let sidecar = sidecar().await;
    let big = format!("{{\"roomId\":\"r\",\"pad\":\"{}\"}}", "x".repeat(17 * 1024));
    let (status, body) = raw_post(&sidecar, Some("application/json"), big.clone()).await;
    assert_eq!(
        (status, body),
        (
            413,
            nest(
                413,
                json!("Request body is larger than the limit of 16384 bytes")
            )
        )
    );
    // Without a Content-Length (chunked), the limit still holds.
    let stream = futures::stream::iter(
        big.into_bytes()
            .chunks(1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let (status, _) = raw_post(
        &sidecar,
        Some("application/json"),
        reqwest::Body::wrap_stream(stream),
    )
    .await;
    assert_eq!(status, 413);

    let small =
        TestSidecar::start_with(input(hs_settings(), hs_keys()), &["--max-body-bytes", "64"]).await;
    let (status, body) = raw_post(
        &small,
        Some("application/json"),
        format!("{{\"roomId\":\"{}\"}}", "r".repeat(60)),
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(
        body["message"],
        "Request body is larger than the limit of 64 bytes"
    );
}

#[tokio::test]
async fn caller_authentication_failures_are_401() {
    let sidecar = sidecar().await;
    let now = now();
    let other_secret = EncodingKey::from_secret(b"another-secret-of-enough-length-0123456789");
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "Missing bearer token"),
        (
            Some("Basic dXNlcjpwYXNz".into()),
            "Authorization header must use the Bearer scheme",
        ),
        (Some("Bearer not-a-jwt".into()), "Invalid token"),
        (
            Some(format!(
                "Bearer {}",
                sign(
                    Algorithm::HS256,
                    &other_secret,
                    None,
                    &caller_claims("a", &["JOIN_CHANNEL"])
                )
            )),
            "Invalid token",
        ),
        (
            Some(format!(
                "Bearer {}",
                hs_token(&json!({"sub": "a", "exp": now - 120}))
            )),
            "Token has expired",
        ),
        (
            Some(format!(
                "Bearer {}",
                hs_token(&json!({"sub": "a", "exp": now + 600, "nbf": now + 300}))
            )),
            "Token is not yet valid",
        ),
        (
            Some(format!("Bearer {}", hs_token(&json!({"exp": now + 600})))),
            "Token is missing the required claim sub",
        ),
        (
            Some(format!("Bearer {}", hs_token(&json!({"sub": "a"})))),
            "Token is missing the required claim exp",
        ),
        (
            Some(format!(
                "Bearer {}",
                sign(
                    Algorithm::HS512,
                    &EncodingKey::from_secret(HS_SECRET.as_bytes()),
                    None,
                    &caller_claims("a", &[])
                )
            )),
            "Token algorithm is not allowed",
        ),
        (
            Some(format!("Bearer {}", unsigned_token())),
            "Invalid token",
        ),
        (
            Some(format!("Bearer {}", token_with_crit())),
            "Token has critical header parameters",
        ),
        (
            Some(format!("Bearer {}", "a".repeat(9000))),
            "Invalid token",
        ),
        // Identity and name from the caller token follow the rules of request fields.
        (
            Some(format!(
                "Bearer {}",
                hs_token(&caller_claims("alice\r\nadmin", &["JOIN_CHANNEL"]))
            )),
            "Token has no usable identity claim",
        ),
        (
            Some(format!("Bearer {}", {
                let mut claims = caller_claims("alice", &["JOIN_CHANNEL"]);
                claims["name"] = json!("Alice\u{1b}[2J");
                hs_token(&claims)
            })),
            "Token name claim is not usable",
        ),
    ];
    for (header, message) in cases {
        let mut request = sidecar
            .client
            .post(format!("{}/api/livekit/token", sidecar.base))
            .json(&json!({"roomId": "r"}));
        if let Some(header) = &header {
            request = request.header("authorization", header);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let (status, body) = read(response).await;
        assert_eq!(
            (status, &body),
            (401, &nest(401, json!(message))),
            "{header:?}"
        );
    }
}

/// `alg: none` with no signature: must never pass.
fn unsigned_token() -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = b64.encode(serde_json::to_vec(&caller_claims("a", &["JOIN_CHANNEL"])).unwrap());
    format!("{header}.{claims}.")
}

fn token_with_crit() -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT","crit":["exp"]}"#);
    let claims = b64.encode(serde_json::to_vec(&caller_claims("a", &["JOIN_CHANNEL"])).unwrap());
    let signing_input = format!("{header}.{claims}");
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{signing_input}.{signature}")
}

#[tokio::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let mut settings = hs_settings();
    settings.auth.issuer = Some("https://auth.example.com".into());
    settings.auth.audiences = vec!["kraken".into()];
    let sidecar = TestSidecar::start(input(settings, hs_keys())).await;
    let claims = |iss: &str, aud: &str| {
        let mut c = caller_claims("a", &["JOIN_CHANNEL"]);
        c["iss"] = json!(iss);
        c["aud"] = json!(aud);
        hs_token(&c)
    };
    let (status, _) = sidecar
        .post_token(
            Some(&claims("https://auth.example.com", "kraken")),
            json!({"roomId": "r"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = sidecar
        .post_token(
            Some(&claims("https://evil.example.com", "kraken")),
            json!({"roomId": "r"}),
        )
        .await;
    assert_eq!(
        (status, body["message"].clone()),
        (401, json!("Token issuer is not accepted"))
    );
    let (status, body) = sidecar
        .post_token(
            Some(&claims("https://auth.example.com", "other")),
            json!({"roomId": "r"}),
        )
        .await;
    assert_eq!(
        (status, body["message"].clone()),
        (401, json!("Token audience is not accepted"))
    );
    // Configured means required: a token without `iss` or without `aud` is refused.
    let mut no_iss = caller_claims("a", &["JOIN_CHANNEL"]);
    no_iss["aud"] = json!("kraken");
    let (status, body) = sidecar
        .post_token(Some(&hs_token(&no_iss)), json!({"roomId": "r"}))
        .await;
    assert_eq!(
        (status, body["message"].clone()),
        (401, json!("Token is missing the required claim iss"))
    );
    let mut no_aud = caller_claims("a", &["JOIN_CHANNEL"]);
    no_aud["iss"] = json!("https://auth.example.com");
    let (status, body) = sidecar
        .post_token(Some(&hs_token(&no_aud)), json!({"roomId": "r"}))
        .await;
    assert_eq!(
        (status, body["message"].clone()),
        (401, json!("Token is missing the required claim aud"))
    );
}

#[tokio::test]
async fn authentication_comes_before_the_body_is_read() {
    let sidecar = sidecar().await;
    let response = sidecar
        .client
        .post(format!("{}/api/livekit/token", sidecar.base))
        .header("content-type", "text/plain")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn join_channel_is_required() {
    let sidecar = sidecar().await;
    let forbidden = nest(
        403,
        json!("Insufficient permissions. Required: JOIN_CHANNEL"),
    );
    let none = hs_token(&caller_claims("a", &["READ_MESSAGES"]));
    assert_eq!(
        sidecar
            .post_token(Some(&none), json!({"roomId": "r1"}))
            .await,
        (403, forbidden.clone())
    );
    let scoped = hs_token(&caller_claims("a", &["JOIN_CHANNEL:r1"]));
    assert_eq!(
        sidecar
            .post_token(Some(&scoped), json!({"roomId": "r1"}))
            .await
            .0,
        200
    );
    assert_eq!(
        sidecar
            .post_token(Some(&scoped), json!({"roomId": "r2"}))
            .await,
        (403, forbidden)
    );
}

#[tokio::test]
async fn identity_override_is_forbidden_unless_allowed() {
    let sidecar = sidecar().await;
    let (status, body) = sidecar
        .post_token(
            Some(&alice()),
            json!({"roomId": "r", "identity": "mallory"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "Forbidden");
    let (status, _) = sidecar
        .post_token(Some(&alice()), json!({"roomId": "r", "identity": "alice"}))
        .await;
    assert_eq!(status, 200);

    let mut settings = hs_settings();
    settings.token.allow_identity_override = true;
    let open = TestSidecar::start(input(settings, hs_keys())).await;
    let (status, body) = open
        .post_token(Some(&alice()), json!({"roomId": "r", "identity": "bot-7"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["identity"], "bot-7");
    assert_eq!(
        decode_livekit(body["token"].as_str().unwrap())["sub"],
        "bot-7"
    );
}

#[tokio::test]
async fn connection_info_and_health() {
    let sidecar = sidecar().await;
    let (status, body) = sidecar
        .get("/api/livekit/connection-info", Some(&alice()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"serverUrl": "wss://livekit.example.com", "region": "eu-west-1", "configured": true,
               "features": {"audio": true, "video": true, "screenShare": true, "recording": false}})
    );
    let (status, body) = sidecar.get("/api/livekit/connection-info", None).await;
    assert_eq!(
        (status, body),
        (401, nest(401, json!("Missing bearer token")))
    );
    // No permission is needed for connection info.
    let plain = hs_token(&caller_claims("a", &[]));
    assert_eq!(
        sidecar
            .get("/api/livekit/connection-info", Some(&plain))
            .await
            .0,
        200
    );
    assert_eq!(
        sidecar.get("/api/livekit/health", None).await,
        (200, json!({"status": "healthy", "configured": true}))
    );
    let probes = reqwest::get(format!("{}/readyz", sidecar.metrics_base))
        .await
        .unwrap();
    assert_eq!(probes.status(), 200);
    let live = reqwest::get(format!("{}/livez", sidecar.metrics_base))
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
}

#[tokio::test]
async fn unconfigured_sidecar_answers_as_the_spec_shows() {
    let sidecar = TestSidecar::start(ConfigInput {
        source: Source::Env,
        configured: None,
        caller_keys: Default::default(),
        fingerprint: None,
    })
    .await;
    assert_eq!(
        sidecar.get("/api/livekit/health", None).await,
        (200, json!({"status": "unhealthy", "configured": false}))
    );
    let not_configured = nest(500, json!("LiveKit service not configured properly"));
    assert_eq!(
        sidecar.post_token(Some("x"), json!({"roomId": "r"})).await,
        (500, not_configured.clone())
    );
    assert_eq!(
        sidecar.get("/api/livekit/connection-info", None).await,
        (500, not_configured)
    );
    let ready = reqwest::get(format!("{}/readyz", sidecar.metrics_base))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let sidecar = sidecar().await;
    assert_eq!(
        sidecar.get("/api/livekit/nope", None).await,
        (404, nest(404, json!("Cannot GET /api/livekit/nope")))
    );
    let response = sidecar
        .client
        .get(format!("{}/api/livekit/token", sidecar.base))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("allow"));
    assert_eq!(
        read(response).await,
        (
            405,
            nest(
                405,
                json!("Method GET is not allowed on /api/livekit/token")
            )
        )
    );
    let response = sidecar
        .client
        .delete(format!("{}/api/livekit/health", sidecar.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let (status, body) = read(
        reqwest::get(format!("{}/metrics-nope", sidecar.metrics_base))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["statusCode"].clone()), (404, json!(404)));
}

/// Writes a request head and part of a body, then stalls: the sidecar answers 408 in time.
#[tokio::test]
async fn slow_bodies_time_out_with_408() {
    let sidecar = TestSidecar::start_with(
        input(hs_settings(), hs_keys()),
        &["--body-timeout-ms", "300"],
    )
    .await;
    let addr = sidecar.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/livekit/token HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"roomId\"",
        alice()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut response),
    )
    .await;
    assert!(read.is_ok(), "the sidecar kept a stalled body open");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"statusCode\":408"), "{text}");
}

/// A client that never finishes its headers is disconnected.
#[tokio::test]
async fn slow_headers_are_cut_off() {
    let sidecar = TestSidecar::start_with(
        input(hs_settings(), hs_keys()),
        &["--header-timeout-ms", "300"],
    )
    .await;
    let addr = sidecar.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"POST /api/livekit/token HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut response),
    )
    .await;
    assert!(read.is_ok(), "the sidecar kept a stalled header open");
    // Meanwhile others are served.
    assert_eq!(sidecar.get("/api/livekit/health", None).await.0, 200);
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let sidecar = sidecar().await;
    let response = sidecar
        .client
        .get(format!("{}/api/livekit/health", sidecar.base))
        .header("x-padding", "p".repeat(64 * 1024))
        .send()
        .await;
    match response {
        Ok(response) => assert!(response.status().is_client_error(), "{}", response.status()),
        Err(error) => assert!(
            error.is_request() || error.is_connect() || error.is_body(),
            "{error}"
        ),
    }
    assert_eq!(sidecar.get("/api/livekit/health", None).await.0, 200);
}

#[tokio::test]
async fn livekit_standard_token_endpoint() {
    let sidecar = sidecar().await;
    let response = sidecar
        .client
        .post(format!("{}/api/livekit/token-source", sidecar.base))
        .bearer_auth(alice())
        .json(&json!({"room_name": "r9", "participant_attributes": {"k": "v"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let (status, body) = read(response).await;
    assert_eq!(status, 200, "{body}");
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["participant_token", "server_url"]);
    assert_eq!(body["server_url"], "wss://livekit.example.com");
    let claims = decode_livekit(body["participant_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["name"], "Alice");
    assert_eq!(claims["attributes"], json!({"k": "v"}));
    assert_eq!(claims["video"]["room"], "r9");
    assert!(claims.get("metadata").is_none());

    let response = sidecar
        .client
        .post(format!("{}/api/livekit/token-source", sidecar.base))
        .bearer_auth(alice())
        .json(&json!({"room_name": "", "room_config": {"name": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        read(response).await,
        (
            400,
            nest(
                400,
                json!([
                    "room_name should not be empty",
                    "room_config is not accepted by this token server"
                ])
            )
        )
    );
}

/// A client's `x-request-id` is echoed and logged only when short and plain; anything else (too long,
/// spaces, quotes, bytes outside ASCII) is replaced with a generated id on an error answer (401 here).
#[tokio::test]
async fn client_request_ids_are_bounded_and_sanitized() {
    let sidecar = TestSidecar::start(input(hs_settings(), hs_keys())).await;
    let echoed = |id: &[u8]| {
        let request = sidecar
            .client
            .post(format!("{}/api/livekit/token", sidecar.base))
            .header(
                "x-request-id",
                reqwest::header::HeaderValue::from_bytes(id).unwrap(),
            );
        async move {
            let response = request.send().await.unwrap();
            response.headers()["x-request-id"].as_bytes().to_vec()
        }
    };
    assert_eq!(echoed(b"req-42_a.b:c").await, b"req-42_a.b:c");
    const LONG: [u8; 65] = [b'a'; 65];
    for bad in [
        &LONG[..],
        b"two words",
        b"x\" level=error msg=\"forged",
        b"caf\xc3\xa9",
        b"tab\there",
    ] {
        let id = echoed(bad).await;
        assert_ne!(id, bad, "{}", String::from_utf8_lossy(bad));
        assert!(
            !id.is_empty() && id.iter().all(|b| b.is_ascii_hexdigit() || *b == b'-'),
            "a generated id: {}",
            String::from_utf8_lossy(&id)
        );
    }
}

#[tokio::test]
async fn request_ids_mark_errors_and_echo_only_well_formed_client_ids() {
    let sidecar = sidecar().await;
    let url = format!("{}/api/livekit/token", sidecar.base);
    let refused = sidecar.client.post(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let generated = refused.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!generated.is_empty());
    let again = sidecar.client.post(&url).send().await.unwrap();
    assert_ne!(again.headers()["x-request-id"], generated.as_str());

    let echoed = sidecar
        .client
        .post(&url)
        .header("x-request-id", "client-42")
        .bearer_auth(alice())
        .json(&json!({"roomId": "64f7b1234567890abcdef123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.status(), 200);
    assert_eq!(echoed.headers()["x-request-id"], "client-42");

    let odd = "x".repeat(65);
    let replaced = sidecar
        .client
        .post(&url)
        .header("x-request-id", &odd)
        .send()
        .await
        .unwrap();
    assert_ne!(replaced.headers()["x-request-id"], odd.as_str());
}

/// A `Content-Encoding` the sidecar does not decode is refused with 415, never read as plain JSON.
#[tokio::test]
async fn undecoded_content_encodings_are_refused() {
    let sidecar = TestSidecar::start(input(hs_settings(), hs_keys())).await;
    let caller = hs_token(&caller_claims("alice", &["JOIN_CHANNEL"]));
    let post = |encoding: Option<&'static str>| {
        let mut request = sidecar
            .client
            .post(format!("{}/api/livekit/token", sidecar.base))
            .bearer_auth(&caller)
            .header("content-type", "application/json")
            .body(r#"{"roomId":"r"}"#);
        if let Some(encoding) = encoding {
            request = request.header("content-encoding", encoding);
        }
        async move { read(request.send().await.unwrap()).await.0 }
    };
    assert_eq!(post(None).await, 200);
    assert_eq!(post(Some("identity")).await, 200);
    for encoding in ["gzip", "deflate", "br", "x-unknown", "identity, gzip"] {
        assert_eq!(post(Some(encoding)).await, 415, "{encoding}");
    }
}
