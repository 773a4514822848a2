//! Who owns `<name>-livekit`, against the strict fake API server: objects this config does not
//! control are refused untouched, the deletion policy decides whether the Secret outlives its
//! config, drift is judged over the fields this operator's manager owns only, two writers racing
//! on generated credentials never both win, and a rotation's Event survives a failed write.

use livekit_operator_testkit as common;

use common::configs::*;
use common::fake_api::Call;
use common::harness::*;
use http::Method;
use livekit_contract::keys;
use livekit_operator::credentials::ApiCredentials;
use livekit_operator::reconcile;
use serde_json::{Value, json};
use std::sync::Arc;

fn owned_writes(calls: &[Call]) -> Vec<String> {
    writes(calls)
        .into_iter()
        .filter(|w| w.contains("-livekit"))
        .collect()
}

/// A Secret or ConfigMap as `kubectl create` leaves it.
fn foreign(kind: &str, name: &str, extra_meta: Value) -> Value {
    let mut meta = json!({"name": name, "namespace": NS});
    common::fake_api::store::merge_patch(&mut meta, &extra_meta);
    json!({"apiVersion": "v1", "kind": kind, "metadata": meta, "data": {"mine": "dmFsdWU="}})
}

#[tokio::test]
async fn an_object_of_the_owned_name_this_config_does_not_control_is_refused_untouched() {
    let cases = [
        // Created by hand, no labels at all.
        ("secrets", "Secret", json!({})),
        ("configmaps", "ConfigMap", json!({})),
        // Controlled by something else (or a deleted config the garbage collector has not reached).
        (
            "secrets",
            "Secret",
            json!({"labels": {"app.kubernetes.io/managed-by": "livekit-operator",
                              "livekit.kraken.dev/config": "chat"},
                   "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "other",
                                        "uid": "0b0e6a3c-0000-4000-8000-0000000000ff",
                                        "controller": true}]}),
        ),
        // Labelled for another config.
        (
            "secrets",
            "Secret",
            json!({"labels": {"app.kubernetes.io/managed-by": "livekit-operator",
                              "livekit.kraken.dev/config": "other"}}),
        ),
    ];
    for (kind, kind_name, meta) in cases {
        let h = Harness::new("chat", SECRET_REF_SPEC);
        h.put_secret(livekit_keys("APIsource00001", SOURCE_SECRET));
        h.api.put(
            kind,
            NS,
            "chat-livekit",
            foreign(kind_name, "chat-livekit", meta),
        );
        let before = h.api.get(kind, NS, "chat-livekit").unwrap();
        for _ in 0..2 {
            h.reconcile().await.unwrap();
        }
        let calls = h.api.take_calls();
        assert_eq!(
            owned_writes(&calls),
            Vec::<String>::new(),
            "{kind} {before}"
        );
        assert_eq!(h.api.get(kind, NS, "chat-livekit").unwrap(), before);
        let status = h.status();
        assert_eq!(
            ready(&status),
            ("False".into(), "OwnedObjectConflict".into())
        );
        let message = status["conditions"][0]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("{kind_name} \"chat-livekit\"")),
            "{message}"
        );
        // One Warning, not one per reconcile.
        assert_eq!(
            events(&calls),
            [("Warning".into(), "OwnedObjectConflict".into())]
        );
    }
}

#[tokio::test]
async fn labelling_an_existing_secret_for_the_config_hands_it_over_deliberately() {
    let h = Harness::new("chat", SECRET_REF_SPEC);
    h.put_secret(livekit_keys("APIsource00001", SOURCE_SECRET));
    h.api.put(
        "secrets",
        NS,
        "chat-livekit",
        foreign(
            "Secret",
            "chat-livekit",
            json!({"labels": {"app.kubernetes.io/managed-by": "livekit-operator",
                              "livekit.kraken.dev/config": "chat"}}),
        ),
    );
    h.reconcile().await.unwrap();
    assert_eq!(ready(&h.status()), ("True".into(), "Reconciled".into()));
    let data = h.owned_secret();
    assert_eq!(data[keys::API_KEY], "APIsource00001");
    // The apply does not take what it never owned: the user's key stays theirs.
    assert_eq!(data["mine"], "value");
    h.api.take_calls();
    h.reconcile().await.unwrap();
    assert_eq!(owned_writes(&h.api.take_calls()), Vec::<String>::new());
}

fn recreate(h: &Harness, spec: &str) {
    let c = config(&h.name, spec);
    h.api.put(
        "livekitconfigs",
        NS,
        &h.name,
        serde_json::to_value(&c).unwrap(),
    );
}

#[tokio::test]
async fn a_retained_secret_outlives_its_config_and_returns_to_a_new_config_of_that_name() {
    let h = Harness::new("chat", GENERATE_SPEC);
    h.put_secret(app_jwt());
    h.reconcile().await.unwrap();
    let generated = h.owned_secret();
    let secret = h.api.get("secrets", NS, "chat-livekit").unwrap();
    assert!(
        secret["metadata"].get("ownerReferences").is_none(),
        "{secret}"
    );

    // Deleted (the fake garbage-collects dependents as the real collector does).
    h.api.delete("livekitconfigs", NS, "chat");
    assert!(h.api.get("configmaps", NS, "chat-livekit").is_none());
    assert_eq!(h.owned_secret(), generated);

    // A new config of the same name (a new uid) takes the Secret and its keys back.
    recreate(&h, GENERATE_SPEC);
    h.reconcile().await.unwrap();
    assert_eq!(ready(&h.status()), ("True".into(), "Reconciled".into()));
    assert_eq!(h.owned_secret(), generated);
}

#[tokio::test]
async fn with_delete_the_secret_goes_with_its_config_and_retain_can_be_chosen_later() {
    let delete = format!("{GENERATE_SPEC}deletionPolicy: Delete\n");
    let h = Harness::new("chat", &delete);
    h.put_secret(app_jwt());
    h.reconcile().await.unwrap();
    let uid = h.config().metadata.uid.unwrap();
    let secret = h.api.get("secrets", NS, "chat-livekit").unwrap();
    assert_eq!(secret["metadata"]["ownerReferences"][0]["uid"], json!(uid));

    // Switched to Retain: the apply drops the ownerReference it owned.
    h.edit_config(|v| v["spec"]["deletionPolicy"] = json!("Retain"));
    h.reconcile().await.unwrap();
    let secret = h.api.get("secrets", NS, "chat-livekit").unwrap();
    assert!(
        secret["metadata"].get("ownerReferences").is_none(),
        "{secret}"
    );
    // And back: the garbage collector takes it with the config.
    h.edit_config(|v| v["spec"]["deletionPolicy"] = json!("Delete"));
    h.reconcile().await.unwrap();
    h.api.delete("livekitconfigs", NS, "chat");
    assert!(h.api.get("secrets", NS, "chat-livekit").is_none());
}

/// Changes an object as `kubectl edit` does: a full update by another field manager.
fn kubectl_edit(h: &Harness, kind: &str, f: impl FnOnce(&mut Value)) {
    let mut v = h.api.get(kind, NS, "chat-livekit").unwrap();
    f(&mut v);
    h.api
        .put_as("kubectl-edit", kind, NS, "chat-livekit", v)
        .unwrap();
}

#[tokio::test]
async fn fields_other_managers_add_never_cause_a_write_and_owned_values_are_restored() {
    let h = Harness::new("chat", SECRET_REF_SPEC);
    h.put_secret(livekit_keys("APIsource00001", SOURCE_SECRET));
    h.reconcile().await.unwrap();

    // Another manager adds data keys (one of them a name this operator writes for other
    // configs, not for this one), a label and an annotation to both objects.
    kubectl_edit(&h, "secrets", |v| {
        v["data"][keys::CALLER_HS_SECRET] = json!("aGFuZC13cml0dGVu");
        v["data"]["note"] = json!("eA==");
        v["metadata"]["labels"]["team"] = json!("a");
        v["metadata"]["annotations"]["example.com/owner"] = json!("team-a");
    });
    kubectl_edit(&h, "configmaps", |v| {
        v["data"]["extra.yaml"] = json!("x: 1");
        v["metadata"]["annotations"]["example.com/owner"] = json!("team-a");
    });
    h.api.take_calls();
    for _ in 0..3 {
        h.reconcile().await.unwrap();
    }
    let calls = h.api.take_calls();
    assert_eq!(writes(&calls), Vec::<String>::new(), "{calls:#?}");
    assert_eq!(h.owned_secret()[keys::CALLER_HS_SECRET], "hand-written");

    // A value this operator owns, changed by someone else, is restored, once. (The ConfigMap's:
    // a changed API key in the Secret is read as the keys' recorded state and goes through a
    // rotation instead.)
    let settings = |h: &Harness| {
        h.api.get("configmaps", NS, "chat-livekit").unwrap()["data"][keys::SETTINGS].clone()
    };
    let rendered = settings(&h);
    kubectl_edit(&h, "configmaps", |v| {
        v["data"][keys::SETTINGS] = json!("serverUrl: wss://elsewhere.example.com\n");
    });
    h.reconcile().await.unwrap();
    let calls = h.api.take_calls();
    assert_eq!(
        owned_writes(&calls),
        ["PATCH /api/v1/namespaces/apps/configmaps/chat-livekit"]
    );
    assert_eq!(events(&calls), [("Normal".into(), "Updated".into())]);
    assert_eq!(settings(&h), rendered);
    let cm = h.api.get("configmaps", NS, "chat-livekit").unwrap();
    assert_eq!(cm["data"]["extra.yaml"], "x: 1");
    assert_eq!(cm["metadata"]["annotations"]["example.com/owner"], "team-a");
    h.reconcile().await.unwrap();
    assert_eq!(writes(&h.api.take_calls()), Vec::<String>::new());
}

fn fixed(key: &'static str) -> impl Fn() -> ApiCredentials + Send + Sync + 'static {
    move || ApiCredentials::new(key, format!("{key}-secret-0123456789abcdefghijklmnop"))
}

/// A second replica on the same fake whose reads of the owned ConfigMap wait until `first` ran:
/// it read the Secret before the other writer wrote and writes after.
fn late_writer(
    h: &Harness,
    key: &'static str,
    first: Arc<reconcile::Context>,
) -> Arc<reconcile::Context> {
    let config = Arc::new(h.config());
    let client = h
        .api
        .client_interleaved(Method::GET, "/configmaps/chat-livekit", async move {
            reconcile::reconcile(config, first).await.unwrap();
        });
    Arc::new(Harness::context(client, &h.clock).with_generator(fixed(key)))
}

#[tokio::test]
async fn two_writers_racing_on_generated_credentials_never_both_win() {
    let h = Harness::new("chat", GENERATE_SPEC);
    h.edit_config(|v| delay_verification(v, 60));
    h.put_secret(app_jwt());
    let a = || {
        Arc::new(Harness::context(h.api.client(), &h.clock).with_generator(fixed("APIwriterA0001")))
    };

    // Both read "no Secret"; A creates it while B is between its read and its write.
    let b = late_writer(&h, "APIwriterB0001", a());
    let lost = reconcile::reconcile(Arc::new(h.config()), b.clone()).await;
    assert!(lost.is_err(), "the late writer must not succeed");
    assert_eq!(h.owned_secret()[keys::API_KEY], "APIwriterA0001");
    // B resumes from what is there and keeps A's credentials.
    reconcile::reconcile(Arc::new(h.config()), b).await.unwrap();
    assert_eq!(h.owned_secret()[keys::API_KEY], "APIwriterA0001");
    assert_eq!(ready(&h.status()), ("True".into(), "Reconciled".into()));

    // A rotation: both draw a new pending key from the same Secret version; only one lands.
    h.edit_config(|v| v["metadata"]["annotations"] = json!({"livekit.kraken.dev/rotate": "r1"}));
    let b = late_writer(
        &h,
        "APIwriterB0002",
        Arc::new(
            Harness::context(h.api.client(), &h.clock).with_generator(fixed("APIwriterA0002")),
        ),
    );
    h.api.take_calls();
    let lost = reconcile::reconcile(Arc::new(h.config()), b.clone()).await;
    assert!(lost.is_err(), "the late writer must not succeed");
    let pending = || secret_annotation(&h, "livekit.kraken.dev/pending-key");
    assert_eq!(pending().as_deref(), Some("APIwriterA0002"));
    reconcile::reconcile(Arc::new(h.config()), b).await.unwrap();
    assert_eq!(pending().as_deref(), Some("APIwriterA0002"));
    let keys_file = h.owned_secret()[keys::KEYS_FILE].clone();
    assert!(!keys_file.contains("APIwriterB"), "{keys_file}");
    // The loser's refused apply carried the version it read as its precondition.
    let applies: Vec<Call> = h
        .api
        .calls()
        .into_iter()
        .filter(|c| c.method == Method::PATCH && c.path.ends_with("/secrets/chat-livekit"))
        .collect();
    assert!(
        applies
            .iter()
            .all(|c| c.body["metadata"]["resourceVersion"].is_string()),
        "{applies:#?}"
    );
}

#[tokio::test]
async fn a_rotation_event_survives_a_failed_config_map_write_after_the_secret_write() {
    let h = Harness::new("chat", GENERATE_SPEC);
    h.edit_config(|v| delay_verification(v, 60));
    h.put_secret(app_jwt());
    h.reconcile().await.unwrap();
    h.api.take_calls();

    // A rotation and a settings change at once: the Secret write lands, the ConfigMap's fails.
    h.edit_config(|v| {
        v["metadata"]["annotations"] = json!({"livekit.kraken.dev/rotate": "r1"});
        v["spec"]["token"]["defaultTtlSeconds"] = json!(900);
    });
    h.api
        .fail(Method::PATCH, "/configmaps/chat-livekit", 500, 1);
    assert!(h.reconcile().await.is_err());
    let calls = h.api.take_calls();
    assert!(secret_annotation(&h, "livekit.kraken.dev/pending-key").is_some());
    assert!(!events(&calls).contains(&("Normal".into(), "Published".into())));

    // The next reconcile announces the phase the Secret already holds.
    h.reconcile().await.unwrap();
    let calls = h.api.take_calls();
    assert!(
        events(&calls).contains(&("Normal".into(), "Published".into())),
        "{:?}",
        events(&calls)
    );
    assert_eq!(h.status()["rotationPhase"], "Published");
}
