//! A reconcile harness: one LiveKitConfig in a [`FakeApi`], a reconciler [`Context`] on a
//! test-controlled clock, and readers of what the reconciler wrote (calls, Events, conditions).

use crate::configs::{NS, config};
use crate::fake_api::{Call, FakeApi};
use http::Method;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::controller::Action;
use livekit_operator::LiveKitConfig;
use livekit_operator::reconcile::{self, Backoff, Context};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// As long as livekit-server requires (32 characters).
pub const SOURCE_SECRET: &str = "source-secret-0123456789abcdefghij";

/// One config in a fake API server, and a reconciler context with a test-controlled clock.
pub struct Harness {
    pub api: FakeApi,
    pub ctx: Arc<Context>,
    pub clock: Arc<Mutex<Timestamp>>,
    pub name: String,
}

impl Harness {
    pub fn new(name: &str, spec: &str) -> Self {
        let api = FakeApi::default();
        let config = config(name, spec);
        api.put(
            "livekitconfigs",
            NS,
            name,
            serde_json::to_value(&config).unwrap(),
        );
        let clock = Arc::new(Mutex::new(crate::t0()));
        let ctx = Self::context(api.client(), &clock);
        Self {
            api,
            ctx: Arc::new(ctx),
            clock,
            name: name.into(),
        }
    }

    /// A reconciler context on `client` reading `clock` (a second replica, a racing writer), with
    /// the backoff the tests expect (5 s doubling to 5 min).
    pub fn context(client: kube::Client, clock: &Arc<Mutex<Timestamp>>) -> Context {
        crate::context(
            client,
            Backoff::new(Duration::from_secs(5), Duration::from_secs(300)),
            clock,
        )
    }

    pub fn config(&self) -> LiveKitConfig {
        serde_json::from_value(self.api.get("livekitconfigs", NS, &self.name).unwrap()).unwrap()
    }

    pub fn edit_config(&self, f: impl FnOnce(&mut Value)) {
        let mut v = self.api.get("livekitconfigs", NS, &self.name).unwrap();
        f(&mut v);
        self.api.put("livekitconfigs", NS, &self.name, v);
    }

    pub fn put_secret(&self, s: Secret) {
        let name = s.metadata.name.clone().unwrap();
        let mut v = serde_json::to_value(&s).unwrap();
        v["apiVersion"] = json!("v1");
        v["kind"] = json!("Secret");
        self.api.put("secrets", NS, &name, v);
    }

    pub async fn reconcile(&self) -> Result<Action, livekit_operator::Error> {
        reconcile::reconcile(Arc::new(self.config()), self.ctx.clone()).await
    }

    pub fn owned_secret(&self) -> std::collections::BTreeMap<String, String> {
        let s: Secret = serde_json::from_value(
            self.api
                .get("secrets", NS, &format!("{}-livekit", self.name))
                .unwrap(),
        )
        .unwrap();
        s.data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
            .collect()
    }

    pub fn status(&self) -> Value {
        self.api.get("livekitconfigs", NS, &self.name).unwrap()["status"].clone()
    }

    pub fn advance(&self, d: SignedDuration) {
        let mut t = self.clock.lock().unwrap();
        *t += d;
    }
}

pub fn writes(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.is_write())
        .map(|c| format!("{} {}", c.method, c.path))
        .collect()
}

pub fn events(calls: &[Call]) -> Vec<(String, String)> {
    calls
        .iter()
        .filter(|c| c.method == Method::POST && c.path.ends_with("/events"))
        .map(|c| {
            (
                c.body["type"].as_str().unwrap().to_owned(),
                c.body["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub fn ready(status: &Value) -> (String, String) {
    condition(status, "Ready")
}

pub fn condition(status: &Value, type_: &str) -> (String, String) {
    let c = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap();
    (
        c["status"].as_str().unwrap().into(),
        c["reason"].as_str().unwrap().into(),
    )
}

/// Sets `credentials.rotation` to the `Delay` verification of `seconds`.
pub fn delay_verification(v: &mut Value, seconds: u32) {
    v["spec"]["credentials"]["rotation"] = json!({"verification": {"mode": "Delay", "delay": {"seconds": seconds}}, "deadlineSeconds": 1800});
}

/// An annotation of the config's owned Secret.
pub fn secret_annotation(h: &Harness, name: &str) -> Option<String> {
    let owned = h
        .api
        .get("secrets", NS, &format!("{}-livekit", h.name))
        .unwrap();
    owned["metadata"]["annotations"][name]
        .as_str()
        .map(str::to_owned)
}
