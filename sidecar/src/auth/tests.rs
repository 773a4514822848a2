use super::*;
use livekit_contract::Secret;

#[test]
fn bearer_parsing() {
    assert_eq!(bearer_token(Some("Bearer abc")), Ok("abc"));
    assert_eq!(bearer_token(Some("bearer  abc ")), Ok("abc"));
    assert_eq!(bearer_token(None), Err(AuthFailure::MissingToken));
    assert_eq!(bearer_token(Some("  ")), Err(AuthFailure::MissingToken));
    assert_eq!(
        bearer_token(Some("Bearer ")),
        Err(AuthFailure::MissingToken)
    );
    assert_eq!(bearer_token(Some("Basic abc")), Err(AuthFailure::NotBearer));
    assert_eq!(bearer_token(Some("abc")), Err(AuthFailure::NotBearer));
}

#[test]
fn pem_rejects_private_keys_and_garbage() {
    assert!(matches!(
        parse_public_keys("nothing here"),
        Err(KeyMaterialError::BadPem(_))
    ));
    let private = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    let err = parse_public_keys(private).unwrap_err().to_string();
    assert!(err.contains("private key"), "{err}");
    let junk = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    assert!(parse_public_keys(junk).is_err());
}

#[test]
fn reasons_are_distinct() {
    let all = [
        AuthFailure::MissingToken,
        AuthFailure::NotBearer,
        AuthFailure::Malformed,
        AuthFailure::BadSignature,
        AuthFailure::AlgorithmNotAllowed,
        AuthFailure::UnknownKey,
        AuthFailure::Expired,
        AuthFailure::NotYetValid,
        AuthFailure::WrongIssuer,
        AuthFailure::WrongAudience,
        AuthFailure::MissingClaim("sub"),
        AuthFailure::CriticalHeader,
        AuthFailure::NoIdentity,
        AuthFailure::UnusableName,
    ];
    let reasons: std::collections::HashSet<_> = all.iter().map(|f| f.reason()).collect();
    assert_eq!(reasons.len(), all.len());
    // The metric's label set is exactly these and keys_unavailable.
    let unavailable = VerifyError::KeysUnavailable(String::new()).reason();
    let mut labelled: Vec<_> = reasons.into_iter().chain([unavailable]).collect();
    labelled.sort_unstable();
    let mut listed = AUTH_FAILURE_REASONS.to_vec();
    listed.sort_unstable();
    assert_eq!(labelled, listed);
}

const HS: &str = "0123456789abcdef0123456789abcdef";

fn hs_verifier() -> CallerVerifier {
    crate::install_crypto_provider();
    let settings = CallerAuthSettings {
        algorithms: vec![livekit_contract::Algorithm::HS256],
        issuer: Some("https://auth.example.com".into()),
        audiences: vec!["kraken".into()],
        ..CallerAuthSettings::default()
    };
    let material = CallerKeyMaterial {
        hmac_secret: Some(Secret::new(HS)),
        public_keys_pem: None,
    };
    CallerVerifier::new(&settings, &material, None).unwrap()
}

fn hs_token(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(HS.as_bytes()),
    )
    .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn refused(claims: serde_json::Value) -> Option<AuthFailure> {
    match hs_verifier().verify(&hs_token(claims)).await {
        Ok(_) => None,
        Err(VerifyError::Refused(failure)) => Some(failure),
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test]
async fn issuer_must_be_the_configured_string() {
    let exp = now() + 600;
    let good = serde_json::json!({"iss": "https://auth.example.com", "aud": "kraken", "sub": "u1", "exp": exp});
    assert_eq!(refused(good).await, None);
    // An array holding the configured issuer is not the issuer (RFC 7519: `iss` is a string).
    for iss in [
        serde_json::json!(["https://auth.example.com"]),
        serde_json::json!(["https://auth.example.com", "https://evil.example.com"]),
        serde_json::json!({"iss": "https://auth.example.com"}),
        serde_json::json!(42),
        serde_json::json!(null),
    ] {
        let claims = serde_json::json!({"iss": iss, "aud": "kraken", "sub": "u1", "exp": exp});
        assert!(refused(claims).await.is_some(), "iss {iss} was accepted");
    }
}

#[tokio::test]
async fn registered_claims_are_checked_in_one_pass() {
    let t = now();
    let base = |extra: serde_json::Value| {
        let mut claims = serde_json::json!({"iss": "https://auth.example.com", "aud": ["x", "kraken"], "sub": "u1", "exp": t + 600});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    };
    assert_eq!(refused(base(serde_json::json!({}))).await, None);
    let cases = [
        (serde_json::json!({"exp": t - 100}), AuthFailure::Expired),
        (
            serde_json::json!({"exp": null}),
            AuthFailure::MissingClaim("exp"),
        ),
        (serde_json::json!({"exp": "soon"}), AuthFailure::Malformed),
        (
            serde_json::json!({"nbf": t + 100}),
            AuthFailure::NotYetValid,
        ),
        (
            serde_json::json!({"iss": "https://other"}),
            AuthFailure::WrongIssuer,
        ),
        (
            serde_json::json!({"iss": null}),
            AuthFailure::MissingClaim("iss"),
        ),
        (
            serde_json::json!({"aud": "other"}),
            AuthFailure::WrongAudience,
        ),
        (
            serde_json::json!({"aud": null}),
            AuthFailure::MissingClaim("aud"),
        ),
        (
            serde_json::json!({"sub": null}),
            AuthFailure::MissingClaim("sub"),
        ),
    ];
    for (change, expected) in cases {
        assert_eq!(
            refused(base(change.clone())).await,
            Some(expected),
            "{change}"
        );
    }
    // Within the leeway (30 s by default) is still valid.
    assert_eq!(refused(base(serde_json::json!({"exp": t - 5}))).await, None);
    assert_eq!(refused(base(serde_json::json!({"nbf": t + 5}))).await, None);
}

#[tokio::test]
async fn tampered_and_foreign_tokens_are_refused() {
    let claims = serde_json::json!({"iss": "https://auth.example.com", "aud": "kraken", "sub": "u1", "exp": now() + 600});
    let token = hs_token(claims);
    let (message, _) = token.rsplit_once('.').unwrap();
    let verifier = hs_verifier();
    let forged = format!("{message}.AAAA");
    assert!(matches!(
        verifier.verify(&forged).await,
        Err(VerifyError::Refused(AuthFailure::BadSignature))
    ));
    for junk in [
        "",
        "a.b",
        "a.b.c",
        "....",
        "e30.e30.",
        &format!("{token}.x"),
    ] {
        assert!(verifier.verify(junk).await.is_err(), "{junk}");
    }
}

#[tokio::test]
async fn caller_identity_and_name_follow_the_request_field_rules() {
    let exp = now() + 600;
    let with = |extra: serde_json::Value| {
        let mut claims = serde_json::json!({"iss": "https://auth.example.com", "aud": "kraken", "sub": "u1", "exp": exp});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    assert_eq!(
        refused(with(serde_json::json!({"name": "Alice Ünal"}))).await,
        None
    );
    // The identity defaults to `sub`: a control character there would reach the LiveKit token.
    for sub in ["u1\n", "u\u{0}1", "u1\u{7f}", "u1\u{85}", "\t"] {
        assert_eq!(
            refused(with(serde_json::json!({ "sub": sub }))).await,
            Some(AuthFailure::NoIdentity),
            "sub {sub:?}"
        );
    }
    // A name is refused by the same rule rather than silently dropped or passed on.
    for name in [
        "Alice\r\nX-Injected: 1",
        "A\u{1b}[31m",
        " ",
        &"n".repeat(MAX_IDENTITY_CHARS + 1),
    ] {
        assert_eq!(
            refused(with(serde_json::json!({ "name": name }))).await,
            Some(AuthFailure::UnusableName),
            "name {name:?}"
        );
    }
}
