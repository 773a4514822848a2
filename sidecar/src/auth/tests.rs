use super::*;

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
    ];
    let reasons: std::collections::HashSet<_> = all.iter().map(|f| f.reason()).collect();
    assert_eq!(reasons.len(), all.len());
}
