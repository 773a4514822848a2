//! Caller verification keys, prepared once per configuration snapshot (or JWKS fetch) so a request
//! only checks a signature: the HMAC key is expanded once, public keys are parsed once into aws-lc's
//! parsed form for each algorithm they may verify. jsonwebtoken's `crypto::verify` rebuilds the HMAC
//! key and copies and re-parses a public key on every call.
//!
//! PEM and JWK documents are still read by jsonwebtoken (`DecodingKey`), so which key encodings are
//! accepted does not change; its key bytes are handed to aws-lc exactly as jsonwebtoken's own verifier
//! hands them.

use std::fmt;

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
use livekit_contract::Secret;

/// Every algorithm of a family, for keys whose use is not narrowed by configuration (JWKS).
pub(crate) fn family_algorithms(family: AlgorithmFamily) -> &'static [Algorithm] {
    use Algorithm::*;
    match family {
        AlgorithmFamily::Hmac => &[HS256, HS384, HS512],
        AlgorithmFamily::Rsa => &[RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmFamily::Ec => &[ES256, ES384],
        AlgorithmFamily::Ed => &[EdDSA],
    }
}

/// The aws-lc RSA parameters jsonwebtoken verifies each RSA algorithm with (2048 to 8192 bits).
fn rsa_parameters(alg: Algorithm) -> Option<&'static sig::RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn verification_algorithm(alg: Algorithm) -> Option<&'static dyn sig::VerificationAlgorithm> {
    if let Some(rsa) = rsa_parameters(alg) {
        return Some(rsa);
    }
    Some(match alg {
        Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &sig::ED25519,
        _ => return None,
    })
}

fn hmac_algorithm(alg: Algorithm) -> Option<hmac::Algorithm> {
    match alg {
        Algorithm::HS256 => Some(hmac::HMAC_SHA256),
        Algorithm::HS384 => Some(hmac::HMAC_SHA384),
        Algorithm::HS512 => Some(hmac::HMAC_SHA512),
        _ => None,
    }
}

/// The caller HMAC secret, expanded once per configured HS algorithm. aws-lc wipes the key state
/// when it is dropped, and its `Debug` shows only the digest.
pub(crate) struct HmacKeys(Vec<(Algorithm, hmac::Key)>);

impl HmacKeys {
    pub fn new(secret: &Secret, algorithms: &[Algorithm]) -> Self {
        Self(
            algorithms
                .iter()
                .filter_map(|&alg| {
                    let algorithm = hmac_algorithm(alg)?;
                    Some((alg, hmac::Key::new(algorithm, secret.expose().as_bytes())))
                })
                .collect(),
        )
    }

    /// Whether `signature` is the MAC of `message` (compared in constant time).
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.0
            .iter()
            .find(|(a, _)| *a == alg)
            .is_some_and(|(_, key)| hmac::verify(key, message, signature).is_ok())
    }
}

impl fmt::Debug for HmacKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algorithms: Vec<_> = self.0.iter().map(|(alg, _)| alg).collect();
        f.debug_struct("HmacKeys")
            .field("algorithms", &algorithms)
            .finish_non_exhaustive()
    }
}

/// A caller public key, parsed once for each algorithm it may verify. An algorithm the key does not
/// parse for (a P-256 key and ES384, a 1024-bit RSA key) simply has no entry: its signatures never
/// verify, as with jsonwebtoken, where the parse failed on every call instead.
pub struct PublicKey {
    family: AlgorithmFamily,
    parsed: Vec<(Algorithm, ParsedPublicKey)>,
}

impl PublicKey {
    /// Parses `key` for those of `algorithms` that belong to its family.
    pub fn parse(key: &DecodingKey, algorithms: &[Algorithm]) -> Self {
        let family = key.family();
        let parsed = algorithms
            .iter()
            .filter(|alg| alg.family() == family)
            .filter_map(|&alg| parse_for(key, alg).map(|parsed| (alg, parsed)))
            .collect();
        Self { family, parsed }
    }

    pub fn family(&self) -> AlgorithmFamily {
        self.family
    }

    /// Whether the key signed `message` with `alg`.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.parsed
            .iter()
            .find(|(a, _)| *a == alg)
            .is_some_and(|(_, key)| key.verify_sig(message, signature).is_ok())
    }
}

fn parse_for(key: &DecodingKey, alg: Algorithm) -> Option<ParsedPublicKey> {
    match key.kind() {
        DecodingKeyKind::SecretOrDer(der) => {
            ParsedPublicKey::new(verification_algorithm(alg)?, der.as_slice()).ok()
        }
        DecodingKeyKind::RsaModulusExponent { n, e } => RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(rsa_parameters(alg)?)
            .ok(),
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algorithms: Vec<_> = self.parsed.iter().map(|(alg, _)| alg).collect();
        f.debug_struct("PublicKey")
            .field("family", &self.family)
            .field("algorithms", &algorithms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{EncodingKey, Header};

    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        std::fs::read_to_string(path).unwrap()
    }

    /// `(message, signature)` of a token jsonwebtoken signed.
    fn signed(alg: Algorithm, key: &EncodingKey) -> (String, Vec<u8>) {
        let token = jsonwebtoken::encode(&Header::new(alg), &serde_json::json!({"a": 1}), key)
            .expect("signs");
        let (message, signature) = token.rsplit_once('.').unwrap();
        (
            message.to_owned(),
            URL_SAFE_NO_PAD.decode(signature).unwrap(),
        )
    }

    #[test]
    fn parsed_keys_verify_what_jsonwebtoken_verifies_and_nothing_else() {
        crate::install_crypto_provider();
        let cases = [
            ("rsa", Algorithm::RS256, Algorithm::PS256),
            ("rsa", Algorithm::PS384, Algorithm::RS384),
            ("ec", Algorithm::ES256, Algorithm::ES384),
            ("ed", Algorithm::EdDSA, Algorithm::ES256),
        ];
        for (name, alg, other) in cases {
            let private = fixture(&format!("{name}-private.pem"));
            let public = fixture(&format!("{name}-public.pem"));
            let encoding = match alg.family() {
                AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(private.as_bytes()),
                AlgorithmFamily::Ec => EncodingKey::from_ec_pem(private.as_bytes()),
                _ => EncodingKey::from_ed_pem(private.as_bytes()),
            }
            .unwrap();
            let decoding = super::super::parse_public_keys(&public).unwrap().remove(0);
            let key = PublicKey::parse(&decoding, family_algorithms(decoding.family()));
            let (message, signature) = signed(alg, &encoding);
            assert!(key.verify(alg, message.as_bytes(), &signature), "{alg:?}");
            assert!(
                !key.verify(other, message.as_bytes(), &signature),
                "{alg:?} as {other:?}"
            );
            let mut tampered = message.clone().into_bytes();
            tampered[0] ^= 1;
            assert!(!key.verify(alg, &tampered, &signature), "{alg:?} tampered");
            // Only the algorithms it was prepared for.
            let narrowed = PublicKey::parse(&decoding, &[other]);
            assert!(!narrowed.verify(alg, message.as_bytes(), &signature));
        }
    }

    #[test]
    fn jwk_rsa_components_verify() {
        crate::install_crypto_provider();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(&fixture("rsa.jwk.json")).unwrap();
        let decoding = DecodingKey::from_jwk(&jwk).unwrap();
        assert!(matches!(
            decoding.kind(),
            DecodingKeyKind::RsaModulusExponent { .. }
        ));
        let key = PublicKey::parse(&decoding, &[Algorithm::RS256]);
        let encoding = EncodingKey::from_rsa_pem(fixture("rsa-private.pem").as_bytes()).unwrap();
        let (message, signature) = signed(Algorithm::RS256, &encoding);
        assert!(key.verify(Algorithm::RS256, message.as_bytes(), &signature));
    }

    #[test]
    fn hmac_keys_verify_their_algorithms_only() {
        let secret = Secret::new("0123456789abcdef0123456789abcdef");
        let keys = HmacKeys::new(&secret, &[Algorithm::HS256, Algorithm::RS256]);
        let encoding = EncodingKey::from_secret(secret.expose().as_bytes());
        let (message, signature) = signed(Algorithm::HS256, &encoding);
        assert!(keys.verify(Algorithm::HS256, message.as_bytes(), &signature));
        assert!(!keys.verify(Algorithm::HS512, message.as_bytes(), &signature));
        assert!(!keys.verify(Algorithm::HS256, b"other", &signature));
        assert!(!format!("{keys:?}").contains("0123456789"));
    }
}
