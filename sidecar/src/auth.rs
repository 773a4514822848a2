//! Caller authentication: the application's user JWT, verified against keys and algorithms that come
//! from configuration only. Nothing in a token's header (`alg` beyond the allow-list, `jku`, `x5u`,
//! `jwk`, `x5c`) widens what is trusted.

mod claims;

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use livekit_contract::{CallerAuthSettings, Secret};
use serde_json::{Map, Value};

use crate::jwks::{JwksError, JwksSource};
use claims::{ClaimRules, Compact};

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

/// Why a caller was refused, as a small closed set: safe for a message and for a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    MissingToken,
    NotBearer,
    Malformed,
    BadSignature,
    AlgorithmNotAllowed,
    UnknownKey,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    MissingClaim(&'static str),
    CriticalHeader,
    NoIdentity,
    UnusableName,
}

impl AuthFailure {
    /// A bounded label for metrics and logs.
    pub fn reason(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::NotBearer => "not_bearer",
            Self::Malformed => "malformed",
            Self::BadSignature => "bad_signature",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::UnknownKey => "unknown_key",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim(_) => "missing_claim",
            Self::CriticalHeader => "critical_header",
            Self::NoIdentity => "no_identity",
            Self::UnusableName => "unusable_name",
        }
    }
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingToken => f.write_str("Missing bearer token"),
            Self::NotBearer => f.write_str("Authorization header must use the Bearer scheme"),
            Self::Malformed | Self::BadSignature => f.write_str("Invalid token"),
            Self::AlgorithmNotAllowed => f.write_str("Token algorithm is not allowed"),
            Self::UnknownKey => f.write_str("Token signing key is not known"),
            Self::Expired => f.write_str("Token has expired"),
            Self::NotYetValid => f.write_str("Token is not yet valid"),
            Self::WrongIssuer => f.write_str("Token issuer is not accepted"),
            Self::WrongAudience => f.write_str("Token audience is not accepted"),
            Self::MissingClaim(claim) => write!(f, "Token is missing the required claim {claim}"),
            Self::CriticalHeader => f.write_str("Token has critical header parameters"),
            Self::NoIdentity => f.write_str("Token has no usable identity claim"),
            Self::UnusableName => f.write_str("Token name claim is not usable"),
        }
    }
}

/// The result of verifying a caller token.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Refused(AuthFailure),
    /// The keys could not be had (JWKS down): nobody can be verified, so nobody gets in.
    #[error("caller signing keys unavailable: {0}")]
    KeysUnavailable(String),
}

impl From<AuthFailure> for VerifyError {
    fn from(failure: AuthFailure) -> Self {
        Self::Refused(failure)
    }
}

/// Who is asking, as established by a verified token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: String,
    /// The configured identity claim (`sub` unless set otherwise).
    pub identity: String,
    pub name: Option<String>,
    pub claims: Map<String, Value>,
}

/// Problems with caller key material, found when a configuration is built.
#[derive(Debug, thiserror::Error)]
pub enum KeyMaterialError {
    #[error("HMAC algorithms are configured but no HS secret was given")]
    MissingHmacSecret,
    #[error("the HS secret must be at least 32 bytes for HMAC caller tokens")]
    ShortHmacSecret,
    #[error(
        "public-key algorithms are configured but neither PEM public keys nor a JWKS URL were given"
    )]
    MissingPublicKeys,
    #[error("PEM public keys could not be read: {0}")]
    BadPem(String),
    #[error("PEM public keys contain no key usable with the configured algorithms")]
    NoUsablePem,
}

impl KeyMaterialError {
    /// The Secret key (file) the problem is in; the environment source maps it to its variable.
    pub fn field(&self) -> &'static str {
        use livekit_contract::keys;
        match self {
            Self::MissingHmacSecret | Self::ShortHmacSecret => keys::CALLER_HS_SECRET,
            Self::MissingPublicKeys | Self::BadPem(_) | Self::NoUsablePem => {
                keys::CALLER_PUBLIC_KEYS
            }
        }
    }
}

/// Verifies caller tokens for one configuration snapshot.
pub struct CallerVerifier {
    /// The allow-list; a token's `alg` outside it is refused before any key is touched.
    algorithms: Vec<Algorithm>,
    rules: ClaimRules,
    hmac: Option<DecodingKey>,
    public_keys: Vec<DecodingKey>,
    jwks: Option<Arc<JwksSource>>,
    identity_claim: String,
    name_claim: String,
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

/// Key material for caller tokens, as read from the Secret or the environment.
#[derive(Default)]
pub struct CallerKeyMaterial {
    pub hmac_secret: Option<Secret>,
    pub public_keys_pem: Option<String>,
}

impl fmt::Debug for CallerKeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallerKeyMaterial")
            .field("hmac_secret", &self.hmac_secret)
            .field("public_keys_pem", &self.public_keys_pem.is_some())
            .finish()
    }
}

pub fn to_jwt_algorithm(algorithm: livekit_contract::Algorithm) -> Algorithm {
    use livekit_contract::Algorithm as A;
    match algorithm {
        A::HS256 => Algorithm::HS256,
        A::HS384 => Algorithm::HS384,
        A::HS512 => Algorithm::HS512,
        A::RS256 => Algorithm::RS256,
        A::RS384 => Algorithm::RS384,
        A::RS512 => Algorithm::RS512,
        A::PS256 => Algorithm::PS256,
        A::PS384 => Algorithm::PS384,
        A::PS512 => Algorithm::PS512,
        A::ES256 => Algorithm::ES256,
        A::ES384 => Algorithm::ES384,
        A::EdDSA => Algorithm::EdDSA,
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
            Some(DecodingKey::from_secret(secret.expose().as_bytes()))
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
                keys
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

        Ok(Self {
            algorithms,
            rules,
            hmac,
            public_keys,
            jwks,
            identity_claim: settings.identity_claim.clone(),
            name_claim: settings.name_claim.clone(),
        })
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
        let compact = claims::split(token)?;
        let header = claims::header(&compact)?;
        if header.crit.is_some() {
            return Err(AuthFailure::CriticalHeader.into());
        }
        let alg = header.alg;
        if !self.algorithms.contains(&alg) {
            return Err(AuthFailure::AlgorithmNotAllowed.into());
        }
        match alg.family() {
            AlgorithmFamily::Hmac => {
                let key = self.hmac.as_ref().ok_or(AuthFailure::AlgorithmNotAllowed)?;
                check_signature(&compact, key, alg)?;
            }
            family => {
                if !self.any_pem_key_signed(&compact, family, alg)? {
                    self.check_with_jwks(&compact, header.kid.as_deref(), alg)
                        .await?;
                }
            }
        }
        let claims = claims::claims(&compact)?;
        self.rules.check(&claims, now)?;
        self.caller_from(claims).map_err(VerifyError::from)
    }

    /// Whether one of the configured PEM keys of the right family made the signature.
    fn any_pem_key_signed(
        &self,
        compact: &Compact<'_>,
        family: AlgorithmFamily,
        alg: Algorithm,
    ) -> Result<bool, AuthFailure> {
        for key in self.public_keys.iter().filter(|k| k.family() == family) {
            match check_signature(compact, key, alg) {
                Err(AuthFailure::BadSignature) => continue,
                other => return other.map(|()| true),
            }
        }
        Ok(false)
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
        Ok(check_signature(compact, &key, alg)?)
    }

    fn caller_from(&self, claims: Map<String, Value>) -> Result<Caller, AuthFailure> {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(AuthFailure::MissingClaim("sub"))?
            .to_owned();
        let identity = claims
            .get(&self.identity_claim)
            .and_then(Value::as_str)
            .filter(|s| usable_text(s))
            .ok_or(AuthFailure::NoIdentity)?
            .to_owned();
        // A name that breaks the rules is refused, not dropped: the caller's token is wrong, and a
        // silent fallback would hide it.
        let name = match claims.get(&self.name_claim).and_then(Value::as_str) {
            Some(name) if !usable_text(name) => return Err(AuthFailure::UnusableName),
            name => name.map(str::to_owned),
        };
        Ok(Caller {
            subject,
            identity,
            name,
            claims,
        })
    }
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

fn check_signature(
    compact: &Compact<'_>,
    key: &DecodingKey,
    alg: Algorithm,
) -> Result<(), AuthFailure> {
    match jsonwebtoken::crypto::verify(compact.signature, compact.message.as_bytes(), key, alg) {
        Ok(true) => Ok(()),
        Ok(false) => Err(AuthFailure::BadSignature),
        Err(_) => Err(AuthFailure::Malformed),
    }
}

/// Reads every PEM block; each must be an RSA, EC or Ed25519 public key.
pub fn parse_public_keys(text: &str) -> Result<Vec<DecodingKey>, KeyMaterialError> {
    let blocks = pem::parse_many(text).map_err(|e| KeyMaterialError::BadPem(e.to_string()))?;
    if blocks.is_empty() {
        return Err(KeyMaterialError::BadPem("no PEM block found".into()));
    }
    blocks
        .iter()
        .enumerate()
        .map(|(index, block)| {
            if block.tag().contains("PRIVATE") {
                return Err(KeyMaterialError::BadPem(format!(
                    "block {} is a private key; give public keys only",
                    index + 1
                )));
            }
            let encoded = pem::encode(block);
            let bytes = encoded.as_bytes();
            DecodingKey::from_rsa_pem(bytes)
                .or_else(|_| DecodingKey::from_ec_pem(bytes))
                .or_else(|_| DecodingKey::from_ed_pem(bytes))
                .map_err(|_| {
                    KeyMaterialError::BadPem(format!(
                        "block {} ({}) is not an RSA, EC or Ed25519 public key",
                        index + 1,
                        block.tag()
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests;
