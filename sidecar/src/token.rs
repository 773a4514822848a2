//! LiveKit access tokens: the claims are a pure function of the request, the caller and the settings;
//! signing is HS256 with the API secret, as livekit-server and its SDKs expect.

use std::collections::BTreeMap;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use livekit_contract::{Secret, TokenSettings};
use serde::Serialize;

use crate::auth::Caller;
use crate::validation::TokenRequest;

/// A caller asked for a token for another identity while identity override is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("requesting a token for another identity is not allowed")]
pub struct IdentityOverrideRefused;

/// Signing failed; never the caller's fault.
#[derive(Debug, thiserror::Error)]
#[error("signing the LiveKit token failed: {0}")]
pub struct SignError(#[from] serde_json::Error);

/// The `video` grant of a LiveKit token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoGrant {
    pub room: String,
    pub room_join: bool,
    pub can_publish: bool,
    pub can_subscribe: bool,
    pub can_publish_data: bool,
}

/// The claims of a LiveKit access token (the subset this sidecar issues).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveKitClaims {
    /// The API key; livekit-server looks the secret up by it.
    pub iss: String,
    /// The participant identity.
    pub sub: String,
    pub nbf: u64,
    pub exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
    pub video: VideoGrant,
}

/// The identity a token is for: the caller's own unless overrides are allowed.
pub fn resolve_identity(
    request: &TokenRequest,
    caller: &Caller,
    allow_override: bool,
) -> Result<String, IdentityOverrideRefused> {
    match &request.identity {
        Some(identity) if identity != &caller.identity && !allow_override => {
            Err(IdentityOverrideRefused)
        }
        Some(identity) => Ok(identity.clone()),
        None => Ok(caller.identity.clone()),
    }
}

/// Builds the claims of the token a request asks for. `now` is seconds since the epoch.
pub fn claims_for(
    request: &TokenRequest,
    identity: String,
    caller: &Caller,
    settings: &TokenSettings,
    api_key: &str,
    now: u64,
) -> LiveKitClaims {
    let ttl = request.ttl.unwrap_or(settings.default_ttl_seconds);
    let grants = settings.grants;
    LiveKitClaims {
        iss: api_key.to_owned(),
        sub: identity,
        nbf: now,
        exp: now + u64::from(ttl),
        name: request.name.clone().or_else(|| caller.name.clone()),
        metadata: request.metadata.clone(),
        attributes: request.attributes.clone(),
        video: VideoGrant {
            room: request.room_id.clone(),
            room_join: true,
            can_publish: grants.can_publish,
            can_subscribe: grants.can_subscribe,
            can_publish_data: grants.can_publish_data,
        },
    }
}

/// `2024-01-01T14:00:00.000Z`, as the spec's `expiresAt`. Written out by hand (days to civil date,
/// H. Hinnant's algorithm): a general formatter parsing a format description costs more than the rest
/// of the response body. Years past 9999 are clamped, as ISO 8601 without extension allows no more.
pub fn iso8601_millis(unix_seconds: u64) -> String {
    const MAX: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    if unix_seconds > MAX {
        return "9999-12-31T23:59:59.999Z".into();
    }
    let (days, secs) = (unix_seconds / 86_400, unix_seconds % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let (hour, minute, second) = (secs / 3_600, secs / 60 % 60, secs % 60);
    let mut out = String::with_capacity(24);
    use std::fmt::Write;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.000Z"
    );
    out
}

/// `{"typ":"JWT","alg":"HS256"}` in base64url: the header of every LiveKit token, the same bytes
/// jsonwebtoken wrote for it, encoded once instead of per token.
const HEADER_B64: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9";
/// An HS256 signature in base64url.
const SIGNATURE_B64_LEN: usize = 43;

/// Signs tokens with one API key and secret. The HMAC key is expanded once per configuration
/// snapshot (aws-lc wipes it when the snapshot is dropped) and is not printable.
pub struct LiveKitSigner {
    api_key: String,
    key: hmac::Key,
}

impl std::fmt::Debug for LiveKitSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveKitSigner")
            .field("api_key", &self.api_key)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl LiveKitSigner {
    pub fn new(api_key: String, api_secret: &Secret) -> Self {
        Self {
            api_key,
            key: hmac::Key::new(hmac::HMAC_SHA256, api_secret.expose().as_bytes()),
        }
    }

    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// `header.claims.signature`, written into one string sized up front: the claims are serialized
    /// once into a buffer, base64url-encoded after the pre-encoded header, and MACed in place.
    pub fn sign(&self, claims: &LiveKitClaims) -> Result<String, SignError> {
        let mut json = Vec::with_capacity(claims.json_len_hint());
        serde_json::to_writer(&mut json, claims)?;
        let payload_len = base64::encoded_len(json.len(), false).unwrap_or(usize::MAX);
        let mut token =
            String::with_capacity(HEADER_B64.len() + 1 + payload_len + 1 + SIGNATURE_B64_LEN);
        token.push_str(HEADER_B64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&json, &mut token);
        let tag = hmac::sign(&self.key, token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut token);
        Ok(token)
    }
}

impl LiveKitClaims {
    /// An upper bound of the JSON's length unless strings need escaping: the fixed keys and numbers,
    /// plus every string the claims hold.
    fn json_len_hint(&self) -> usize {
        const FIXED: usize = 192;
        let attributes = self.attributes.as_ref().map_or(0, |a| {
            a.iter().map(|(k, v)| k.len() + v.len() + 6).sum::<usize>() + 16
        });
        FIXED
            + self.iss.len()
            + self.sub.len()
            + self.name.as_ref().map_or(0, |n| n.len() + 10)
            + self.metadata.as_ref().map_or(0, |m| m.len() + 14)
            + attributes
            + self.video.room.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(identity: &str, name: Option<&str>) -> Caller {
        Caller {
            subject: identity.into(),
            identity: identity.into(),
            name: name.map(Into::into),
            ..Caller::default()
        }
    }

    fn request(room: &str) -> TokenRequest {
        TokenRequest {
            room_id: room.into(),
            ..TokenRequest::default()
        }
    }

    #[test]
    fn defaults_come_from_caller_and_settings() {
        let settings = TokenSettings::default();
        let alice = caller("alice", Some("Alice"));
        let req = request("room-1");
        let identity = resolve_identity(&req, &alice, false).unwrap();
        let claims = claims_for(&req, identity, &alice, &settings, "APIkey", 1_000);
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.name.as_deref(), Some("Alice"));
        assert_eq!(claims.exp, 1_000 + 3600);
        assert_eq!(claims.nbf, 1_000);
        assert_eq!(claims.iss, "APIkey");
        assert_eq!(
            claims.video,
            VideoGrant {
                room: "room-1".into(),
                room_join: true,
                can_publish: true,
                can_subscribe: true,
                can_publish_data: true
            }
        );
    }

    #[test]
    fn request_values_win_and_grants_follow_settings() {
        let mut settings = TokenSettings::default();
        settings.grants.can_publish = false;
        let alice = caller("alice", Some("Alice"));
        let req = TokenRequest {
            name: Some("Al".into()),
            ttl: Some(60),
            ..request("r")
        };
        let claims = claims_for(&req, "alice".into(), &alice, &settings, "k", 0);
        assert_eq!(claims.name.as_deref(), Some("Al"));
        assert_eq!(claims.exp, 60);
        assert!(!claims.video.can_publish);
        let json = serde_json::to_value(&claims).unwrap();
        assert_eq!(json["video"]["canPublishData"], true);
        assert_eq!(json["video"]["roomJoin"], true);
    }

    #[test]
    fn no_name_anywhere_means_no_name_claim() {
        let bob = caller("bob", None);
        let claims = claims_for(
            &request("r"),
            "bob".into(),
            &bob,
            &TokenSettings::default(),
            "k",
            0,
        );
        assert!(serde_json::to_value(&claims).unwrap().get("name").is_none());
    }

    #[test]
    fn identity_override_needs_permission() {
        let alice = caller("alice", None);
        let mut req = request("r");
        req.identity = Some("mallory".into());
        assert_eq!(
            resolve_identity(&req, &alice, false),
            Err(IdentityOverrideRefused)
        );
        assert_eq!(resolve_identity(&req, &alice, true).unwrap(), "mallory");
        req.identity = Some("alice".into());
        assert_eq!(resolve_identity(&req, &alice, false).unwrap(), "alice");
    }

    #[test]
    fn the_header_is_the_one_jsonwebtoken_wrote() {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.typ = Some("JWT".into());
        assert_eq!(
            HEADER_B64,
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap())
        );
    }

    /// The hand-assembled token is the one jsonwebtoken signs for the same claims, byte for byte, and
    /// its buffer never had to grow.
    #[test]
    fn signed_tokens_match_jsonwebtoken() {
        crate::install_crypto_provider();
        let secret = "a-livekit-api-secret-of-32-characters-or-more";
        let signer = LiveKitSigner::new("APIkey".into(), &Secret::new(secret));
        let mut req = request("room-\"quoted\"-é");
        req.metadata = Some("{\"m\":1}".into());
        req.attributes = Some(BTreeMap::from([
            ("k".into(), "v".into()),
            ("a".into(), "b".into()),
        ]));
        for (req, name) in [(request("r"), None), (req, Some("Ünïcode name"))] {
            let caller = caller("alice", name);
            let claims = claims_for(
                &req,
                "alice".into(),
                &caller,
                &TokenSettings::default(),
                "APIkey",
                1_700_000_000,
            );
            let token = signer.sign(&claims).unwrap();
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            header.typ = Some("JWT".into());
            let expected = jsonwebtoken::encode(
                &header,
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap();
            assert_eq!(token, expected);
            assert_eq!(token.len(), token.capacity(), "sized up front");
            assert!(serde_json::to_vec(&claims).unwrap().len() <= claims.json_len_hint());
        }
    }

    #[test]
    fn expiry_is_formatted_with_milliseconds() {
        assert_eq!(iso8601_millis(1_704_117_600), "2024-01-01T14:00:00.000Z");
        assert_eq!(iso8601_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_millis(951_782_400), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601_millis(4_107_542_399), "2100-02-28T23:59:59.000Z");
        assert_eq!(iso8601_millis(253_402_300_799), "9999-12-31T23:59:59.000Z");
        assert_eq!(iso8601_millis(u64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn expiry_matches_a_general_formatter() {
        let format =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000Z");
        // Every day boundary and odd second across four centuries, in strides.
        for unix in (0..253_402_300_799u64).step_by(86_399 * 37) {
            let t = time::OffsetDateTime::from_unix_timestamp(unix as i64).unwrap();
            assert_eq!(iso8601_millis(unix), t.format(format).unwrap(), "{unix}");
        }
    }
}
