//! The three sources and the snapshot they build.

use super::*;
use crate::auth::KeyMaterialError;
use livekit_contract::{Algorithm, AuthorizationMode, keys};
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

const HS: &str = "0123456789abcdef0123456789abcdef";
/// A LiveKit API secret of the length livekit-server requires outside its dev mode.
const LK_SECRET: &str = "livekit-api-secret-0123456789abcdef";

fn base_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("LIVEKIT_SERVER_URL", "wss://lk.example.com"),
        ("LIVEKIT_API_KEY", "APIkey"),
        ("LIVEKIT_API_SECRET", LK_SECRET),
        ("SIDECAR_AUTH_ALGORITHMS", "HS256"),
        ("SIDECAR_AUTH_HS_SECRET", HS),
    ]
}

#[test]
fn typos_are_reported_even_without_credentials() {
    let err = load_env(env(&[("LIVEKIT_DEFAULT_TOKEN_TTL", "abc")])).unwrap_err();
    assert!(
        err.to_string().contains("LIVEKIT_DEFAULT_TOKEN_TTL"),
        "{err}"
    );
}

#[test]
fn empty_environment_is_unconfigured_not_an_error() {
    let input = load_env(env(&[])).unwrap();
    assert!(input.configured.is_none());
    let snapshot = Snapshot::build(input, None).unwrap();
    assert!(!snapshot.is_configured());
}

#[test]
fn environment_sets_every_field() {
    let mut vars = base_env();
    vars.extend([
        ("LIVEKIT_DEFAULT_TOKEN_TTL", "600"),
        ("LIVEKIT_MAX_TOKEN_TTL", "1200"),
        ("LIVEKIT_REGION", "eu-west-1"),
        ("LIVEKIT_FEATURES", "audio, recording"),
        ("LIVEKIT_TOKEN_GRANTS", "canSubscribe"),
        ("LIVEKIT_ALLOW_IDENTITY_OVERRIDE", "true"),
        ("SIDECAR_AUTH_ISSUER", "https://auth"),
        ("SIDECAR_AUTH_AUDIENCES", "a,b"),
        ("SIDECAR_AUTH_IDENTITY_CLAIM", "uid"),
        ("SIDECAR_AUTH_NAME_CLAIM", "display"),
        ("SIDECAR_AUTH_LEEWAY_SECONDS", "5"),
        ("SIDECAR_AUTHZ_MODE", "webhook"),
        ("SIDECAR_AUTHZ_CLAIM", "perms"),
        ("SIDECAR_AUTHZ_WEBHOOK_URL", "http://127.0.0.1:9/authz"),
        ("SIDECAR_AUTHZ_WEBHOOK_TIMEOUT_MS", "250"),
        ("SIDECAR_AUTHZ_WEBHOOK_CACHE_TTL_SECONDS", "0"),
    ]);
    let input = load_env(env(&vars)).unwrap();
    let (s, creds) = input.configured.as_ref().unwrap();
    assert_eq!(creds.api_key, "APIkey");
    assert_eq!(s.token.default_ttl_seconds, 600);
    assert_eq!(s.token.max_ttl_seconds, 1200);
    assert_eq!(s.region.as_deref(), Some("eu-west-1"));
    assert!(s.features.audio && s.features.recording && !s.features.video);
    assert!(!s.token.grants.can_publish && s.token.grants.can_subscribe);
    assert!(s.token.allow_identity_override);
    assert_eq!(s.auth.audiences, vec!["a", "b"]);
    assert_eq!(s.auth.identity_claim, "uid");
    assert_eq!(s.authorization.mode, AuthorizationMode::Webhook);
    assert_eq!(s.authorization.webhook.as_ref().unwrap().timeout_ms, 250);
    assert!(Snapshot::build(input, None).unwrap().is_configured());
}

#[test]
fn environment_errors_name_the_variable() {
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("LIVEKIT_API_KEY", "k")], "LIVEKIT_API_SECRET"),
        (vec![("LIVEKIT_API_SECRET", "s")], "LIVEKIT_API_KEY"),
        (
            vec![("LIVEKIT_API_KEY", "k"), ("LIVEKIT_API_SECRET", "s")],
            "LIVEKIT_SERVER_URL",
        ),
        (
            vec![("LIVEKIT_DEFAULT_TOKEN_TTL", "soon")],
            "LIVEKIT_DEFAULT_TOKEN_TTL",
        ),
        (
            vec![("LIVEKIT_DEFAULT_TOKEN_TTL", "0")],
            "LIVEKIT_DEFAULT_TOKEN_TTL",
        ),
        (vec![("LIVEKIT_MAX_TOKEN_TTL", "60")], "maxTtlSeconds (60)"),
        (
            vec![("LIVEKIT_MAX_TOKEN_TTL", "99999999")],
            "LIVEKIT_MAX_TOKEN_TTL",
        ),
        (
            vec![("LIVEKIT_FEATURES", "audio,smell")],
            "LIVEKIT_FEATURES",
        ),
        (
            vec![("LIVEKIT_ALLOW_IDENTITY_OVERRIDE", "maybe")],
            "LIVEKIT_ALLOW_IDENTITY_OVERRIDE",
        ),
        (
            vec![("SIDECAR_AUTH_ALGORITHMS", "none")],
            "SIDECAR_AUTH_ALGORITHMS",
        ),
        (vec![("SIDECAR_AUTHZ_MODE", "vibes")], "SIDECAR_AUTHZ_MODE"),
        (
            vec![("SIDECAR_AUTHZ_MODE", "Webhook")],
            "authorization.webhook",
        ),
        (
            vec![("LIVEKIT_SERVER_URL", "ftp://x")],
            "LIVEKIT_SERVER_URL",
        ),
    ];
    for (overrides, expected) in cases {
        let mut vars: HashMap<&str, &str> = base_env().into_iter().collect();
        for (k, v) in &overrides {
            vars.insert(k, v);
        }
        if overrides.len() == 1 && overrides[0].0.starts_with("LIVEKIT_API") {
            vars.remove(if overrides[0].0 == "LIVEKIT_API_KEY" {
                "LIVEKIT_API_SECRET"
            } else {
                "LIVEKIT_API_KEY"
            });
        }
        if overrides.len() == 2 {
            vars.remove("LIVEKIT_SERVER_URL");
        }
        let pairs: Vec<(&str, &str)> = vars.into_iter().collect();
        let err = load_env(env(&pairs)).unwrap_err().to_string();
        assert!(err.contains(expected), "expected {expected} in {err:?}");
    }
}

#[test]
fn missing_key_material_is_an_error() {
    let vars: Vec<_> = base_env()
        .into_iter()
        .filter(|(k, _)| *k != "SIDECAR_AUTH_HS_SECRET")
        .collect();
    let err = Snapshot::build(load_env(env(&vars)).unwrap(), None)
        .err()
        .unwrap();
    assert!(
        err.to_string().starts_with("SIDECAR_AUTH_HS_SECRET: "),
        "{err}"
    );
    assert!(matches!(
        err,
        ConfigError::KeyMaterial {
            error: KeyMaterialError::MissingHmacSecret,
            ..
        }
    ));

    let mut short = base_env();
    short.retain(|(k, _)| *k != "SIDECAR_AUTH_HS_SECRET");
    short.push(("SIDECAR_AUTH_HS_SECRET", "short"));
    let err = Snapshot::build(load_env(env(&short)).unwrap(), None)
        .err()
        .unwrap();
    assert!(matches!(
        err,
        ConfigError::KeyMaterial {
            error: KeyMaterialError::ShortHmacSecret,
            ..
        }
    ));

    let mut rs = base_env();
    rs.retain(|(k, _)| *k != "SIDECAR_AUTH_ALGORITHMS");
    rs.push(("SIDECAR_AUTH_ALGORITHMS", "RS256"));
    rs.push(("SIDECAR_AUTH_ISSUER", "https://auth.example.com"));
    rs.push(("SIDECAR_AUTH_AUDIENCES", "kraken"));
    let err = Snapshot::build(load_env(env(&rs)).unwrap(), None)
        .err()
        .unwrap();
    assert!(matches!(
        err,
        ConfigError::KeyMaterial {
            error: KeyMaterialError::MissingPublicKeys,
            ..
        }
    ));
}

#[test]
fn directory_source() {
    let dir = tempfile::tempdir().unwrap();
    // Empty directory: nothing written yet, so unconfigured.
    assert!(load_dir(dir.path()).unwrap().configured.is_none());

    let mut settings = SidecarSettings::new("wss://lk.example.com");
    settings.auth.algorithms = vec![Algorithm::HS256];
    std::fs::write(dir.path().join(keys::SETTINGS), settings.to_yaml()).unwrap();
    std::fs::write(dir.path().join(keys::API_KEY), "APIabc\n").unwrap();
    let err = load_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains(keys::API_SECRET), "{err}");

    std::fs::write(dir.path().join(keys::API_SECRET), format!("{LK_SECRET}\n")).unwrap();
    std::fs::write(dir.path().join(keys::CALLER_HS_SECRET), HS).unwrap();
    let input = load_dir(dir.path()).unwrap();
    let (_, creds) = input.configured.as_ref().unwrap();
    assert_eq!(creds.api_key, "APIabc");
    assert_eq!(creds.api_secret.expose(), LK_SECRET);
    assert!(Snapshot::build(input, None).unwrap().is_configured());

    std::fs::write(dir.path().join(keys::SETTINGS), "serverUrl: 5\nbogus: 1\n").unwrap();
    let err = load_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains(keys::SETTINGS), "{err}");

    std::fs::remove_file(dir.path().join(keys::SETTINGS)).unwrap();
    let err = load_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("sidecar.yaml: file is missing"), "{err}");

    assert!(load_dir(&dir.path().join("nope")).is_err());
}

#[test]
fn secrets_do_not_show_in_debug() {
    let input = load_env(env(&base_env())).unwrap();
    let shown = format!("{input:?}");
    assert!(!shown.contains("topsecret"), "{shown}");
    assert!(!shown.contains(HS), "{shown}");
    let snapshot = Snapshot::build(input, None).unwrap();
    let signer = format!("{:?}", snapshot.service.unwrap().signer);
    assert!(!signer.contains("topsecret"));
}

#[test]
fn dev_mode_builds() {
    assert!(Snapshot::build(dev::input(), None).unwrap().is_configured());
}

#[test]
fn short_api_secrets_are_refused_outside_dev_mode() {
    let short = "s".repeat(livekit_contract::limits::MIN_LIVEKIT_SECRET_CHARS - 1);
    // Environment: the message names the variable and says why.
    let mut vars = base_env();
    vars.retain(|(k, _)| *k != "LIVEKIT_API_SECRET");
    vars.push(("LIVEKIT_API_SECRET", &short));
    let input = load_env(env(&vars)).unwrap();
    let err = Snapshot::build(input, None)
        .err()
        .expect("short secret accepted")
        .to_string();
    assert!(err.contains("LIVEKIT_API_SECRET"), "{err}");
    assert!(
        err.contains("livekit-server refuses") && err.contains("32"),
        "{err}"
    );
    // Exactly the minimum is enough; characters, not bytes, are counted (as livekit-server does).
    let mut vars = base_env();
    vars.retain(|(k, _)| *k != "LIVEKIT_API_SECRET");
    let exact = "é".repeat(livekit_contract::limits::MIN_LIVEKIT_SECRET_CHARS);
    vars.push(("LIVEKIT_API_SECRET", &exact));
    assert!(Snapshot::build(load_env(env(&vars)).unwrap(), None).is_ok());

    // Directory (the operator's mount): the file is named.
    let dir = tempfile::tempdir().unwrap();
    let mut settings = SidecarSettings::new("wss://lk.example.com");
    settings.auth.algorithms = vec![Algorithm::HS256];
    std::fs::write(dir.path().join(keys::SETTINGS), settings.to_yaml()).unwrap();
    std::fs::write(dir.path().join(keys::API_KEY), "APIabc\n").unwrap();
    std::fs::write(dir.path().join(keys::API_SECRET), format!("{short}\n")).unwrap();
    std::fs::write(dir.path().join(keys::CALLER_HS_SECRET), HS).unwrap();
    let err = Snapshot::build(load_dir(dir.path()).unwrap(), None)
        .err()
        .expect("short secret accepted")
        .to_string();
    assert!(
        err.contains(keys::API_SECRET) && err.contains("livekit-server refuses"),
        "{err}"
    );

    // Dev mode signs with livekit-server's own dev secret ("secret"), which its --dev accepts.
    assert!(
        Snapshot::build(crate::config::dev::input(), None)
            .unwrap()
            .is_configured()
    );
}
