//! The status a LiveKitConfig should carry, as a pure function of the outcome of a reconcile.

use crate::crd::{Condition, LiveKitConfig, LiveKitConfigStatus};
use crate::desired::{Desired, Problem, Reason, owned_name};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

pub const READY: &str = "Ready";

/// The outcome the status describes.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// Both owned objects hold what `Desired` says.
    Applied(&'a Desired),
    /// Nothing was (re)written; the owned objects keep their last good content.
    Failed(&'a Problem),
}

/// Builds the status. `lastTransitionTime` moves only when the `Ready` status flips, and fields
/// about the owned objects survive a failure (they still hold the last good configuration), so a
/// second reconcile with the same outcome produces an identical status and no write.
pub fn desired_status(
    config: &LiveKitConfig,
    outcome: Outcome<'_>,
    now: Timestamp,
) -> LiveKitConfigStatus {
    let previous = config.status.clone().unwrap_or_default();
    let generation = config.metadata.generation;
    let (status, reason, message) = match outcome {
        Outcome::Applied(d) => (
            "True",
            Reason::Reconciled,
            format!(
                "Secret and ConfigMap {} are up to date; the sidecar signs with API key {}",
                owned_name(&config.name_any()),
                d.keys.current.key
            ),
        ),
        Outcome::Failed(p) => ("False", p.reason, p.message.clone()),
    };
    let old_ready = previous.conditions.iter().find(|c| c.type_ == READY);
    let last_transition_time = match old_ready {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => crate::credentials::truncate(now).to_string(),
    };
    let ready = Condition {
        type_: READY.into(),
        status: status.into(),
        reason: reason.to_string(),
        message,
        last_transition_time,
        observed_generation: generation,
    };
    let mut conditions: Vec<Condition> = previous
        .conditions
        .iter()
        .filter(|c| c.type_ != READY)
        .cloned()
        .collect();
    conditions.insert(0, ready);

    match outcome {
        Outcome::Applied(d) => LiveKitConfigStatus {
            observed_generation: generation,
            conditions,
            secret_name: Some(owned_name(&config.name_any())),
            config_map_name: Some(owned_name(&config.name_any())),
            config_hash: Some(d.config_hash.clone()),
            api_key: Some(d.keys.current.key.clone()),
            previous_api_key: d.keys.previous.as_ref().map(|(p, _)| p.key.clone()),
            previous_api_key_expires_at: d.keys.previous.as_ref().map(|(_, at)| at.to_string()),
        },
        Outcome::Failed(_) => LiveKitConfigStatus {
            observed_generation: generation,
            conditions,
            ..previous
        },
    }
}

/// The `Ready` condition of a status, if any.
pub fn ready(status: Option<&LiveKitConfigStatus>) -> Option<&Condition> {
    status?.conditions.iter().find(|c| c.type_ == READY)
}
