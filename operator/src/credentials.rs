//! LiveKit API credentials: the pair type and generation in LiveKit's style. Rotation is
//! [`crate::rotation`].

use base64::Engine as _;
use k8s_openapi::jiff::Timestamp;
use rand::Rng;
use std::fmt;

/// A LiveKit API key and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiCredentials {
    pub key: String,
    pub secret: String,
}

impl ApiCredentials {
    pub fn new(key: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            secret: secret.into(),
        }
    }
}

impl fmt::Debug for ApiCredentials {
    // Never print the secret, not even in a test failure or a debug log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiCredentials")
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A fresh pair in LiveKit's style: key `API` + 12 random alphanumerics, secret 32 random bytes
/// encoded as unpadded base64url (43 characters).
pub fn generate(rng: &mut impl Rng) -> ApiCredentials {
    let suffix: String = (0..12)
        .map(|_| KEY_ALPHABET[rng.random_range(0..KEY_ALPHABET.len())] as char)
        .collect();
    let mut bytes = [0u8; 32];
    rng.fill(&mut bytes);
    ApiCredentials {
        key: format!("API{suffix}"),
        secret: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    }
}

/// Whole seconds, so annotations and status read `2026-01-01T00:00:00Z`.
pub fn truncate(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn generated_pairs_look_like_livekit_keys() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let a = generate(&mut rng);
        let b = generate(&mut rng);
        assert!(a.key.starts_with("API") && a.key.len() == 15, "{}", a.key);
        assert!(a.key[3..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(a.secret.len(), 43);
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&a.secret)
            .unwrap();
        assert_eq!(raw.len(), 32);
        assert_ne!(a, b);
        assert!(!format!("{a:?}").contains(&a.secret));
    }
}
