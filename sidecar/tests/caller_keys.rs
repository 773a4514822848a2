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
    settings.auth.jwks_url = jwks_url;
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
async fn jwks_keys_by_kid_cached_and_symmetric_keys_ignored() {
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

    // A symmetric key slipped into the JWKS is never trusted.
    *jwks.document.lock().unwrap() = json!({"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]});
    let hs = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"secretsecretsecretsecretsecret"),
        Some("h"),
        &claims(),
    );
    assert_eq!(
        sidecar
            .post_token(Some(&hs), json!({"roomId": "r"}))
            .await
            .0,
        401
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
