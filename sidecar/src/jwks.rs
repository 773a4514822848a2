//! A JWKS cache for caller keys: fetched only from the configured URL, bounded in size and time,
//! refreshed when a token names an unknown `kid` (at most once per [`MIN_REFRESH_INTERVAL`]), and kept
//! when a refresh fails so a short outage of the identity provider does not lock everyone out.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::{Mutex, RwLock};
use url::Url;

/// Keys older than this are refreshed on the next lookup.
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// Refreshes triggered by unknown `kid`s are spaced at least this far apart.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_BODY_BYTES: usize = 256 * 1024;
pub const MAX_KEYS: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwksError {
    #[error("no key in the JWKS matches the token")]
    UnknownKey,
    #[error("JWKS fetch failed: {0}")]
    Fetch(String),
}

struct Cached {
    keys: Vec<(Jwk, DecodingKey)>,
    fetched_at: Instant,
}

pub struct JwksSource {
    url: Url,
    client: reqwest::Client,
    cache: RwLock<Option<Cached>>,
    /// Held while fetching, so concurrent misses cause one fetch; when the last attempt began and, if
    /// it failed, why.
    last_attempt: Mutex<Option<(Instant, Option<String>)>>,
    min_refresh_interval: Duration,
}

impl JwksSource {
    pub fn new(url: Url) -> Self {
        let client = crate::outbound::client(FETCH_TIMEOUT);
        Self {
            url,
            client,
            cache: RwLock::new(None),
            last_attempt: Mutex::new(None),
            min_refresh_interval: MIN_REFRESH_INTERVAL,
        }
    }

    /// A shorter refresh spacing, for tests that cannot wait [`MIN_REFRESH_INTERVAL`].
    pub fn with_min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The key for a token's `kid` and `alg`, fetching or refreshing the set when needed.
    pub async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, JwksError> {
        let fresh = {
            let cache = self.cache.read().await;
            match cache.as_ref() {
                Some(cached) => {
                    if cached.fetched_at.elapsed() < MAX_AGE
                        && let Some(key) = select(&cached.keys, kid, alg)
                    {
                        return Ok(key);
                    }
                    cached.fetched_at.elapsed() < self.min_refresh_interval
                }
                None => false,
            }
        };
        let last_error = if fresh { None } else { self.refresh().await };
        let cache = self.cache.read().await;
        match cache.as_ref() {
            Some(cached) => select(&cached.keys, kid, alg).ok_or(JwksError::UnknownKey),
            None => {
                Err(JwksError::Fetch(last_error.unwrap_or_else(|| {
                    "the key set has not been fetched yet".into()
                })))
            }
        }
    }

    /// Fetches the set unless another task just did or an attempt was made too recently; returns why
    /// the latest attempt failed, if it did.
    async fn refresh(&self) -> Option<String> {
        let mut last_attempt = self.last_attempt.lock().await;
        if let Some((at, error)) = last_attempt.as_ref()
            && at.elapsed() < self.min_refresh_interval
        {
            return error.clone();
        }
        let started = Instant::now();
        let error = match self.fetch().await {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "caller JWKS fetched");
                *self.cache.write().await = Some(Cached {
                    keys,
                    fetched_at: Instant::now(),
                });
                None
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "caller JWKS fetch failed");
                Some(error.to_string())
            }
        };
        *last_attempt = Some((started, error.clone()));
        error
    }

    async fn fetch(&self) -> Result<Vec<(Jwk, DecodingKey)>, JwksError> {
        let fail = |e: String| JwksError::Fetch(e);
        let mut response = self
            .client
            .get(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("status {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(fail(format!("body larger than {MAX_BODY_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body)
    }
}

/// Reads a JWKS document, keeping only public signing keys (symmetric `oct` keys are never trusted).
pub fn parse_jwks(body: &[u8]) -> Result<Vec<(Jwk, DecodingKey)>, JwksError> {
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
        .filter_map(|jwk| DecodingKey::from_jwk(&jwk).ok().map(|key| (jwk, key)))
        .collect())
}

/// Picks the key a token names: by `kid` when it has one, else the only key of the right family.
fn select(keys: &[(Jwk, DecodingKey)], kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
    let compatible = |(jwk, key): &&(Jwk, DecodingKey)| {
        key.family() == alg.family()
            && jwk
                .common
                .key_algorithm
                .is_none_or(|declared| declared.to_string().parse::<Algorithm>().ok() == Some(alg))
    };
    match kid {
        Some(kid) => keys
            .iter()
            .filter(|(jwk, _)| jwk.common.key_id.as_deref() == Some(kid))
            .find(compatible)
            .map(|(_, key)| key.clone()),
        None => {
            let mut candidates = keys.iter().filter(compatible);
            match (candidates.next(), candidates.next()) {
                (Some((_, key)), None) => Some(key.clone()),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two throw-away EC P-256 public keys as JWKs, and one symmetric key.
    const SET: &str = r#"{"keys":[
      {"kty":"EC","crv":"P-256","kid":"a","alg":"ES256","use":"sig",
       "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
      {"kty":"EC","crv":"P-256","kid":"b",
       "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
      {"kty":"oct","kid":"h","k":"c2VjcmV0"}
    ]}"#;

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

    /// A JWKS endpoint whose document and availability the test controls.
    async fn serve(document: std::sync::Arc<std::sync::Mutex<Option<String>>>) -> Url {
        use axum::routing::get;
        let router = axum::Router::new().route(
            "/jwks",
            get(move || {
                let document = document.clone();
                async move {
                    match document.lock().unwrap().clone() {
                        Some(body) => (http::StatusCode::OK, body),
                        None => (http::StatusCode::SERVICE_UNAVAILABLE, String::new()),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Url::parse(&format!("http://{addr}/jwks")).unwrap()
    }

    #[tokio::test]
    async fn refreshes_on_unknown_kid_and_keeps_keys_through_an_outage() {
        crate::install_crypto_provider();
        let only_a = SET.replace("\"kid\":\"b\"", "\"kid\":\"x\"");
        let document = std::sync::Arc::new(std::sync::Mutex::new(Some(only_a)));
        let source = JwksSource::new(serve(document.clone()).await)
            .with_min_refresh_interval(Duration::from_millis(50));
        assert!(source.key_for(Some("a"), Algorithm::ES256).await.is_ok());
        assert_eq!(
            source.key_for(Some("b"), Algorithm::ES256).await.err(),
            Some(JwksError::UnknownKey)
        );

        // The provider publishes key b: the next unknown-kid lookup after the spacing refreshes.
        *document.lock().unwrap() = Some(SET.to_owned());
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(source.key_for(Some("b"), Algorithm::ES256).await.is_ok());

        // The provider goes down: cached keys keep working, unknown ones stay unknown.
        *document.lock().unwrap() = None;
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(
            source.key_for(Some("zz"), Algorithm::ES256).await.err(),
            Some(JwksError::UnknownKey)
        );
        assert!(source.key_for(Some("a"), Algorithm::ES256).await.is_ok());
    }

    #[tokio::test]
    async fn never_fetched_is_a_fetch_error_and_oversized_bodies_are_refused() {
        let document = std::sync::Arc::new(std::sync::Mutex::new(None));
        let source = JwksSource::new(serve(document.clone()).await);
        assert!(matches!(
            source.key_for(Some("a"), Algorithm::ES256).await,
            Err(JwksError::Fetch(_))
        ));
        *document.lock().unwrap() = Some(format!(
            "{{\"keys\":[],\"pad\":\"{}\"}}",
            "x".repeat(MAX_BODY_BYTES)
        ));
        let source = JwksSource::new(source.url().clone());
        match source.key_for(Some("a"), Algorithm::ES256).await {
            Err(JwksError::Fetch(message)) => assert!(message.contains("larger"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}
