//! SIGHUP reloads the configuration of a running sidecar: here the environment source, whose public
//! key file (`SIDECAR_AUTH_PUBLIC_KEYS_FILE`) is replaced on disk, as an operator would rotate an
//! identity provider's key without restarting the pod. A broken file is refused and the last good
//! configuration stays.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use livekit_integration_tests::sidecar::{Http, SidecarProcess, Signal};
use serde_json::json;

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../sidecar/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn caller_signed_by(private_pem: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &json!({"sub": "alice", "exp": now + 600, "permissions": ["JOIN_CHANNEL"]}),
        &EncodingKey::from_rsa_pem(fixture(private_pem).as_bytes()).unwrap(),
    )
    .unwrap()
}

fn status_with(sidecar: &SidecarProcess, http: &Http, caller: &str) -> u16 {
    http.post_json(
        &sidecar.api_url("/api/livekit/token"),
        Some(caller),
        &json!({"roomId": "r"}),
    )
    .unwrap()
    .status
}

fn wait_for_status(sidecar: &SidecarProcess, http: &Http, caller: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while status_with(sidecar, http, caller) != want {
        assert!(
            Instant::now() < deadline,
            "never answered {want}; stderr:\n{}",
            sidecar.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_reloads_the_environment_source() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("caller-keys.pem");
    std::fs::write(&keys, fixture("rsa-public.pem")).unwrap();
    let sidecar = SidecarProcess::start(
        &[],
        &[
            ("LIVEKIT_SERVER_URL", "ws://127.0.0.1:7880"),
            ("LIVEKIT_API_KEY", "APIsighup"),
            (
                "LIVEKIT_API_SECRET",
                "sighup-secret-0123456789abcdefghijklmnop",
            ),
            ("SIDECAR_AUTH_ALGORITHMS", "RS256"),
            // The callers carry no iss/aud: the documented opt-out (this test is about reloading).
            ("SIDECAR_AUTH_ALLOW_ANY_ISSUER_AUDIENCE", "true"),
            ("SIDECAR_AUTH_PUBLIC_KEYS_FILE", keys.to_str().unwrap()),
        ],
    );
    let http = Http::new();
    let first = caller_signed_by("rsa-private.pem");
    let second = caller_signed_by("rsa2-private.pem");
    assert_eq!(status_with(&sidecar, &http, &first), 200);
    assert_eq!(status_with(&sidecar, &http, &second), 401);

    // The file changes; nothing happens until SIGHUP (the environment source has no watcher).
    std::fs::write(&keys, fixture("rsa2-public.pem")).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(status_with(&sidecar, &http, &first), 200);
    sidecar.signal(Signal::HUP);
    wait_for_status(&sidecar, &http, &second, 200);
    assert_eq!(status_with(&sidecar, &http, &first), 401);

    // A broken file: SIGHUP reports the failure and keeps serving with the last good keys.
    std::fs::write(&keys, "not a key").unwrap();
    sidecar.signal(Signal::HUP);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = http
            .get(&sidecar.metrics_url("/metrics"), None)
            .unwrap()
            .text;
        if metrics.contains("livekit_sidecar_config_reloads_total{result=\"failure\"} 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the failed reload is not in the metrics:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status_with(&sidecar, &http, &second), 200);
    assert!(
        sidecar
            .stderr()
            .contains("keeping the last good configuration")
    );
}
