//! The `ServerApi` acceptance check: one call to LiveKit's server API
//! (`POST /twirp/livekit.RoomService/ListRooms`) with a short-lived token carrying `video.roomList`,
//! signed with the key to prove. livekit-server answers 401 to a key it does not hold.

use super::{Check, Reachability};
use crate::credentials::ApiCredentials;
use k8s_openapi::jiff::Timestamp;
use std::time::Duration;
use tracing::debug;

/// The Twirp path of `RoomService.ListRooms`.
pub const LIST_ROOMS_PATH: &str = "/twirp/livekit.RoomService/ListRooms";

/// How long the check token is valid: long enough for one call, no longer.
const TOKEN_LIFETIME_SECONDS: i64 = 60;

/// The base URL of the server API: `url` when given, else `server_url` with `ws` mapped to `http`
/// and `wss` to `https`; no trailing slash.
pub fn api_base(server_url: &str, url: Option<&str>) -> String {
    let base = match url {
        Some(u) => u.to_owned(),
        None => {
            if let Some(rest) = server_url.strip_prefix("wss://") {
                format!("https://{rest}")
            } else if let Some(rest) = server_url.strip_prefix("ws://") {
                format!("http://{rest}")
            } else {
                server_url.to_owned()
            }
        }
    };
    base.trim_end_matches('/').to_owned()
}

/// A token for `ListRooms` signed with `creds`, valid for a minute from `now`.
pub fn check_token(creds: &ApiCredentials, now: Timestamp) -> String {
    let now = now.as_second();
    let claims = serde_json::json!({
        "iss": creds.key,
        "sub": "livekit-operator",
        "nbf": now - 5,
        "exp": now + TOKEN_LIFETIME_SECONDS,
        "video": {"roomList": true},
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(creds.secret.as_bytes()),
    )
    .expect("HS256 over a JSON object always signs")
}

/// An HTTP client for the check: bounded connect and total time, no redirects (a redirect must not
/// carry the token elsewhere), and a new connection per check: checks are seconds apart, and a
/// pooled connection to a livekit-server pod that has since restarted would fail the check.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client with static settings always builds")
}

/// Calls `ListRooms` at `base` with a token signed by `creds`. 200 is accepted, 401 is not; anything
/// else (another status, a timeout, no connection) is a failed check. The token is never logged.
pub async fn check(
    client: &reqwest::Client,
    base: &str,
    creds: &ApiCredentials,
    now: Timestamp,
) -> Check {
    let url = format!("{base}{LIST_ROOMS_PATH}");
    let reply = client
        .post(&url)
        .bearer_auth(check_token(creds, now))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body("{}")
        .send()
        .await;
    let check = match reply {
        Ok(r) if r.status() == reqwest::StatusCode::OK => Check::Accepted,
        Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => Check::NotAccepted,
        Ok(r) => Check::Failed(format!("{url} answered {}", r.status())),
        Err(e) => Check::Failed(no_answer(&url, &e)),
    };
    debug!(api_key = %creds.key, ?check, "server API acceptance check");
    check
}

/// Why a request got no HTTP answer.
fn no_answer(url: &str, e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("{url} did not answer in time")
    } else {
        format!(
            "{url} could not be reached: {}",
            std::error::Error::source(e).map_or(e.to_string(), |s| s.to_string())
        )
    }
}

/// Whether the server API at `base` answers at all: `ListRooms` without credentials, so nothing
/// secret is sent. Any HTTP status (livekit-server answers 401) is an answer; a refused connection,
/// a DNS or TLS failure or a time-out is not.
pub async fn probe(client: &reqwest::Client, base: &str) -> Reachability {
    let url = format!("{base}{LIST_ROOMS_PATH}");
    let reply = client
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body("{}")
        .send()
        .await;
    let reachability = match reply {
        Ok(r) => Reachability::Answered(format!("{url} answered {}", r.status())),
        Err(e) => Reachability::Unreachable(no_answer(&url, &e)),
    };
    debug!(?reachability, "server API reachability probe");
    reachability
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_base_maps_websocket_schemes_or_takes_the_override() {
        assert_eq!(
            api_base("wss://lk.example.com/", None),
            "https://lk.example.com"
        );
        assert_eq!(
            api_base("ws://127.0.0.1:7880", None),
            "http://127.0.0.1:7880"
        );
        assert_eq!(
            api_base("https://lk.example.com", None),
            "https://lk.example.com"
        );
        assert_eq!(
            api_base("wss://lk.example.com", Some("http://livekit.lk.svc:7880/")),
            "http://livekit.lk.svc:7880"
        );
    }

    #[test]
    fn the_check_token_lists_rooms_only_and_expires_in_a_minute() {
        let creds = ApiCredentials::new("APIcheck", "check-secret-0123456789abcdefghijkl");
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.required_spec_claims.clear();
        let claims: serde_json::Value = jsonwebtoken::decode(
            check_token(&creds, now),
            &jsonwebtoken::DecodingKey::from_secret(creds.secret.as_bytes()),
            &v,
        )
        .unwrap()
        .claims;
        assert_eq!(claims["iss"], "APIcheck");
        assert_eq!(claims["video"], serde_json::json!({"roomList": true}));
        assert_eq!(claims["exp"], now.as_second() + 60);
    }
}
