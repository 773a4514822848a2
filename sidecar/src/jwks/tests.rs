use super::*;

/// Two throw-away EC P-256 public keys as JWKs, and one symmetric key.
pub(super) const SET: &str = r#"{"keys":[
  {"kty":"EC","crv":"P-256","kid":"a","alg":"ES256","use":"sig",
   "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
  {"kty":"EC","crv":"P-256","kid":"b",
   "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
  {"kty":"oct","kid":"h","k":"c2VjcmV0"}
]}"#;

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
    use base64::Engine;
    use jsonwebtoken::{EncodingKey, Header};
    let jwk = |file: &str| {
        let mut jwk: serde_json::Value = serde_json::from_str(file).unwrap();
        jwk["kid"] = "k".into();
        serde_json::json!({ "keys": [jwk] }).to_string()
    };
    let old = jwk(include_str!("../../tests/fixtures/rsa.jwk.json"));
    let new = jwk(include_str!("../../tests/fixtures/rsa2.jwk.json"));
    let (provider, url) = provider_with(Some(&old)).await;
    let source = Arc::new(
        JwksSource::new(url)
            .with_max_age(Duration::from_millis(50))
            .with_min_refresh_interval(Duration::from_millis(10)),
    );
    let signing =
        EncodingKey::from_rsa_pem(include_bytes!("../../tests/fixtures/rsa2-private.pem")).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k".into());
    let claims = serde_json::json!({"sub": "a", "exp": 4_000_000_000u64});
    let token = jsonwebtoken::encode(&header, &claims, &signing).unwrap();
    let (message, signature) = token.rsplit_once('.').unwrap();
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature)
        .unwrap();
    let verifies =
        |key: Arc<PublicKey>| key.verify(Algorithm::RS256, message.as_bytes(), &signature);

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
