//! The reconciler's API traffic, against a fake API server behind kube's mock service.

use livekit_operator_testkit as common;

use common::configs::*;
use common::fake_api::Call;
use common::harness::*;
use http::Method;
use k8s_openapi::jiff::SignedDuration;
use kube::runtime::controller::Action;
use livekit_contract::{keys, parse_keys_file};
use livekit_operator::LiveKitConfig;
use livekit_operator::reconcile::{self, Backoff, RESYNC};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn first_reconcile_creates_both_objects_and_status_and_the_second_writes_nothing() {
    let h = Harness::new("chat", SECRET_REF_SPEC);
    h.put_secret(livekit_keys("APIsource00001", SOURCE_SECRET));

    let action = h.reconcile().await.unwrap();
    assert_eq!(action, Action::requeue(RESYNC));
    let calls = h.api.take_calls();
    assert_eq!(
        writes(&calls),
        [
            "PATCH /api/v1/namespaces/apps/secrets/livekit-keys",
            "POST /api/v1/namespaces/apps/secrets",
            "PATCH /api/v1/namespaces/apps/secrets/chat-livekit",
            "PATCH /api/v1/namespaces/apps/configmaps/chat-livekit",
            "POST /apis/events.k8s.io/v1/namespaces/apps/events",
            "PATCH /apis/livekit.kraken.dev/v1alpha1/namespaces/apps/livekitconfigs/chat/status",
        ]
    );
    // Owned objects and status: server-side apply under the one field manager, forced. The
    // source label: a merge patch under its own manager (never an apply that would own the Secret).
    // The Secret is first created empty (create-only: of two racing writers one gets 409), then
    // applied with the claim's resourceVersion as precondition.
    let w: Vec<&Call> = calls.iter().filter(|c| c.is_write()).collect();
    let claim = &w[1].body;
    assert_eq!(claim["metadata"]["name"], "chat-livekit");
    assert!(claim.get("data").is_none(), "{claim}");
    assert!(
        w[2].body["metadata"]["resourceVersion"].is_string(),
        "{}",
        w[2].body
    );
    for c in calls.iter().filter(|c| c.method == Method::PATCH) {
        if c.path.ends_with("/secrets/livekit-keys") {
            assert_eq!(c.content_type, "application/merge-patch+json");
            assert_eq!(
                c.param("fieldManager").as_deref(),
                Some(reconcile::SOURCE_LABEL_MANAGER)
            );
        } else if !c.path.contains("/events") {
            assert_eq!(c.param("fieldManager").as_deref(), Some("livekit-operator"));
            assert_eq!(c.param("force").as_deref(), Some("true"));
        }
    }
    assert_eq!(events(&calls), [("Normal".into(), "Created".into())]);
    // The source Secret got the watch label, and only that.
    let source = h.api.get("secrets", NS, "livekit-keys").unwrap();
    assert_eq!(
        source["metadata"]["labels"]["livekit.kraken.dev/source"],
        "true"
    );
    assert!(source["data"]["api-key"].is_string());

    let data = h.owned_secret();
    assert_eq!(data[keys::API_KEY], "APIsource00001");
    assert_eq!(data[keys::API_SECRET], SOURCE_SECRET);
    assert_eq!(parse_keys_file(&data[keys::KEYS_FILE]).unwrap().len(), 1);
    let cm = h.api.get("configmaps", NS, "chat-livekit").unwrap();
    livekit_contract::SidecarSettings::from_yaml(cm["data"][keys::SETTINGS].as_str().unwrap())
        .unwrap();

    let status = h.status();
    assert_eq!(ready(&status), ("True".into(), "Reconciled".into()));
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["apiKey"], "APIsource00001");
    assert_eq!(status["secretName"], "chat-livekit");
    assert_eq!(status["configMapName"], "chat-livekit");
    assert_eq!(status["configHash"].as_str().unwrap().len(), 16);
    assert!(
        !status.to_string().contains(SOURCE_SECRET),
        "status must never carry the secret"
    );

    // Second reconcile of the unchanged config: reads only.
    h.advance(SignedDuration::from_mins(5));
    let action = h.reconcile().await.unwrap();
    assert_eq!(action, Action::requeue(RESYNC));
    let calls = h.api.take_calls();
    assert_eq!(writes(&calls), Vec::<String>::new(), "{calls:#?}");
}

#[tokio::test]
async fn missing_source_secret_gives_ready_false_with_the_reason_and_an_event() {
    let h = Harness::new("chat", SECRET_REF_SPEC);
    let action = h.reconcile().await.unwrap();
    assert_ne!(
        action,
        Action::await_change(),
        "a missing Secret is retried"
    );
    let calls = h.api.take_calls();
    assert_eq!(
        writes(&calls),
        [
            "PATCH /apis/livekit.kraken.dev/v1alpha1/namespaces/apps/livekitconfigs/chat/status",
            "POST /apis/events.k8s.io/v1/namespaces/apps/events",
        ]
    );
    assert_eq!(
        events(&calls),
        [("Warning".into(), "SourceSecretNotFound".into())]
    );
    let status = h.status();
    assert_eq!(
        ready(&status),
        ("False".into(), "SourceSecretNotFound".into())
    );
    assert!(
        status["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("livekit-keys")
    );
    assert!(h.api.get("secrets", NS, "chat-livekit").is_none());

    // Still missing: no status write, no new Event.
    h.reconcile().await.unwrap();
    assert_eq!(writes(&h.api.take_calls()), Vec::<String>::new());

    // It appears: Ready, and the transition is recorded.
    h.put_secret(livekit_keys("APIsource00001", SOURCE_SECRET));
    h.reconcile().await.unwrap();
    assert_eq!(ready(&h.status()), ("True".into(), "Reconciled".into()));
}

#[tokio::test]
async fn missing_source_key_is_reported() {
    let h = Harness::new("chat", SECRET_REF_SPEC);
    h.put_secret(secret("livekit-keys", &[("api-key", "APIk")]));
    h.reconcile().await.unwrap();
    let calls = h.api.take_calls();
    assert_eq!(
        events(&calls),
        [("Warning".into(), "SourceKeyMissing".into())]
    );
    assert_eq!(
        ready(&h.status()),
        ("False".into(), "SourceKeyMissing".into())
    );
}

#[tokio::test]
async fn invalid_spec_is_reported_and_not_retried() {
    let h = Harness::new("chat", SECRET_REF_SPEC);
    h.put_secret(livekit_keys("APIk", SOURCE_SECRET));
    // What an API server without CEL support might let through.
    h.edit_config(|v| v["spec"]["auth"]["algorithms"] = json!(["HS256", "RS256"]));
    let action = h.reconcile().await.unwrap();
    assert_eq!(action, Action::await_change());
    assert_eq!(ready(&h.status()), ("False".into(), "InvalidSpec".into()));
    assert!(h.api.get("secrets", NS, "chat-livekit").is_none());
}

#[tokio::test]
async fn a_bad_source_value_is_retried_not_awaited() {
    // An HMAC secret too short, then one that is not UTF-8: both are fixed by editing the Secret,
    // which a config's await_change would still notice, but the hourly resync and the retry must
    // stay on (the watch event may be missed, e.g. while the label write failed).
    let h = Harness::new("chat", GENERATE_SPEC);
    for bad in [
        b"short".to_vec(),
        b"\xff-not-utf-8-but-long-enough-0123456789".to_vec(),
    ] {
        let mut s = secret("app-jwt", &[]);
        s.data = Some([("hs-secret".to_owned(), k8s_openapi::ByteString(bad))].into());
        h.put_secret(s);
        let action = h.reconcile().await.unwrap();
        assert_ne!(action, Action::await_change());
        assert_eq!(
            ready(&h.status()),
            ("False".into(), "SourceValueInvalid".into())
        );
    }
    assert!(h.api.get("secrets", NS, "chat-livekit").is_none());
}

#[tokio::test]
async fn source_change_is_published_then_signed_with_after_the_delay_keeping_the_old_key() {
    let h = Harness::new("chat", SECRET_REF_SPEC);
    h.edit_config(|v| delay_verification(v, 60));
    let (secret_1, secret_2) = (
        "secret-1-0123456789abcdefghijklmnop",
        "secret-2-0123456789abcdefghijklmnop",
    );
    h.put_secret(livekit_keys("APIsource00001", secret_1));
    h.reconcile().await.unwrap();
    h.api.take_calls();

    let mut changed = livekit_keys("APIsource00002", secret_2);
    changed.metadata.labels =
        Some([("livekit.kraken.dev/source".to_string(), "true".to_string())].into());
    h.put_secret(changed);

    // Published: keys.yaml has both, the sidecar still signs with the old key.
    let action = h.reconcile().await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(61)));
    let calls = h.api.take_calls();
    assert_eq!(
        events(&calls),
        [
            ("Normal".into(), "Updated".into()),
            ("Normal".into(), "Published".into())
        ]
    );
    let data = h.owned_secret();
    assert_eq!(data[keys::API_KEY], "APIsource00001");
    let pairs = parse_keys_file(&data[keys::KEYS_FILE]).unwrap();
    assert_eq!(pairs["APIsource00001"], secret_1);
    assert_eq!(pairs["APIsource00002"], secret_2);
    let status = h.status();
    assert_eq!(status["rotationPhase"], "Published");
    assert_eq!(status["pendingApiKey"], "APIsource00002");
    assert_eq!(status["apiKey"], "APIsource00001");
    assert_eq!(
        condition(&status, "Rotating"),
        ("True".into(), "Published".into())
    );

    // Before the delay nothing changes and nothing is written.
    h.advance(SignedDuration::from_secs(59));
    h.reconcile().await.unwrap();
    assert_eq!(writes(&h.api.take_calls()), Vec::<String>::new());

    // Accepted, then Active on the next reconcile.
    h.advance(SignedDuration::from_secs(1));
    assert_eq!(
        h.reconcile().await.unwrap(),
        Action::requeue(Duration::from_secs(1))
    );
    assert_eq!(h.owned_secret()[keys::API_KEY], "APIsource00001");
    assert_eq!(h.status()["rotationPhase"], "Accepted");
    h.reconcile().await.unwrap();
    let calls = h.api.take_calls();
    let reasons: Vec<String> = events(&calls).into_iter().map(|(_, r)| r).collect();
    assert!(
        reasons.contains(&"Accepted".into()) && reasons.contains(&"Active".into()),
        "{reasons:?}"
    );
    let data = h.owned_secret();
    assert_eq!(data[keys::API_KEY], "APIsource00002");
    assert_eq!(data[keys::API_SECRET], secret_2);
    let status = h.status();
    assert_eq!(status["apiKey"], "APIsource00002");
    assert_eq!(status["previousApiKey"], "APIsource00001");
    assert_eq!(status["rotationPhase"], "Active");
    assert_eq!(
        condition(&status, "Rotating"),
        ("False".into(), "Active".into())
    );
}

#[tokio::test]
async fn rotation_goes_through_every_phase_and_retires_the_old_key_after_the_grace_period() {
    let h = Harness::new("chat-dev", GENERATE_SPEC); // rotationGraceSeconds: 3600
    h.edit_config(|v| delay_verification(v, 120));
    h.put_secret(app_jwt());
    h.reconcile().await.unwrap();
    let first = h.owned_secret();
    let old_key = first[keys::API_KEY].clone();
    assert!(old_key.starts_with("API") && first[keys::API_SECRET].len() == 43);
    // Generated credentials survive reconciles (and restarts: they live in the Secret).
    h.reconcile().await.unwrap();
    assert_eq!(h.owned_secret(), first);
    h.api.take_calls();

    h.edit_config(|v| v["metadata"]["annotations"] = json!({"livekit.kraken.dev/rotate": "r1"}));
    let action = h.reconcile().await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(121)));
    let published = h.owned_secret();
    assert_eq!(
        published[keys::API_KEY],
        old_key,
        "no signing with an unaccepted key"
    );
    let new_key = secret_annotation(&h, "livekit.kraken.dev/pending-key").unwrap();
    let pairs = parse_keys_file(&published[keys::KEYS_FILE]).unwrap();
    assert_eq!(pairs.len(), 2);
    assert!(pairs.contains_key(&new_key));

    h.advance(SignedDuration::from_secs(120));
    h.reconcile().await.unwrap(); // Accepted
    h.reconcile().await.unwrap(); // Active
    let rotated = h.owned_secret();
    assert_eq!(rotated[keys::API_KEY], new_key);
    assert_eq!(rotated[keys::KEYS_FILE], published[keys::KEYS_FILE]);
    let status = h.status();
    assert_eq!(status["previousApiKey"], json!(old_key));
    assert_eq!(status["previousApiKeyExpiresAt"], "2026-01-01T01:02:00Z");
    assert_eq!(
        status["retiringApiKeys"],
        json!([{"apiKey": old_key, "expiresAt": "2026-01-01T01:02:00Z"}])
    );
    h.api.take_calls();

    // Within the grace period nothing changes, the same annotation does not rotate again, and the
    // next look is due at the end of the grace period (sooner than the hourly resync).
    h.advance(SignedDuration::from_mins(30));
    let action = h.reconcile().await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(30 * 60 + 1)));
    assert_eq!(writes(&h.api.take_calls()), Vec::<String>::new());
    assert_eq!(h.owned_secret(), rotated);

    // After it, the old key leaves keys.yaml: Retired.
    h.advance(SignedDuration::from_mins(31));
    assert_eq!(h.reconcile().await.unwrap(), Action::requeue(RESYNC));
    let calls = h.api.take_calls();
    assert!(events(&calls).contains(&("Normal".into(), "Retired".into())));
    let after = h.owned_secret();
    assert_eq!(after[keys::API_KEY], new_key);
    let pairs = parse_keys_file(&after[keys::KEYS_FILE]).unwrap();
    assert_eq!(pairs.keys().collect::<Vec<_>>(), [&new_key]);
    assert_eq!(
        secret_annotation(&h, "livekit.kraken.dev/retiring-keys"),
        None
    );
    assert_eq!(
        secret_annotation(&h, "livekit.kraken.dev/rotation-phase").as_deref(),
        Some("Retired")
    );
    let status = h.status();
    assert!(status.get("previousApiKey").is_none());
    assert_eq!(status["rotationPhase"], "Retired");
}

#[tokio::test]
async fn deleted_owned_object_is_recreated() {
    let h = Harness::new("chat", SECRET_REF_SPEC);
    h.put_secret(livekit_keys("APIk0000000001", SOURCE_SECRET));
    h.reconcile().await.unwrap();
    let cm_before = h.api.get("configmaps", NS, "chat-livekit").unwrap();
    h.api.take_calls();

    h.api.delete("configmaps", NS, "chat-livekit");
    h.reconcile().await.unwrap();
    let calls = h.api.take_calls();
    assert_eq!(
        writes(&calls),
        [
            "PATCH /api/v1/namespaces/apps/configmaps/chat-livekit",
            "POST /apis/events.k8s.io/v1/namespaces/apps/events",
        ]
    );
    let cm_after = h.api.get("configmaps", NS, "chat-livekit").unwrap();
    assert_eq!(cm_after["data"], cm_before["data"]);

    // An edited owned Secret is repaired too.
    let mut s = h.api.get("secrets", NS, "chat-livekit").unwrap();
    s["data"]["api-secret"] = json!("ZWRpdGVk");
    h.api.put("secrets", NS, "chat-livekit", s);
    h.reconcile().await.unwrap();
    assert_eq!(h.owned_secret()[keys::API_SECRET], SOURCE_SECRET);
}

#[tokio::test]
async fn api_errors_back_off_exponentially_with_jitter_per_object() {
    let h = Harness::new("chat", SECRET_REF_SPEC);
    h.put_secret(livekit_keys("APIk0000000001", SOURCE_SECRET));
    h.api.fail(Method::GET, "/secrets/chat-livekit", 500, 4);
    let mut delays = Vec::new();
    for _ in 0..4 {
        let err = h.reconcile().await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        delays.push(reconcile::retry_delay(&h.config(), &err, &h.ctx).unwrap());
    }
    for (i, d) in delays.iter().enumerate() {
        let ceiling = Duration::from_secs(5 << i);
        assert!(
            *d >= ceiling / 2 && *d <= ceiling,
            "attempt {}: {d:?} not in [{:?}, {ceiling:?}]",
            i + 1,
            ceiling / 2
        );
    }
    // The next success resets the backoff.
    h.reconcile().await.unwrap();
    let oref = kube::runtime::reflector::ObjectRef::from_obj(&h.config());
    assert_eq!(h.ctx.backoff.failures(&oref), 0);
    // Another object's failures are its own.
    let other = config("other", SECRET_REF_SPEC);
    let err = livekit_operator::Error::Kube(kube::Error::Api(Box::new(
        kube::core::Status::failure("boom", "InternalError").with_code(500),
    )));
    let d = reconcile::retry_delay(&other, &err, &h.ctx).unwrap();
    assert!(d <= Duration::from_secs(5));
}

#[tokio::test]
async fn refused_calls_are_retried_slowly_and_broken_objects_wait_for_a_change() {
    let h = Harness::new("chat", SECRET_REF_SPEC);
    let forbidden = livekit_operator::Error::Kube(kube::Error::Api(Box::new(
        kube::core::Status::failure("forbidden", "Forbidden").with_code(403),
    )));
    assert!(!forbidden.is_transient());
    let d = reconcile::retry_delay(&h.config(), &forbidden, &h.ctx).unwrap();
    assert!(
        d >= Duration::from_secs(150) && d <= Duration::from_secs(300),
        "{d:?}"
    );
    let broken = livekit_operator::Error::MissingNamespace("chat".into());
    assert_eq!(reconcile::retry_delay(&h.config(), &broken, &h.ctx), None);
    assert_eq!(
        reconcile::error_policy(Arc::new(h.config()), &broken, h.ctx.clone()),
        Action::await_change()
    );
}

#[tokio::test]
async fn a_failed_apply_reports_apply_failed_and_is_retried() {
    let h = Harness::new("chat", SECRET_REF_SPEC);
    h.put_secret(livekit_keys("APIk0000000001", SOURCE_SECRET));
    h.api
        .fail(Method::PATCH, "/configmaps/chat-livekit", 500, 1);
    let err = h.reconcile().await.unwrap_err();
    assert!(err.is_transient());
    assert_eq!(ready(&h.status()), ("False".into(), "ApplyFailed".into()));
    assert!(events(&h.api.take_calls()).contains(&("Warning".into(), "ApplyFailed".into())));
    h.reconcile().await.unwrap();
    assert_eq!(ready(&h.status()), ("True".into(), "Reconciled".into()));
}

#[test]
fn backoff_ceiling_doubles_and_caps() {
    let b = Backoff::new(Duration::from_secs(5), Duration::from_secs(300));
    let got: Vec<u64> = (1..=9).map(|n| b.ceiling(n).as_secs()).collect();
    assert_eq!(got, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
    assert_eq!(
        Backoff::with_jitter(Duration::from_secs(10), 0.0),
        Duration::from_secs(5)
    );
    assert_eq!(
        Backoff::with_jitter(Duration::from_secs(10), 1.0),
        Duration::from_secs(10)
    );
}

#[test]
fn source_secret_events_map_back_to_the_configs_that_read_them() {
    let a = config("a", SECRET_REF_SPEC);
    let b = config("b", GENERATE_SPEC);
    assert!(livekit_operator::desired::references_secret(
        &a,
        NS,
        "livekit-keys"
    ));
    assert!(!livekit_operator::desired::references_secret(
        &a,
        "elsewhere",
        "livekit-keys"
    ));
    assert!(!livekit_operator::desired::references_secret(
        &b,
        NS,
        "livekit-keys"
    ));
    assert!(livekit_operator::desired::references_secret(
        &b, NS, "app-jwt"
    ));
}

#[tokio::test]
async fn the_controller_watches_by_label_only_and_reconciles_what_it_lists() {
    let h = Harness::new("chat", SECRET_REF_SPEC);
    h.put_secret(livekit_keys("APIk0000000001", SOURCE_SECRET));
    h.put_secret(secret("unrelated", &[("password", "hunter2")]));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(reconcile::run(h.ctx.clone(), Some(NS.into()), async {
        let _ = rx.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while h
        .api
        .get("livekitconfigs", NS, "chat")
        .unwrap()
        .get("status")
        .is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reconcile: {:#?}",
            h.api.calls()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ready(&h.status()), ("True".into(), "Reconciled".into()));

    let calls = h.api.calls();
    let secret_lists: Vec<&Call> = calls
        .iter()
        .filter(|c| c.method == Method::GET && c.path == "/api/v1/namespaces/apps/secrets")
        .collect();
    assert!(!secret_lists.is_empty());
    for c in &secret_lists {
        assert!(
            c.query.contains("labelSelector="),
            "unselected Secret list/watch: {}",
            c.query
        );
    }
    let selectors: std::collections::BTreeSet<String> = secret_lists
        .iter()
        .map(|c| {
            c.query
                .split('&')
                .find(|kv| kv.starts_with("labelSelector="))
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        selectors.len(),
        2,
        "owned and source selectors: {selectors:?}"
    );
    assert!(
        calls.iter().all(|c| !c.path.contains("/secrets/unrelated")),
        "the operator never reads Secrets it was not pointed at"
    );
}

/// A `secretRef` naming another config's owned Secret (`b-livekit`, whose keys have the default
/// names) must neither strip that Secret (a label-only apply under the owned objects' field manager
/// removes every field that manager applied before) nor be accepted as a source.
#[tokio::test]
async fn source_label_never_strips_owned_secret() {
    let h = Harness::new("b", GENERATE_SPEC);
    h.put_secret(app_jwt());
    h.reconcile().await.unwrap();
    let before = h.api.get("secrets", NS, "b-livekit").unwrap();
    assert!(before["data"]["keys.yaml"].is_string());

    let a = config(
        "a",
        SECRET_REF_SPEC
            .replace("livekit-keys", "b-livekit")
            .as_str(),
    );
    h.api
        .put("livekitconfigs", NS, "a", serde_json::to_value(&a).unwrap());
    let a: LiveKitConfig =
        serde_json::from_value(h.api.get("livekitconfigs", NS, "a").unwrap()).unwrap();
    reconcile::reconcile(Arc::new(a), h.ctx.clone())
        .await
        .unwrap();

    let after = h.api.get("secrets", NS, "b-livekit").unwrap();
    assert_eq!(after["data"], before["data"], "b's keys survive");
    assert_eq!(
        after["metadata"]["ownerReferences"],
        before["metadata"]["ownerReferences"]
    );
    assert_eq!(after["metadata"]["labels"], before["metadata"]["labels"]);
    let status = h.api.get("livekitconfigs", NS, "a").unwrap()["status"].clone();
    assert_eq!(ready(&status), ("False".into(), "SourceSecretOwned".into()));
    assert!(h.api.get("secrets", NS, "a-livekit").is_none());
    // B's next reconcile finds its Secret as it left it: no new key, no write.
    h.api.take_calls();
    h.reconcile().await.unwrap();
    assert_eq!(writes(&h.api.take_calls()), Vec::<String>::new());
}

#[tokio::test]
async fn the_backoff_map_forgets_objects_that_stopped_failing_long_ago() {
    let b = Backoff::new(Duration::from_millis(5), Duration::from_millis(10));
    let gone = kube::runtime::reflector::ObjectRef::from_obj(&config("gone", SECRET_REF_SPEC));
    let other = kube::runtime::reflector::ObjectRef::from_obj(&config("other", SECRET_REF_SPEC));
    b.next(&gone);
    b.next(&gone);
    assert_eq!(b.failures(&gone), 2);
    // "gone" was deleted: no success resets it. Later failures of others prune it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    b.next(&other);
    assert_eq!(b.failures(&gone), 0);
    assert_eq!(b.tracked(), 1);
}

/// The controller hands a reconcile the config from its watch cache, which may not yet show this
/// operator's own last status write. Such a reconcile must not write the status again (a new
/// `lastTransitionTime` is a real change: another watch event, another reconcile) nor repeat an
/// Event; the API server's status is what counts.
#[tokio::test]
async fn a_reconcile_of_a_cached_config_behind_its_own_status_write_writes_nothing() {
    let h = Harness::new("chat", SECRET_REF_SPEC);
    h.put_secret(livekit_keys("APIsource00001", SOURCE_SECRET));
    let cached = Arc::new(h.config());
    assert!(cached.status.is_none());
    h.reconcile().await.unwrap();
    let written = h.status();
    let _ = h.api.take_calls();

    h.advance(SignedDuration::from_secs(5));
    reconcile::reconcile(cached, h.ctx.clone()).await.unwrap();
    let calls = h.api.take_calls();
    assert_eq!(writes(&calls), Vec::<String>::new());
    assert_eq!(h.status(), written);
}
