//! The rotation's side effects, for the reconciler: read the livekit-server workload, make the
//! server API check when one is due, and restart the workload when `keys.yaml` changed. What to do is
//! decided in [`crate::rotation`]; this module only carries it out.

use crate::crd::{LiveKitConfig, WorkloadKind, WorkloadRef};
use crate::desired::{self, Desired, Inputs, Problem, recorded};
use crate::error::Result;
use crate::rotation::workload::{self, Workload};
use crate::rotation::{self, KeyState, Observation, Rollout, server_api};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use std::time::Duration;
use tracing::info;

/// Field manager of the restart annotation (a merge patch: it takes no other field of the workload).
pub const RESTART_MANAGER: &str = "livekit-operator-restart";

fn workload_ref(config: &LiveKitConfig) -> Option<&WorkloadRef> {
    config.spec.livekit_server.as_ref()?.workload_ref.as_ref()
}

/// A refused or missing workload is a rollout that cannot complete (reported in the `Rotating`
/// condition), not a failed reconcile: the rest of the config is still served.
fn unreadable(r: &WorkloadRef, e: kube::Error) -> Result<std::result::Result<Workload, Rollout>> {
    match &e {
        kube::Error::Api(s) if s.code == 404 => Ok(Err(Rollout::Failed(format!(
            "{:?} {:?} was not found in this namespace",
            r.kind, r.name
        )))),
        kube::Error::Api(s) if s.code == 403 => Ok(Err(Rollout::Failed(format!(
            "the operator may not read {:?} {:?} (enable rbac.workloadRestart in the chart)",
            r.kind, r.name
        )))),
        _ => Err(e.into()),
    }
}

async fn read_workload(
    client: &Client,
    ns: &str,
    r: &WorkloadRef,
) -> Result<std::result::Result<Workload, Rollout>> {
    let got = match r.kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), ns)
            .get(&r.name)
            .await
            .map(|d| Workload::Deployment(Box::new(d))),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), ns)
            .get(&r.name)
            .await
            .map(|s| Workload::StatefulSet(Box::new(s))),
    };
    match got {
        Ok(w) => Ok(Ok(w)),
        Err(e) => unreadable(r, e),
    }
}

/// What the reconcile observed, and the workload as read (for the restart decision).
pub struct Observed {
    pub observation: Observation,
    pub workload: Option<Workload>,
}

/// Reads the workload (with a `workloadRef`) and makes the server API check when one is due for the
/// key the owned Secret records as pending.
pub async fn observe(
    client: &Client,
    config: &LiveKitConfig,
    existing_secret: Option<&Secret>,
    now: Timestamp,
) -> Result<Observed> {
    let ns = config.namespace().unwrap_or_default();
    let state = recorded(existing_secret);
    let mut observed = Observed {
        observation: Observation::default(),
        workload: None,
    };
    if let Some(r) = workload_ref(config) {
        let stored_keys = livekit_contract::render_keys_file(state.keys_file_pairs());
        // No key recorded yet (a Secret from an earlier version): nothing rolled out matches.
        let want = state
            .hash_key
            .as_ref()
            .map(|k| workload::keys_hash(k, &stored_keys))
            .unwrap_or_default();
        observed.observation.rollout = Some(match read_workload(client, &ns, r).await? {
            Ok(w) => {
                let rollout = w.rollout(&want);
                observed.workload = Some(w);
                rollout
            }
            Err(rollout) => rollout,
        });
    }
    observed.observation.check = check_if_due(config, &state, now).await;
    Ok(observed)
}

/// Makes the server API check of the pending key in `state` when one is due.
pub async fn check_if_due(
    config: &LiveKitConfig,
    state: &KeyState,
    now: Timestamp,
) -> Option<rotation::Check> {
    let creds = rotation::check_due(state, &crate::desired::policy(&config.spec), now)?;
    let (http, base) = endpoint(config);
    Some(server_api::check(&http, &base, &creds, now).await)
}

/// The server API's base URL and a client bounded by the configured time-out.
fn endpoint(config: &LiveKitConfig) -> (reqwest::Client, String) {
    let api = config
        .spec
        .credentials
        .rotation
        .verification
        .server_api
        .clone()
        .unwrap_or_default();
    let base = server_api::api_base(&config.spec.server_url, api.url.as_deref());
    let http = server_api::client(Duration::from_secs(u64::from(api.timeout_seconds)));
    (http, base)
}

/// [`desired::desired`], and when its rotation step publishes a key whose verification is not
/// configured, the reachability probe and the same decision again with its answer: the mode is
/// chosen and recorded in the very write that publishes the key, so it is crash-safe and a
/// rotation never changes mode. `inputs` keeps the observation made.
pub async fn decide(
    config: &LiveKitConfig,
    inputs: &mut Inputs,
) -> std::result::Result<Desired, Problem> {
    let first = desired::desired(config, inputs)?;
    let policy = desired::policy(&config.spec);
    if inputs.observation.reachability.is_some()
        || !rotation::needs_reachability(&first.keys.state, &policy)
    {
        return Ok(first);
    }
    let (http, base) = endpoint(config);
    let reachability = server_api::probe(&http, &base).await;
    info!(config = %config.name_any(), ?reachability, "chose how to verify a new key");
    inputs.observation.reachability = Some(reachability);
    desired::desired(config, inputs)
}

/// Restarts the workload when its pod template does not carry the hash of the `keys.yaml` just
/// written. Returns whether it did. Call only after the owned Secret holds `desired`.
pub async fn restart_if_needed(
    client: &Client,
    config: &LiveKitConfig,
    workload: Option<&Workload>,
    desired: &Desired,
) -> Result<bool> {
    let (Some(r), Some(w)) = (workload_ref(config), workload) else {
        return Ok(false);
    };
    if w.template_hash() == Some(desired.keys_hash.as_str()) {
        return Ok(false);
    }
    let ns = config.namespace().unwrap_or_default();
    let patch = workload::restart_patch(&desired.keys_hash);
    let params = PatchParams {
        field_manager: Some(RESTART_MANAGER.into()),
        ..PatchParams::default()
    };
    match r.kind {
        WorkloadKind::Deployment => {
            Api::<Deployment>::namespaced(client.clone(), &ns)
                .patch(&r.name, &params, &Patch::Merge(&patch))
                .await?;
        }
        WorkloadKind::StatefulSet => {
            Api::<StatefulSet>::namespaced(client.clone(), &ns)
                .patch(&r.name, &params, &Patch::Merge(&patch))
                .await?;
        }
    }
    info!(workload = %r.name, keys_hash = %desired.keys_hash, "restarted livekit-server for a new keys.yaml");
    Ok(true)
}
