//! The CRD: drift against the committed YAML, the schema bounds and CEL rules with valid and
//! invalid specs, and the examples.

use livekit_operator_testkit as common;

use common::schema::{admit, minimal};
use kube::CustomResourceExt;
use livekit_operator::LiveKitConfig;
use livekit_operator::crd::crd_yaml;
use serde_json::{Value, json};
use std::path::Path;

fn repo_file(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn committed_crd_matches_crdgen_output() {
    let committed = repo_file("crds/livekitconfig.yaml");
    assert!(
        committed == crd_yaml(),
        "crds/livekitconfig.yaml is stale; regenerate it with\n  cargo run -q -p livekit-operator --bin crdgen > crds/livekitconfig.yaml"
    );
}

#[test]
fn crd_identity() {
    let crd = LiveKitConfig::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("livekitconfigs.livekit.kraken.dev")
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["lkc".to_string()]));
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(v.subresources.as_ref().unwrap().status.is_some());
    let cols: Vec<_> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(cols, ["Ready", "Rotation", "Server", "Region", "Age"]);
}

#[test]
fn minimal_spec_is_accepted_and_defaulted() {
    let obj = admit(&minimal()).unwrap();
    let spec = &obj["spec"];
    assert_eq!(spec["token"]["defaultTtlSeconds"], 3600);
    assert_eq!(spec["token"]["maxTtlSeconds"], 86400);
    assert_eq!(spec["authorization"]["mode"], "Claims");
    assert_eq!(spec["auth"]["identityClaim"], "sub");
    assert_eq!(spec["credentials"]["rotationGraceSeconds"], 86400);
    assert_eq!(spec["credentials"]["rotation"]["deadlineSeconds"], 1800);
    // No mode is defaulted: unset, the operator chooses one per rotation.
    assert_eq!(
        spec["credentials"]["rotation"]["verification"],
        serde_json::json!({})
    );
    let typed: LiveKitConfig = serde_json::from_value(obj).unwrap();
    assert!(typed.spec.credentials.generate.is_some());
}

/// JSON-path-ish edits applied to the minimal object; `null` removes the field.
type Edits = Vec<(&'static str, Value)>;

fn set(obj: &mut Value, path: &str, v: Value) {
    let mut cur = obj;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        if cur.get(*p).is_none() {
            cur[*p] = json!({});
        }
        cur = cur.get_mut(*p).unwrap();
    }
    let last = parts[parts.len() - 1];
    if v.is_null() {
        cur.as_object_mut().unwrap().remove(last);
    } else {
        cur[last] = v;
    }
}

#[test]
fn valid_specs_are_accepted() {
    let cases: Vec<(&str, Edits)> = vec![
        (
            "secretRef credentials",
            vec![(
                "spec.credentials",
                json!({"secretRef": {"name": "livekit-keys"}}),
            )],
        ),
        (
            "http server url with port and path",
            vec![("spec.serverUrl", json!("http://livekit:7880/rtc"))],
        ),
        (
            "ws server url",
            vec![("spec.serverUrl", json!("ws://10.0.0.1:7880"))],
        ),
        (
            "plain http JWKS with the explicit opt-in",
            vec![(
                "spec.auth",
                json!({"algorithms": ["RS256"], "jwksUrl": "http://idp.auth.svc/jwks", "allowHttpJwks": true, "issuer": "https://idp", "audiences": ["app"]}),
            )],
        ),
        (
            "public-key callers without issuer and audience, explicitly opted out",
            vec![(
                "spec.auth",
                json!({"algorithms": ["ES256"], "jwksUrl": "https://idp/jwks", "allowAnyIssuerAndAudience": true}),
            )],
        ),
        (
            "HS256 with secret",
            vec![(
                "spec.auth",
                json!({"algorithms": ["HS256", "HS512"], "secretRef": {"name": "jwt", "hsSecretKey": "k"}}),
            )],
        ),
        (
            "PEM public keys instead of JWKS",
            vec![(
                "spec.auth",
                json!({"algorithms": ["ES256", "EdDSA"], "secretRef": {"name": "jwt", "publicKeysKey": "pem"}, "issuer": "https://idp", "audiences": ["app"]}),
            )],
        ),
        (
            "webhook mode with its block",
            vec![(
                "spec.authorization",
                json!({"mode": "Webhook", "webhook": {"url": "https://app/authz"}}),
            )],
        ),
        (
            "equal ttls",
            vec![(
                "spec.token",
                json!({"defaultTtlSeconds": 600, "maxTtlSeconds": 600}),
            )],
        ),
        (
            "longest allowed ttl",
            vec![(
                "spec.token",
                json!({"defaultTtlSeconds": 60, "maxTtlSeconds": 2592000}),
            )],
        ),
        (
            "zero grace",
            vec![("spec.credentials.rotationGraceSeconds", json!(0))],
        ),
        (
            "rotation verified through an in-cluster server API",
            vec![(
                "spec.credentials.rotation",
                json!({"verification": {"mode": "ServerApi", "serverApi": {"url": "http://livekit.livekit.svc:7880", "consecutiveSuccesses": 5, "intervalSeconds": 30}}, "deadlineSeconds": 3600}),
            )],
        ),
        (
            "mode unset, with a fallback delay",
            vec![(
                "spec.credentials.rotation",
                json!({"verification": {"delay": {"seconds": 120}}}),
            )],
        ),
        (
            "rotation by delay, with the workload restarted",
            vec![
                (
                    "spec.credentials.rotation",
                    json!({"verification": {"mode": "Delay", "delay": {"seconds": 120}}}),
                ),
                (
                    "spec.livekitServer",
                    json!({"workloadRef": {"kind": "StatefulSet", "name": "livekit-server"}}),
                ),
            ],
        ),
    ];
    for (name, edits) in cases {
        let mut obj = minimal();
        for (path, v) in edits {
            set(&mut obj, path, v);
        }
        if let Err(errors) = admit(&obj) {
            panic!("{name}: rejected: {errors:?}");
        }
    }
}

#[test]
fn invalid_specs_are_rejected_with_a_clear_message() {
    let cases: Vec<(&str, Edits, &str)> = vec![
        (
            "delay mode without its delay",
            vec![(
                "spec.credentials.rotation",
                json!({"verification": {"mode": "Delay"}}),
            )],
            "credentials.rotation.verification.delay is required when mode is Delay",
        ),
        (
            "server api url with another scheme",
            vec![(
                "spec.credentials.rotation",
                json!({"verification": {"serverApi": {"url": "wss://livekit.example.com"}}}),
            )],
            "serverApi.url must be an http or https URL",
        ),
        (
            "zero consecutive checks",
            vec![(
                "spec.credentials.rotation",
                json!({"verification": {"serverApi": {"consecutiveSuccesses": 0}}}),
            )],
            "consecutiveSuccesses",
        ),
        (
            "a DaemonSet to restart",
            vec![(
                "spec.livekitServer",
                json!({"workloadRef": {"kind": "DaemonSet", "name": "livekit"}}),
            )],
            "kind",
        ),
        (
            "both credential sources",
            vec![("spec.credentials.secretRef", json!({"name": "k"}))],
            "exactly one of credentials.secretRef or credentials.generate",
        ),
        (
            "no credential source",
            vec![("spec.credentials.generate", Value::Null)],
            "exactly one of",
        ),
        (
            "ftp server url",
            vec![("spec.serverUrl", json!("ftp://livekit.example.com"))],
            "ws, wss, http or https",
        ),
        (
            "server url without scheme",
            vec![("spec.serverUrl", json!("livekit.example.com"))],
            "ws, wss, http or https",
        ),
        (
            "server url with credentials",
            vec![("spec.serverUrl", json!("wss://u:p@livekit.example.com"))],
            "no credentials",
        ),
        (
            "missing server url",
            vec![("spec.serverUrl", Value::Null)],
            "serverUrl: Required value",
        ),
        (
            "default ttl above max",
            vec![(
                "spec.token",
                json!({"defaultTtlSeconds": 7200, "maxTtlSeconds": 3600}),
            )],
            "must not be greater than token.maxTtlSeconds",
        ),
        (
            "default ttl above max by default",
            vec![("spec.token", json!({"defaultTtlSeconds": 90000}))],
            "must not be greater than token.maxTtlSeconds",
        ),
        (
            "zero ttl",
            vec![("spec.token.defaultTtlSeconds", json!(0))],
            "greater than or equal to 1",
        ),
        (
            "ttl over 30 days",
            vec![("spec.token.maxTtlSeconds", json!(2592001))],
            "less than or equal to 2592000",
        ),
        (
            "webhook mode without its block",
            vec![("spec.authorization", json!({"mode": "Webhook"}))],
            "authorization.webhook is required",
        ),
        (
            "unknown mode",
            vec![("spec.authorization", json!({"mode": "Open"}))],
            "unsupported value",
        ),
        (
            "webhook ftp url",
            vec![(
                "spec.authorization",
                json!({"mode": "Webhook", "webhook": {"url": "ftp://x"}}),
            )],
            "http or https URL",
        ),
        (
            "webhook timeout too long",
            vec![(
                "spec.authorization",
                json!({"mode": "Webhook", "webhook": {"url": "http://x", "timeoutMs": 60000}}),
            )],
            "less than or equal to 10000",
        ),
        (
            "unknown algorithm",
            vec![("spec.auth.algorithms", json!(["none"]))],
            "unsupported value",
        ),
        (
            "no algorithm",
            vec![("spec.auth.algorithms", json!([]))],
            "at least 1 items",
        ),
        (
            "repeated algorithm",
            vec![("spec.auth.algorithms", json!(["RS256", "RS256"]))],
            "must not repeat",
        ),
        (
            "mixed HMAC and RSA",
            vec![(
                "spec.auth",
                json!({"algorithms": ["HS256", "RS256"], "jwksUrl": "https://a/jwks", "secretRef": {"name": "s", "hsSecretKey": "k"}}),
            )],
            "must not mix HMAC",
        ),
        (
            "HMAC without a secret",
            vec![("spec.auth", json!({"algorithms": ["HS256"]}))],
            "HMAC algorithms need auth.secretRef.hsSecretKey",
        ),
        (
            "RSA without keys",
            vec![("spec.auth", json!({"algorithms": ["RS256"]}))],
            "public-key algorithms need auth.jwksUrl",
        ),
        (
            "JWKS with only HMAC",
            vec![(
                "spec.auth",
                json!({"algorithms": ["HS256"], "jwksUrl": "https://a/jwks", "secretRef": {"name": "s", "hsSecretKey": "k"}}),
            )],
            "jwksUrl needs a public-key algorithm",
        ),
        (
            "jwks file url",
            vec![("spec.auth.jwksUrl", json!("file:///etc/jwks"))],
            "http or https URL",
        ),
        (
            "plain http JWKS without the opt-in",
            vec![(
                "spec.auth",
                json!({"algorithms": ["RS256"], "jwksUrl": "http://idp.auth.svc/jwks"}),
            )],
            "must be https unless auth.allowHttpJwks",
        ),
        (
            "public-key callers without issuer",
            vec![("spec.auth.issuer", Value::Null)],
            "need auth.issuer and auth.audiences",
        ),
        (
            "public-key callers without audience",
            vec![("spec.auth.audiences", Value::Null)],
            "need auth.issuer and auth.audiences",
        ),
        (
            "public-key callers with the opt-out off",
            vec![(
                "spec.auth",
                json!({"algorithms": ["RS256"], "jwksUrl": "https://idp/jwks", "allowAnyIssuerAndAudience": false}),
            )],
            "need auth.issuer and auth.audiences",
        ),
        (
            "plain http JWKS with the opt-in off",
            vec![(
                "spec.auth",
                json!({"algorithms": ["RS256"], "jwksUrl": "HTTP://idp.auth.svc/jwks", "allowHttpJwks": false}),
            )],
            "must be https unless auth.allowHttpJwks",
        ),
        (
            "auth secretRef without keys",
            vec![(
                "spec.auth",
                json!({"algorithms": ["RS256"], "jwksUrl": "https://a/j", "secretRef": {"name": "s"}}),
            )],
            "needs hsSecretKey or publicKeysKey",
        ),
        (
            "too many audiences",
            vec![("spec.auth.audiences", json!(vec!["a"; 17]))],
            "at most 16 items",
        ),
        (
            "empty audience",
            vec![("spec.auth.audiences", json!([""]))],
            "at least 1 chars",
        ),
        (
            "leeway too long",
            vec![("spec.auth.leewaySeconds", json!(301))],
            "less than or equal to 300",
        ),
        (
            "empty region",
            vec![("spec.region", json!(""))],
            "at least 1 chars",
        ),
        (
            "bad secret name",
            vec![(
                "spec.credentials",
                json!({"secretRef": {"name": "Bad_Name"}}),
            )],
            "should match",
        ),
        (
            "grace over 30 days",
            vec![("spec.credentials.rotationGraceSeconds", json!(2592001))],
            "less than or equal to 2592000",
        ),
        (
            "unknown field",
            vec![("spec.tokenTtl", json!(5))],
            "unknown field",
        ),
    ];
    for (name, edits, want) in cases {
        let mut obj = minimal();
        for (path, v) in edits {
            set(&mut obj, path, v);
        }
        match admit(&obj) {
            Ok(_) => panic!("{name}: accepted, expected {want:?}"),
            Err(errors) => assert!(
                errors.iter().any(|e| e.contains(want)),
                "{name}: expected {want:?} in {errors:?}"
            ),
        }
    }
}

#[test]
fn examples_are_accepted_by_the_schema() {
    for file in [
        "examples/livekitconfig.yaml",
        "examples/livekitconfig-generate.yaml",
    ] {
        let obj: Value = serde_yaml::from_str(&repo_file(file)).unwrap();
        let admitted = admit(&obj).unwrap_or_else(|e| panic!("{file}: {e:?}"));
        let typed: LiveKitConfig = serde_json::from_value(admitted).unwrap();
        let settings = livekit_operator::desired::settings(&typed.spec);
        settings
            .validate()
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

#[test]
fn conditions_are_a_map_keyed_by_type() {
    let schema = common::schema::schema();
    let conditions = &schema["properties"]["status"]["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(
        conditions["x-kubernetes-list-map-keys"],
        serde_json::json!(["type"])
    );
    let required = conditions["items"]["required"].as_array().unwrap();
    assert!(required.contains(&serde_json::json!("type")));
}
