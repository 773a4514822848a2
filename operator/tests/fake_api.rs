//! The fake API server behaves like a real one where the operator depends on it. Each test talks to
//! it through a real kube `Client`, as the operator does.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::PartialObjectMeta;
use livekit_operator::LiveKitConfig;
use livekit_operator_testkit::configs::{NS, SECRET_REF_SPEC, config};
use livekit_operator_testkit::fake_api::FakeApi;
use serde_json::{Value, json};
use std::time::Duration;

fn code(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason),
        other => panic!("not an API error: {other}"),
    }
}

fn secret(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data})
}

#[tokio::test]
async fn apply_owns_fields_per_manager_removes_what_a_manager_omits_and_keeps_others() {
    let api = FakeApi::default();
    let secrets: Api<Secret> = Api::namespaced(api.client(), NS);
    let op = PatchParams::apply("operator");
    let full = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s", "labels": {"owned": "yes"},
                     "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "u1", "controller": true}]},
        "data": {"a": "YQ==", "b": "Yg=="}});
    secrets.patch("s", &op, &Patch::Apply(&full)).await.unwrap();
    // Someone else adds a key and a label.
    api.put_as("kubectl-edit", "secrets", NS, "s", {
        let mut v = api.get("secrets", NS, "s").unwrap();
        v["data"]["c"] = json!("Yw==");
        v["metadata"]["labels"]["theirs"] = json!("1");
        v
    })
    .unwrap();
    // The operator applies only a label: everything else it applied goes, the other manager's stays.
    let label_only = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s", "labels": {"src": "true"}}});
    let s = secrets
        .patch("s", &op, &Patch::Apply(&label_only))
        .await
        .unwrap();
    let data = s.data.unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["c"]);
    let labels = s.metadata.labels.unwrap();
    assert_eq!(labels.keys().collect::<Vec<_>>(), ["src", "theirs"]);
    assert!(s.metadata.owner_references.is_none());
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    let managed = s.metadata.managed_fields.unwrap();
    assert_eq!(managed.len(), 2, "{managed:?}");
    assert!(managed.iter().any(
        |m| m.manager.as_deref() == Some("operator") && m.operation.as_deref() == Some("Apply")
    ));

    // A different value for a field another manager owns conflicts, unless forced.
    let take = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s"}, "data": {"c": "eg=="}});
    let err = secrets
        .patch("s", &op, &Patch::Apply(&take))
        .await
        .unwrap_err();
    assert_eq!(code(err), (409, "Conflict".into()));
    let s = secrets
        .patch("s", &op.clone().force(), &Patch::Apply(&take))
        .await
        .unwrap();
    assert_eq!(s.data.unwrap()["c"].0, b"z");
    let owners = api.managers("secrets", NS, "s");
    let edit = owners.iter().find(|m| m.0 == "kubectl-edit").unwrap();
    assert!(!edit.2.iter().any(|p| p == "f:data.f:c"), "{owners:?}");
    // Same value: no conflict, shared ownership.
    let same = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s", "labels": {"theirs": "1"}}});
    secrets
        .patch("s", &PatchParams::apply("third"), &Patch::Apply(&same))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_no_op_apply_changes_nothing_and_preconditions_answer_409() {
    let api = FakeApi::default();
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), NS);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
    let pp = PatchParams::apply("m");
    let first = cms.patch("c", &pp, &Patch::Apply(&cm)).await.unwrap();
    let again = cms.patch("c", &pp, &Patch::Apply(&cm)).await.unwrap();
    assert_eq!(
        first.metadata.resource_version,
        again.metadata.resource_version
    );

    let mut stale = first.clone();
    stale.data = Some([("k".to_string(), "w".to_string())].into());
    cms.replace("c", &PostParams::default(), &stale)
        .await
        .unwrap();
    let err = cms
        .replace("c", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(code(err), (409, "Conflict".into()));
    let mut with_rv = cm.clone();
    with_rv["metadata"]["resourceVersion"] = json!("1");
    let err = cms
        .patch("c", &pp, &Patch::Apply(&with_rv))
        .await
        .unwrap_err();
    assert_eq!(code(err), (409, "Conflict".into()));
    let err = cms
        .create(&PostParams::default(), &serde_json::from_value(cm).unwrap())
        .await
        .unwrap_err();
    assert_eq!(code(err), (409, "AlreadyExists".into()));
}

#[tokio::test]
async fn secret_type_is_immutable_and_only_one_owner_is_the_controller() {
    let api = FakeApi::default();
    let secrets: Api<Secret> = Api::namespaced(api.client(), NS);
    let pp = PatchParams::apply("m");
    secrets
        .patch("s", &pp, &Patch::Apply(secret("s", json!({"a": "YQ=="}))))
        .await
        .unwrap();
    let mut tls = secret("s", json!({"a": "YQ=="}));
    tls["type"] = json!("kubernetes.io/tls");
    let err = secrets
        .patch("s", &pp, &Patch::Apply(&tls))
        .await
        .unwrap_err();
    assert_eq!(code(err), (422, "Invalid".into()));
    let mut two = secret("t", json!({}));
    two["metadata"]["ownerReferences"] = json!([
        {"apiVersion": "v1", "kind": "X", "name": "a", "uid": "1", "controller": true},
        {"apiVersion": "v1", "kind": "X", "name": "b", "uid": "2", "controller": true},
    ]);
    let err = secrets
        .patch("t", &pp, &Patch::Apply(&two))
        .await
        .unwrap_err();
    assert_eq!(code(err), (422, "Invalid".into()));
}

#[tokio::test]
async fn spec_changes_bump_generation_and_status_is_a_subresource() {
    let api = FakeApi::default();
    let configs: Api<LiveKitConfig> = Api::namespaced(api.client(), NS);
    let mut c = config("chat", SECRET_REF_SPEC);
    c.metadata.uid = None;
    c.metadata.resource_version = None;
    let created = configs.create(&PostParams::default(), &c).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    // Metadata and status do not bump the generation; a status in a main write is ignored.
    let annotate = json!({"metadata": {"annotations": {"a": "b"}}, "status": {"apiKey": "x"}});
    let v = configs
        .patch("chat", &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .unwrap();
    assert_eq!(v.metadata.generation, Some(1));
    assert!(v.status.is_none());
    let status = json!({"apiVersion": "livekit.kraken.dev/v1alpha1", "kind": "LiveKitConfig",
                        "status": {"apiKey": "APIx"}});
    let v = configs
        .patch_status("chat", &PatchParams::apply("op"), &Patch::Apply(&status))
        .await
        .unwrap();
    assert_eq!(v.metadata.generation, Some(1));
    assert_eq!(v.status.unwrap().api_key.as_deref(), Some("APIx"));
    let spec = json!({"spec": {"region": "eu"}});
    let v = configs
        .patch("chat", &PatchParams::default(), &Patch::Merge(&spec))
        .await
        .unwrap();
    assert_eq!(v.metadata.generation, Some(2));
    assert_eq!(v.status.unwrap().api_key.as_deref(), Some("APIx"));
}

#[tokio::test]
async fn watches_stream_added_modified_deleted_with_selector_transitions() {
    let api = FakeApi::default();
    let secrets: Api<Secret> = Api::namespaced(api.client(), NS);
    api.put("secrets", NS, "before", secret("before", json!({})));
    let wp = WatchParams::default().labels("w=1");
    let mut stream = secrets.watch(&wp, "0").await.unwrap().boxed();
    let pp = PatchParams::apply("m");
    let mut labelled = secret("x", json!({"a": "YQ=="}));
    labelled["metadata"]["labels"] = json!({"w": "1"});
    secrets
        .patch("x", &pp, &Patch::Apply(&labelled))
        .await
        .unwrap();
    labelled["data"]["a"] = json!("Yg==");
    secrets
        .patch("x", &pp, &Patch::Apply(&labelled))
        .await
        .unwrap();
    let unlabelled = secret("x", json!({"a": "Yg=="}));
    secrets
        .patch("x", &pp, &Patch::Apply(&unlabelled))
        .await
        .unwrap();
    secrets
        .patch("x", &pp, &Patch::Apply(&labelled))
        .await
        .unwrap();
    api.delete("secrets", NS, "x");
    let mut seen = Vec::new();
    for _ in 0..5 {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(match ev {
            WatchEvent::Added(s) => format!("ADDED {}", s.metadata.name.unwrap()),
            WatchEvent::Modified(s) => format!("MODIFIED {}", s.metadata.name.unwrap()),
            WatchEvent::Deleted(s) => format!("DELETED {}", s.metadata.name.unwrap()),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(
        seen,
        ["ADDED x", "MODIFIED x", "DELETED x", "ADDED x", "DELETED x"]
    );

    // A watch from a resourceVersion replays what happened after it; metadata-only carries no data.
    let metas: Api<PartialObjectMeta<Secret>> = Api::namespaced(api.client(), NS);
    let rv = api.resource_version();
    api.put(
        "secrets",
        NS,
        "later",
        secret("later", json!({"p": "cA=="})),
    );
    let mut m = metas
        .watch_metadata(&WatchParams::default(), &rv.to_string())
        .await
        .unwrap()
        .boxed();
    match m.try_next().await.unwrap().unwrap() {
        WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("later")),
        other => panic!("{other:?}"),
    }
    let raw = api.calls().into_iter().last().unwrap();
    assert!(raw.accept.contains("PartialObjectMetadata"));
    api.close_watches();
    assert!(m.try_next().await.unwrap().is_none(), "a closed watch ends");
}

#[tokio::test]
async fn deleting_an_owner_collects_its_dependents() {
    let api = FakeApi::default();
    api.put(
        "livekitconfigs",
        NS,
        "chat",
        serde_json::to_value(config("chat", SECRET_REF_SPEC)).unwrap(),
    );
    let uid = api.get("livekitconfigs", NS, "chat").unwrap()["metadata"]["uid"].clone();
    let mut owned = secret("chat-livekit", json!({}));
    owned["metadata"]["ownerReferences"] = json!([{"apiVersion": "livekit.kraken.dev/v1alpha1", "kind": "LiveKitConfig", "name": "chat", "uid": uid, "controller": true}]);
    api.put("secrets", NS, "chat-livekit", owned);
    api.put("secrets", NS, "other", secret("other", json!({})));
    api.delete("livekitconfigs", NS, "chat");
    assert!(api.get("secrets", NS, "chat-livekit").is_none());
    assert!(api.get("secrets", NS, "other").is_some());
}

#[tokio::test]
async fn leases_are_created_read_and_patched_with_apply_conflicts() {
    let api = FakeApi::default();
    let leases: Api<Lease> = Api::namespaced(api.client(), NS);
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "l"}})).unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let take = |who: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "spec": {"holderIdentity": who, "leaseDurationSeconds": 15}})
    };
    leases
        .patch(
            "l",
            &PatchParams::apply("kube-lease-manager-a"),
            &Patch::Apply(take("a")),
        )
        .await
        .unwrap();
    let err = leases
        .patch(
            "l",
            &PatchParams::apply("kube-lease-manager-b"),
            &Patch::Apply(take("b")),
        )
        .await
        .unwrap_err();
    assert_eq!(code(err), (409, "Conflict".into()));
    let renew = json!({"spec": {"renewTime": "2026-01-01T00:00:00.000000Z"}});
    leases
        .patch("l", &PatchParams::default(), &Patch::Strategic(&renew))
        .await
        .unwrap();
    let l = leases.get("l").await.unwrap();
    assert_eq!(l.spec.unwrap().holder_identity.as_deref(), Some("a"));
}
