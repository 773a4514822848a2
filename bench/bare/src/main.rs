//! The bare-stack baseline of `bench/run.sh`: the least a service built on axum and jsonwebtoken must do
//! to answer `POST /api/livekit/token` — verify the caller's JWT (signature, `exp`, `iss`, `aud`) and
//! sign the same LiveKit token the sidecar signs — and nothing else: no metrics, limits, request ids,
//! authorization or body validation. The sidecar's throughput is stated as a fraction of this ceiling.
//!
//! It reads the same environment variables as the sidecar (`LIVEKIT_*`, `SIDECAR_AUTH_*`) so one set of
//! values configures every server of a run, and listens on `BARE_LISTEN` (default 127.0.0.1:3201).
//! It is a benchmark fixture, never a product: errors are bare status codes.

use std::env;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header::AUTHORIZATION};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

/// `expiresAt` as the sidecar writes it: `2024-01-01T14:00:00.000Z`.
const EXPIRES_AT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000Z");

/// Everything a request needs, built once at start, as any service on this stack would.
struct Keys {
    caller_key: DecodingKey,
    validation: Validation,
    signing_key: EncodingKey,
    header: Header,
    api_key: String,
    default_ttl: u64,
}

#[derive(Deserialize)]
struct CallerClaims {
    sub: String,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenRequest {
    room_id: String,
    name: Option<String>,
    ttl: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VideoGrant<'a> {
    room: &'a str,
    room_join: bool,
    can_publish: bool,
    can_subscribe: bool,
    can_publish_data: bool,
}

/// The same claims, in the same order, as the sidecar's LiveKit token.
#[derive(Serialize)]
struct LiveKitClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    nbf: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    video: VideoGrant<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenResponse {
    token: String,
    identity: String,
    room_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    expires_at: String,
}

async fn token(
    State(keys): State<Arc<Keys>>,
    headers: HeaderMap,
    Json(request): Json<TokenRequest>,
) -> Result<Json<TokenResponse>, StatusCode> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let caller = jsonwebtoken::decode::<CallerClaims>(bearer, &keys.caller_key, &keys.validation)
        .map_err(|_| StatusCode::UNAUTHORIZED)?
        .claims;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
        .as_secs();
    let exp = now + request.ttl.unwrap_or(keys.default_ttl);
    let name = request.name.or(caller.name);
    let claims = LiveKitClaims {
        iss: &keys.api_key,
        sub: &caller.sub,
        nbf: now,
        exp,
        name: name.as_deref(),
        video: VideoGrant {
            room: &request.room_id,
            room_join: true,
            can_publish: true,
            can_subscribe: true,
            can_publish_data: true,
        },
    };
    let token = jsonwebtoken::encode(&keys.header, &claims, &keys.signing_key)
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let expires_at = i64::try_from(exp)
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .and_then(|at| at.format(EXPIRES_AT).ok())
        .ok_or(StatusCode::BAD_REQUEST)?;
    Ok(Json(TokenResponse {
        token,
        identity: caller.sub,
        room_id: request.room_id,
        name,
        expires_at,
    }))
}

fn var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("{name} is required"))
}

fn keys_from_env() -> Result<Keys, String> {
    let algorithm: Algorithm = var("SIDECAR_AUTH_ALGORITHMS")?
        .trim()
        .parse()
        .map_err(|e| format!("SIDECAR_AUTH_ALGORITHMS (one algorithm): {e}"))?;
    let caller_key = if algorithm.family() == AlgorithmFamily::Hmac {
        DecodingKey::from_secret(var("SIDECAR_AUTH_HS_SECRET")?.as_bytes())
    } else {
        let path = var("SIDECAR_AUTH_PUBLIC_KEYS_FILE")?;
        let pem = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
        match algorithm.family() {
            AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(&pem),
            AlgorithmFamily::Ec => DecodingKey::from_ec_pem(&pem),
            _ => DecodingKey::from_ed_pem(&pem),
        }
        .map_err(|e| format!("{path}: {e}"))?
    };
    // The sidecar requires the configured issuer and audience to be present; so does this.
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[var("SIDECAR_AUTH_ISSUER")?]);
    let audiences: Vec<String> = var("SIDECAR_AUTH_AUDIENCES")?
        .split(',')
        .map(|a| a.trim().to_owned())
        .collect();
    validation.set_audience(&audiences);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("JWT".into());
    let default_ttl = match env::var("LIVEKIT_DEFAULT_TOKEN_TTL") {
        Ok(raw) => raw
            .parse()
            .map_err(|e| format!("LIVEKIT_DEFAULT_TOKEN_TTL: {e}"))?,
        Err(_) => 3600,
    };
    Ok(Keys {
        caller_key,
        validation,
        signing_key: EncodingKey::from_secret(var("LIVEKIT_API_SECRET")?.as_bytes()),
        header,
        api_key: var("LIVEKIT_API_KEY")?,
        default_ttl,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let started = async {
        let keys = Arc::new(keys_from_env()?);
        let listen: SocketAddr = env::var("BARE_LISTEN")
            .unwrap_or_else(|_| "127.0.0.1:3201".into())
            .parse()
            .map_err(|e| format!("BARE_LISTEN: {e}"))?;
        let app = Router::new()
            .route("/api/livekit/token", post(token))
            .route("/api/livekit/health", get(|| async { "ok" }))
            .with_state(keys);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("{listen}: {e}"))?;
        axum::serve(listener, app).await.map_err(|e| e.to_string())
    };
    match started.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("livekit-bench-bare: {error}");
            ExitCode::from(2)
        }
    }
}
