//! Caller tokens signed with public-key algorithms: PEM keys from configuration and a JWKS served by a
//! stand-in identity provider on loopback.

mod common;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey};
use livekit_contract::Algorithm as Alg;
use livekit_sidecar::auth::CallerKeyMaterial;
use serde_json::json;

fn pem_keys(files: &[&str]) -> CallerKeyMaterial {
    CallerKeyMaterial {
        hmac_secret: None,
        public_keys_pem: Some(
            files
                .iter()
                .map(|f| fixture(f))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    }
}

fn settings(algorithms: &[Alg], jwks_url: Option<String>) -> livekit_contract::SidecarSettings {
    let mut settings = hs_settings();
    settings.auth.algorithms = algorithms.to_vec();
    // The fake identity provider serves plain http on loopback: opt in, as an in-cluster IdP would.
    settings.auth.allow_http_jwks = jwks_url
        .as_deref()
        .is_some_and(|u| u.starts_with("http://"));
    settings.auth.jwks_url = jwks_url;
    // These tests are about key material; the callers carry no `iss`/`aud`, so they use the
    // documented opt-out (the requirement itself is tested with the settings validation).
    settings.auth.allow_any_issuer_and_audience = true;
    settings
}

fn claims() -> serde_json::Value {
    caller_claims("alice", &["JOIN_CHANNEL"])
}

#[tokio::test]
async fn pem_keys_verify_rsa_pss_ec_and_ed25519() {
    let sidecar = TestSidecar::start(input(
        settings(&[Alg::RS256, Alg::PS256, Alg::ES256, Alg::EdDSA], None),
        pem_keys(&["rsa-public.pem", "ec-public.pem", "ed-public.pem"]),
    ))
    .await;
    let rsa = rsa_key("rsa-private.pem");
    let ec = EncodingKey::from_ec_pem(fixture("ec-private.pem").as_bytes()).unwrap();
    let ed = EncodingKey::from_ed_pem(fixture("ed-private.pem").as_bytes()).unwrap();
    for (alg, key) in [
        (Algorithm::RS256, &rsa),
        (Algorithm::PS256, &rsa),
        (Algorithm::ES256, &ec),
        (Algorithm::EdDSA, &ed),
    ] {
        let token = sign(alg, key, None, &claims());
        let (status, body) = sidecar
            .post_token(Some(&token), json!({"roomId": "r"}))
            .await;
        assert_eq!(status, 200, "{alg:?}: {body}");
    }

    // A key that is not configured.
    let stranger = sign(
        Algorithm::RS256,
        &rsa_key("rsa2-private.pem"),
        None,
        &claims(),
    );
    assert_eq!(
        sidecar
            .post_token(Some(&stranger), json!({"roomId": "r"}))
            .await,
        (401, nest(401, json!("Invalid token")))
    );
    // An algorithm that is not configured, with a key that is.
    let rs512 = sign(Algorithm::RS512, &rsa, None, &claims());
    assert_eq!(
        sidecar
            .post_token(Some(&rs512), json!({"roomId": "r"}))
            .await,
        (401, nest(401, json!("Token algorithm is not allowed")))
    );
}

/// The classic confusion attack: an HS256 token whose "secret" is the server's public key.
#[tokio::test]
async fn public_keys_are_never_used_as_hmac_secrets() {
    let public_pem = fixture("rsa-public.pem");
    let sidecar = TestSidecar::start(input(
        settings(&[Alg::RS256], None),
        pem_keys(&["rsa-public.pem"]),
    ))
    .await;
    let forged = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(public_pem.as_bytes()),
        None,
        &claims(),
    );
    let (status, body) = sidecar
        .post_token(Some(&forged), json!({"roomId": "r"}))
        .await;
    assert_eq!(
        (status, body),
        (401, nest(401, json!("Token algorithm is not allowed")))
    );
}

#[tokio::test]
async fn jwks_keys_by_kid_are_cached_and_refreshes_bounded() {
    let jwks = Jwks::new(&["rsa", "ec"]);
    let server = jwks.serve().await;
    let url = format!("http://{}/jwks.json", server.addr);
    let sidecar = TestSidecar::start(input(
        settings(&[Alg::RS256, Alg::ES256], Some(url)),
        CallerKeyMaterial::default(),
    ))
    .await;
    assert_eq!(jwks.fetches(), 0, "fetched lazily, not at start");

    let rsa = rsa_key("rsa-private.pem");
    let ec = EncodingKey::from_ec_pem(fixture("ec-private.pem").as_bytes()).unwrap();
    for _ in 0..3 {
        let token = sign(Algorithm::RS256, &rsa, Some("rsa-1"), &claims());
        assert_eq!(
            sidecar
                .post_token(Some(&token), json!({"roomId": "r"}))
                .await
                .0,
            200
        );
    }
    let token = sign(Algorithm::ES256, &ec, Some("ec-1"), &claims());
    assert_eq!(
        sidecar
            .post_token(Some(&token), json!({"roomId": "r"}))
            .await
            .0,
        200
    );
    assert_eq!(jwks.fetches(), 1, "keys are cached");

    // The kid names a key of another type, or no key at all.
    let wrong_type = sign(Algorithm::RS256, &rsa, Some("ec-1"), &claims());
    assert_eq!(
        sidecar
            .post_token(Some(&wrong_type), json!({"roomId": "r"}))
            .await,
        (401, nest(401, json!("Token signing key is not known")))
    );
    let unknown = sign(
        Algorithm::RS256,
        &rsa_key("rsa2-private.pem"),
        Some("rsa-2"),
        &claims(),
    );
    assert_eq!(
        sidecar
            .post_token(Some(&unknown), json!({"roomId": "r"}))
            .await
            .0,
        401
    );
    // Unknown kids do not hammer the identity provider: refreshes are rate limited.
    for _ in 0..5 {
        sidecar
            .post_token(Some(&unknown), json!({"roomId": "r"}))
            .await;
    }
    assert!(jwks.fetches() <= 2, "fetches: {}", jwks.fetches());
}

/// A symmetric key slipped into the JWKS is never trusted. Configuration already refuses HS
/// algorithms next to a JWKS URL, so over HTTP an HS token is refused by the algorithm allow-list before
/// the JWKS is consulted; this test therefore asks the JWKS source itself, for exactly the `kid` and
/// algorithm of the symmetric key, after a fetch that did return it. Only its key type can refuse it.
#[tokio::test]
async fn symmetric_jwks_key_never_trusted() {
    use base64::Engine as _;
    use livekit_sidecar::jwks::{JwksError, JwksSource};
    livekit_sidecar::install_crypto_provider();
    let jwks = Jwks::new(&["rsa"]);
    let mut rsa_under_h: serde_json::Value =
        serde_json::from_str(&fixture("rsa.jwk.json")).unwrap();
    rsa_under_h["kid"] = json!("r");
    *jwks.document.lock().unwrap() = json!({"keys": [
        {"kty": "oct", "kid": "h", "alg": "HS256",
         "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"secret-in-the-jwks-0123456789abcdef")},
        rsa_under_h,
    ]});
    let server = jwks.serve().await;
    let source = std::sync::Arc::new(JwksSource::new(
        url::Url::parse(&format!("http://{}/jwks.json", server.addr)).unwrap(),
    ));
    // Control: the same document's RSA key is found, so the set was fetched and read.
    assert!(source.key_for(Some("r"), Algorithm::RS256).await.is_ok());
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        assert_eq!(
            source.key_for(Some("h"), alg).await.err(),
            Some(JwksError::UnknownKey),
            "{alg:?}"
        );
    }
    assert_eq!(jwks.fetches(), 1);
}

/// A token signed with an attacker's key names that key in its header (`jwk`, `x5c`) or points at it
/// (`jku`, `x5u`). The sidecar never looks: 401, and the attacker's URLs are never fetched. The
/// control proves each token is otherwise valid: a sidecar configured with the attacker's key issues.
#[tokio::test]
async fn header_injected_keys_are_never_used() {
    use jsonwebtoken::{Header, jwk::Jwk};
    let attacker_jwks = Jwks::new(&["rsa2"]);
    let attacker = attacker_jwks.serve().await;
    let attacker_url = format!("http://{}/jwks.json", attacker.addr);
    let attacker_jwk: Jwk = serde_json::from_str(&fixture("rsa2.jwk.json")).unwrap();
    let cert = fixture("rsa2-cert.pem");
    let cert_der: String = cert.lines().filter(|l| !l.starts_with("-----")).collect();
    let attacker_key = rsa_key("rsa2-private.pem");

    let mut headers = Vec::new();
    let mut base = Header::new(Algorithm::RS256);
    base.kid = Some("rsa-2".into());
    let mut h = base.clone();
    h.jku = Some(attacker_url.clone());
    headers.push(("jku", h));
    let mut h = base.clone();
    h.x5u = Some(attacker_url.clone());
    headers.push(("x5u", h));
    let mut h = base.clone();
    h.jwk = Some(attacker_jwk);
    headers.push(("jwk", h));
    let mut h = base.clone();
    h.x5c = Some(vec![cert_der]);
    headers.push(("x5c", h));

    // The victim: PEM keys, and separately a JWKS of its own (the attacker's kid is unknown there).
    let victim_jwks = Jwks::new(&["rsa"]);
    let victim_server = victim_jwks.serve().await;
    let victims = [
        TestSidecar::start(input(
            settings(&[Alg::RS256], None),
            pem_keys(&["rsa-public.pem"]),
        ))
        .await,
        TestSidecar::start(input(
            settings(
                &[Alg::RS256],
                Some(format!("http://{}/jwks.json", victim_server.addr)),
            ),
            CallerKeyMaterial::default(),
        ))
        .await,
    ];
    let control = TestSidecar::start(input(
        settings(&[Alg::RS256], None),
        pem_keys(&["rsa2-public.pem"]),
    ))
    .await;
    for (field, header) in headers {
        let token = jsonwebtoken::encode(&header, &claims(), &attacker_key).unwrap();
        for victim in &victims {
            let (status, body) = victim
                .post_token(Some(&token), json!({"roomId": "r"}))
                .await;
            assert_eq!(status, 401, "{field}: {body}");
        }
        let (status, body) = control
            .post_token(Some(&token), json!({"roomId": "r"}))
            .await;
        assert_eq!(status, 200, "{field} control: {body}");
    }
    assert_eq!(
        attacker_jwks.fetches(),
        0,
        "the attacker's URL is never fetched"
    );
}

#[tokio::test]
async fn unreachable_jwks_fails_closed_with_503() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sidecar = TestSidecar::start(input(
        settings(
            &[Alg::RS256],
            Some(format!("http://127.0.0.1:{port}/jwks.json")),
        ),
        CallerKeyMaterial::default(),
    ))
    .await;
    let token = sign(
        Algorithm::RS256,
        &rsa_key("rsa-private.pem"),
        Some("rsa-1"),
        &claims(),
    );
    assert_eq!(
        sidecar
            .post_token(Some(&token), json!({"roomId": "r"}))
            .await,
        (
            503,
            nest(
                503,
                json!("Caller signing keys are unavailable, please retry later")
            )
        )
    );
}

#[tokio::test]
async fn custom_identity_and_name_claims() {
    let mut settings = hs_settings();
    settings.auth.identity_claim = "uid".into();
    settings.auth.name_claim = "display_name".into();
    let sidecar = TestSidecar::start(input(settings, hs_keys())).await;
    let mut c = claims();
    c["uid"] = json!("user-42");
    c["display_name"] = json!("Forty Two");
    let (status, body) = sidecar
        .post_token(Some(&hs_token(&c)), json!({"roomId": "r"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["identity"], "user-42");
    assert_eq!(body["name"], "Forty Two");
    // Without the identity claim the caller cannot be named.
    let (status, body) = sidecar
        .post_token(Some(&hs_token(&claims())), json!({"roomId": "r"}))
        .await;
    assert_eq!(
        (status, body),
        (401, nest(401, json!("Token has no usable identity claim")))
    );
}

/// A reload that keeps the JWKS URL keeps the keys already fetched: no new fetch, and known keys keep
/// verifying even if the identity provider has meanwhile stopped publishing them. Another URL starts
/// afresh.
#[tokio::test]
async fn a_reload_with_the_same_jwks_url_reuses_the_cache() {
    use livekit_sidecar::config::Snapshot;
    let jwks = Jwks::new(&["rsa"]);
    let server = jwks.serve().await;
    let url = format!("http://{}/jwks.json", server.addr);
    let build = |url: &str, ttl: u32, previous: Option<&Snapshot>| {
        let mut settings = settings(&[Alg::RS256], Some(url.to_owned()));
        settings.token.default_ttl_seconds = ttl;
        Snapshot::build(input(settings, CallerKeyMaterial::default()), previous).unwrap()
    };
    let token = || {
        sign(
            Algorithm::RS256,
            &rsa_key("rsa-private.pem"),
            Some("rsa-1"),
            &claims(),
        )
    };
    async fn verify(snapshot: &Snapshot, token: String) -> bool {
        let verifier = &snapshot.service.as_ref().unwrap().verifier;
        verifier.verify(&token).await.is_ok()
    }

    let first = build(&url, 3600, None);
    assert!(verify(&first, token()).await);
    assert_eq!(jwks.fetches(), 1);

    *jwks.document.lock().unwrap() = json!({"keys": []});
    let second = build(&url, 1800, Some(&first));
    assert!(
        verify(&second, token()).await,
        "the fetched key survives the reload"
    );
    assert_eq!(jwks.fetches(), 1, "no fetch for a key the cache holds");

    let other = format!("http://{}/jwks.json?tenant=2", server.addr);
    let third = build(&other, 1800, Some(&second));
    assert!(
        !verify(&third, token()).await,
        "another URL has its own, fresh cache"
    );
    assert_eq!(jwks.fetches(), 2);
}
