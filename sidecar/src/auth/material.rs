//! Caller key material as configured: the HS secret and PEM public keys, read and checked when a
//! configuration is built.

use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey};
use livekit_contract::Secret;

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
