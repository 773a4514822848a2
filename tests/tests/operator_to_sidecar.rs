//! The operator↔sidecar contract, end to end without a cluster: the operator's desired Secret and
//! ConfigMap are published into a directory exactly as the kubelet's atomic writer does; the real
//! sidecar binary serves tokens from it that the official SDKs verify with that key; a rotation
//! rendered by the operator is swapped in under a steady stream of requests with zero failures, and
//! new tokens switch to the new key within a second.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use livekit_contract::{keys, parse_keys_file};
use livekit_integration_tests::sidecar::{Http, SidecarProcess};
use livekit_integration_tests::verifiers::{Verifier, VerifyRequest, issuer};
use livekit_integration_tests::{app, kubelet};
use livekit_operator::LiveKitConfig;
use livekit_operator::credentials::ApiCredentials;
use livekit_operator::desired::{self, Desired, Inputs};
use livekit_operator::rotation::workload::HashKey;
use serde_json::json;

fn config(rotate: Option<&str>) -> LiveKitConfig {
    let mut metadata = json!({"name": "chat", "namespace": "apps", "uid": "0b0e6a3c-0000-4000-8000-00000000c0de", "generation": 1});
    if let Some(value) = rotate {
        metadata["annotations"] = json!({"livekit.kraken.dev/rotate": value});
    }
    serde_json::from_value(json!({
        "apiVersion": "livekit.kraken.dev/v1alpha1",
        "kind": "LiveKitConfig",
        "metadata": metadata,
        "spec": {
            "serverUrl": "ws://127.0.0.1:7880",
            "region": "local",
            "credentials": {"generate": {}, "rotationGraceSeconds": 3600,
                "rotation": {"verification": {"mode": "Delay", "delay": {"seconds": 60}}}},
            "token": {"defaultTtlSeconds": 900, "maxTtlSeconds": 3600},
            "auth": {"algorithms": ["HS256"], "secretRef": {"name": "app-jwt", "hsSecretKey": "hs-secret"}},
            "authorization": {"mode": "Claims", "claims": {"claim": "permissions"}},
        }
    }))
    .expect("a LiveKitConfig")
}

fn render(
    config: &LiveKitConfig,
    existing: Option<Secret>,
    fresh: ApiCredentials,
    now: Timestamp,
) -> Desired {
    let inputs = Inputs {
        credentials_source: None,
        auth_source: Some(app::jwt_secret()),
        existing_secret: existing,
        fresh_credentials: fresh,
        fresh_hash_key: HashKey::generate(&mut rand::rng()),
        observation: Default::default(),
        now,
    };
    desired::desired(config, &inputs).expect("the operator renders this config")
}

/// The files the kubelet would project from the desired Secret and ConfigMap.
fn files(d: &Desired) -> Vec<(&'static str, String)> {
    let mut data: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in d.secret.data.iter().flatten() {
        data.insert(k.clone(), String::from_utf8(v.0.clone()).unwrap());
    }
    for (k, v) in d.secret.string_data.iter().flatten() {
        data.insert(k.clone(), v.clone());
    }
    for (k, v) in d.config_map.data.iter().flatten() {
        data.insert(k.clone(), v.clone());
    }
    [
        keys::SETTINGS,
        keys::API_KEY,
        keys::API_SECRET,
        keys::KEYS_FILE,
        keys::CALLER_HS_SECRET,
    ]
    .into_iter()
    .map(|key| {
        (
            key,
            data.get(key)
                .unwrap_or_else(|| panic!("{key} not rendered"))
                .clone(),
        )
    })
    .collect()
}

fn value_of(files: &[(&str, String)], key: &str) -> String {
    files.iter().find(|(k, _)| *k == key).unwrap().1.clone()
}

#[test]
fn operator_output_serves_verified_tokens_and_rotation_reaches_them_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let old = ApiCredentials::new(
        "APIcontractOld01",
        "old-contract-secret-0123456789abcdefghij",
    );
    let new = ApiCredentials::new(
        "APIcontractNew02",
        "new-contract-secret-0123456789abcdefghij",
    );

    let t0 = Timestamp::now();
    let first = render(&config(None), None, old, t0);
    let first_files = files(&first);
    kubelet::write(dir.path(), &first_files);
    let (old_key, old_secret) = (
        value_of(&first_files, keys::API_KEY),
        value_of(&first_files, keys::API_SECRET),
    );

    let sidecar = SidecarProcess::start(&["--config-dir", dir.path().to_str().unwrap()], &[]);
    let http = Http::new();
    let url = sidecar.api_url("/api/livekit/token");
    let bearer = app::caller();
    let reply = http
        .post_json(&url, Some(&bearer), &json!({"roomId": "room-1"}))
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text);
    let info = http
        .get(
            &sidecar.api_url("/api/livekit/connection-info"),
            Some(&bearer),
        )
        .unwrap()
        .json();
    assert_eq!(info["serverUrl"], "ws://127.0.0.1:7880");
    assert_eq!(info["region"], "local");

    // A steady stream of requests while the operator's rotation is published.
    let stream = {
        let (http, url, bearer) = (http.clone(), url.clone(), bearer.clone());
        std::thread::spawn(move || {
            // Until well after the signer switched (the first token of another issuer), bounded only
            // against a hang: a loaded machine may take seconds to reload.
            let started = Instant::now();
            let mut seen: Vec<(Instant, Result<String, String>)> = Vec::new();
            let mut first_issuer = None;
            let mut switched_at = None;
            while started.elapsed() < Duration::from_secs(60)
                && switched_at.is_none_or(|at: usize| seen.len() < at + 200)
            {
                if switched_at.is_none()
                    && let Some(Ok(token)) = seen.last().map(|(_, r)| r.as_ref())
                {
                    let now = issuer(token);
                    match &first_issuer {
                        None => first_issuer = Some(now),
                        Some(first) if *first != now => switched_at = Some(seen.len()),
                        Some(_) => {}
                    }
                }
                let reply = http.post_json(&url, Some(&bearer), &json!({"roomId": "room-1"}));
                let at = Instant::now();
                match reply {
                    Ok(reply) if reply.status == 200 => {
                        seen.push((at, Ok(reply.json()["token"].as_str().unwrap().to_owned())))
                    }
                    Ok(reply) => seen.push((at, Err(format!("{} {}", reply.status, reply.text)))),
                    Err(error) => seen.push((at, Err(error.to_string()))),
                }
            }
            seen
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    // The rotation's phases: Published (keys.yaml only), Accepted after the verification delay,
    // Active (the signer switches). Only Active changes what the sidecar signs with.
    let rotating = config(Some("2026-11-25"));
    let published = render(&rotating, Some(first.secret.clone()), new.clone(), t0);
    let later = t0 + k8s_openapi::jiff::SignedDuration::from_secs(60);
    let accepted = render(
        &rotating,
        Some(published.secret.clone()),
        new.clone(),
        later,
    );
    let rotated = render(&rotating, Some(accepted.secret.clone()), new, later);
    assert_eq!(rotated.keys.state.phase.map(|p| p.as_str()), Some("Active"));
    let rotated_files = files(&rotated);
    let (new_key, new_secret) = (
        value_of(&rotated_files, keys::API_KEY),
        value_of(&rotated_files, keys::API_SECRET),
    );
    assert_ne!(new_key, old_key);
    let both = parse_keys_file(&value_of(&rotated_files, keys::KEYS_FILE)).unwrap();
    assert_eq!(
        both.get(&old_key),
        Some(&old_secret),
        "livekit-server keeps the old key in its grace period"
    );
    assert_eq!(both.get(&new_key), Some(&new_secret));
    kubelet::write(dir.path(), &rotated_files);
    let swapped = Instant::now();
    let seen = stream.join().unwrap();

    let failures: Vec<_> = seen.iter().filter_map(|(_, r)| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        seen.len(),
        &failures[..failures.len().min(3)]
    );
    let tokens: Vec<(Instant, &String)> = seen
        .iter()
        .map(|(at, r)| (*at, r.as_ref().unwrap()))
        .collect();
    let switch = tokens
        .iter()
        .position(|(_, t)| issuer(t) == new_key)
        .expect("new tokens use the rotated key");
    assert!(
        // Typically well under a second; the bound is generous for a loaded 2-core machine.
        tokens[switch].0.saturating_duration_since(swapped) < Duration::from_secs(10),
        "switched after {:?}",
        tokens[switch].0 - swapped
    );
    assert!(tokens[..switch].iter().all(|(_, t)| issuer(t) == old_key));
    assert!(
        tokens[switch..].iter().all(|(_, t)| issuer(t) == new_key),
        "a token signed with the replaced key came after the switch"
    );
    assert!(switch > 0, "the stream was running before the swap");

    // The official SDKs agree: old tokens with the old key, new tokens with the new key.
    let mut batch = Vec::new();
    for (_, token) in tokens[switch.saturating_sub(5)..switch].iter() {
        batch.push(VerifyRequest::new(&old_key, &old_secret, token.as_str()));
    }
    for (_, token) in tokens[switch..(switch + 5).min(tokens.len())].iter() {
        batch.push(VerifyRequest::new(&new_key, &new_secret, token.as_str()));
    }
    for verifier in Verifier::ALL {
        for result in verifier.verify(&batch) {
            result.expect_ok();
            assert_eq!(result.identity(), Some("alice"), "{}", verifier.name());
        }
    }
}
