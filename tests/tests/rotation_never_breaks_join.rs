//! `rotation_never_breaks_join`: a key rotation under steady token load never breaks a join.
//!
//! Everything that decides is the real thing: the operator's `reconcile()` runs against the strict
//! fake API server (`livekit-operator-testkit`), which holds the LiveKitConfig and the owned Secret
//! and ConfigMap; the real sidecar binary reads a kubelet-style projected volume; and a LiveKit
//! stand-in that, like livekit-server, loads `keys.yaml` only when it (re)starts and checks every
//! token with the official Python SDK's verifier. Two kubelets copy the owned objects from the fake
//! into the volumes (a `..data` symlink swap), each with its own lag: all of the owned Secret and
//! ConfigMap into the app pod's volume, `keys.yaml` alone (mode 0440) into livekit-server's. Like a
//! pod restart after its key file changed, the stand-in restarts [`RESTART_AFTER`] after each change
//! reaches its volume; `verification.mode` is unset, so the operator must choose `ServerApi` here.
//!
//! Every token the sidecar issues is presented at once to the stand-in's join check
//! (`/rtc/validate`): zero may fail, and no token may be signed with a key the stand-in had not
//! loaded. Tokens are also checked with the official Node and Python verifiers afterwards.
//!
//! Sensitivity: the stand-in loads a published key [`RESTART_AFTER`] after its volume has it, and
//! the app's volume follows the fake within [`APP_LAG`]. A sidecar that signs with a key as soon as
//! `keys.yaml` holds it (the old single-write rotation) therefore signs with it for more than a
//! second before the stand-in can accept it, under a load of a token every few milliseconds: such a
//! rotation fails this test on every run, not by chance.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use livekit_contract::keys;
use livekit_integration_tests::livekit_standin::StandIn;
use livekit_integration_tests::sidecar::{Http, SidecarProcess};
use livekit_integration_tests::verifiers::{Verifier, VerifyRequest, issuer};
use livekit_integration_tests::{app, kubelet};
use livekit_operator::LiveKitConfig;
use livekit_operator::credentials::ApiCredentials;
use livekit_operator::reconcile::{self, Context};
use livekit_operator::rotation::record;
use livekit_operator_testkit::fake_api::FakeApi;
use serde_json::{Value, json};

/// A hard bound on the scenario (it takes about fifteen seconds).
const SCENARIO_LIMIT: Duration = Duration::from_secs(45);
/// How long the app pod's kubelet takes to copy a change of the owned objects into its volume.
const APP_LAG: Duration = Duration::from_millis(150);
/// How long livekit-server's kubelet takes to copy a change of `keys.yaml` into its volume.
const LIVEKIT_LAG: Duration = Duration::from_millis(400);
/// How long after its key file changed the stand-in restarts (a rollout reaching the pod).
const RESTART_AFTER: Duration = Duration::from_millis(1500);
/// How often the operator reconciles, and the kubelets look at the fake.
const RECONCILE_EVERY: Duration = Duration::from_millis(100);
const POLL: Duration = Duration::from_millis(20);

const NS: &str = "apps";
const OWNED: &str = "chat-livekit";

fn config(standin_url: &str) -> Value {
    json!({
        "apiVersion": "livekit.kraken.dev/v1alpha1",
        "kind": "LiveKitConfig",
        "metadata": {"name": "chat", "namespace": NS, "uid": "0b0e6a3c-0000-4000-8000-00000000c0de"},
        "spec": {
            "serverUrl": standin_url.replace("http://", "ws://"),
            "credentials": {
                "generate": {},
                "rotationGraceSeconds": 3,
                "rotation": {
                    // No mode: the operator must find the stand-in reachable and choose ServerApi.
                    "verification": {"serverApi": {
                        "url": standin_url, "consecutiveSuccesses": 2, "intervalSeconds": 1, "timeoutSeconds": 2,
                    }},
                    "deadlineSeconds": 600,
                },
            },
            "token": {"defaultTtlSeconds": 900, "maxTtlSeconds": 3600},
            "auth": {"algorithms": ["HS256"], "secretRef": {"name": "app-jwt", "hsSecretKey": "hs-secret"}},
        }
    })
}

/// The owned Secret and ConfigMap as the fake holds them now, if both exist.
fn owned(api: &FakeApi) -> Option<(Secret, ConfigMap)> {
    let secret = serde_json::from_value(api.get("secrets", NS, OWNED)?).ok()?;
    let config_map = serde_json::from_value(api.get("configmaps", NS, OWNED)?).ok()?;
    Some((secret, config_map))
}

fn annotation(secret: &Secret, name: &str) -> Option<String> {
    secret.metadata.annotations.as_ref()?.get(name).cloned()
}

/// A volume's files: name and content.
type Files = Vec<(String, String)>;

/// A kubelet: watches the owned objects in the fake and, `lag` after each change of what `select`
/// picks from them, publishes that into `dir` with `mode`, then tells `published`.
fn kubelet(
    api: FakeApi,
    dir: &Path,
    lag: Duration,
    mode: u32,
    select: fn(Files) -> Files,
    published: Option<mpsc::Sender<()>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let dir = dir.to_owned();
    std::thread::spawn(move || {
        let mut last = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            if let Some((secret, config_map)) = owned(&api) {
                let files = select(kubelet::projected(&secret, &config_map));
                if files != last {
                    std::thread::sleep(lag);
                    let refs: Vec<(&str, String)> =
                        files.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
                    kubelet::write_with_mode(&dir, &refs, mode);
                    last = files;
                    if let Some(tx) = &published {
                        let _ = tx.send(());
                    }
                }
            }
            std::thread::sleep(POLL);
        }
    })
}

fn keys_file_only(files: Files) -> Files {
    files
        .into_iter()
        .filter(|(k, _)| k == keys::KEYS_FILE)
        .collect()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + SCENARIO_LIMIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
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
    let stop = Arc::new(AtomicBool::new(false));

    // The stand-in's URL goes into the config, so it starts first, on a placeholder key file.
    kubelet::write_with_mode(
        livekit_dir.path(),
        &[(
            keys::KEYS_FILE,
            livekit_contract::render_keys_file([(
                "APIbootstrap0001",
                "bootstrap-secret-0123456789abcdefghij",
            )]),
        )],
        0o440,
    );
    let standin = StandIn::start(&livekit_dir.path().join(keys::KEYS_FILE)).expect("starts");
    let client = standin.client();
    let url = standin.url();

    // The fake API server holds the config and the app's caller-token Secret.
    let api = FakeApi::default();
    api.put("livekitconfigs", NS, "chat", config(&url));
    api.put(
        "secrets",
        NS,
        "app-jwt",
        serde_json::to_value(app::jwt_secret()).unwrap(),
    );

    // The operator: the real reconcile against the fake, every RECONCILE_EVERY. It records the
    // phases the owned Secret went through and the verification mode chosen for the rotation.
    let seen = Arc::new(Mutex::new(Vec::<(Option<String>, Option<String>)>::new()));
    let operator = {
        let (api, stop, seen) = (api.clone(), stop.clone(), seen.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            // kube's client spawns its request buffer: it needs the runtime.
            let _entered = runtime.enter();
            let ctx = Arc::new(Context::new(api.client(), reconcile::reporter()));
            while !stop.load(Ordering::SeqCst) {
                let config: LiveKitConfig =
                    serde_json::from_value(api.get("livekitconfigs", NS, "chat").unwrap()).unwrap();
                runtime
                    .block_on(reconcile::reconcile(Arc::new(config), ctx.clone()))
                    .expect("reconcile");
                if let Some((secret, _)) = owned(&api) {
                    let now = (
                        annotation(&secret, record::PHASE),
                        annotation(&secret, record::VERIFICATION),
                    );
                    let mut seen = seen.lock().unwrap();
                    if seen.last() != Some(&now) {
                        seen.push(now);
                    }
                }
                std::thread::sleep(RECONCILE_EVERY);
            }
        })
    };

    // The kubelets, and livekit-server's restarts after its key file changed.
    let (restart_tx, restart_rx) = mpsc::channel();
    let kubelets = [
        kubelet(
            api.clone(),
            app_dir.path(),
            APP_LAG,
            0o644,
            |files| files,
            None,
            stop.clone(),
        ),
        kubelet(
            api.clone(),
            livekit_dir.path(),
            LIVEKIT_LAG,
            0o440,
            keys_file_only,
            Some(restart_tx),
            stop.clone(),
        ),
    ];
    let standin = Arc::new(Mutex::new(standin));
    let restarter = {
        let standin = standin.clone();
        std::thread::spawn(move || {
            for () in restart_rx {
                std::thread::sleep(RESTART_AFTER);
                standin.lock().unwrap().restart();
            }
        })
    };

    // The first key: created by the operator, loaded by the stand-in; then the sidecar starts.
    wait_for("the first key", || owned(&api).is_some());
    let old_key = owned(&api).unwrap().0;
    let old = ApiCredentials::new(
        String::from_utf8(old_key.data.as_ref().unwrap()[keys::API_KEY].0.clone()).unwrap(),
        String::from_utf8(old_key.data.as_ref().unwrap()[keys::API_SECRET].0.clone()).unwrap(),
    );
    wait_for("the stand-in to load the first key", || {
        client.loaded_keys().ok().as_deref() == Some(std::slice::from_ref(&old.key))
    });
    wait_for("the app volume", || {
        app_dir.path().join(keys::API_KEY).exists()
    });
    let sidecar = SidecarProcess::start(&["--config-dir", app_dir.path().to_str().unwrap()], &[]);
    let http = Http::new();
    let token_url = sidecar.api_url("/api/livekit/token");
    let bearer = app::caller();

    // Steady load: each token is presented at once to the stand-in's join check.
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

    // A rotation requested after a second of load, as a user would: the rotate annotation.
    std::thread::sleep(Duration::from_secs(1));
    let mut c = api.get("livekitconfigs", NS, "chat").unwrap();
    c["metadata"]["annotations"] = json!({"livekit.kraken.dev/rotate": "rotate-1"});
    api.put("livekitconfigs", NS, "chat", c);
    // Done when the old key has retired and the stand-in, restarted, holds only the new one.
    let mut new_key = None;
    wait_for("the rotation to finish", || {
        let Some((secret, _)) = owned(&api) else {
            return false;
        };
        let key =
            String::from_utf8(secret.data.as_ref().unwrap()[keys::API_KEY].0.clone()).unwrap();
        let secret_value =
            String::from_utf8(secret.data.as_ref().unwrap()[keys::API_SECRET].0.clone()).unwrap();
        let retired = annotation(&secret, record::PHASE).as_deref() == Some("Retired");
        let loaded = client.loaded_keys().unwrap_or_default();
        let done = retired && loaded == [key.clone()];
        if done {
            new_key = Some(ApiCredentials::new(key, secret_value));
        }
        done
    });
    let new_key = new_key.unwrap();
    // Keep the load on a moment after the last restart, then stop everything.
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.join().unwrap();
    }
    operator.join().unwrap();
    for k in kubelets {
        k.join().unwrap();
    }
    restarter.join().unwrap();
    let restarts = standin.lock().unwrap().restarts();

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
    assert_ne!(old.key, new_key.key, "a new key");
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
    let seen = seen.lock().unwrap().clone();
    eprintln!(
        "{} joins ({old_tokens} with the old key, {new_tokens} with the new), {restarts} stand-in restarts, owned Secret went through {seen:?}",
        joins.len(),
    );
    assert!(restarts >= 3, "the stand-in restarted {restarts} times");

    // Every phase, in order, and the mode the operator chose for the rotation.
    let mut phases: Vec<&str> = seen.iter().filter_map(|(p, _)| p.as_deref()).collect();
    phases.dedup();
    assert_eq!(phases, ["Published", "Accepted", "Active", "Retired"]);
    assert!(
        seen.iter()
            .filter(|(p, _)| p.as_deref() == Some("Published"))
            .all(|(_, mode)| mode.as_deref() == Some("ServerApi")),
        "the stand-in answers, so ServerApi: {seen:?}"
    );

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
