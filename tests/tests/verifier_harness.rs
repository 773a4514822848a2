//! The verifier harness itself, independent of the sidecar: tokens minted here with jsonwebtoken must be
//! accepted by both official SDKs with the right claims, and every kind of bad token must be rejected
//! for the right reason. This proves the harness can fail.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use livekit_integration_tests::verifiers::{
    Verifier, VerifyRequest, VerifyResult, require_verifiers, verify_with_node, verify_with_python,
};
use serde_json::{Value, json};

const API_KEY: &str = "APIharnessKey";
const API_SECRET: &str = "harness-secret-that-is-long-enough-for-hs256";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

fn mint(secret: &str, claims: &Value) -> String {
    // Ignore the error: another test in this process may have installed it already.
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing works")
}

/// The claims of a LiveKit room-join token, as the sidecar is meant to issue them.
fn livekit_claims(iss: &str, identity: &str, room: &str, nbf: i64, exp: i64) -> Value {
    json!({
        "iss": iss,
        "sub": identity,
        "nbf": nbf,
        "exp": exp,
        "name": format!("Name of {identity}"),
        "video": {
            "room": room,
            "roomJoin": true,
            "canPublish": true,
            "canSubscribe": true,
            "canPublishData": true,
        },
    })
}

fn expected_video(room: &str) -> Value {
    json!({
        "room": room,
        "roomJoin": true,
        "canPublish": true,
        "canSubscribe": true,
        "canPublishData": true,
    })
}

fn good(identity: &str, room: &str, exp: i64) -> VerifyRequest {
    let claims = livekit_claims(API_KEY, identity, room, now(), exp);
    VerifyRequest::new(API_KEY, API_SECRET, mint(API_SECRET, &claims))
}

/// Checks what both SDKs report for a good token, each in its own field names.
#[track_caller]
fn assert_accepted(v: Verifier, r: &VerifyResult, identity: &str, room: &str, exp: i64) {
    let claims = r.expect_ok();
    assert_eq!(r.identity(), Some(identity), "{}: {claims}", v.name());
    assert_eq!(
        claims["name"],
        json!(format!("Name of {identity}")),
        "{}",
        v.name()
    );
    assert_eq!(r.exp, Some(exp), "{}: {r:?}", v.name());
    match v {
        Verifier::Node => {
            // The payload exactly as signed.
            assert_eq!(claims["iss"], json!(API_KEY));
            assert_eq!(claims["exp"], json!(exp));
            assert!(claims["nbf"].as_i64().is_some_and(|nbf| nbf <= now()));
            assert_eq!(claims["video"], expected_video(room));
        }
        Verifier::Python => {
            // Claims.asdict(): `identity` instead of `sub`, no registered claims in it.
            assert_eq!(claims["identity"], json!(identity));
            assert!(
                claims.get("exp").is_none() && claims.get("iss").is_none(),
                "{claims}"
            );
            assert_eq!(claims["video"], expected_video(room));
        }
    }
}

#[test]
fn verifiers_are_installed() {
    require_verifiers();
}

#[test]
fn both_sdks_accept_a_good_token_with_its_claims() {
    let exp = now() + 600;
    let batch = [good("alice", "room-1", exp)];
    for (v, results) in [
        (Verifier::Node, verify_with_node(&batch)),
        (Verifier::Python, verify_with_python(&batch)),
    ] {
        assert_eq!(results.len(), 1);
        assert_accepted(v, &results[0], "alice", "room-1", exp);
    }
}

#[test]
fn a_large_batch_is_answered_in_order_in_one_process() {
    let exp = now() + 600;
    // Good and bad tokens interleaved: results must line up with their requests.
    let batch: Vec<VerifyRequest> = (0..200)
        .map(|i| {
            let mut req = good(&format!("user-{i}"), &format!("room-{i}"), exp);
            if i % 3 == 0 {
                req.api_secret = "not-the-secret".into();
            }
            req
        })
        .collect();
    for v in Verifier::ALL {
        let results = v.verify(&batch);
        assert_eq!(results.len(), batch.len(), "{}", v.name());
        for (i, r) in results.iter().enumerate() {
            if i % 3 == 0 {
                assert!(
                    !r.ok,
                    "{}: token {i} verified with a wrong secret: {r:?}",
                    v.name()
                );
            } else {
                assert_accepted(v, r, &format!("user-{i}"), &format!("room-{i}"), exp);
            }
        }
    }
}

#[test]
fn an_empty_batch_needs_no_process() {
    for v in Verifier::ALL {
        assert!(v.verify(&[]).is_empty());
    }
}

/// Each bad token, and the error kind each SDK gives for it (jose's code for Node, the PyJWT exception
/// for Python), so a rejection for the wrong reason fails the test too.
#[test]
fn both_sdks_reject_bad_tokens_for_the_right_reason() {
    let t = now();
    let wrong_secret = VerifyRequest::new(
        API_KEY,
        API_SECRET,
        mint(
            "some-other-secret-of-enough-length",
            &livekit_claims(API_KEY, "alice", "r", t, t + 600),
        ),
    );
    // Well past both SDKs' clock leeway (Node 10 s, Python 60 s).
    let expired = VerifyRequest::new(
        API_KEY,
        API_SECRET,
        mint(
            API_SECRET,
            &livekit_claims(API_KEY, "alice", "r", t - 7200, t - 3600),
        ),
    );
    let wrong_api_key = VerifyRequest::new(
        API_KEY,
        API_SECRET,
        mint(
            API_SECRET,
            &livekit_claims("APIsomeoneElse", "alice", "r", t, t + 600),
        ),
    );
    let not_yet_valid = VerifyRequest::new(
        API_KEY,
        API_SECRET,
        mint(
            API_SECRET,
            &livekit_claims(API_KEY, "alice", "r", t + 3600, t + 7200),
        ),
    );
    let mut no_exp_claims = livekit_claims(API_KEY, "alice", "r", t, t + 600);
    no_exp_claims.as_object_mut().unwrap().remove("exp");
    let no_exp = VerifyRequest::new(API_KEY, API_SECRET, mint(API_SECRET, &no_exp_claims));
    // Mallory's payload under a signature made for Alice's: a signature over other bytes.
    let alice = good("alice", "r", t + 600).token;
    let mallory = mint(
        "any-secret-at-all-of-enough-length",
        &livekit_claims(API_KEY, "mallory", "r", t, t + 600),
    );
    let (mallory_signed_part, _) = mallory.rsplit_once('.').unwrap();
    let (_, alice_signature) = alice.rsplit_once('.').unwrap();
    let tampered = VerifyRequest::new(
        API_KEY,
        API_SECRET,
        format!("{mallory_signed_part}.{alice_signature}"),
    );
    let garbage = VerifyRequest::new(API_KEY, API_SECRET, "not-a-jwt");

    let cases = [
        (
            "wrong secret",
            wrong_secret,
            "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
            "InvalidSignatureError",
        ),
        (
            "expired",
            expired,
            "ERR_JWT_EXPIRED",
            "ExpiredSignatureError",
        ),
        (
            "wrong apiKey (iss)",
            wrong_api_key,
            "ERR_JWT_CLAIM_VALIDATION_FAILED",
            "InvalidIssuerError",
        ),
        (
            "nbf in the future",
            not_yet_valid,
            "ERR_JWT_CLAIM_VALIDATION_FAILED",
            "ImmatureSignatureError",
        ),
        (
            "no exp",
            no_exp,
            "ERR_JWT_CLAIM_VALIDATION_FAILED",
            "MissingRequiredClaimError",
        ),
        (
            "tampered payload",
            tampered,
            "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
            "InvalidSignatureError",
        ),
        ("not a JWT", garbage, "ERR_JWS_INVALID", "DecodeError"),
    ];
    let batch: Vec<VerifyRequest> = cases.iter().map(|c| c.1.clone()).collect();
    for v in Verifier::ALL {
        let results = v.verify(&batch);
        for ((what, _, node_kind, python_kind), r) in cases.iter().zip(&results) {
            let kind = match v {
                Verifier::Node => node_kind,
                Verifier::Python => python_kind,
            };
            assert!(!r.ok, "{}: accepted a token with {what}: {r:?}", v.name());
            let error = r.error.as_deref().unwrap_or_default();
            assert!(
                error.starts_with(&format!("{kind}: ")),
                "{}: {what}: expected {kind}, got {error:?}",
                v.name()
            );
            assert!(r.claims.is_null(), "{}: {what}: {r:?}", v.name());
        }
    }
}
