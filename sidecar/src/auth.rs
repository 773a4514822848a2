//! Caller authentication: the application's user JWT, verified against keys and algorithms that come
//! from configuration only. Nothing in a token's header (`alg` beyond the allow-list, `jku`, `x5u`,
//! `jwk`, `x5c`) widens what is trusted.
//!
//! - [`failure`]: why a caller is refused; [`material`]: the configured key material and its checks;
//! - `keys`: verification keys prepared once per snapshot; `compact`, `claims` and `rules`: the token
//!   read in one pass into typed claims, and the registered-claim checks.

mod claims;
mod compact;
mod failure;
mod keys;
mod material;
mod rules;

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, AlgorithmFamily};
use livekit_contract::CallerAuthSettings;

use crate::jwks::{JwksError, JwksSource};
use claims::{CallerClaims, ClaimNames};
use compact::Compact;
use keys::HmacKeys;
use rules::ClaimRules;

pub use failure::{AUTH_FAILURE_REASONS, AuthFailure, VerifyError};
pub use keys::PublicKey;
pub(crate) use keys::family_algorithms;
pub use material::{CallerKeyMaterial, KeyMaterialError, parse_public_keys, to_jwt_algorithm};

/// Longest caller token we read; real ones are far smaller.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// LiveKit's default limit on participant identities (and room and participant names).
pub const MAX_IDENTITY_CHARS: usize = 256;

/// The rule for identities, room and participant names, whether they come from a request body or a
/// caller token: not blank, within LiveKit's length limit, no control characters.
pub fn usable_text(s: &str) -> bool {
    !s.trim().is_empty() && s.chars().count() <= MAX_IDENTITY_CHARS && !has_control_chars(s)
}

/// Control characters (C0, DEL, C1) have no place in identities or names: they break logs and
/// headers downstream.
pub fn has_control_chars(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Who is asking, as established by a verified token: the claims the sidecar uses, typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    /// The configured identity claim (`sub` unless set otherwise).
    pub identity: String,
    pub name: Option<String>,
    /// `iss`, when the token has one (always a string: anything else is refused).
    pub issuer: Option<String>,
    /// The string entries of the configured authorization claim when the token holds an array there
    /// and authorization reads the token (`claims` mode); `None` otherwise.
    pub permissions: Option<Vec<String>>,
}

/// Verifies caller tokens for one configuration snapshot.
pub struct CallerVerifier {
    /// The allow-list; a token's `alg` outside it is refused before any key is touched.
    algorithms: Vec<Algorithm>,
    rules: ClaimRules,
    names: ClaimNames,
    hmac: Option<HmacKeys>,
    public_keys: Vec<PublicKey>,
    jwks: Option<Arc<JwksSource>>,
}

impl fmt::Debug for CallerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallerVerifier")
            .field("algorithms", &self.algorithms)
            .field("hmac", &self.hmac.is_some())
            .field("public_keys", &self.public_keys.len())
            .field("jwks", &self.jwks.as_ref().map(|j| j.url().to_string()))
            .finish()
    }
}

impl CallerVerifier {
    /// Prepares keys and validations; `jwks` is shared so that a reload with the same URL keeps its cache.
    pub fn new(
        settings: &CallerAuthSettings,
        material: &CallerKeyMaterial,
        jwks: Option<Arc<JwksSource>>,
    ) -> Result<Self, KeyMaterialError> {
        let algorithms: Vec<Algorithm> = settings
            .algorithms
            .iter()
            .map(|a| to_jwt_algorithm(*a))
            .collect();

        let hmac = if settings.uses_hmac() {
            let secret = material
                .hmac_secret
                .as_ref()
                .ok_or(KeyMaterialError::MissingHmacSecret)?;
            if secret.expose().len() < livekit_contract::limits::MIN_HMAC_SECRET_BYTES {
                return Err(KeyMaterialError::ShortHmacSecret);
            }
            Some(HmacKeys::new(secret, &algorithms))
        } else {
            None
        };

        let public_keys = match &material.public_keys_pem {
            Some(pem) if settings.uses_public_keys() => {
                let keys = parse_public_keys(pem)?;
                let usable = keys
                    .iter()
                    .any(|k| algorithms.iter().any(|a| a.family() == k.family()));
                if !usable {
                    return Err(KeyMaterialError::NoUsablePem);
                }
                keys.iter()
                    .map(|key| PublicKey::parse(key, &algorithms))
                    .collect()
            }
            _ => Vec::new(),
        };
        if settings.uses_public_keys() && public_keys.is_empty() && jwks.is_none() {
            return Err(KeyMaterialError::MissingPublicKeys);
        }

        let rules = ClaimRules {
            issuer: settings.issuer.clone(),
            audiences: settings.audiences.clone(),
            leeway: u64::from(settings.leeway_seconds),
        };
        let names = ClaimNames {
            identity: settings.identity_claim.clone(),
            name: settings.name_claim.clone(),
            permissions: None,
        };

        Ok(Self {
            algorithms,
            rules,
            names,
            hmac,
            public_keys,
            jwks,
        })
    }

    /// Also reads `claim` into [`Caller::permissions`]: the authorization claim, when authorization
    /// reads the token.
    #[must_use]
    pub fn with_permissions_claim(mut self, claim: Option<String>) -> Self {
        self.names.permissions = claim;
        self
    }

    /// The JWKS source, so that a reload with the same URL can keep its cache.
    pub fn jwks(&self) -> Option<Arc<JwksSource>> {
        self.jwks.clone()
    }

    /// Verifies the value of an `Authorization` header.
    pub async fn verify_header(&self, header: Option<&str>) -> Result<Caller, VerifyError> {
        let token = bearer_token(header)?;
        self.verify(token).await
    }

    pub async fn verify(&self, token: &str) -> Result<Caller, VerifyError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.verify_at(token, now).await
    }

    /// Verifies a token at `now` (seconds since the epoch): header, signature, then the claims, each
    /// parsed once.
    pub async fn verify_at(&self, token: &str, now: u64) -> Result<Caller, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthFailure::Malformed.into());
        }
        let compact = compact::split(token)?;
        let header = compact::header(&compact)?;
        if header.crit.is_some() {
            return Err(AuthFailure::CriticalHeader.into());
        }
        let alg = header.alg;
        if !self.algorithms.contains(&alg) {
            return Err(AuthFailure::AlgorithmNotAllowed.into());
        }
        match alg.family() {
            AlgorithmFamily::Hmac => {
                let keys = self.hmac.as_ref().ok_or(AuthFailure::AlgorithmNotAllowed)?;
                let signature = compact.signature_bytes()?;
                if !keys.verify(alg, compact.message.as_bytes(), &signature) {
                    return Err(AuthFailure::BadSignature.into());
                }
            }
            family => {
                if !self.any_pem_key_signed(&compact, family, alg)? {
                    self.check_with_jwks(&compact, header.kid.as_deref(), alg)
                        .await?;
                }
            }
        }
        let claims = claims::read(&compact, &self.names)?;
        self.rules.check(&claims, now)?;
        caller_from(claims).map_err(VerifyError::from)
    }

    /// Whether one of the configured PEM keys of the right family made the signature.
    fn any_pem_key_signed(
        &self,
        compact: &Compact<'_>,
        family: AlgorithmFamily,
        alg: Algorithm,
    ) -> Result<bool, AuthFailure> {
        let mut keys = self.public_keys.iter().filter(|k| k.family() == family);
        let Some(first) = keys.next() else {
            return Ok(false);
        };
        // Decoded only once a key is there to try it, so a token for an unknown key stays "unknown".
        let signature = compact.signature_bytes()?;
        let message = compact.message.as_bytes();
        Ok(std::iter::once(first)
            .chain(keys)
            .any(|key| key.verify(alg, message, &signature)))
    }

    async fn check_with_jwks(
        &self,
        compact: &Compact<'_>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<(), VerifyError> {
        let Some(jwks) = &self.jwks else {
            return Err(if self.public_keys.is_empty() {
                AuthFailure::UnknownKey
            } else {
                AuthFailure::BadSignature
            }
            .into());
        };
        let key = jwks.key_for(kid, alg).await.map_err(|e| match e {
            JwksError::UnknownKey => VerifyError::Refused(AuthFailure::UnknownKey),
            other => VerifyError::KeysUnavailable(other.to_string()),
        })?;
        let signature = compact.signature_bytes()?;
        if key.verify(alg, compact.message.as_bytes(), &signature) {
            Ok(())
        } else {
            Err(AuthFailure::BadSignature.into())
        }
    }
}

/// The caller a verified token names, after the identity and name rules.
fn caller_from(mut claims: CallerClaims) -> Result<Caller, AuthFailure> {
    let subject = claims
        .sub
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or(AuthFailure::MissingClaim("sub"))?
        .to_owned();
    let identity = claims
        .identity
        .as_str()
        .filter(|s| usable_text(s))
        .ok_or(AuthFailure::NoIdentity)?
        .to_owned();
    // A name that breaks the rules is refused, not dropped: the caller's token is wrong, and a
    // silent fallback would hide it.
    let name = claims.take_name();
    if name.as_deref().is_some_and(|name| !usable_text(name)) {
        return Err(AuthFailure::UnusableName);
    }
    Ok(Caller {
        subject,
        identity,
        name,
        issuer: claims.issuer(),
        permissions: claims.take_permissions(),
    })
}

/// Extracts the token from `Authorization: Bearer <token>` (scheme case-insensitive, per RFC 7235).
pub fn bearer_token(header: Option<&str>) -> Result<&str, AuthFailure> {
    let value = header.map(str::trim).filter(|v| !v.is_empty());
    let value = value.ok_or(AuthFailure::MissingToken)?;
    if value.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::MissingToken);
    }
    let (scheme, token) = value.split_once(' ').ok_or(AuthFailure::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::NotBearer);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthFailure::MissingToken);
    }
    Ok(token)
}

#[cfg(test)]
mod tests;
