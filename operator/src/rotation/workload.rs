//! The livekit-server workload (`spec.livekitServer.workloadRef`): the restart that makes it load a
//! changed `keys.yaml`, and whether that restart has rolled out. Pure functions; the reconciler reads
//! and patches the workload.

use super::Rollout;
use hmac::{Hmac, Mac};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use rand::Rng;
use sha2::Sha256;
use std::fmt;

/// Pod-template annotation carrying the hash of the `keys.yaml` the pods were started with. Changing
/// it restarts the pods, as `kubectl rollout restart` does with `kubectl.kubernetes.io/restartedAt`.
pub const KEYS_HASH_ANNOTATION: &str = "livekit.kraken.dev/keys-hash";

/// A per-config random key for [`keys_hash`], recorded in the owned Secret. The hash sits in a pod
/// template that many more people can read than the Secret; keyed, it lets nobody without the
/// Secret test guesses of a weak source secret against it. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct HashKey(pub String);

impl HashKey {
    /// 32 random bytes, unpadded base64url.
    pub fn generate(rng: &mut impl Rng) -> Self {
        use base64::Engine as _;
        let mut bytes = [0u8; 32];
        rng.fill(&mut bytes);
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }
}

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashKey(<redacted>)")
    }
}

/// First 16 hex characters of HMAC-SHA256 over `keys.yaml`, keyed with `key`. It changes exactly
/// when the keys do (a new secret under the same key id included), and without `key` it says
/// nothing about the secrets in `keys.yaml`.
pub fn keys_hash(key: &HashKey, keys_file: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.0.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(b"livekit-keys.yaml\0");
    mac.update(keys_file.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The merge patch that restarts the workload with `hash` (the same body for both kinds).
pub fn restart_patch(hash: &str) -> serde_json::Value {
    serde_json::json!({
        "spec": {"template": {"metadata": {"annotations": {KEYS_HASH_ANNOTATION: hash}}}}
    })
}

/// A Deployment or StatefulSet as read from the API server.
#[derive(Debug, Clone)]
pub enum Workload {
    Deployment(Box<Deployment>),
    StatefulSet(Box<StatefulSet>),
}

impl Workload {
    /// The keys hash its pod template carries, if any.
    pub fn template_hash(&self) -> Option<&str> {
        let template = match self {
            Workload::Deployment(d) => &d.spec.template,
            Workload::StatefulSet(s) => &s.spec.template,
        };
        template
            .metadata
            .as_ref()?
            .annotations
            .as_ref()?
            .get(KEYS_HASH_ANNOTATION)
            .map(String::as_str)
    }

    /// Whether every replica runs the pod template for `want_hash` and is available, judged as
    /// `kubectl rollout status` does (and stricter for a partitioned StatefulSet, whose pods below
    /// the partition would keep the old keys).
    pub fn rollout(&self, want_hash: &str) -> Rollout {
        if self.template_hash() != Some(want_hash) {
            return Rollout::Waiting(
                "the restart for the current keys.yaml is not in the pod template yet".into(),
            );
        }
        match self {
            Workload::Deployment(d) => deployment_rollout(d),
            Workload::StatefulSet(s) => statefulset_rollout(s),
        }
    }
}

fn deployment_rollout(d: &Deployment) -> Rollout {
    let name = d.metadata.name.as_deref().unwrap_or("");
    let status = d.status.clone().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    if generation > status.observed_generation.unwrap_or(0) {
        return Rollout::Waiting(format!(
            "waiting for deployment {name:?} spec update to be observed"
        ));
    }
    let progress_deadline = status.conditions.iter().flatten().any(|c| {
        c.type_.as_deref() == Some("Progressing")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if progress_deadline {
        return Rollout::Failed(format!(
            "deployment {name:?} exceeded its progress deadline"
        ));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    if let Some(want) = d.spec.replicas
        && updated < want
    {
        return Rollout::Waiting(format!(
            "{updated} out of {want} new replicas have been updated"
        ));
    }
    let replicas = status.replicas.unwrap_or(0);
    if replicas > updated {
        return Rollout::Waiting(format!(
            "{} old replicas are pending termination",
            replicas - updated
        ));
    }
    let available = status.available_replicas.unwrap_or(0);
    if available < updated {
        return Rollout::Waiting(format!(
            "{available} of {updated} updated replicas are available"
        ));
    }
    Rollout::Complete
}

fn statefulset_rollout(s: &StatefulSet) -> Rollout {
    let name = s.metadata.name.as_deref().unwrap_or("");
    let spec = &s.spec;
    let status = s.status.clone().unwrap_or_default();
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    if strategy.type_.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        return Rollout::Failed(format!(
            "statefulset {name:?} uses the OnDelete strategy: its pods keep the old keys until deleted"
        ));
    }
    let observed = status.observed_generation.unwrap_or(0);
    if observed == 0 || s.metadata.generation.unwrap_or(0) > observed {
        return Rollout::Waiting(format!(
            "waiting for statefulset {name:?} spec update to be observed"
        ));
    }
    let ready = status.ready_replicas.unwrap_or(0);
    if let Some(want) = spec.replicas
        && ready < want
    {
        return Rollout::Waiting(format!("waiting for {} pods to be ready", want - ready));
    }
    let partition = strategy
        .rolling_update
        .and_then(|r| r.partition)
        .unwrap_or(0);
    if partition > 0 {
        return Rollout::Failed(format!(
            "statefulset {name:?} has a rolling-update partition of {partition}: pods below it keep the old keys"
        ));
    }
    if status.update_revision != status.current_revision {
        return Rollout::Waiting(format!(
            "waiting for statefulset rolling update to complete {} pods at revision {}",
            status.updated_replicas.unwrap_or(0),
            status.update_revision.as_deref().unwrap_or("")
        ));
    }
    Rollout::Complete
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(generation: i64, spec_replicas: i32, status: serde_json::Value) -> Workload {
        Workload::Deployment(Box::new(
            serde_json::from_value(json!({
                "metadata": {"name": "lk", "generation": generation},
                "spec": {"replicas": spec_replicas, "selector": {},
                         "template": {"metadata": {"annotations": {KEYS_HASH_ANNOTATION: "h1"}}}},
                "status": status,
            }))
            .unwrap(),
        ))
    }

    fn statefulset(strategy: serde_json::Value, status: serde_json::Value) -> Workload {
        Workload::StatefulSet(Box::new(
            serde_json::from_value(json!({
                "metadata": {"name": "lk", "generation": 2},
                "spec": {"replicas": 3, "selector": {}, "serviceName": "lk", "updateStrategy": strategy,
                         "template": {"metadata": {"annotations": {KEYS_HASH_ANNOTATION: "h1"}}}},
                "status": status,
            }))
            .unwrap(),
        ))
    }

    fn waiting(r: Rollout, needle: &str) {
        match r {
            Rollout::Waiting(why) => assert!(why.contains(needle), "{why}"),
            other => panic!("expected waiting for {needle:?}, got {other:?}"),
        }
    }

    #[test]
    fn deployment_rollout_is_judged_as_kubectl_rollout_status_does() {
        let done = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3});
        assert_eq!(
            deployment(2, 3, done.clone()).rollout("h1"),
            Rollout::Complete
        );
        waiting(
            deployment(2, 3, done).rollout("h2"),
            "not in the pod template yet",
        );
        waiting(
            deployment(3, 3, json!({"observedGeneration": 2})).rollout("h1"),
            "spec update to be observed",
        );
        waiting(
            deployment(
                2,
                3,
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1}),
            )
            .rollout("h1"),
            "1 out of 3 new replicas",
        );
        waiting(
            deployment(
                2,
                3,
                json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3}),
            )
            .rollout("h1"),
            "1 old replicas are pending termination",
        );
        waiting(
            deployment(2, 3, json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2})).rollout("h1"),
            "2 of 3 updated replicas are available",
        );
        let stuck = json!({"observedGeneration": 2, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]});
        assert!(matches!(
            deployment(2, 3, stuck).rollout("h1"),
            Rollout::Failed(_)
        ));
    }

    #[test]
    fn statefulset_rollout_needs_every_pod_on_the_new_revision() {
        let rolling = json!({"type": "RollingUpdate"});
        let done = json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 3,
                          "currentRevision": "r2", "updateRevision": "r2"});
        assert_eq!(
            statefulset(rolling.clone(), done.clone()).rollout("h1"),
            Rollout::Complete
        );
        waiting(
            statefulset(
                rolling.clone(),
                json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 2}),
            )
            .rollout("h1"),
            "1 pods to be ready",
        );
        waiting(
            statefulset(rolling, json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 3,
                                        "currentRevision": "r1", "updateRevision": "r2", "updatedReplicas": 1})).rollout("h1"),
            "rolling update to complete",
        );
        let partitioned = json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 1}});
        assert!(matches!(
            statefulset(partitioned, done.clone()).rollout("h1"),
            Rollout::Failed(_)
        ));
        assert!(matches!(
            statefulset(json!({"type": "OnDelete"}), done).rollout("h1"),
            Rollout::Failed(_)
        ));
    }

    #[test]
    fn the_hash_follows_keys_yaml_and_needs_the_key() {
        let key = HashKey("k1".into());
        let file = "APIa: a-secret-of-32-characters-000000\n";
        assert_eq!(keys_hash(&key, file), keys_hash(&key, file));
        assert_ne!(
            keys_hash(&key, file),
            keys_hash(&key, "APIa: another-secret-of-32-characters-0\n"),
            "a new secret under the same id changes it"
        );
        assert_eq!(keys_hash(&key, file).len(), 16);
        // Whoever reads the pod template but not the Secret cannot recompute it from a guess.
        assert_ne!(
            keys_hash(&key, file),
            keys_hash(&HashKey("k2".into()), file)
        );
        let unkeyed: String = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update(b"livekit-keys.yaml\0");
            h.update(file.as_bytes());
            h.finalize()
                .iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        assert_ne!(keys_hash(&key, file), unkeyed);
    }

    #[test]
    fn hash_keys_are_random_and_never_printed() {
        let mut rng = rand::rng();
        let (a, b) = (HashKey::generate(&mut rng), HashKey::generate(&mut rng));
        assert_ne!(a, b);
        assert_eq!(a.0.len(), 43);
        assert_eq!(format!("{a:?}"), "HashKey(<redacted>)");
    }
}
