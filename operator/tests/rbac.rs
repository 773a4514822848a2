//! The chart's RBAC is derived from what the operator really calls. This test drives the operator
//! through its scenarios against the fake API server, maps every recorded request to the RBAC verb
//! and resource the API server would authorize, and compares that set with
//! `charts/livekit-operator/rbac-calls.yaml`, the list the chart's tests hold the rendered Roles to.
//! The webhook's calls (its LiveKitConfig lookup and the self-managed certificate loop) are held to
//! the file's `webhook_calls` the same way.

use livekit_operator_testkit as common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::configs::*;
use common::fake_api::{Call, FakeApi};
use http::Method;
use kube::runtime::events::Reporter;
use livekit_operator::reconcile::{self, Backoff, Context};
use serde_json::{Value, json};

type Rule = (String, String, String); // verb, group, resource

/// The verb and resource the API server authorizes a request as.
fn authorized_as(call: &Call) -> Vec<Rule> {
    let parts: Vec<&str> = call.path.trim_start_matches('/').split('/').collect();
    // /api/v1/[namespaces/{ns}/]{resource}[/{name}[/{sub}]] or /apis/{group}/{version}/...
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => (String::new(), rest),
        ["apis", group, _version, rest @ ..] => ((*group).to_owned(), rest),
        _ => panic!("unexpected path {}", call.path),
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] => rest,
        rest => rest,
    };
    let (resource, named) = match rest {
        [resource] => ((*resource).to_owned(), false),
        [resource, _name] => ((*resource).to_owned(), true),
        [resource, _name, sub] => (format!("{resource}/{sub}"), true),
        _ => panic!("unexpected path {}", call.path),
    };
    let verbs: Vec<&str> = match (&call.method, named) {
        (&Method::GET, false) if call.query.contains("watch=true") => vec!["watch"],
        (&Method::GET, false) => vec!["list"],
        (&Method::GET, true) => vec!["get"],
        (&Method::POST, _) => vec!["create"],
        // A server-side apply that finds no object creates it: authorized as create too.
        (&Method::PATCH, _)
            if call.content_type.contains("apply-patch") && !resource.contains('/') =>
        {
            vec!["patch", "create"]
        }
        (&Method::PATCH, _) => vec!["patch"],
        (&Method::PUT, _) => vec!["update"],
        (method, _) => panic!("unexpected method {method} {}", call.path),
    };
    verbs
        .into_iter()
        .map(|verb| (verb.to_owned(), group.clone(), resource.clone()))
        .collect()
}

fn declared(section: &str) -> BTreeSet<Rule> {
    let path = format!(
        "{}/../charts/livekit-operator/rbac-calls.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let file: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    file[section]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap().to_owned();
            (s("verb"), s("group"), s("resource"))
        })
        .collect()
}

fn context(api: &FakeApi) -> Arc<Context> {
    Arc::new(Context::with_clock(
        api.client(),
        Reporter {
            controller: "livekit-operator".into(),
            instance: None,
        },
        Backoff::new(Duration::from_millis(10), Duration::from_millis(50)),
        common::t0,
    ))
}

fn put_secret(api: &FakeApi, secret: k8s_openapi::api::core::v1::Secret) {
    let name = secret.metadata.name.clone().unwrap();
    let mut v = serde_json::to_value(secret).unwrap();
    v["apiVersion"] = json!("v1");
    v["kind"] = json!("Secret");
    api.put("secrets", NS, &name, v);
}

async fn reconcile_once(api: &FakeApi, ctx: &Arc<Context>, name: &str) {
    let config = serde_json::from_value(api.get("livekitconfigs", NS, name).unwrap()).unwrap();
    let _ = reconcile::reconcile(Arc::new(config), ctx.clone()).await;
}

#[tokio::test]
async fn the_chart_grants_exactly_what_the_operator_calls() {
    let api = FakeApi::default();
    let ctx = context(&api);

    // The controller: lists and watches, reconciles a config with a source Secret (label apply),
    // creates the owned objects, patches status, records Events.
    api.put(
        "livekitconfigs",
        NS,
        "chat",
        serde_json::to_value(config("chat", SECRET_REF_SPEC)).unwrap(),
    );
    put_secret(
        &api,
        livekit_keys("APIk0000000001", "source-secret-0123456789abcdefghij"),
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(reconcile::run(ctx.clone(), Some(NS.into()), async {
        let _ = rx.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while api
        .get("livekitconfigs", NS, "chat")
        .unwrap()
        .get("status")
        .is_none()
    {
        assert!(tokio::time::Instant::now() < deadline, "no reconcile");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap()
        .unwrap();

    // A missing source (a Warning Event), repeated (the Recorder patches the Event), then found;
    // a rotation of generated credentials.
    api.put(
        "livekitconfigs",
        NS,
        "lost",
        serde_json::to_value(config(
            "lost",
            SECRET_REF_SPEC.replace("livekit-keys", "nowhere").as_str(),
        ))
        .unwrap(),
    );
    reconcile_once(&api, &ctx, "lost").await;
    let mut found = livekit_keys("APIk0000000002", "source-secret-0123456789abcdefghij");
    found.metadata.name = Some("nowhere".into());
    put_secret(&api, found);
    reconcile_once(&api, &ctx, "lost").await;
    api.delete("secrets", NS, "nowhere");
    reconcile_once(&api, &ctx, "lost").await;
    api.put(
        "livekitconfigs",
        NS,
        "gen",
        serde_json::to_value(config("gen", GENERATE_SPEC)).unwrap(),
    );
    put_secret(&api, app_jwt());
    reconcile_once(&api, &ctx, "gen").await;
    let mut rotated = api.get("livekitconfigs", NS, "gen").unwrap();
    rotated["metadata"]["annotations"] = json!({"livekit.kraken.dev/rotate": "now"});
    api.put("livekitconfigs", NS, "gen", rotated);
    reconcile_once(&api, &ctx, "gen").await;

    // Configs that restart their livekit-server (Deployment and StatefulSet): get, then patch.
    for (name, kind, resource) in [
        ("srv-d", "Deployment", "deployments"),
        ("srv-s", "StatefulSet", "statefulsets"),
    ] {
        let mut c = serde_json::to_value(config(name, SECRET_REF_SPEC)).unwrap();
        c["spec"]["livekitServer"] =
            json!({"workloadRef": {"kind": kind, "name": "livekit-server"}});
        c["spec"]["credentials"]["rotation"] =
            json!({"verification": {"mode": "Delay", "delay": {"seconds": 60}}});
        api.put("livekitconfigs", NS, name, c);
        api.put(
            resource,
            NS,
            "livekit-server",
            json!({"apiVersion": "apps/v1", "kind": kind,
                   "metadata": {"name": "livekit-server", "namespace": NS, "generation": 1},
                   "spec": {"selector": {}, "template": {"metadata": {}}}}),
        );
        reconcile_once(&api, &ctx, name).await;
        let restarted = api.get(resource, NS, "livekit-server").unwrap();
        assert!(
            restarted["spec"]["template"]["metadata"]["annotations"]["livekit.kraken.dev/keys-hash"]
                .is_string(),
            "{kind} restarted"
        );
    }

    // Leader election: create the Lease, renew it at least once, release it.
    let lease = livekit_operator::leader::LeaseConfig {
        name: "livekit-operator".into(),
        namespace: NS.into(),
        identity: "a".into(),
        duration_seconds: 4,
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(50),
    };
    let mut election = livekit_operator::leader::start(api.client(), &lease)
        .await
        .unwrap();
    assert!(election.acquired().await);
    let lease_patches = || {
        api.calls()
            .iter()
            .filter(|c| c.method == Method::PATCH && c.path.contains("/leases/"))
            .count()
    };
    tokio::time::timeout(Duration::from_secs(10), async {
        while lease_patches() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the leader renews");
    election.release().await;
    assert!(
        api.get("leases", NS, "livekit-operator").unwrap()["spec"]["holderIdentity"].is_null(),
        "released"
    );

    let observed: BTreeSet<Rule> = api.calls().iter().flat_map(authorized_as).collect();
    assert_same(&observed, &declared("calls"));
}

/// Both ways: everything observed is declared, everything declared is observed.
fn assert_same(observed: &BTreeSet<Rule>, declared: &BTreeSet<Rule>) {
    let undeclared: Vec<_> = observed.difference(declared).collect();
    assert!(
        undeclared.is_empty(),
        "calls the chart does not grant: {undeclared:?}"
    );
    let unused: Vec<_> = declared.difference(observed).collect();
    assert!(unused.is_empty(), "grants that nothing calls: {unused:?}");
}

#[tokio::test]
async fn the_chart_grants_exactly_what_the_webhook_calls() {
    use k8s_openapi::jiff::SignedDuration;
    use livekit_operator::webhook::admission::ConfigLookup;
    use livekit_operator::webhook::certloop::{CertConfig, pass};
    use livekit_operator::webhook::certs;
    use livekit_operator::webhook::server::KubeConfigs;

    const RELEASE_NS: &str = "livekit-system";
    let year = SignedDuration::from_hours(24 * 365);
    let cfg = CertConfig {
        namespace: RELEASE_NS.into(),
        secret_name: "lk-webhook-tls".into(),
        webhook_config_name: "lk-webhook".into(),
        dns_names: certs::service_dns_names("lk-webhook", RELEASE_NS),
        validity: year,
    };
    let api = FakeApi::default();
    api.put(
        "mutatingwebhookconfigurations",
        "",
        "lk-webhook",
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
               "metadata": {"name": "lk-webhook"},
               "webhooks": [{"name": "inject.livekit.kraken.dev", "sideEffects": "None",
                             "admissionReviewVersions": ["v1"], "clientConfig": {}}]}),
    );
    api.put(
        "livekitconfigs",
        NS,
        "chat",
        serde_json::to_value(config("chat", SECRET_REF_SPEC)).unwrap(),
    );
    api.take_calls();

    // Admission: the pod's LiveKitConfig, present and absent.
    let lookup = KubeConfigs(api.client());
    assert!(lookup.exists(NS, "chat").await.unwrap());
    assert!(!lookup.exists(NS, "nowhere").await.unwrap());

    // Certificates: a first start that loses the create race to another replica, the steady
    // state, and a renewal that loses to another replica's (a stale resourceVersion).
    let t0 = common::t0();
    let (winner, c) = (api.clone(), cfg.clone());
    let racing = api.client_interleaved(Method::POST, "/secrets", async move {
        pass(&winner.client(), &c, t0).await.unwrap();
    });
    let (first, _) = pass(&racing, &cfg, t0).await.unwrap();
    pass(&api.client(), &cfg, t0).await.unwrap();
    let due = certs::renew_at(first.not_after, year);
    let (winner, c) = (api.clone(), cfg.clone());
    let racing = api.client_interleaved(Method::PUT, "/secrets/lk-webhook-tls", async move {
        pass(&winner.client(), &c, due).await.unwrap();
    });
    pass(&racing, &cfg, due).await.unwrap();

    let observed: BTreeSet<Rule> = api.calls().iter().flat_map(authorized_as).collect();
    assert_same(&observed, &declared("webhook_calls"));
}
