//! The real controller (`reconcile::run`, what `livekit-operator` runs once it leads) against the
//! strict fake API server, driven only by watch events: every change below is written to the fake
//! the way `kubectl` would, and the controller has to notice it through its watches. Waits poll the
//! fake with a deadline; nothing sleeps and hopes.

use livekit_operator_testkit as common;

use common::configs::*;
use common::fake_api::{Call, FakeApi};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use livekit_contract::keys;
use livekit_operator::crd::ROTATE_ANNOTATION;
use livekit_operator::desired::SOURCE_SELECTOR;
use livekit_operator::reconcile::{self, Backoff};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Long enough for a loaded 2-core machine; a healthy run needs milliseconds per step.
const WAIT: Duration = Duration::from_secs(20);

/// A running controller over the fake, with a clock the test moves.
struct Running {
    api: FakeApi,
    clock: Arc<Mutex<Timestamp>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// Distinct values for [`Self::touch`].
    touches: u32,
}

impl Running {
    /// Starts the controller on an empty fake. The backoff is far longer than any wait here, so a
    /// failed config can only recover within a test through a watch event, never through a retry.
    fn start() -> Self {
        let api = FakeApi::default();
        let clock = Arc::new(Mutex::new(common::t0()));
        let ctx = common::context(
            api.client(),
            Backoff::new(Duration::from_secs(600), Duration::from_secs(1200)),
            &clock,
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(reconcile::run(Arc::new(ctx), Some(NS.into()), async {
            let _ = stopped.await;
        }));
        Self {
            api,
            clock,
            stop: Some(stop),
            task: Some(task),
            touches: 0,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(WAIT, self.task.take().unwrap())
            .await
            .expect("the controller stops on shutdown")
            .unwrap();
    }

    fn put_secret(&self, name: &str, data: &[(&str, &str)]) {
        let mut v = serde_json::to_value(secret(name, data)).unwrap();
        v["apiVersion"] = json!("v1");
        v["kind"] = json!("Secret");
        self.api.put("secrets", NS, name, v);
    }

    /// Edits a stored object as `kubectl edit` would (labels the operator added stay).
    fn edit(&self, kind: &str, name: &str, f: impl FnOnce(&mut Value)) {
        let mut v = self.api.get(kind, NS, name).unwrap();
        f(&mut v);
        self.api.put(kind, NS, name, v);
    }

    /// A metadata-only change of the config (a label): a watch event that makes the controller
    /// look again without changing what it should do.
    fn touch(&mut self, name: &str) {
        self.touches += 1;
        let n = self.touches.to_string();
        self.edit("livekitconfigs", name, |v| {
            v["metadata"]["labels"]["test/touch"] = json!(n)
        });
    }

    fn advance(&self, seconds: i64) {
        let mut now = self.clock.lock().unwrap();
        *now = now.checked_add(SignedDuration::from_secs(seconds)).unwrap();
    }

    fn get(&self, kind: &str, name: &str) -> Option<Value> {
        self.api.get(kind, NS, name)
    }

    /// Polls the fake until `f` holds, or fails with `what` and the last value seen.
    async fn until<T: std::fmt::Debug>(&self, what: &str, f: impl Fn(&Self) -> (bool, T)) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (done, seen) = f(self);
            if done {
                return seen;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; last seen {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn owned_value(&self, config: &str, key: &str) -> Option<String> {
        let s = self.get("secrets", &format!("{config}-livekit"))?;
        let b64 = s["data"][key].as_str()?;
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        Some(String::from_utf8(bytes).unwrap())
    }

    /// `(Ready status, reason, rotationPhase)` of a config.
    fn ready(&self, config: &str) -> (String, String, String) {
        let Some(c) = self.get("livekitconfigs", config) else {
            return Default::default();
        };
        let s = &c["status"];
        let ready = s["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .cloned()
            .unwrap_or_default();
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        (
            text(&ready["status"]),
            text(&ready["reason"]),
            text(&s["rotationPhase"]),
        )
    }

    async fn until_ready(&self, config: &str, status: &str, reason: &str) {
        self.until(&format!("{config} Ready={status} {reason}"), |r| {
            let got = r.ready(config);
            (got.0 == status && got.1 == reason, got)
        })
        .await;
    }
}

/// Generated credentials (rotated with the annotation, accepted after a 60 s `Delay`, old keys
/// kept 600 s) and an HS256 caller secret read from the source Secret `app-jwt`.
fn generate_config(name: &str) -> Value {
    let mut c = serde_json::to_value(config(name, GENERATE_SPEC)).unwrap();
    c["spec"]["credentials"]["rotationGraceSeconds"] = json!(600);
    c["spec"]["credentials"]["rotation"] =
        json!({"verification": {"mode": "Delay", "delay": {"seconds": 60}}});
    // The fake assigns what the API server assigns.
    for k in ["uid", "resourceVersion", "generation"] {
        c["metadata"].as_object_mut().unwrap().remove(k);
    }
    c
}

const HS_1: &str = "first-shared-hmac-secret-of-32-bytes";
const HS_2: &str = "second-shared-hmac-secret-of-32-bytes";
const HS_3: &str = "third-shared-hmac-secret-of-32-bytes!";

fn writes(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.is_write())
        .map(|c| format!("{} {}", c.method, c.path))
        .collect()
}

#[tokio::test]
async fn one_config_through_its_life_by_watch_events_only() {
    let mut r = Running::start();

    // Create: the Secret the config reads, then the config.
    r.put_secret("app-jwt", &[("hs-secret", HS_1)]);
    r.api
        .put("livekitconfigs", NS, "chat", generate_config("chat"));
    r.until_ready("chat", "True", "Reconciled").await;
    assert!(r.get("configmaps", "chat-livekit").is_some());
    assert_eq!(
        r.owned_value("chat", keys::CALLER_HS_SECRET).as_deref(),
        Some(HS_1)
    );
    let first_key = r.owned_value("chat", keys::API_KEY).unwrap();
    // The operator labelled its source, so the source watch selects it from now on.
    assert_eq!(
        r.get("secrets", "app-jwt").unwrap()["metadata"]["labels"]["livekit.kraken.dev/source"],
        "true"
    );

    // Source change: the owned Secret follows.
    r.edit("secrets", "app-jwt", |v| {
        v["data"]["hs-secret"] = json!(b64(HS_2))
    });
    r.until("the owned Secret to carry the new caller secret", |r| {
        let v = r.owned_value("chat", keys::CALLER_HS_SECRET);
        (v.as_deref() == Some(HS_2), v)
    })
    .await;

    // A bad value in the source: Ready=False with the reason, the last good Secret kept.
    r.edit("secrets", "app-jwt", |v| {
        v["data"]["hs-secret"] = json!(b64("too-short"))
    });
    r.until_ready("chat", "False", "SourceValueInvalid").await;
    assert_eq!(
        r.owned_value("chat", keys::CALLER_HS_SECRET).as_deref(),
        Some(HS_2)
    );
    // Fixed: picked up through the watch (the retry is ten minutes away).
    r.edit("secrets", "app-jwt", |v| {
        v["data"]["hs-secret"] = json!(b64(HS_3))
    });
    r.until_ready("chat", "True", "Reconciled").await;
    assert_eq!(
        r.owned_value("chat", keys::CALLER_HS_SECRET).as_deref(),
        Some(HS_3)
    );

    // Rotation by annotation, through its phases. The Delay is measured on the test clock; each
    // step is noticed through a watch event (a label on the config).
    r.edit("livekitconfigs", "chat", |v| {
        v["metadata"]["annotations"][ROTATE_ANNOTATION] = json!("1")
    });
    r.until("Published", |r| {
        let s = r.ready("chat");
        (s.2 == "Published", s)
    })
    .await;
    assert_eq!(
        r.owned_value("chat", keys::API_KEY).as_deref(),
        Some(first_key.as_str()),
        "a Published key is not signed with"
    );
    r.advance(61);
    r.touch("chat");
    r.until("Active", |r| {
        let s = r.ready("chat");
        (s.2 == "Active", s)
    })
    .await;
    let new_key = r.owned_value("chat", keys::API_KEY).unwrap();
    assert_ne!(new_key, first_key);
    let keys_file = r.owned_value("chat", keys::KEYS_FILE).unwrap();
    assert!(
        keys_file.contains(&first_key),
        "the old key stays for its grace period"
    );
    r.advance(601);
    r.touch("chat");
    r.until("Retired", |r| {
        let s = r.ready("chat");
        (s.2 == "Retired", s)
    })
    .await;
    let keys_file = r.owned_value("chat", keys::KEYS_FILE).unwrap();
    assert!(!keys_file.contains(&first_key), "{keys_file}");
    assert!(keys_file.contains(&new_key), "{keys_file}");
    let events: Vec<String> = r
        .api
        .calls()
        .iter()
        .filter(|c| c.method == http::Method::POST && c.path.ends_with("/events"))
        .map(|c| c.body["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    for phase in ["Published", "Accepted", "Active", "Retired"] {
        assert!(events.iter().any(|e| e == phase), "{phase}: {events:?}");
    }

    // Steady state: a watch event that changes nothing, a reconcile that writes nothing.
    assert_steady(&mut r, "chat").await;

    // Deletion: the fake's garbage collector removes the ConfigMap with the config, the Secret is
    // retained (`deletionPolicy: Retain`, the default) as it was, and the controller writes neither
    // again. A second config reconciled afterwards proves the controller has seen the deletion
    // (watch events arrive in order).
    let retained = r.get("secrets", "chat-livekit").unwrap();
    r.api.delete("livekitconfigs", NS, "chat");
    assert_eq!(r.get("secrets", "chat-livekit").as_ref(), Some(&retained));
    assert!(r.get("configmaps", "chat-livekit").is_none());
    r.api
        .put("livekitconfigs", NS, "later", generate_config("later"));
    r.until_ready("later", "True", "Reconciled").await;
    assert_eq!(r.get("secrets", "chat-livekit").as_ref(), Some(&retained));
    assert!(r.get("configmaps", "chat-livekit").is_none());
    r.stop().await;
}

/// Touches `config` and waits for the reconcile it causes (its GET of the owned Secret), then
/// checks that nothing was written in that window.
async fn assert_steady(r: &mut Running, config: &str) {
    // Let any reconcile still queued finish first: two touches in a row, each awaited.
    for round in 0..2 {
        r.api.take_calls();
        r.touch(config);
        let owned = format!("/api/v1/namespaces/{NS}/secrets/{config}-livekit");
        let calls = r
            .until("a reconcile after the touch", |r| {
                let calls = r.api.calls();
                let seen = calls
                    .iter()
                    .any(|c| c.method == http::Method::GET && c.path == owned);
                (seen, calls)
            })
            .await;
        if round == 1 {
            assert_eq!(writes(&calls), Vec::<String>::new(), "steady state writes");
        }
    }
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn source_secrets_are_watched_as_metadata_only() {
    let r = Running::start();
    r.put_secret("app-jwt", &[("hs-secret", HS_1)]);
    r.api
        .put("livekitconfigs", NS, "chat", generate_config("chat"));
    r.until_ready("chat", "True", "Reconciled").await;

    // Every list and watch of Secrets asked for metadata only; the source watch among them. (The
    // one POST to that path is the owned Secret's create-only first write.)
    let secret_reads: Vec<Call> = r
        .api
        .calls()
        .into_iter()
        .filter(|c| {
            c.method == http::Method::GET && c.path == format!("/api/v1/namespaces/{NS}/secrets")
        })
        .collect();
    let selectors: Vec<String> = secret_reads
        .iter()
        .map(|c| c.param("labelSelector").unwrap_or_default())
        .collect();
    assert!(
        selectors.iter().any(|s| s == SOURCE_SELECTOR),
        "{selectors:?}"
    );
    for c in &secret_reads {
        assert!(
            c.accept.contains("as=PartialObjectMetadata"),
            "{} {}?{} asked for whole Secrets (accept {:?})",
            c.method,
            c.path,
            c.query,
            c.accept
        );
    }

    // And a change of the source still reaches the owned Secret through that watch.
    r.edit("secrets", "app-jwt", |v| {
        v["data"]["hs-secret"] = json!(b64(HS_2))
    });
    r.until("the owned Secret to follow its source", |r| {
        let v = r.owned_value("chat", keys::CALLER_HS_SECRET);
        (v.as_deref() == Some(HS_2), v)
    })
    .await;
    r.stop().await;
}
