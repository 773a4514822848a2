//! Rotation through the reconciler against the strict fake API server: the livekit-server workload
//! restarted only when keys.yaml changes and a key accepted only once that rollout is complete, and
//! crash-resume: the operator dies between every pair of writes of a rotation (every call after the
//! k-th write fails, as when the process is gone) and a fresh process resumes to the same end state.

use livekit_operator_testkit as common;

use base64::Engine as _;
use common::configs::*;
use common::fake_api::FakeApi;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use livekit_operator::LiveKitConfig;
use livekit_operator::reconcile::{self, Backoff, Context};
use livekit_operator::rotation::workload::{HashKey, keys_hash};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SOURCE_1: &str = "source-secret-1-0123456789abcdefghij";
const SOURCE_2: &str = "source-secret-2-0123456789abcdefghij";
const HASH: &str = "livekit.kraken.dev/keys-hash";

/// A client that lets `budget` writes through and then fails every call: the process died.
fn dying_client(api: &FakeApi, budget: Option<usize>) -> (Client, Arc<AtomicUsize>) {
    let inner = api.client();
    let writes = Arc::new(AtomicUsize::new(0));
    let counted = writes.clone();
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let inner = inner.clone();
        let counted = counted.clone();
        async move {
            let dead = budget.is_some_and(|b| counted.load(Ordering::SeqCst) >= b);
            if dead {
                return Err::<http::Response<kube::client::Body>, kube::Error>(
                    kube::Error::Service("operator process gone".into()),
                );
            }
            let write = req.method() != http::Method::GET;
            let res = inner.send(req).await;
            if write {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            res
        }
    });
    (Client::new(service, "default"), writes)
}

struct World {
    api: FakeApi,
    clock: Arc<Mutex<Timestamp>>,
}

impl World {
    fn new() -> Self {
        let api = FakeApi::default();
        let mut c = serde_json::to_value(config("chat", SECRET_REF_SPEC)).unwrap();
        c["spec"]["credentials"]["rotationGraceSeconds"] = json!(600);
        c["spec"]["credentials"]["rotation"] =
            json!({"verification": {"mode": "Delay", "delay": {"seconds": 60}}});
        c["spec"]["livekitServer"] =
            json!({"workloadRef": {"kind": "Deployment", "name": "livekit-server"}});
        api.put("livekitconfigs", NS, "chat", c);
        api.put(
            "deployments",
            NS,
            "livekit-server",
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "livekit-server", "namespace": NS},
                   "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "livekit"}},
                            "template": {"metadata": {"labels": {"app": "livekit"}}}}}),
        );
        let world = Self {
            api,
            clock: Arc::new(Mutex::new(common::t0())),
        };
        world.put_source(SOURCE_1, "APIsource00001");
        world
    }

    fn put_source(&self, secret: &str, key: &str) {
        let mut s = serde_json::to_value(livekit_keys(key, secret)).unwrap();
        s["apiVersion"] = json!("v1");
        s["kind"] = json!("Secret");
        self.api.put("secrets", NS, "livekit-keys", s);
    }

    fn context(&self, budget: Option<usize>) -> (Arc<Context>, Arc<AtomicUsize>) {
        let (client, writes) = dying_client(&self.api, budget);
        let ctx = common::context(
            client,
            Backoff::new(Duration::from_secs(5), Duration::from_secs(300)),
            &self.clock,
        );
        (Arc::new(ctx), writes)
    }

    fn deployment(&self) -> Value {
        self.api.get("deployments", NS, "livekit-server").unwrap()
    }

    fn template_hash(&self) -> Option<String> {
        self.deployment()["spec"]["template"]["metadata"]["annotations"][HASH]
            .as_str()
            .map(str::to_owned)
    }

    /// The deployment controller: the current template rolled out on every replica.
    fn roll_out(&self) {
        let mut d = self.deployment();
        let generation = d["metadata"]["generation"].clone();
        d["status"] = json!({"observedGeneration": generation, "replicas": 2,
                             "updatedReplicas": 2, "availableReplicas": 2, "readyReplicas": 2});
        self.api
            .put_as(
                "deployment-controller",
                "deployments",
                NS,
                "livekit-server",
                d,
            )
            .unwrap();
    }

    fn config(&self) -> LiveKitConfig {
        serde_json::from_value(self.api.get("livekitconfigs", NS, "chat").unwrap()).unwrap()
    }

    fn advance(&self, secs: i64) {
        *self.clock.lock().unwrap() += SignedDuration::from_secs(secs);
    }

    fn annotations(&self) -> Value {
        self.api.get("secrets", NS, "chat-livekit").unwrap()["metadata"]["annotations"].clone()
    }

    /// What a rotation leaves behind: the owned Secret's data and rotation annotations, the
    /// workload's restart annotation, and the status without its timestamps.
    fn end_state(&self) -> Value {
        let secret = self.api.get("secrets", NS, "chat-livekit").unwrap();
        let mut status = self.api.get("livekitconfigs", NS, "chat").unwrap()["status"].clone();
        for c in status["conditions"].as_array_mut().unwrap() {
            c.as_object_mut().unwrap().remove("lastTransitionTime");
        }
        // The hash key is random per config (made by whichever process wrote first): what must
        // hold is that the restart annotation is the keyed hash of the keys.yaml written.
        let mut annotations = secret["metadata"]["annotations"].clone();
        let hash_key = annotations
            .as_object_mut()
            .unwrap()
            .remove("livekit.kraken.dev/keys-hash-key")
            .expect("the hash key is recorded");
        let keys_file = base64::engine::general_purpose::STANDARD
            .decode(secret["data"]["keys.yaml"].as_str().unwrap())
            .unwrap();
        let keyed = keys_hash(
            &HashKey(hash_key.as_str().unwrap().to_owned()),
            std::str::from_utf8(&keys_file).unwrap(),
        );
        assert_eq!(
            self.template_hash(),
            Some(keyed),
            "restarted for the keys.yaml written"
        );
        json!({"data": secret["data"], "annotations": annotations, "status": status})
    }

    /// The reasons of the Events posted, in order.
    fn events(&self) -> Vec<String> {
        self.posted_events()
            .iter()
            .map(|e| e["reason"].as_str().unwrap().to_owned())
            .collect()
    }

    fn posted_events(&self) -> Vec<Value> {
        self.api
            .calls()
            .iter()
            .filter(|c| c.method == http::Method::POST && c.path.ends_with("/events"))
            .map(|c| c.body.clone())
            .collect()
    }

    /// The rotation phase the owned Secret records.
    fn phase(&self) -> Value {
        self.annotations()["livekit.kraken.dev/rotation-phase"].clone()
    }

    /// The config's status, and its `Rotating` condition.
    fn rotating(&self) -> (Value, Value) {
        let status = self.api.get("livekitconfigs", NS, "chat").unwrap()["status"].clone();
        let condition = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Rotating")
            .unwrap()
            .clone();
        (status, condition)
    }
}

async fn reconcile(world: &World, ctx: &Arc<Context>) -> Result<(), livekit_operator::Error> {
    reconcile::reconcile(Arc::new(world.config()), ctx.clone())
        .await
        .map(|_| ())
}

/// The scenario: create, roll out, change the source key, then everything the rotation needs, with
/// the deployment controller finishing each restart. With `budget`, the first process dies after
/// that many writes and a fresh one takes over. Returns the end state and the writes made.
async fn scenario(budget: Option<usize>) -> (World, usize) {
    let world = World::new();
    let (mut ctx, writes) = world.context(budget);
    let mut crashed = false;
    let steps: Vec<(i64, bool)> = vec![
        (0, false), // create
        (0, true),  // source key changed: Published
        (10, false),
        (60, false), // delay over: Accepted
        (0, false),  // Active
        (0, false),
        (600, false), // grace over: Retired
        (0, false),
    ];
    for (secs, change_source) in steps {
        world.advance(secs);
        if change_source {
            world.put_source(SOURCE_2, "APIsource00002");
        }
        // A reconcile, retried once by a fresh process when this one died.
        if reconcile(&world, &ctx).await.is_err() {
            assert!(
                budget.is_some() && !crashed,
                "only the injected crash fails"
            );
            crashed = true;
            ctx = world.context(None).0;
            reconcile(&world, &ctx).await.unwrap();
        }
        world.roll_out();
    }
    let total = writes.load(Ordering::SeqCst);
    assert_eq!(crashed, budget.is_some(), "the injected crash happened");
    (world, total)
}

#[tokio::test]
async fn the_workload_restarts_only_when_keys_change_and_a_key_waits_for_its_rollout() {
    let world = World::new();
    let (ctx, _) = world.context(None);
    reconcile(&world, &ctx).await.unwrap();
    let first = world
        .template_hash()
        .expect("restarted for the first keys.yaml");
    assert_eq!(world.deployment()["metadata"]["generation"], 2);
    world.roll_out();
    reconcile(&world, &ctx).await.unwrap();
    assert_eq!(
        world.template_hash().unwrap(),
        first,
        "no restart without a change"
    );

    world.put_source(SOURCE_2, "APIsource00002");
    reconcile(&world, &ctx).await.unwrap();
    let published = world.template_hash().unwrap();
    assert_ne!(published, first, "restarted for the published key");
    assert_eq!(world.phase(), "Published");

    // The delay is over but the restart has not rolled out: still Published, and it says why.
    world.advance(60);
    reconcile(&world, &ctx).await.unwrap();
    assert_eq!(world.phase(), "Published");
    let (status, rotating) = world.rotating();
    assert!(
        rotating["message"]
            .as_str()
            .unwrap()
            .contains("spec update to be observed"),
        "{rotating}"
    );
    assert_eq!(status["apiKey"], "APIsource00001");

    world.roll_out();
    reconcile(&world, &ctx).await.unwrap();
    assert_eq!(world.phase(), "Accepted");
    reconcile(&world, &ctx).await.unwrap();
    assert_eq!(world.phase(), "Active");
    assert_eq!(
        world.template_hash().unwrap(),
        published,
        "the switch does not change keys.yaml: no restart"
    );
    let events = world.events();
    for reason in ["Restarted", "Published", "Accepted", "Active"] {
        assert!(
            events.contains(&reason.to_owned()),
            "{reason} in {events:?}"
        );
    }
}

#[tokio::test]
async fn a_rotation_resumes_to_the_same_end_state_after_a_crash_between_any_two_writes() {
    let (clean, total) = scenario(None).await;
    let expected = clean.end_state();
    assert_eq!(
        expected["annotations"]["livekit.kraken.dev/rotation-phase"],
        "Retired"
    );
    assert_eq!(expected["status"]["apiKey"], "APIsource00002");
    assert!(total >= 8, "a rotation makes several writes: {total}");
    eprintln!("{total} writes, each a crash point");
    for budget in 0..total {
        let (world, _) = scenario(Some(budget)).await;
        assert_eq!(world.end_state(), expected, "crash after write {budget}");
        let events = world.events();
        for reason in ["Published", "Accepted", "Active", "Retired"] {
            assert!(
                events.contains(&reason.to_owned()),
                "crash after write {budget}: {reason} not announced in {events:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_key_livekit_never_accepts_stays_published_and_is_reported_once_past_its_deadline() {
    let world = World::new();
    // ServerApi against a loopback port where nothing listens: every check fails to connect.
    let mut c = world.api.get("livekitconfigs", NS, "chat").unwrap();
    c["spec"]["credentials"]["rotation"] = json!({
        "verification": {"mode": "ServerApi", "serverApi": {"url": "http://127.0.0.1:9", "intervalSeconds": 10, "timeoutSeconds": 1}},
        "deadlineSeconds": 300,
    });
    c["spec"].as_object_mut().unwrap().remove("livekitServer");
    world.api.put("livekitconfigs", NS, "chat", c);
    let (ctx, _) = world.context(None);
    reconcile(&world, &ctx).await.unwrap();
    world.put_source(SOURCE_2, "APIsource00002");
    for _ in 0..40 {
        reconcile(&world, &ctx).await.unwrap();
        world.advance(20);
    }
    let (status, condition) = world.rotating();
    assert_eq!(status["rotationPhase"], "Published");
    assert_eq!(status["apiKey"], "APIsource00001", "never signs with it");
    assert_eq!(condition["status"], "True");
    assert_eq!(condition["reason"], "AcceptanceDeadlineExceeded");
    let message = condition["message"].as_str().unwrap();
    assert!(
        message.contains("could not be reached") && message.contains("APIsource00002"),
        "{message}"
    );
    let warnings = world
        .events()
        .iter()
        .filter(|r| *r == "AcceptanceDeadlineExceeded")
        .count();
    assert_eq!(warnings, 1, "announced once");
    assert_eq!(
        world.api.get("secrets", NS, "chat-livekit").unwrap()["data"]["api-key"],
        json!(base64::engine::general_purpose::STANDARD.encode("APIsource00001"))
    );
}

/// The restart annotation sits in a pod template, readable by many who may not read Secrets: it must
/// not let them test guesses of a weak source secret offline. Two configs with the same keys.yaml
/// therefore carry different hashes, and neither is a plain hash of keys.yaml.
#[tokio::test]
async fn the_restart_annotation_cannot_be_recomputed_from_keys_yaml() {
    use sha2::Digest;
    let mut hashes = Vec::new();
    for _ in 0..2 {
        let world = World::new();
        let (ctx, _) = world.context(None);
        reconcile(&world, &ctx).await.unwrap();
        let secret = world.api.get("secrets", NS, "chat-livekit").unwrap();
        let keys_file = base64::engine::general_purpose::STANDARD
            .decode(secret["data"]["keys.yaml"].as_str().unwrap())
            .unwrap();
        let hash = world.template_hash().expect("restarted");
        for prefix in [&b""[..], b"livekit-keys.yaml\0"] {
            let mut plain = sha2::Sha256::new();
            plain.update(prefix);
            plain.update(&keys_file);
            let plain: String = plain.finalize()[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_ne!(hash, plain, "a plain hash of keys.yaml");
        }
        hashes.push((keys_file, hash));
    }
    assert_eq!(hashes[0].0, hashes[1].0, "the same keys.yaml");
    assert_ne!(hashes[0].1, hashes[1].1, "keyed per config");
}

/// A loopback HTTP server answering every request 401, as livekit-server answers a request without
/// a token; returns its base URL.
async fn answers_401() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(|| async { http::StatusCode::UNAUTHORIZED });
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A loopback port where nothing listens (bound, then released): connections are refused.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

/// With `verification.mode` unset, the operator probes the server API in the reconcile that
/// publishes a key, records the mode it chose with the key, and says which and why.
async fn detected(url: &str) -> (World, Value, Vec<String>) {
    let world = World::new();
    let mut c = world.api.get("livekitconfigs", NS, "chat").unwrap();
    c["spec"]["credentials"]["rotation"] = json!({
        "verification": {"serverApi": {"url": url, "timeoutSeconds": 1}},
    });
    c["spec"].as_object_mut().unwrap().remove("livekitServer");
    world.api.put("livekitconfigs", NS, "chat", c);
    let (ctx, _) = world.context(None);
    reconcile(&world, &ctx).await.unwrap();
    assert_eq!(
        world.annotations()["livekit.kraken.dev/pending-key-verification"],
        Value::Null
    );
    world.put_source(SOURCE_2, "APIsource00002");
    reconcile(&world, &ctx).await.unwrap();
    let annotations = world.annotations();
    assert_eq!(world.phase(), "Published");
    let rotating = world.rotating().1["message"].clone();
    let published: Vec<String> = world
        .posted_events()
        .iter()
        .filter(|e| e["reason"] == "Published")
        .map(|e| e["note"].as_str().unwrap().to_owned())
        .collect();
    let summary = json!({"mode": annotations["livekit.kraken.dev/pending-key-verification"],
                         "why": annotations["livekit.kraken.dev/pending-key-verification-reason"],
                         "condition": rotating});
    (world, summary, published)
}

#[tokio::test]
async fn an_unset_mode_chooses_the_server_api_when_livekit_answers_even_401() {
    let url = answers_401().await;
    let (world, summary, events) = detected(&url).await;
    assert_eq!(summary["mode"], "ServerApi", "{summary}");
    assert!(
        summary["why"].as_str().unwrap().contains("401"),
        "{summary}"
    );
    let condition = summary["condition"].as_str().unwrap();
    assert!(condition.contains("verified by ServerApi"), "{condition}");
    assert!(
        events.len() == 1 && events[0].contains("verified by ServerApi"),
        "{events:?}"
    );
    // The checks then see 401 (the key is not loaded): never accepted, never signed with.
    let (ctx, _) = world.context(None);
    for _ in 0..5 {
        world.advance(3600);
        reconcile(&world, &ctx).await.unwrap();
    }
    assert_eq!(world.phase(), "Published");
    assert_eq!(
        world.annotations()["livekit.kraken.dev/pending-key-verification"],
        "ServerApi"
    );
    assert_eq!(world.rotating().0["apiKey"], "APIsource00001");
}

#[tokio::test]
async fn an_unset_mode_falls_back_to_the_delay_when_livekit_cannot_be_reached() {
    let (world, summary, events) = detected(&closed_port()).await;
    assert_eq!(summary["mode"], "Delay", "{summary}");
    assert!(
        summary["why"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{summary}"
    );
    assert!(
        events.len() == 1 && events[0].contains("verified by Delay"),
        "{events:?}"
    );
    // The default propagation period (600 s) applies: still Published before, Accepted after.
    let (ctx, _) = world.context(None);
    world.advance(599);
    reconcile(&world, &ctx).await.unwrap();
    assert_eq!(world.phase(), "Published");
    world.advance(1);
    reconcile(&world, &ctx).await.unwrap();
    assert_eq!(world.phase(), "Accepted");
}
