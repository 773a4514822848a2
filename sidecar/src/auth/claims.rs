//! One pass over a caller token: split the compact form once, read the header into a small typed struct,
//! and (after the signature checked out) parse the claims once and check the registered ones by hand.
//! jsonwebtoken's `decode` parses the header twice and the claims twice, and accepts an `iss` array
//! holding the expected issuer; here `iss` must be a string (RFC 7519 §4.1.1).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

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

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, AuthFailure> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthFailure::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthFailure::Malformed)
}

pub(super) fn header(compact: &Compact<'_>) -> Result<JoseHeader, AuthFailure> {
    decode_json(compact.header)
}

pub(super) fn claims(compact: &Compact<'_>) -> Result<Map<String, Value>, AuthFailure> {
    decode_json(compact.payload)
}

/// The registered claims a configuration asks for, prepared once per snapshot.
#[derive(Debug, Clone)]
pub(super) struct ClaimRules {
    pub issuer: Option<String>,
    pub audiences: Vec<String>,
    pub leeway: u64,
}

impl ClaimRules {
    /// `exp` required and not past, `nbf` not ahead (both within the leeway), `iss` the configured string
    /// and `aud` one of the configured audiences when configured. `now` is seconds since the epoch.
    pub fn check(&self, claims: &Map<String, Value>, now: u64) -> Result<(), AuthFailure> {
        let exp = numeric(claims, "exp")?.ok_or(AuthFailure::MissingClaim("exp"))?;
        if exp.saturating_add(self.leeway) < now {
            return Err(AuthFailure::Expired);
        }
        if numeric(claims, "nbf")?.is_some_and(|nbf| nbf > now.saturating_add(self.leeway)) {
            return Err(AuthFailure::NotYetValid);
        }
        match present(claims, "iss") {
            None if self.issuer.is_some() => return Err(AuthFailure::MissingClaim("iss")),
            None => {}
            Some(Value::String(iss))
                if self.issuer.as_ref().is_some_and(|expected| expected != iss) =>
            {
                return Err(AuthFailure::WrongIssuer);
            }
            Some(Value::String(_)) => {}
            // An array or object is not an issuer, whatever it holds.
            Some(_) => return Err(AuthFailure::WrongIssuer),
        }
        if !self.audiences.is_empty() {
            let accepted = |aud: &str| self.audiences.iter().any(|a| a == aud);
            let ok = match present(claims, "aud") {
                None => return Err(AuthFailure::MissingClaim("aud")),
                Some(Value::String(aud)) => accepted(aud),
                Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str().is_some_and(accepted)),
                Some(_) => false,
            };
            if !ok {
                return Err(AuthFailure::WrongAudience);
            }
        }
        Ok(())
    }
}

/// A claim that is there and not `null`.
fn present<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    claims.get(name).filter(|v| !v.is_null())
}

/// A NumericDate claim as whole seconds; fractions are cut, anything but a non-negative number refused.
fn numeric(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, AuthFailure> {
    match present(claims, name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| *f >= 0.0 && f.is_finite())
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or(AuthFailure::Malformed),
        Some(_) => Err(AuthFailure::Malformed),
    }
}
