//! `rotation_never_breaks_join`: a key rotation under steady token load never breaks a join.
//!
//! The pieces are the real ones wherever this machine allows: the operator's rotation decisions
//! (`desired::desired`, the phase state machine) and its server API check
//! (`rotation_io::check_if_due`), the real sidecar binary reading a kubelet-style projected volume,
//! and a LiveKit stand-in that, like livekit-server, loads `keys.yaml` only when it (re)starts and
//! checks every token with the official Python SDK's verifier. The test plays the reconciler (read
//! the owned Secret, observe, decide, write) and the kubelet (publish each written Secret into the
//! app pod's volume at once and into livekit-server's volume a little later, mode 0440 as
//! livekit-server demands), and restarts the stand-in at random moments throughout.
//!
//! Every token the sidecar issues is presented at once to the stand-in's join check
//! (`/rtc/validate`): zero may fail, and no token may be signed with a key the stand-in had not
//! loaded. Tokens are also checked with the official Node and Python verifiers afterwards.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use livekit_contract::{keys, parse_keys_file};
use livekit_integration_tests::livekit_standin::StandIn;
use livekit_integration_tests::sidecar::{Http, SidecarProcess};
use livekit_integration_tests::verifiers::{Verifier, VerifyRequest};
use livekit_integration_tests::{app, kubelet};
use livekit_operator::LiveKitConfig;
use livekit_operator::credentials::{self, ApiCredentials};
use livekit_operator::desired::{self, Desired, Inputs};
use livekit_operator::owned;
use livekit_operator::rotation::workload::HashKey;
use livekit_operator::rotation::{Observation, Phase};
use livekit_operator::rotation_io;
use serde_json::{Value, json};

/// A hard bound on the scenario (it takes about ten seconds).
const SCENARIO_LIMIT: Duration = Duration::from_secs(45);

fn config(standin_url: &str, rotate: Option<&str>) -> LiveKitConfig {
    let mut metadata = json!({"name": "chat", "namespace": "apps", "uid": "0b0e6a3c-0000-4000-8000-00000000c0de", "generation": 1});
    if let Some(value) = rotate {
        metadata["annotations"] = json!({"livekit.kraken.dev/rotate": value});
    }
    serde_json::from_value(json!({
        "apiVersion": "livekit.kraken.dev/v1alpha1",
        "kind": "LiveKitConfig",
        "metadata": metadata,
        "spec": {
            "serverUrl": standin_url.replace("http://", "ws://"),
            "credentials": {
                "generate": {},
                "rotationGraceSeconds": 3,
                "rotation": {
                    "verification": {"mode": "ServerApi", "serverApi": {
                        "url": standin_url, "consecutiveSuccesses": 2, "intervalSeconds": 1, "timeoutSeconds": 2,
                    }},
                    "deadlineSeconds": 600,
                },
            },
            "token": {"defaultTtlSeconds": 900, "maxTtlSeconds": 3600},
            "auth": {"algorithms": ["HS256"], "secretRef": {"name": "app-jwt", "hsSecretKey": "hs-secret"}},
        }
    }))
    .expect("a LiveKitConfig")
}

fn issuer(token: &str) -> String {
    let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(token).unwrap();
    claims["iss"].as_str().unwrap().to_owned()
}

/// The reconciler's part, without an API server: the owned Secret lives here.
struct Operator {
    secret: Option<Secret>,
    runtime: tokio::runtime::Runtime,
    writes: usize,
}

impl Operator {
    /// One reconcile: observe (the server API check when due), decide, and "apply" when the
    /// Secret changes. Returns what was decided and whether it was written.
    fn reconcile(&mut self, config: &LiveKitConfig) -> (Desired, bool) {
        let now = Timestamp::now();
        let state = desired::recorded(self.secret.as_ref());
        // The reconciler's own check (rotation_io), against the stand-in.
        let check = self
            .runtime
            .block_on(rotation_io::check_if_due(config, &state, now));
        let inputs = Inputs {
            credentials_source: None,
            auth_source: Some(app::jwt_secret()),
            existing_secret: self.secret.clone(),
            fresh_credentials: credentials::generate(&mut rand::rng()),
            fresh_hash_key: HashKey::generate(&mut rand::rng()),
            observation: Observation {
                check,
                ..Observation::default()
            },
            now,
        };
        let d = desired::desired(config, &inputs).expect("the operator renders this config");
        let written = !owned::secret_up_to_date(self.secret.as_ref(), &d.secret);
        if written {
            self.secret = Some(d.secret.clone());
            self.writes += 1;
        }
        (d, written)
    }
}

/// The kubelet of livekit-server's pod: publishes Secrets into its volume in order, each after a
/// random lag (kubelets sync pods independently), mode 0440.
fn livekit_kubelet(
    dir: &Path,
) -> (
    mpsc::Sender<Vec<(String, String)>>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel::<Vec<(String, String)>>();
    let dir = dir.to_owned();
    let handle = std::thread::spawn(move || {
        let mut lag = 7u64;
        for files in rx {
            lag = (lag * 37 + 11) % 300;
            std::thread::sleep(Duration::from_millis(lag));
            kubelet::write_with_mode(&dir, &keys_file_only(&files), 0o440);
        }
    });
    (tx, handle)
}

/// livekit-server's volume: only `keys.yaml` of the owned Secret.
fn keys_file_only(files: &[(String, String)]) -> Vec<(&str, String)> {
    as_refs(files)
        .into_iter()
        .filter(|(k, _)| *k == keys::KEYS_FILE)
        .collect()
}

fn as_refs(files: &[(String, String)]) -> Vec<(&str, String)> {
    files.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()
}

struct Join {
    token: String,
    key: String,
    joined: Result<bool, String>,
    loaded_before: Vec<String>,
}

#[test]
fn rotation_never_breaks_join() {
    let app_dir = tempfile::tempdir().unwrap();
    let livekit_dir = tempfile::tempdir().unwrap();

    // The first key: rendered, published to both volumes, and the stand-in started with it.
    // (Its URL must be known to render the config: start it on a placeholder key file first.)
    let bootstrap =
        ApiCredentials::new("APIbootstrap0001", "bootstrap-secret-0123456789abcdefghij");
    kubelet::write_with_mode(
        livekit_dir.path(),
        &[(
            keys::KEYS_FILE,
            livekit_contract::render_keys_file([(
                bootstrap.key.as_str(),
                bootstrap.secret.as_str(),
            )]),
        )],
        0o440,
    );
    let key_file = livekit_dir.path().join(keys::KEYS_FILE);
    let mut standin = StandIn::start(&key_file).expect("the stand-in starts");
    let url = standin.url();

    let mut operator = Operator {
        secret: None,
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        writes: 0,
    };
    let (first, _) = operator.reconcile(&config(&url, None));
    let first_files = kubelet::projected(&first.secret, &first.config_map);
    kubelet::write(app_dir.path(), &as_refs(&first_files));
    kubelet::write_with_mode(livekit_dir.path(), &keys_file_only(&first_files), 0o440);
    standin.restart();
    let old = first.keys.signing().clone();
    let client = standin.client();
    assert_eq!(
        client.loaded_keys().unwrap(),
        std::slice::from_ref(&old.key)
    );

    let sidecar = SidecarProcess::start(&["--config-dir", app_dir.path().to_str().unwrap()], &[]);
    let http = Http::new();
    let token_url = sidecar.api_url("/api/livekit/token");
    let bearer = app::caller();

    // Steady load: each token is presented at once to the stand-in's join check.
    let stop = Arc::new(AtomicBool::new(false));
    let joins = Arc::new(Mutex::new(Vec::<Join>::new()));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (http, url, bearer, stop, joins, client) = (
                http.clone(),
                token_url.clone(),
                bearer.clone(),
                stop.clone(),
                joins.clone(),
                client.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let loaded_before = client.loaded_keys().unwrap_or_default();
                    let reply = http
                        .post_json(&url, Some(&bearer), &json!({"roomId": "room-1"}))
                        .unwrap();
                    assert_eq!(reply.status, 200, "the sidecar issues: {}", reply.text);
                    let token = reply.json()["token"].as_str().unwrap().to_owned();
                    // A restart in progress refuses connections: retry, as a client reconnects.
                    let deadline = Instant::now() + Duration::from_secs(10);
                    let joined = loop {
                        match client.validate_join(&token) {
                            Err(_) if Instant::now() < deadline => {
                                std::thread::sleep(Duration::from_millis(20))
                            }
                            other => break other,
                        }
                    };
                    joins.lock().unwrap().push(Join {
                        key: issuer(&token),
                        token,
                        joined,
                        loaded_before,
                    });
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();

    // The stand-in restarts at arbitrary moments, as livekit-server pods do (rollouts, evictions).
    let standin = Arc::new(Mutex::new(standin));
    let restarter = {
        let (standin, stop) = (standin.clone(), stop.clone());
        let seed = u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
        );
        eprintln!("restart schedule seed {seed}");
        std::thread::spawn(move || {
            let mut x = seed | 1;
            while !stop.load(Ordering::SeqCst) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                std::thread::sleep(Duration::from_millis(1000 + x % 2500));
                if !stop.load(Ordering::SeqCst) {
                    standin.lock().unwrap().restart();
                }
            }
        })
    };

    // The operator: a rotation requested after a second of load, reconciled every 100 ms until the
    // old key has retired.
    let (livekit_tx, livekit_kubelet) = livekit_kubelet(livekit_dir.path());
    std::thread::sleep(Duration::from_secs(1));
    let rotating = config(&url, Some("rotate-1"));
    let started = Instant::now();
    let mut phases = Vec::new();
    let new_key = loop {
        assert!(
            started.elapsed() < SCENARIO_LIMIT,
            "the rotation did not finish; phases {phases:?}"
        );
        let (d, written) = operator.reconcile(&rotating);
        if written {
            let files = kubelet::projected(&d.secret, &d.config_map);
            kubelet::write(app_dir.path(), &as_refs(&files));
            livekit_tx.send(files.clone()).unwrap();
            phases.push(d.keys.state.phase);
            if d.keys.state.phase == Some(Phase::Published) {
                let keys_file = &keys_file_only(&files)[0].1;
                let pairs = parse_keys_file(keys_file).unwrap();
                assert_eq!(pairs.len(), 2, "both keys published");
                assert_eq!(
                    d.keys.signing(),
                    &old,
                    "Published never switches the signer"
                );
            }
        }
        if d.keys.state.phase == Some(Phase::Retired) {
            break d.keys.signing().clone();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Keep the load on a moment after the last write, then stop everything.
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.join().unwrap();
    }
    restarter.join().unwrap();
    drop(livekit_tx);
    livekit_kubelet.join().unwrap();
    let restarts = standin.lock().unwrap().restarts();

    assert!(restarts >= 2, "the stand-in restarted {restarts} times");

    let joins = std::mem::take(&mut *joins.lock().unwrap());
    let failed: Vec<_> = joins
        .iter()
        .filter(|j| j.joined != Ok(true))
        .map(|j| (&j.key, &j.joined))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} joins failed: {:?}",
        failed.len(),
        joins.len(),
        &failed[..failed.len().min(5)]
    );
    // No token was signed with a key the stand-in had not loaded when it was issued: whenever the
    // stand-in's keys were read just before a token, the token's key was among them.
    let unaccepted: Vec<_> = joins
        .iter()
        .filter(|j| !j.loaded_before.is_empty() && !j.loaded_before.contains(&j.key))
        .map(|j| (&j.key, &j.loaded_before))
        .collect();
    assert!(
        unaccepted.is_empty(),
        "signed with unaccepted keys: {:?}",
        &unaccepted[..unaccepted.len().min(5)]
    );
    let old_tokens = joins.iter().filter(|j| j.key == old.key).count();
    let new_tokens = joins.iter().filter(|j| j.key == new_key.key).count();
    assert_eq!(
        old_tokens + new_tokens,
        joins.len(),
        "only the two keys ever signed"
    );
    assert!(
        old_tokens > 0 && new_tokens > 0,
        "load before and after the switch: {old_tokens} / {new_tokens}"
    );
    eprintln!(
        "{} joins ({old_tokens} with the old key, {new_tokens} with the new), {restarts} stand-in restarts, {} operator writes",
        joins.len(),
        operator.writes
    );

    let order: Vec<Phase> = phases.iter().flatten().copied().collect();
    let mut dedup = order.clone();
    dedup.dedup();
    assert_eq!(dedup, Phase::ALL, "every phase, in order: {order:?}");

    // The official SDKs agree, on a sample of both keys' tokens.
    let secret_of = |key: &str| {
        if key == old.key {
            &old.secret
        } else {
            &new_key.secret
        }
    };
    let sample: Vec<VerifyRequest> = [old.key.as_str(), new_key.key.as_str()]
        .iter()
        .flat_map(|key| joins.iter().filter(move |j| j.key == *key).take(10))
        .map(|j| VerifyRequest::new(&j.key, secret_of(&j.key), j.token.as_str()))
        .collect();
    for verifier in Verifier::ALL {
        for result in verifier.verify(&sample) {
            result.expect_ok();
            assert_eq!(result.identity(), Some("alice"), "{}", verifier.name());
        }
    }
    drop(sidecar);
}

/// The stand-in refuses what livekit-server refuses at start, so a test cannot pass with a key file
/// a real server would not load.
#[test]
fn the_standin_refuses_key_files_livekit_server_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let good = livekit_contract::render_keys_file([("APIk", "a-secret-of-32-characters-000000")]);
    kubelet::write(dir.path(), &[(keys::KEYS_FILE, good.clone())]);
    let refused = StandIn::start(&dir.path().join(keys::KEYS_FILE))
        .err()
        .expect("0644 is refused");
    assert!(refused.0.contains("others permissions"), "{refused:?}");

    let short = livekit_contract::render_keys_file([("APIk", "only-31-characters-000000000000")]);
    kubelet::write_with_mode(dir.path(), &[(keys::KEYS_FILE, short)], 0o440);
    let refused = StandIn::start(&dir.path().join(keys::KEYS_FILE))
        .err()
        .expect("too short");
    assert!(refused.0.contains("at least 32 characters"), "{refused:?}");

    kubelet::write_with_mode(dir.path(), &[(keys::KEYS_FILE, good)], 0o440);
    let standin = StandIn::start(&dir.path().join(keys::KEYS_FILE)).expect("accepted");
    assert_eq!(standin.client().loaded_keys().unwrap(), ["APIk"]);
}
