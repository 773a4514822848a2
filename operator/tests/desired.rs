//! The pure functions: spec → settings, (spec, inputs) → desired objects or a problem, golden
//! fixtures of the rendered objects, and the contract crate reading what the operator renders.

use livekit_operator_testkit as common;

use common::configs::*;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use livekit_contract::{Algorithm, AuthorizationMode, SidecarSettings, keys, parse_keys_file};
use livekit_operator::credentials::ApiCredentials;
use livekit_operator::desired::{self, Desired, Inputs, Problem, Reason};
use livekit_operator::owned;
use livekit_operator::rotation;
use livekit_operator::rotation::workload::HashKey;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// As long as livekit-server requires (32 characters).
const SOURCE_SECRET: &str = "source-secret-0123456789abcdefghij";

fn now() -> Timestamp {
    common::t0()
}

fn fresh() -> ApiCredentials {
    ApiCredentials::new(
        "APIfreshKey0001",
        "fresh-secret-0123456789abcdefghijklmnopqrstu",
    )
}

fn inputs(creds: Option<Secret>, auth: Option<Secret>, existing: Option<Secret>) -> Inputs {
    Inputs {
        credentials_source: creds,
        auth_source: auth,
        existing_secret: existing,
        fresh_credentials: fresh(),
        fresh_hash_key: HashKey("fixed-hash-key-of-the-fixtures".into()),
        observation: Default::default(),
        now: now(),
    }
}

fn data(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8(v.0.clone()).unwrap()))
        .collect()
}

#[test]
fn settings_mapping_table() {
    let s = desired::settings(&config("a", SECRET_REF_SPEC).spec);
    assert_eq!(s.server_url, "wss://livekit.example.com");
    assert_eq!(s.region.as_deref(), Some("eu-west-1"));
    assert_eq!(s.auth.algorithms, vec![Algorithm::RS256]);
    assert_eq!(s.auth.audiences, vec!["kraken".to_string()]);
    assert_eq!(s.auth.identity_claim, "sub");
    assert_eq!(s.authorization.mode, AuthorizationMode::Claims);
    assert_eq!(s.authorization.claims.claim, "permissions");
    assert_eq!(s.token.default_ttl_seconds, 3600);
    assert!(s.features.screen_share && !s.features.recording);

    let g = desired::settings(&config("b", GENERATE_SPEC).spec);
    assert_eq!(g.authorization.mode, AuthorizationMode::Webhook);
    let w = g.authorization.webhook.as_ref().unwrap();
    assert_eq!((w.timeout_ms, w.cache_ttl_seconds), (500, 30));
    assert_eq!(
        (g.token.default_ttl_seconds, g.token.max_ttl_seconds),
        (600, 3600)
    );
    assert!(!g.token.grants.can_publish && g.token.grants.can_subscribe);
    assert_eq!(g.auth.jwks_url, None);
    g.validate().unwrap();
}

#[test]
fn problems_table() {
    let cases: Vec<(&str, &str, Inputs, Reason, &str)> = vec![
        (
            "credentials Secret missing",
            SECRET_REF_SPEC,
            inputs(None, None, None),
            Reason::SourceSecretNotFound,
            "\"livekit-keys\"",
        ),
        (
            "credentials key missing",
            SECRET_REF_SPEC,
            inputs(
                Some(secret("livekit-keys", &[("api-key", "APIk")])),
                None,
                None,
            ),
            Reason::SourceKeyMissing,
            "\"api-secret\"",
        ),
        (
            "credentials key empty",
            SECRET_REF_SPEC,
            inputs(Some(livekit_keys(" ", SOURCE_SECRET)), None, None),
            Reason::SourceKeyMissing,
            "\"api-key\"",
        ),
        (
            "auth Secret missing",
            GENERATE_SPEC,
            inputs(None, None, None),
            Reason::SourceSecretNotFound,
            "\"app-jwt\"",
        ),
        (
            "auth key missing",
            GENERATE_SPEC,
            inputs(None, Some(secret("app-jwt", &[("other", "x")])), None),
            Reason::SourceKeyMissing,
            "\"hs-secret\"",
        ),
        (
            "HMAC secret too short for the sidecar",
            GENERATE_SPEC,
            inputs(
                None,
                Some(secret("app-jwt", &[("hs-secret", "short")])),
                None,
            ),
            Reason::SourceValueInvalid,
            "shorter than 32 bytes",
        ),
        (
            "PEM key holds no PEM",
            PEM_SPEC,
            inputs(
                None,
                Some(secret("app-jwt", &[("keys.pem", "not a key")])),
                None,
            ),
            Reason::SourceValueInvalid,
            "no PEM block",
        ),
        (
            "PEM key of the wrong family",
            PEM_SPEC.replace("ES256", "RS256").leak(),
            inputs(None, Some(app_jwt()), None),
            Reason::SourceValueInvalid,
            "fits the configured algorithms",
        ),
        (
            "credentials value not UTF-8",
            SECRET_REF_SPEC,
            inputs(
                Some({
                    let mut s = livekit_keys("APIk", SOURCE_SECRET);
                    let mut bad = SOURCE_SECRET.as_bytes().to_vec();
                    bad[3] = 0xff;
                    s.data
                        .as_mut()
                        .unwrap()
                        .insert("api-secret".into(), k8s_openapi::ByteString(bad));
                    s
                }),
                None,
                None,
            ),
            Reason::SourceValueInvalid,
            "\"api-secret\" is not valid UTF-8",
        ),
    ];
    for (name, spec, inputs, reason, needle) in cases {
        let got = desired::desired(&config("c", spec), &inputs).unwrap_err();
        assert_eq!(got.reason, reason, "{name}: {got:?}");
        assert!(got.message.contains(needle), "{name}: {}", got.message);
    }
}

#[test]
fn specs_the_api_server_would_reject_are_invalid_spec_too() {
    // CEL is the first line; the operator checks again (old API servers, edited CRDs).
    let mut c = config("d", SECRET_REF_SPEC);
    c.spec.server_url = "ftp://x".into();
    let err = desired::desired(
        &c,
        &inputs(Some(livekit_keys("APIk", SOURCE_SECRET)), None, None),
    )
    .unwrap_err();
    assert_eq!(err.reason, Reason::InvalidSpec);
    assert!(err.message.contains("serverUrl"), "{}", err.message);

    let mut c = config("d", SECRET_REF_SPEC);
    c.spec.credentials.generate = Some(Default::default());
    let err = desired::desired(
        &c,
        &inputs(Some(livekit_keys("APIk", SOURCE_SECRET)), None, None),
    )
    .unwrap_err();
    assert_eq!(
        err,
        Problem::new(
            Reason::InvalidSpec,
            "exactly one of credentials.secretRef or credentials.generate must be set"
        )
    );

    let mut c = config("d", SECRET_REF_SPEC);
    c.spec.auth.jwks_url = None;
    let err = desired::desired(
        &c,
        &inputs(Some(livekit_keys("APIk", SOURCE_SECRET)), None, None),
    )
    .unwrap_err();
    assert!(
        err.message.contains("public-key algorithms need"),
        "{}",
        err.message
    );
}

#[test]
fn owned_objects_carry_labels_and_the_secret_an_owner_reference_only_with_delete() {
    let render = |spec: &str| {
        let c = config("chat", spec);
        desired::desired(
            &c,
            &inputs(Some(livekit_keys("APIk", SOURCE_SECRET)), None, None),
        )
        .unwrap()
    };
    let controller = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.owner_references.as_ref().map(|o| {
            assert_eq!(o.len(), 1);
            assert_eq!(o[0].uid, UID);
            assert_eq!(o[0].kind, "LiveKitConfig");
            assert_eq!(o[0].controller, Some(true));
        })
    };
    // Retain (the default): the Secret has no owner the garbage collector would follow.
    let retain = render(SECRET_REF_SPEC);
    let delete = render(&format!("{SECRET_REF_SPEC}deletionPolicy: Delete\n"));
    assert_eq!(controller(&retain.secret.metadata), None);
    assert_eq!(controller(&retain.config_map.metadata), Some(()));
    assert_eq!(controller(&delete.secret.metadata), Some(()));
    assert_eq!(controller(&delete.config_map.metadata), Some(()));
    for meta in [&retain.secret.metadata, &retain.config_map.metadata] {
        assert_eq!(meta.name.as_deref(), Some("chat-livekit"));
        assert_eq!(meta.namespace.as_deref(), Some(NS));
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "livekit-operator");
        assert_eq!(labels["livekit.kraken.dev/config"], "chat");
    }
}

#[test]
fn the_contract_crate_loads_what_the_operator_renders() {
    for (spec, creds, auth) in [
        (
            SECRET_REF_SPEC,
            Some(livekit_keys("APIk", SOURCE_SECRET)),
            None,
        ),
        (GENERATE_SPEC, None, Some(app_jwt())),
        (PEM_SPEC, None, Some(app_jwt())),
    ] {
        let c = config("x", spec);
        let d = desired::desired(&c, &inputs(creds, auth, None)).unwrap();
        let text = &d.config_map.data.as_ref().unwrap()[keys::SETTINGS];
        let loaded = SidecarSettings::from_yaml(text).unwrap();
        assert_eq!(loaded, d.settings);
        let secret = data(&d.secret);
        let pairs = parse_keys_file(&secret[keys::KEYS_FILE]).unwrap();
        assert_eq!(pairs[&secret[keys::API_KEY]], secret[keys::API_SECRET]);
        if loaded.auth.uses_hmac() {
            assert!(!secret[keys::CALLER_HS_SECRET].is_empty());
        }
        if loaded.auth.uses_public_keys() && loaded.auth.jwks_url.is_none() {
            assert!(secret[keys::CALLER_PUBLIC_KEYS].contains("BEGIN PUBLIC KEY"));
        }
    }
}

#[test]
fn rendering_is_deterministic_and_up_to_date_checks_hold() {
    let c = config("chat", GENERATE_SPEC);
    let first = desired::desired(&c, &inputs(None, Some(app_jwt()), None)).unwrap();
    // The applied Secret, as read back, yields the same desired state (credentials are kept).
    let mut read_back = first.secret.clone();
    read_back.metadata.resource_version = Some("7".into());
    let second =
        desired::desired(&c, &inputs(None, Some(app_jwt()), Some(read_back.clone()))).unwrap();
    assert_eq!(first, second);
    assert!(owned::secret_up_to_date(Some(&read_back), &second.secret));
    assert!(owned::config_map_up_to_date(
        Some(&first.config_map),
        &second.config_map
    ));
    // Drift: an edited value, a removed key, a missing object.
    let mut edited = read_back.clone();
    edited.data.as_mut().unwrap().insert(
        keys::API_SECRET.into(),
        k8s_openapi::ByteString(b"x".to_vec()),
    );
    assert!(!owned::secret_up_to_date(Some(&edited), &second.secret));
    let mut removed = read_back.clone();
    removed.data.as_mut().unwrap().remove(keys::KEYS_FILE);
    assert!(!owned::secret_up_to_date(Some(&removed), &second.secret));
    assert!(!owned::secret_up_to_date(None, &second.secret));
    // Someone else's extra key is not drift we fight over.
    let mut extra = read_back;
    extra
        .data
        .as_mut()
        .unwrap()
        .insert("note".into(), k8s_openapi::ByteString(b"x".to_vec()));
    assert!(owned::secret_up_to_date(Some(&extra), &second.secret));
}

// ---- golden fixtures ----

/// A readable rendering: Secret data decoded (as `stringData`), ConfigMap as is.
fn readable(d: &Desired) -> String {
    let mut secret = d.secret.clone();
    secret.string_data = Some(data(&secret));
    secret.data = None;
    let cm: ConfigMap = d.config_map.clone();
    format!(
        "{}---\n{}",
        serde_yaml::to_string(&secret).unwrap(),
        serde_yaml::to_string(&cm).unwrap()
    )
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_FIXTURES=1 to create it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{name} differs from the rendering; review and run with UPDATE_FIXTURES=1 to accept:\n{actual}"
    );
}

#[test]
fn golden_secret_ref_jwks() {
    let c = config("chat", SECRET_REF_SPEC);
    let d = desired::desired(
        &c,
        &inputs(
            Some(livekit_keys(
                "APIexample0001",
                "example-secret-0123456789abcdefghijkl",
            )),
            None,
            None,
        ),
    )
    .unwrap();
    golden("secret-ref-jwks.yaml", &readable(&d));
}

#[test]
fn golden_generate_hs256_webhook() {
    let c = config("chat-dev", GENERATE_SPEC);
    let d = desired::desired(&c, &inputs(None, Some(app_jwt()), None)).unwrap();
    golden("generate-hs256-webhook.yaml", &readable(&d));
}

#[test]
fn golden_rotation_phases() {
    // Published: the new key joins keys.yaml, the sidecar still signs with the first one.
    let mut c = config("chat-dev", PEM_SPEC);
    let first = desired::desired(&c, &inputs(None, Some(app_jwt()), None)).unwrap();
    c.metadata.annotations = Some(BTreeMap::from([(
        "livekit.kraken.dev/rotate".into(),
        "2026-01-01".into(),
    )]));
    let mut i = inputs(None, Some(app_jwt()), Some(first.secret));
    i.fresh_credentials = ApiCredentials::new(
        "APIrotatedKey02",
        "rotated-secret-0123456789abcdefghijklmnopq",
    );
    // verification.mode is unset: the reconciler's probe found the server API answering.
    i.observation.reachability = Some(rotation::Reachability::Answered(
        "https://lk.example.com/twirp/livekit.RoomService/ListRooms answered 401 Unauthorized"
            .into(),
    ));
    let published = desired::desired(&c, &i).unwrap();
    assert_eq!(published.keys.signing().key, "APIfreshKey0001");
    golden("rotation-published.yaml", &readable(&published));

    // Three server API checks ten seconds apart (the defaults) prove it: Accepted.
    let mut secret = published.secret;
    for (secs, phase) in [(0, "Published"), (10, "Published"), (20, "Accepted")] {
        let mut i = inputs(None, Some(app_jwt()), Some(secret));
        i.now = now() + SignedDuration::from_secs(secs);
        i.observation.check = Some(rotation::Check::Accepted);
        let d = desired::desired(&c, &i).unwrap();
        assert_eq!(
            d.keys.state.phase.map(|p| p.as_str()),
            Some(phase),
            "at {secs}s"
        );
        assert_eq!(d.keys.signing().key, "APIfreshKey0001");
        secret = d.secret;
    }

    // Active: the sidecar switches; the first key stays for the grace period.
    let mut i = inputs(None, Some(app_jwt()), Some(secret));
    i.now = now() + SignedDuration::from_secs(21);
    let active = desired::desired(&c, &i).unwrap();
    assert_eq!(active.keys.signing().key, "APIrotatedKey02");
    golden("rotation-active.yaml", &readable(&active));
}

#[test]
fn source_secrets_shorter_than_livekit_accepts_are_refused_naming_the_field() {
    let c = config("chat", SECRET_REF_SPEC);
    let short = "x".repeat(31);
    let problem =
        desired::desired(&c, &inputs(Some(livekit_keys("APIk", &short)), None, None)).unwrap_err();
    assert_eq!(problem.reason, desired::Reason::SecretTooShort);
    assert!(
        problem
            .message
            .contains("credentials.secretRef.apiSecretKey")
            && problem.message.contains("\"api-secret\"")
            && problem.message.contains("31 characters")
            && problem.message.contains("32"),
        "{}",
        problem.message
    );
    assert!(!problem.message.contains(&short), "never the secret itself");
    let ok = desired::desired(
        &c,
        &inputs(Some(livekit_keys("APIk", &"x".repeat(32))), None, None),
    );
    assert!(ok.is_ok());
}

#[test]
fn debug_output_never_carries_secret_values() {
    let inputs = inputs(
        Some(livekit_keys("APIk", SOURCE_SECRET)),
        Some(app_jwt()),
        None,
    );
    let d = desired::desired(&config("c", SECRET_REF_SPEC), &inputs).unwrap();
    let text = format!("{inputs:?} {d:?}");
    for value in [SOURCE_SECRET, "a-shared-hmac-secret-of-32-bytes!"] {
        let raw = format!("{:?}", value.as_bytes());
        let inner = raw.trim_start_matches('[').trim_end_matches(']');
        assert!(
            !text.contains(value) && !text.contains(inner),
            "Debug shows a secret: {text}"
        );
    }
    assert!(text.contains("livekit-keys") && text.contains("api-secret"));
}

#[test]
fn config_hash_covers_key_ids_and_settings_but_no_secret_value() {
    let hash_of = |key: &str, secret: &str, spec: &str| {
        desired::desired(
            &config("c", spec),
            &inputs(Some(livekit_keys(key, secret)), None, None),
        )
        .unwrap()
        .config_hash
    };
    let a = "a-source-secret-of-at-least-32-characters";
    let b = "b-source-secret-of-at-least-32-characters";
    // Anyone who reads status must not be able to test a guess of the secret against it.
    assert_eq!(
        hash_of("APIk", a, SECRET_REF_SPEC),
        hash_of("APIk", b, SECRET_REF_SPEC)
    );
    assert_ne!(
        hash_of("APIk", a, SECRET_REF_SPEC),
        hash_of("APIother", a, SECRET_REF_SPEC)
    );
    let other_region = SECRET_REF_SPEC.replace("eu-west-1", "us-east-1");
    assert_ne!(
        hash_of("APIk", a, SECRET_REF_SPEC),
        hash_of("APIk", a, &other_region)
    );
}
