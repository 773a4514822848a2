//! The self-managed webhook certificate against the strict fake API server: the first start creates
//! the Secret create-only and sets the `caBundle`; a replica that loses the create race adopts the
//! winner's Secret; the steady state writes nothing; a renewal replaces the Secret at its
//! resourceVersion (a replica with a stale one adopts the winner's) and keeps the previous CA in the
//! `caBundle`; a `caBundle` patch guarded by a stale resourceVersion fails and the next pass repairs it.

use base64::Engine as _;
use http::Method;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::SignedDuration;
use livekit_operator::webhook::certloop::{CertConfig, pass};
use livekit_operator::webhook::certs::{self, Bundle};
use livekit_operator_testkit::fake_api::FakeApi;
use livekit_operator_testkit::t0;
use serde_json::{Value, json};

const NS: &str = "livekit-system";
const SECRET: &str = "lk-webhook-tls";
const WEBHOOKS: &str = "lk-webhook";
const YEAR: SignedDuration = SignedDuration::from_hours(24 * 365);

fn cfg() -> CertConfig {
    CertConfig {
        namespace: NS.into(),
        secret_name: SECRET.into(),
        webhook_config_name: WEBHOOKS.into(),
        dns_names: certs::service_dns_names("lk-webhook", NS),
        validity: YEAR,
    }
}

/// The MutatingWebhookConfiguration as the chart installs it: no caBundle yet.
fn webhook_config() -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": WEBHOOKS},
        "webhooks": [{
            "name": "inject.livekit.kraken.dev",
            "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Ignore",
            "clientConfig": {"service": {"name": "lk-webhook", "namespace": NS, "path": "/mutate"}},
        }],
    })
}

fn api() -> FakeApi {
    let api = FakeApi::default();
    api.put(
        "mutatingwebhookconfigurations",
        "",
        WEBHOOKS,
        webhook_config(),
    );
    api
}

fn stored_bundle(api: &FakeApi) -> Bundle {
    let secret: Secret = serde_json::from_value(api.get("secrets", NS, SECRET).unwrap()).unwrap();
    certs::from_secret(&secret).expect("a readable certificate Secret")
}

fn served_ca_bundle(api: &FakeApi) -> String {
    let config = api
        .get("mutatingwebhookconfigurations", "", WEBHOOKS)
        .unwrap();
    let b64 = config["webhooks"][0]["clientConfig"]["caBundle"]
        .as_str()
        .expect("a caBundle");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

fn secret_rv(api: &FakeApi) -> String {
    api.get("secrets", NS, SECRET).unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The writes since the last call, as `METHOD path`.
fn writes(api: &FakeApi) -> Vec<String> {
    api.take_calls()
        .into_iter()
        .filter(|c| c.is_write())
        .map(|c| format!("{} {}", c.method, c.path))
        .collect()
}

#[tokio::test]
async fn first_start_creates_create_only_and_sets_the_ca_bundle_then_writes_nothing() {
    let api = api();
    let (bundle, _) = pass(&api.client(), &cfg(), t0()).await.unwrap();
    let calls = api.take_calls();
    let create = calls
        .iter()
        .find(|c| c.method == Method::POST)
        .expect("a create");
    assert_eq!(create.path, format!("/api/v1/namespaces/{NS}/secrets"));
    let patch = calls
        .iter()
        .find(|c| c.method == Method::PATCH)
        .expect("a caBundle patch");
    assert_eq!(patch.content_type, "application/json-patch+json");
    assert_eq!(
        patch.body[0],
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": "1"}),
        "guarded by the resourceVersion read"
    );
    assert_eq!(calls.iter().filter(|c| c.is_write()).count(), 2);
    assert_eq!(stored_bundle(&api), bundle);
    assert_eq!(served_ca_bundle(&api), bundle.ca_cert);
    let secret = api.get("secrets", NS, SECRET).unwrap();
    assert_eq!(secret["type"], "kubernetes.io/tls");

    // Steady state: later passes, before renewal is due, read and write nothing.
    let rv = api.resource_version();
    for days in [1, 100, 200] {
        let (again, _) = pass(
            &api.client(),
            &cfg(),
            t0() + SignedDuration::from_hours(24 * days),
        )
        .await
        .unwrap();
        assert_eq!(again, bundle);
    }
    assert_eq!(writes(&api), Vec::<String>::new());
    assert_eq!(api.resource_version(), rv);
}

#[tokio::test]
async fn a_replica_losing_the_create_race_adopts_the_winners_secret() {
    let api = api();
    // Replica B read "no Secret" and issued its own bundle; replica A created its Secret and set
    // the caBundle before B's create reached the API server.
    let winner = api.clone();
    let b = api.client_interleaved(Method::POST, "/secrets", async move {
        pass(&winner.client(), &cfg(), t0()).await.unwrap();
    });
    let (adopted, _) = pass(&b, &cfg(), t0())
        .await
        .expect("adopts in the same pass");
    let a = stored_bundle(&api);
    assert_eq!(adopted, a, "B serves A's certificate");
    assert_eq!(served_ca_bundle(&api), a.ca_cert);
    let secret_writes: Vec<String> = writes(&api)
        .into_iter()
        .filter(|w| w.contains("/secrets"))
        .collect();
    assert_eq!(
        secret_writes,
        vec![format!("POST /api/v1/namespaces/{NS}/secrets"); 2],
        "two creates (one refused with 409), never a replace"
    );
}

#[tokio::test]
async fn renewal_replaces_at_the_resource_version_and_keeps_the_previous_ca() {
    let api = api();
    let (first, _) = pass(&api.client(), &cfg(), t0()).await.unwrap();
    let rv = secret_rv(&api);
    api.take_calls();
    let due = certs::renew_at(first.not_after, YEAR);
    let (renewed, _) = pass(&api.client(), &cfg(), due).await.unwrap();
    let calls = api.take_calls();
    let replace = calls
        .iter()
        .find(|c| c.method == Method::PUT)
        .expect("a replace");
    assert_eq!(replace.body["metadata"]["resourceVersion"], json!(rv));
    assert_ne!(renewed.ca_cert, first.ca_cert);
    assert_eq!(stored_bundle(&api), renewed);
    assert_eq!(
        served_ca_bundle(&api),
        format!("{}{}", renewed.ca_cert, first.ca_cert),
        "the previous CA stays trusted while replicas switch over"
    );
}

#[tokio::test]
async fn a_replica_renewing_with_a_stale_resource_version_adopts_the_winners_renewal() {
    let api = api();
    let (first, _) = pass(&api.client(), &cfg(), t0()).await.unwrap();
    let due = certs::renew_at(first.not_after, YEAR);
    let winner = api.clone();
    let b = api.client_interleaved(Method::PUT, &format!("/secrets/{SECRET}"), async move {
        pass(&winner.client(), &cfg(), due).await.unwrap();
    });
    api.take_calls();
    let (adopted, _) = pass(&b, &cfg(), due)
        .await
        .expect("adopts in the same pass");
    let a = stored_bundle(&api);
    assert_ne!(a.ca_cert, first.ca_cert, "A renewed");
    assert_eq!(adopted, a, "B serves A's renewal, not its own");
    assert_eq!(
        served_ca_bundle(&api),
        format!("{}{}", a.ca_cert, first.ca_cert)
    );
    let puts = writes(&api)
        .into_iter()
        .filter(|w| w.starts_with("PUT"))
        .count();
    assert_eq!(puts, 2, "A's replace and B's refused one (409)");
}

#[tokio::test]
async fn a_ca_bundle_patch_at_a_stale_resource_version_is_refused_and_repaired_next_pass() {
    let api = api();
    // A `helm upgrade` rewrites the configuration (no caBundle) between the read and the patch.
    let helm = api.clone();
    let c = api.client_interleaved(
        Method::PATCH,
        &format!("/mutatingwebhookconfigurations/{WEBHOOKS}"),
        async move {
            let mut upgraded = webhook_config();
            upgraded["metadata"]["labels"] = json!({"helm.sh/chart": "livekit-operator-0.2.0"});
            helm.put("mutatingwebhookconfigurations", "", WEBHOOKS, upgraded);
        },
    );
    let err = pass(&c, &cfg(), t0()).await.unwrap_err();
    assert!(err.contains("422") || err.contains("test"), "{err}");
    let config = api
        .get("mutatingwebhookconfigurations", "", WEBHOOKS)
        .unwrap();
    assert!(
        config["webhooks"][0]["clientConfig"]
            .get("caBundle")
            .is_none()
    );
    let (bundle, _) = pass(&c, &cfg(), t0()).await.unwrap();
    assert_eq!(served_ca_bundle(&api), bundle.ca_cert);
}
