//! The compact form of a caller token, split once, and its header read into a small typed struct.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::AuthFailure;

/// The three parts of a compact JWS.
pub(super) struct Compact<'a> {
    /// `header.payload`, what the signature covers.
    pub message: &'a str,
    pub header: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
}

pub(super) fn split(token: &str) -> Result<Compact<'_>, AuthFailure> {
    let (message, signature) = token.rsplit_once('.').ok_or(AuthFailure::Malformed)?;
    let (header, payload) = message.split_once('.').ok_or(AuthFailure::Malformed)?;
    if header.is_empty() || payload.contains('.') || signature.is_empty() {
        return Err(AuthFailure::Malformed);
    }
    Ok(Compact {
        message,
        header,
        payload,
        signature,
    })
}

impl Compact<'_> {
    /// The signature bytes; not base64url is a malformed token.
    pub fn signature_bytes(&self) -> Result<Vec<u8>, AuthFailure> {
        URL_SAFE_NO_PAD
            .decode(self.signature)
            .map_err(|_| AuthFailure::Malformed)
    }
}

/// What the sidecar reads from a token header; everything else in it (`jku`, `x5u`, `jwk`, `x5c`) is
/// ignored, so nothing there widens what is trusted.
#[derive(Deserialize)]
pub(super) struct JoseHeader {
    pub alg: Algorithm,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub crit: Option<IgnoredAny>,
}

pub(super) fn decode_part(part: &str) -> Result<Vec<u8>, AuthFailure> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthFailure::Malformed)
}

pub(super) fn header(compact: &Compact<'_>) -> Result<JoseHeader, AuthFailure> {
    serde_json::from_slice(&decode_part(compact.header)?).map_err(|_| AuthFailure::Malformed)
}
