//! A JWKS document read into keys parsed once per fetch, and the choice of the key a token names.

use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::{JwksError, MAX_KEYS};
use crate::auth::{PublicKey, family_algorithms};

/// One key of the set: its `kid`, the algorithms it may verify (its declared `alg` only, when it
/// declares one; none when that is not a signing algorithm), and the key parsed for each of them.
#[derive(Debug)]
pub struct JwkKey {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    key: Arc<PublicKey>,
}

/// Reads a JWKS document, keeping only public signing keys (symmetric `oct` keys are never trusted),
/// each parsed here, once per fetch.
pub fn parse_jwks(body: &[u8]) -> Result<Vec<JwkKey>, JwksError> {
    let set: JwkSet =
        serde_json::from_slice(body).map_err(|e| JwksError::Fetch(format!("not a JWKS: {e}")))?;
    if set.keys.len() > MAX_KEYS {
        return Err(JwksError::Fetch(format!("more than {MAX_KEYS} keys")));
    }
    Ok(set
        .keys
        .into_iter()
        .filter(|jwk| !matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)))
        .filter(|jwk| {
            !matches!(
                jwk.common.public_key_use,
                Some(PublicKeyUse::Encryption) | Some(PublicKeyUse::Other(_))
            )
        })
        .filter_map(|jwk| {
            let decoding = DecodingKey::from_jwk(&jwk).ok()?;
            let family = family_algorithms(decoding.family());
            // A declared `alg` narrows the key to it; one that is not a signing algorithm of the
            // key's family (RSA-OAEP, say) leaves it usable for nothing.
            let algorithms: Vec<Algorithm> = match jwk.common.key_algorithm {
                None => family.to_vec(),
                Some(declared) => declared
                    .to_string()
                    .parse::<Algorithm>()
                    .ok()
                    .filter(|alg| family.contains(alg))
                    .into_iter()
                    .collect(),
            };
            Some(JwkKey {
                key: Arc::new(PublicKey::parse(&decoding, &algorithms)),
                kid: jwk.common.key_id,
                algorithms,
            })
        })
        .collect())
}

/// Picks the key a token names: by `kid` when it has one, else the only key that may verify `alg`.
pub(super) fn select(keys: &[JwkKey], kid: Option<&str>, alg: Algorithm) -> Option<Arc<PublicKey>> {
    let compatible = |key: &&JwkKey| key.algorithms.contains(&alg);
    match kid {
        Some(kid) => keys
            .iter()
            .filter(|key| key.kid.as_deref() == Some(kid))
            .find(compatible)
            .map(|key| key.key.clone()),
        None => {
            let mut candidates = keys.iter().filter(compatible);
            match (candidates.next(), candidates.next()) {
                (Some(key), None) => Some(key.key.clone()),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::SET;
    use super::*;

    #[test]
    fn symmetric_keys_are_dropped() {
        let keys = parse_jwks(SET.as_bytes()).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(select(&keys, Some("h"), Algorithm::HS256).is_none());
    }

    #[test]
    fn selection_by_kid_family_and_declared_alg() {
        let keys = parse_jwks(SET.as_bytes()).unwrap();
        assert!(select(&keys, Some("a"), Algorithm::ES256).is_some());
        assert!(select(&keys, Some("a"), Algorithm::ES384).is_none());
        assert!(select(&keys, Some("b"), Algorithm::ES256).is_some());
        assert!(select(&keys, Some("a"), Algorithm::RS256).is_none());
        assert!(select(&keys, Some("zzz"), Algorithm::ES256).is_none());
        // Without a kid the choice must be unambiguous.
        assert!(select(&keys, None, Algorithm::ES256).is_none());
        assert!(select(&keys[..1], None, Algorithm::ES256).is_some());
    }

    #[test]
    fn oversized_and_malformed_sets_are_rejected() {
        assert!(parse_jwks(b"[]").is_err());
        let many = format!(
            r#"{{"keys":[{}]}}"#,
            vec![r#"{"kty":"oct","k":"c2VjcmV0"}"#; MAX_KEYS + 1].join(",")
        );
        assert!(parse_jwks(many.as_bytes()).is_err());
    }
}
