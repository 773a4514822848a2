//! The status a LiveKitConfig should carry, as a pure function of the outcome of a reconcile.

use crate::crd::{Condition, LiveKitConfig, LiveKitConfigStatus, RetiringApiKey};
use crate::desired::{Desired, Problem, Reason, owned_name};
use crate::rotation::Retiring;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

pub const READY: &str = "Ready";
pub const ROTATING: &str = "Rotating";

/// The key that retired last (the one `previousApiKey` names).
fn newest_retiring(d: &Desired) -> Option<&Retiring> {
    d.keys.state.retiring.iter().max_by_key(|r| r.expires_at)
}

/// The outcome the status describes.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// Both owned objects hold what `Desired` says.
    Applied(&'a Desired),
    /// Nothing was (re)written; the owned objects keep their last good content.
    Failed(&'a Problem),
}

/// Replaces the condition of `new.type_`, keeping its `lastTransitionTime` unless the status flips.
fn set_condition(
    conditions: &mut Vec<Condition>,
    old: &[Condition],
    mut new: Condition,
    now: Timestamp,
) {
    new.last_transition_time = match old.iter().find(|c| c.type_ == new.type_) {
        Some(c) if c.status == new.status => c.last_transition_time.clone(),
        _ => crate::credentials::truncate(now).to_string(),
    };
    conditions.retain(|c| c.type_ != new.type_);
    conditions.push(new);
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
                d.keys.signing().key
            ),
        ),
        Outcome::Failed(p) => ("False", p.reason, p.message.clone()),
    };
    let mut conditions = previous.conditions.clone();
    let condition = |type_: &str, status: &str, reason: &str, message: String| Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: String::new(),
        observed_generation: generation,
    };
    set_condition(
        &mut conditions,
        &previous.conditions,
        condition(READY, status, reason.as_str(), message),
        now,
    );
    if let Outcome::Applied(d) = outcome {
        let c = &d.keys.condition;
        let status = if c.rotating { "True" } else { "False" };
        set_condition(
            &mut conditions,
            &previous.conditions,
            condition(ROTATING, status, c.reason, c.message.clone()),
            now,
        );
    }
    // Ready first, then the others in a stable order.
    conditions.sort_by_key(|c| (c.type_ != READY, c.type_.clone()));

    match outcome {
        Outcome::Applied(d) => LiveKitConfigStatus {
            observed_generation: generation,
            conditions,
            secret_name: Some(owned_name(&config.name_any())),
            config_map_name: Some(owned_name(&config.name_any())),
            config_hash: Some(d.config_hash.clone()),
            api_key: Some(d.keys.signing().key.clone()),
            previous_api_key: newest_retiring(d).map(|r| r.creds.key.clone()),
            previous_api_key_expires_at: newest_retiring(d).map(|r| r.expires_at.to_string()),
            rotation_phase: d.keys.state.phase.map(|p| p.as_str().to_owned()),
            pending_api_key: d.keys.state.pending.as_ref().map(|p| p.creds.key.clone()),
            retiring_api_keys: d
                .keys
                .state
                .retiring
                .iter()
                .map(|r| RetiringApiKey {
                    api_key: r.creds.key.clone(),
                    expires_at: r.expires_at.to_string(),
                })
                .collect(),
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
    condition(status, READY)
}

/// The condition of a type, if any.
pub fn condition<'a>(
    status: Option<&'a LiveKitConfigStatus>,
    type_: &str,
) -> Option<&'a Condition> {
    status?.conditions.iter().find(|c| c.type_ == type_)
}
