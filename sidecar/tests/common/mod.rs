//! Shared helpers: a sidecar served in-process on loopback, caller-token minting, and small HTTP servers
//! standing in for the identity provider's JWKS and the application's authorization webhook.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use clap::Parser;
use futures::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use livekit_contract::Secret;
use livekit_contract::SidecarSettings;
use livekit_sidecar::auth::CallerKeyMaterial;
use livekit_sidecar::cli::Cli;
use livekit_sidecar::config::{ConfigInput, Credentials, Snapshot, Source};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const API_KEY: &str = "APItest";
pub const API_SECRET: &str = "test-livekit-secret-0123456789abcdef";
pub const HS_SECRET: &str = "caller-secret-for-tests-0123456789abcdef";

pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Settings for HS256 callers with the claims authorizer.
pub fn hs_settings() -> SidecarSettings {
    let mut settings = SidecarSettings::new("wss://livekit.example.com");
    settings.region = Some("eu-west-1".into());
    settings.auth.algorithms = vec![livekit_contract::Algorithm::HS256];
    settings
}

pub fn input(settings: SidecarSettings, keys: CallerKeyMaterial) -> ConfigInput {
    ConfigInput {
        source: Source::Env,
        configured: Some((
            settings,
            Credentials {
                api_key: API_KEY.into(),
                api_secret: Secret::new(API_SECRET),
            },
        )),
        caller_keys: keys,
        fingerprint: None,
    }
}

pub fn hs_keys() -> CallerKeyMaterial {
    CallerKeyMaterial {
        hmac_secret: Some(Secret::new(HS_SECRET)),
        public_keys_pem: None,
    }
}

pub struct TestSidecar {
    pub base: String,
    pub metrics_base: String,
    pub client: reqwest::Client,
    pub state: livekit_sidecar::state::AppState,
    shutdown: CancellationToken,
}

impl Drop for TestSidecar {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestSidecar {
    pub async fn start(input: ConfigInput) -> Self {
        Self::start_with(input, &[]).await
    }

    /// Starts on ephemeral loopback ports; `flags` are extra command-line flags.
    pub async fn start_with(input: ConfigInput, flags: &[&str]) -> Self {
        let mut argv = vec![
            "livekit-sidecar",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ];
        // No probe unless a test asks for one: tests reach loopback only.
        if !flags.contains(&"--livekit-probe-interval-seconds") {
            argv.extend_from_slice(&["--livekit-probe-interval-seconds", "0"]);
        }
        argv.extend_from_slice(flags);
        let cli = Cli::try_parse_from(argv).expect("valid test flags");
        let snapshot = Snapshot::build(input, None).expect("valid test configuration");
        let shutdown = CancellationToken::new();
        let running = livekit_sidecar::serve_snapshot(snapshot, &cli.serve, shutdown.clone())
            .await
            .expect("sidecar starts");
        Self {
            base: format!("http://{}", running.api_addr),
            metrics_base: format!("http://{}", running.metrics_addr),
            client: reqwest::Client::new(),
            state: running.state,
            shutdown,
        }
    }

    /// Starts from a directory source, as `--config-dir` does.
    pub async fn start_dir(dir: &std::path::Path, flags: &[&str]) -> Self {
        let mut all = vec!["--config-dir", dir.to_str().unwrap()];
        all.extend_from_slice(flags);
        let input = livekit_sidecar::config::load_dir(dir).expect("valid directory");
        Self::start_with(input, &all).await
    }

    pub async fn metrics_text(&self) -> String {
        reqwest::get(format!("{}/metrics", self.metrics_base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn post_token(&self, bearer: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}/api/livekit/token", self.base))
            .json(&body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        read(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> (u16, Value) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        read(request.send().await.unwrap()).await
    }
}

pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// The NestJS error body.
pub fn nest(status: u16, message: Value) -> Value {
    let error = reqwest::StatusCode::from_u16(status)
        .unwrap()
        .canonical_reason()
        .unwrap();
    json!({"statusCode": status, "message": message, "error": error})
}

/// Claims of a well-formed caller token for `sub`, valid for an hour, with `permissions`.
pub fn caller_claims(sub: &str, permissions: &[&str]) -> Value {
    json!({"sub": sub, "exp": now() + 3600, "iat": now(), "permissions": permissions})
}

pub fn hs_token(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
        None,
        claims,
    )
}

pub fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    livekit_sidecar::install_crypto_provider();
    let mut header = Header::new(alg);
    header.kid = kid.map(Into::into);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

pub fn rsa_key(file: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(fixture(file).as_bytes()).unwrap()
}

/// A local HTTP server on an ephemeral loopback port, stopped when dropped.
pub struct LocalServer {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn serve_local(router: Router) -> LocalServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .unwrap();
    });
    LocalServer { addr, shutdown }
}

/// A JWKS endpoint whose document can be swapped, counting fetches.
#[derive(Clone)]
pub struct Jwks {
    pub document: Arc<Mutex<Value>>,
    pub fetches: Arc<AtomicUsize>,
}

impl Jwks {
    pub fn new(keys: &[&str]) -> Self {
        Self {
            document: Arc::new(Mutex::new(jwks_document(keys))),
            fetches: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub async fn serve(&self) -> LocalServer {
        let router = Router::new()
            .route(
                "/jwks.json",
                get(|State(jwks): State<Jwks>| async move {
                    jwks.fetches.fetch_add(1, Ordering::SeqCst);
                    Json(jwks.document.lock().unwrap().clone())
                }),
            )
            .with_state(self.clone());
        serve_local(router).await
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// A JWKS document from fixture JWK files (`rsa`, `rsa2`, `ec`, `ed`).
pub fn jwks_document(keys: &[&str]) -> Value {
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| serde_json::from_str(&fixture(&format!("{k}.jwk.json"))).unwrap())
        .collect();
    json!({ "keys": keys })
}

/// The application's authorization webhook. Rooms decide the answer by prefix:
///
/// | prefix | answer |
/// |---|---|
/// | `allow-` | 204 |
/// | `allowjson-` | 200 `{"allow": true, "reason": "member"}` |
/// | `denyjson-` | 200 `{"allow": false}` |
/// | `deny-` | 403 |
/// | `unauth-` | 401 |
/// | `denybody-` | 403 with the body `{"allow": true}` (the body of a denial changes nothing) |
/// | `missing-` | 404 |
/// | `bare-` | 200 without a body (the old "any 200 allows") |
/// | `html-` | 200 `text/html`, what a catch-all route answers |
/// | `accepted-` | 202 `{"allow": true}` |
/// | `redirect-` | 307 to `/allow-everything`, which would answer 204 (and counts its calls) |
/// | `huge-` | 200 `{"allow": true, "pad": …}` far over the answer bound |
/// | `stall-` | 200 whose body starts `{"allow": tr` and never finishes |
/// | `slow-` | 204 after two seconds |
/// | `held-` | 204 once the test calls `release.notify_one()` |
/// | anything else | 500 |
#[derive(Clone, Default)]
pub struct Webhook {
    pub calls: Arc<AtomicUsize>,
    pub redirected_calls: Arc<AtomicUsize>,
    pub last_body: Arc<Mutex<Option<Value>>>,
    /// Lets a `held-` call answer: the test decides when, instead of racing a timer.
    pub release: Arc<tokio::sync::Notify>,
}

impl Webhook {
    pub async fn serve(&self) -> LocalServer {
        use axum::body::Body;
        use axum::response::{IntoResponse, Response};
        let router = Router::new()
            .route(
                "/authorize",
                post(
                    |State(hook): State<Webhook>, Json(body): Json<Value>| async move {
                        hook.calls.fetch_add(1, Ordering::SeqCst);
                        let room = body["roomId"].as_str().unwrap_or_default().to_owned();
                        *hook.last_body.lock().unwrap() = Some(body);
                        let status = |code: u16| axum::http::StatusCode::from_u16(code).unwrap();
                        let json =
                            |code: u16, body: Value| (status(code), Json(body)).into_response();
                        let prefix = room.split_once('-').map(|(p, _)| p).unwrap_or_default();
                        let response: Response = match prefix {
                            "allow" => status(204).into_response(),
                            "allowjson" => json(200, json!({"allow": true, "reason": "member"})),
                            "denyjson" => json(200, json!({"allow": false})),
                            "deny" => status(403).into_response(),
                            "unauth" => status(401).into_response(),
                            "denybody" => json(403, json!({"allow": true})),
                            "missing" => status(404).into_response(),
                            "bare" => status(200).into_response(),
                            "html" => (
                                status(200),
                                [("content-type", "text/html")],
                                "<!doctype html><html><body>Welcome</body></html>",
                            )
                                .into_response(),
                            "accepted" => json(202, json!({"allow": true})),
                            "redirect" => {
                                (status(307), [("location", "/allow-everything")]).into_response()
                            }
                            "huge" => {
                                json(200, json!({"allow": true, "pad": "x".repeat(64 * 1024)}))
                            }
                            "stall" => {
                                let chunks = futures::stream::iter([Ok::<_, std::io::Error>(
                                    axum::body::Bytes::from_static(b"{\"allow\": tr"),
                                )])
                                .chain(futures::stream::pending());
                                (status(200), Body::from_stream(chunks)).into_response()
                            }
                            "slow" => {
                                tokio::time::sleep(Duration::from_secs(2)).await;
                                status(204).into_response()
                            }
                            "held" => {
                                hook.release.notified().await;
                                status(204).into_response()
                            }
                            _ => status(500).into_response(),
                        };
                        response
                    },
                ),
            )
            .route(
                "/allow-everything",
                post(|State(hook): State<Webhook>| async move {
                    hook.redirected_calls.fetch_add(1, Ordering::SeqCst);
                    axum::http::StatusCode::NO_CONTENT
                }),
            )
            .with_state(self.clone());
        serve_local(router).await
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn redirected_calls(&self) -> usize {
        self.redirected_calls.load(Ordering::SeqCst)
    }
}

#[allow(unused_imports)]
pub use livekit_integration_tests::kubelet::write as kubelet_write;

/// The files of a directory source for `settings` signed with `api_key`/`api_secret`.
pub fn dir_files(
    settings: &SidecarSettings,
    api_key: &str,
    api_secret: &str,
) -> Vec<(&'static str, String)> {
    use livekit_contract::keys;
    vec![
        (keys::SETTINGS, settings.to_yaml()),
        (keys::API_KEY, api_key.to_owned()),
        (keys::API_SECRET, api_secret.to_owned()),
        (keys::CALLER_HS_SECRET, HS_SECRET.to_owned()),
    ]
}
