//! Opt-in: the same scenarios against a real cluster (kind, k3d, …) from the current kubeconfig.
//! Nothing here runs by default; no cluster exists in CI.
//!
//! ```sh
//! LIVEKIT_OPERATOR_E2E=1 cargo nextest run -p livekit-operator --test cluster --run-ignored all
//! ```
//! It installs the CRD, works in a fresh namespace `lk-e2e-<random>` and deletes it at the end.

use livekit_operator_testkit as common;

use common::configs::SECRET_REF_SPEC;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, CustomResourceExt};
use livekit_contract::keys;
use livekit_operator::LiveKitConfig;
use livekit_operator::reconcile::{self, Context};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn key_of(secret: &Secret) -> Option<String> {
    let v = secret.data.as_ref()?.get(keys::API_KEY)?;
    Some(String::from_utf8_lossy(&v.0).into_owned())
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster; set LIVEKIT_OPERATOR_E2E=1 and run ignored tests"]
async fn against_a_real_cluster() {
    if std::env::var_os("LIVEKIT_OPERATOR_E2E").is_none() {
        eprintln!("LIVEKIT_OPERATOR_E2E is not set; skipping");
        return;
    }
    let client = Client::try_default().await.expect("a kubeconfig");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd_name = "livekitconfigs.livekit.kraken.dev";
    crds.patch(
        crd_name,
        &PatchParams::apply("livekit-operator-e2e").force(),
        &Patch::Apply(LiveKitConfig::crd()),
    )
    .await
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(crds, crd_name, conditions::is_crd_established()),
    )
    .await
    .expect("CRD established in time")
    .unwrap();

    let ns = format!("lk-e2e-{:08x}", rand::random::<u32>());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let configs: Api<LiveKitConfig> = Api::namespaced(client.clone(), &ns);
    let source = |key: &str| -> Secret {
        serde_json::from_value(json!({
            "metadata": {"name": "livekit-keys"},
            "stringData": {"api-key": key, "api-secret": "e2e-secret-0123456789abcdefghijklmnop"},
        }))
        .unwrap()
    };
    secrets
        .create(&PostParams::default(), &source("APIe2e00000001"))
        .await
        .unwrap();

    // An invalid spec is refused by the API server (CEL).
    let spec: serde_json::Value = serde_yaml::from_str(SECRET_REF_SPEC).unwrap();
    let mut bad = spec.clone();
    bad["credentials"]["generate"] = json!({});
    let bad_obj = json!({"apiVersion": "livekit.kraken.dev/v1alpha1", "kind": "LiveKitConfig", "metadata": {"name": "bad"}, "spec": bad});
    let refused = configs
        .create(
            &PostParams::default(),
            &serde_json::from_value(bad_obj).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("exactly one of"), "{refused}");

    let obj = json!({"apiVersion": "livekit.kraken.dev/v1alpha1", "kind": "LiveKitConfig", "metadata": {"name": "chat"}, "spec": spec});
    configs
        .create(
            &PostParams::default(),
            &serde_json::from_value(obj).unwrap(),
        )
        .await
        .unwrap();

    let ctx = Arc::new(Context::new(client.clone(), reconcile::reporter()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(reconcile::run(ctx, Some(ns.clone()), async {
        let _ = stopped.await;
    }));

    eventually("Ready=True", || async {
        let c = configs.get("chat").await.unwrap();
        livekit_operator::status::ready(c.status.as_ref()).is_some_and(|r| r.status == "True")
    })
    .await;
    assert_eq!(
        key_of(&secrets.get("chat-livekit").await.unwrap()).as_deref(),
        Some("APIe2e00000001")
    );

    // A source change reaches the owned Secret through the label-selected watch.
    secrets
        .replace("livekit-keys", &PostParams::default(), &{
            let mut s = secrets.get("livekit-keys").await.unwrap();
            s.data = None;
            s.string_data = source("APIe2e00000002").string_data;
            s
        })
        .await
        .unwrap();
    eventually("the new key in the owned Secret", || async {
        key_of(&secrets.get("chat-livekit").await.unwrap()).as_deref() == Some("APIe2e00000002")
    })
    .await;

    // A deleted owned object comes back.
    config_maps
        .delete("chat-livekit", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the ConfigMap recreated", || async {
        config_maps.get_opt("chat-livekit").await.unwrap().is_some()
    })
    .await;

    stop.send(()).unwrap();
    controller.await.unwrap();
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
}
