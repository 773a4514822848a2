//! LiveKit's standard token endpoint, driven by the official `livekit-client` (`TokenSource.endpoint`,
//! run in Node exactly as a browser app would call it), against the real sidecar binary; the tokens it
//! receives are checked by both official server SDKs.

use std::process::Command;
use std::time::Duration;

use livekit_integration_tests::sidecar::{SidecarProcess, run_to_exit};
use livekit_integration_tests::verifiers::{Verifier, VerifyRequest};
use serde_json::{Value, json};

fn client_fetch(url: &str, bearer: Option<&str>, options: Value) -> Value {
    let script = format!(
        "{}/interop/node/token-source.mjs",
        env!("CARGO_MANIFEST_DIR")
    );
    let input = json!({"url": url, "bearer": bearer, "options": options}).to_string();
    let out = Command::new("node")
        .arg(&script)
        .arg(input)
        .output()
        .expect("node runs (./scripts/test-deps.sh installs livekit-client)");
    assert!(
        out.status.success(),
        "token-source.mjs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn dev_caller(args: &[&str]) -> String {
    let mut all = vec!["dev-token"];
    all.extend_from_slice(args);
    run_to_exit(&all, &[], Duration::from_secs(10))
        .stdout
        .trim()
        .to_owned()
}

#[test]
fn livekit_client_token_source_gets_verified_credentials() {
    let sidecar = SidecarProcess::start(&["--dev"], &[]);
    let url = sidecar.api_url("/api/livekit/token-source");
    let alice = dev_caller(&["--identity", "alice", "--name", "Alice"]);

    let got = client_fetch(
        &url,
        Some(&alice),
        json!({
            "roomName": "room-7",
            "participantName": "Alice Liddell",
            "participantIdentity": "alice",
            "participantMetadata": "{\"seat\":3}",
            "participantAttributes": {"team": "blue"},
        }),
    );
    assert_eq!(got["ok"], true, "{got}");
    assert_eq!(got["serverUrl"], "ws://localhost:7880");
    let payload = &got["payload"];
    assert_eq!(payload["sub"], "alice");
    assert_eq!(payload["iss"], "devkey");
    assert_eq!(payload["name"], "Alice Liddell");
    assert_eq!(payload["metadata"], "{\"seat\":3}");
    assert_eq!(payload["attributes"], json!({"team": "blue"}));
    assert_eq!(
        payload["video"],
        json!({"room": "room-7", "roomJoin": true, "canPublish": true, "canSubscribe": true, "canPublishData": true})
    );

    // With only a room, identity and name come from the caller's token.
    let minimal = client_fetch(&url, Some(&alice), json!({"roomName": "room-8"}));
    assert_eq!(minimal["payload"]["sub"], "alice");
    assert_eq!(minimal["payload"]["name"], "Alice");

    let token = got["participantToken"].as_str().unwrap();
    let batch = [
        VerifyRequest::new("devkey", "secret", token),
        VerifyRequest::new(
            "devkey",
            "secret",
            minimal["participantToken"].as_str().unwrap(),
        ),
    ];
    for verifier in Verifier::ALL {
        let results = verifier.verify(&batch);
        for result in &results {
            result.expect_ok();
            assert_eq!(result.identity(), Some("alice"), "{}", verifier.name());
        }
        assert_eq!(
            results[0].claims["video"]["room"],
            "room-7",
            "{}",
            verifier.name()
        );
    }
}

#[test]
fn token_source_refusals_reach_the_client() {
    let sidecar = SidecarProcess::start(&["--dev"], &[]);
    let url = sidecar.api_url("/api/livekit/token-source");
    let alice = dev_caller(&["--identity", "alice"]);
    let cases = [
        (None, json!({"roomName": "r"}), "401"),
        (
            Some(alice.clone()),
            json!({"roomName": "r", "participantIdentity": "mallory"}),
            "403",
        ),
        (
            Some(alice.clone()),
            json!({"roomName": "r", "agentName": "assistant"}),
            "room_config is not accepted",
        ),
        (
            Some(alice.clone()),
            json!({}),
            "room_name should not be empty",
        ),
        (
            Some(dev_caller(&[
                "--identity",
                "alice",
                "--permission",
                "JOIN_CHANNEL:other",
            ])),
            json!({"roomName": "r"}),
            "Insufficient permissions. Required: JOIN_CHANNEL",
        ),
    ];
    for (bearer, options, expected) in cases {
        let got = client_fetch(&url, bearer.as_deref(), options.clone());
        assert_eq!(got["ok"], false, "{options}: {got}");
        let error = got["error"].as_str().unwrap();
        assert!(
            error.contains(expected),
            "{options}: expected {expected:?} in {error:?}"
        );
    }
}
