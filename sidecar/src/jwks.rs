//! A JWKS cache for caller keys: fetched only from the configured URL (redirects refused), bounded in
//! size and time, and never in the way of a request that names a key it already holds.
//!
//! - Known keys are served at once. Once the set is older than [`MAX_AGE`], the lookup that notices
//!   starts one refresh in the background and still answers from the cache (stale-while-revalidate):
//!   no caller waits on the identity provider for a key it already has.
//! - An unknown `kid` (or an empty cache) refreshes inline, at most once per [`MIN_REFRESH_INTERVAL`];
//!   concurrent misses share that one fetch.
//! - A failed refresh keeps the keys already fetched, however long the outage lasts: a down identity
//!   provider cannot lock out callers whose keys are known, and it cannot add keys either.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::{Mutex, RwLock};
use url::Url;

/// Keys older than this are refreshed in the background on the next lookup.
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// Fetches (after an unknown `kid` or a failed refresh) are spaced at least this far apart.
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
    /// Set while a background refresh runs, so a burst of stale lookups starts only one.
    refreshing: AtomicBool,
    max_age: Duration,
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
            refreshing: AtomicBool::new(false),
            max_age: MAX_AGE,
            min_refresh_interval: MIN_REFRESH_INTERVAL,
        }
    }

    /// A shorter refresh spacing, for tests that cannot wait [`MIN_REFRESH_INTERVAL`].
    pub fn with_min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }

    /// A shorter cache age, for tests that cannot wait [`MAX_AGE`].
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The key for a token's `kid` and `alg`. A cached key is returned at once (a stale set is
    /// refreshed behind it); only a key the cache does not hold waits for a fetch.
    pub async fn key_for(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, JwksError> {
        {
            let cache = self.cache.read().await;
            if let Some(cached) = cache.as_ref()
                && let Some(key) = select(&cached.keys, kid, alg)
            {
                if cached.fetched_at.elapsed() >= self.max_age {
                    self.refresh_in_background();
                }
                return Ok(key);
            }
        }
        let last_error = self.refresh().await;
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

    fn refresh_in_background(self: &Arc<Self>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            this.refresh().await;
            this.refreshing.store(false, Ordering::Release);
        });
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
                tracing::warn!(url = %self.url, %error, "caller JWKS fetch failed; keeping the keys already fetched");
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
        if response.status().is_redirection() {
            return Err(fail(format!(
                "status {}: redirects are not followed",
                response.status()
            )));
        }
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

    /// A JWKS endpoint on loopback whose document and availability the test controls: `None` answers
    /// 503; while `hold` is set, answers wait for a permit of `release`. `/redirect` answers 302 to the
    /// real document.
    struct Provider {
        document: std::sync::Mutex<Option<String>>,
        fetches: std::sync::atomic::AtomicUsize,
        hold: AtomicBool,
        release: tokio::sync::Semaphore,
    }

    impl Provider {
        fn set(&self, document: Option<&str>) {
            *self.document.lock().unwrap() = document.map(str::to_owned);
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    async fn serve_provider(provider: Arc<Provider>) -> Url {
        use axum::extract::State;
        use axum::routing::get;
        let router = axum::Router::new()
            .route(
                "/jwks",
                get(|State(p): State<Arc<Provider>>| async move {
                    p.fetches.fetch_add(1, Ordering::SeqCst);
                    if p.hold.load(Ordering::SeqCst) {
                        p.release.acquire().await.unwrap().forget();
                    }
                    match p.document.lock().unwrap().clone() {
                        Some(body) => (http::StatusCode::OK, body),
                        None => (http::StatusCode::SERVICE_UNAVAILABLE, String::new()),
                    }
                }),
            )
            .route(
                "/redirect",
                get(|| async { (http::StatusCode::FOUND, [("location", "/jwks")]) }),
            )
            .with_state(provider);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Url::parse(&format!("http://{addr}/jwks")).unwrap()
    }

    async fn provider_with(document: Option<&str>) -> (Arc<Provider>, Url) {
        crate::install_crypto_provider();
        let provider = Arc::new(Provider {
            document: Default::default(),
            fetches: Default::default(),
            hold: AtomicBool::new(false),
            release: tokio::sync::Semaphore::new(0),
        });
        provider.set(document);
        let url = serve_provider(provider.clone()).await;
        (provider, url)
    }

    /// Guards against a hang; these lookups never touch the network, so they finish at once.
    async fn promptly<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(2), future)
            .await
            .expect("the lookup did not wait on the identity provider")
    }

    async fn until(mut condition: impl FnMut() -> bool) {
        for _ in 0..200 {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition not reached within 2 s");
    }

    #[tokio::test]
    async fn refreshes_on_unknown_kid_and_keeps_keys_through_an_outage() {
        let only_a = SET.replace("\"kid\":\"b\"", "\"kid\":\"x\"");
        let (provider, url) = provider_with(Some(&only_a)).await;
        let source =
            Arc::new(JwksSource::new(url).with_min_refresh_interval(Duration::from_millis(50)));
        assert!(source.key_for(Some("a"), Algorithm::ES256).await.is_ok());
        assert_eq!(
            source.key_for(Some("b"), Algorithm::ES256).await.err(),
            Some(JwksError::UnknownKey)
        );

        // The provider publishes key b: the next unknown-kid lookup after the spacing refreshes.
        provider.set(Some(SET));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(source.key_for(Some("b"), Algorithm::ES256).await.is_ok());

        // The provider goes down: cached keys keep working, unknown ones stay unknown.
        provider.set(None);
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(
            source.key_for(Some("zz"), Algorithm::ES256).await.err(),
            Some(JwksError::UnknownKey)
        );
        assert!(source.key_for(Some("a"), Algorithm::ES256).await.is_ok());
    }

    /// Stale-while-revalidate: once the set is older than its age, the lookup still answers from the
    /// cache while the refresh it started hangs on the identity provider.
    #[tokio::test]
    async fn a_stale_set_answers_at_once_and_refreshes_in_the_background() {
        let (provider, url) = provider_with(Some(SET)).await;
        let source = Arc::new(
            JwksSource::new(url)
                .with_max_age(Duration::from_millis(50))
                .with_min_refresh_interval(Duration::from_millis(10)),
        );
        assert!(source.key_for(Some("a"), Algorithm::ES256).await.is_ok());
        assert_eq!(provider.fetches(), 1);

        provider.hold.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(80)).await;
        for _ in 0..5 {
            assert!(
                promptly(source.key_for(Some("a"), Algorithm::ES256))
                    .await
                    .is_ok()
            );
        }
        until(|| provider.fetches() == 2).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(provider.fetches(), 2, "one background refresh at a time");
        provider.release.add_permits(100);
        until(|| !source.refreshing.load(Ordering::SeqCst)).await;
    }

    /// An outage that outlasts the cache age many times: known keys keep verifying, unknown ones stay
    /// unknown (not "unavailable"), and the provider is asked at most once per refresh interval.
    #[tokio::test]
    async fn an_outage_longer_than_the_cache_age_keeps_known_keys() {
        let (provider, url) = provider_with(Some(SET)).await;
        let source = Arc::new(
            JwksSource::new(url)
                .with_max_age(Duration::from_millis(20))
                .with_min_refresh_interval(Duration::from_millis(100)),
        );
        assert!(source.key_for(Some("a"), Algorithm::ES256).await.is_ok());
        provider.set(None);
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(400) {
            assert!(
                promptly(source.key_for(Some("a"), Algorithm::ES256))
                    .await
                    .is_ok()
            );
            assert_eq!(
                promptly(source.key_for(Some("zz"), Algorithm::ES256))
                    .await
                    .err(),
                Some(JwksError::UnknownKey)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // 400 ms at one fetch per 100 ms at most, plus the first one.
        assert!(provider.fetches() <= 6, "fetches: {}", provider.fetches());
        assert!(provider.fetches() >= 2, "the outage was noticed");
    }

    /// The provider replaces the key material behind a `kid` the cache already holds: after the cache
    /// age, the new key is the one that verifies.
    #[tokio::test]
    async fn rotation_under_a_known_kid_is_picked_up_after_the_cache_age() {
        use jsonwebtoken::{EncodingKey, Header, Validation};
        let jwk = |file: &str| {
            let mut jwk: serde_json::Value = serde_json::from_str(file).unwrap();
            jwk["kid"] = "k".into();
            serde_json::json!({ "keys": [jwk] }).to_string()
        };
        let old = jwk(include_str!("../tests/fixtures/rsa.jwk.json"));
        let new = jwk(include_str!("../tests/fixtures/rsa2.jwk.json"));
        let (provider, url) = provider_with(Some(&old)).await;
        let source = Arc::new(
            JwksSource::new(url)
                .with_max_age(Duration::from_millis(50))
                .with_min_refresh_interval(Duration::from_millis(10)),
        );
        let signing =
            EncodingKey::from_rsa_pem(include_bytes!("../tests/fixtures/rsa2-private.pem"))
                .unwrap();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("k".into());
        let claims = serde_json::json!({"sub": "a", "exp": 4_000_000_000u64});
        let token = jsonwebtoken::encode(&header, &claims, &signing).unwrap();
        let verifies = |key: DecodingKey| {
            jsonwebtoken::decode::<serde_json::Value>(
                &token,
                &key,
                &Validation::new(Algorithm::RS256),
            )
            .is_ok()
        };

        assert!(!verifies(
            source.key_for(Some("k"), Algorithm::RS256).await.unwrap()
        ));
        provider.set(Some(&new));
        tokio::time::sleep(Duration::from_millis(80)).await;
        // This lookup answers from the stale cache and starts the refresh.
        source.key_for(Some("k"), Algorithm::RS256).await.unwrap();
        until(|| provider.fetches() == 2 && !source.refreshing.load(Ordering::SeqCst)).await;
        assert!(verifies(
            source.key_for(Some("k"), Algorithm::RS256).await.unwrap()
        ));
    }

    #[tokio::test]
    async fn concurrent_misses_cause_one_fetch() {
        let (provider, url) = provider_with(Some(SET)).await;
        let source = Arc::new(JwksSource::new(url));
        provider.hold.store(true, Ordering::SeqCst);
        let lookups: Vec<_> = (0..16)
            .map(|i| {
                let source = source.clone();
                let kid = if i % 2 == 0 { "a" } else { "unknown" };
                tokio::spawn(async move { source.key_for(Some(kid), Algorithm::ES256).await })
            })
            .collect();
        until(|| provider.fetches() == 1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        provider.release.add_permits(100);
        for (i, lookup) in lookups.into_iter().enumerate() {
            let result = lookup.await.unwrap();
            if i % 2 == 0 {
                assert!(result.is_ok(), "{i}");
            } else {
                assert_eq!(result.err(), Some(JwksError::UnknownKey), "{i}");
            }
        }
        assert_eq!(provider.fetches(), 1);
    }

    #[tokio::test]
    async fn redirects_are_refused() {
        let (provider, url) = provider_with(Some(SET)).await;
        let source = Arc::new(JwksSource::new(url.join("/redirect").unwrap()));
        match source.key_for(Some("a"), Algorithm::ES256).await {
            Err(JwksError::Fetch(message)) => assert!(message.contains("redirect"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(provider.fetches(), 0, "the redirect target is never asked");
    }

    #[tokio::test]
    async fn never_fetched_is_a_fetch_error_and_oversized_bodies_are_refused() {
        let (provider, url) = provider_with(None).await;
        let source = Arc::new(JwksSource::new(url.clone()));
        assert!(matches!(
            source.key_for(Some("a"), Algorithm::ES256).await,
            Err(JwksError::Fetch(_))
        ));
        provider.set(Some(&format!(
            "{{\"keys\":[],\"pad\":\"{}\"}}",
            "x".repeat(MAX_BODY_BYTES)
        )));
        let source = Arc::new(JwksSource::new(url));
        match source.key_for(Some("a"), Algorithm::ES256).await {
            Err(JwksError::Fetch(message)) => assert!(message.contains("larger"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}
