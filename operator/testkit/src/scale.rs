//! A cluster at scale for the fake API server: `LiveKitConfig`s, each with the Secret it reads,
//! among Secrets nobody points at. Shared by the scale benchmark (`operator/benches/scale.rs`) and
//! its small CI version (`operator/tests/scale.rs`), so both measure the same load.

use crate::configs::{GENERATE_SPEC, SECRET_REF_SPEC, config};
use crate::fake_api::FakeApi;
use serde_json::{Value, json};

/// How many namespaces the load is spread over.
pub const NAMESPACES: usize = 10;

/// Every `GENERATED_EVERY`-th config generates its credentials; the others read them from a Secret.
pub const GENERATED_EVERY: usize = 4;

/// Bytes of data in each unrelated Secret: a small TLS key or a few tokens, so that a controller
/// that kept them would show it.
pub const UNRELATED_BYTES: usize = 1024;

/// The namespace of the `i`-th object.
pub fn namespace(i: usize) -> String {
    format!("team-{:02}", i % NAMESPACES)
}

/// The name of the `i`-th config.
pub fn config_name(i: usize) -> String {
    format!("cfg-{i:05}")
}

/// Whether the `i`-th config generates its credentials.
pub fn generated(i: usize) -> bool {
    i.is_multiple_of(GENERATED_EVERY)
}

fn secret(ns: &str, name: &str, data: &[(&str, &[u8])], labels: &Value) -> Value {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(b64.encode(v))))
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": name, "namespace": ns, "labels": labels}, "data": data})
}

/// Puts `unrelated` Secrets that no config references, and `configs` configs with the Secret each
/// reads: a generated config reads the HMAC secret of its callers (`jwt-<i>`), the others their
/// LiveKit key pair (`keys-<i>`). Configs are admitted once per kind (defaults, schema, CEL) and
/// then renamed, so loading 1,000 of them does not run the CEL evaluator 1,000 times.
pub fn load(api: &FakeApi, configs: usize, unrelated: usize) {
    for i in 0..unrelated {
        let filler: Vec<u8> = (0..UNRELATED_BYTES).map(|b| (b * 31 + i) as u8).collect();
        let ns = namespace(i);
        let name = format!("unrelated-{i:05}");
        let labels = json!({"app.kubernetes.io/name": format!("app-{}", i % 97)});
        let s = secret(&ns, &name, &[("tls.key", &filler)], &labels);
        api.put("secrets", &ns, &name, s);
    }
    let template = |spec: &str| {
        let mut v = serde_json::to_value(config("template", spec)).expect("config is JSON");
        let meta = v["metadata"].as_object_mut().expect("metadata");
        for k in ["uid", "resourceVersion", "generation"] {
            meta.remove(k);
        }
        v
    };
    let generate = template(GENERATE_SPEC);
    let secret_ref = template(SECRET_REF_SPEC);
    for i in 0..configs {
        let ns = namespace(i);
        let name = config_name(i);
        let (mut c, source) = if generated(i) {
            let source = format!("jwt-{i}");
            let hs = format!("hmac-secret-of-config-{i:010}-padding");
            let s = secret(&ns, &source, &[("hs-secret", hs.as_bytes())], &json!({}));
            let mut c = generate.clone();
            c["spec"]["auth"]["secretRef"]["name"] = json!(source);
            (c, s)
        } else {
            let source = format!("keys-{i}");
            let key = format!("APIk{i:010}");
            let value = format!("source-secret-of-config-{i:010}-pad");
            let s = secret(
                &ns,
                &source,
                &[
                    ("api-key", key.as_bytes()),
                    ("api-secret", value.as_bytes()),
                ],
                &json!({}),
            );
            let mut c = secret_ref.clone();
            c["spec"]["credentials"]["secretRef"]["name"] = json!(source);
            (c, s)
        };
        let source_name = source["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        api.put("secrets", &ns, &source_name, source);
        c["metadata"]["name"] = json!(name);
        c["metadata"]["namespace"] = json!(ns);
        api.put("livekitconfigs", &ns, &name, c);
    }
}

/// Whether a config as the API server returns it is Ready for its current generation.
pub fn is_ready(config: &Value) -> bool {
    let status = &config["status"];
    let current = status["observedGeneration"] == config["metadata"]["generation"];
    let ready = status["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    });
    current && ready
}

/// How many of the first `configs` configs are Ready.
pub fn ready(api: &FakeApi, configs: usize) -> usize {
    (0..configs)
        .filter(|&i| {
            api.get("livekitconfigs", &namespace(i), &config_name(i))
                .is_some_and(|c| is_ready(&c))
        })
        .count()
}

/// Annotates every source Secret of the first `configs` configs, as `kubectl annotate` would: the
/// source watch then asks for a reconcile of every config, and none may write, because nothing the
/// operator reads has changed.
pub fn touch_sources(api: &FakeApi, configs: usize, value: &str) {
    for i in 0..configs {
        let ns = namespace(i);
        let name = if generated(i) {
            format!("jwt-{i}")
        } else {
            format!("keys-{i}")
        };
        let mut s = api.get("secrets", &ns, &name).expect("source Secret");
        s["metadata"]["annotations"]["example.com/touched"] = json!(value);
        api.put("secrets", &ns, &name, s);
    }
}
