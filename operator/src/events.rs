//! The Events the reconciler records: their reasons and actions, and the rotation phases announced
//! from the difference between the recorded status and the Secret.

use crate::LiveKitConfig;
use crate::context::Context;
use crate::desired::{self, Desired};
use crate::rotation::{self, Phase};
use crate::status;
use kube::Resource;
use kube::runtime::events::{Event, EventType};
use tracing::warn;

/// Event reasons and actions recorded by the reconciler, besides the `Ready` problem reasons
/// ([`Reason`]) and the rotation phases, which carry their own names.
pub mod event {
    /// Reason: the owned objects were created.
    pub const CREATED: &str = "Created";
    /// Reason: the owned objects were brought up to date.
    pub const UPDATED: &str = "Updated";
    /// Reason: the workload was restarted to load a new `keys.yaml`.
    pub const RESTARTED: &str = "Restarted";
    /// Action: a reconcile that found a problem.
    pub const RECONCILE: &str = "Reconcile";
    /// Action: applying the owned objects.
    pub const APPLY: &str = "Apply";
    /// Action: a rotation step.
    pub const ROTATE: &str = "Rotate";
}

pub(crate) async fn publish(
    ctx: &Context,
    config: &LiveKitConfig,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &config.object_ref(&())).await {
        warn!(error = %e, reason, "could not publish Event");
    }
}

/// One Event per rotation phase entered since the status was last written, and a Warning when a
/// new key misses its acceptance deadline.
pub(crate) async fn rotation_events(ctx: &Context, config: &LiveKitConfig, desired: &Desired) {
    let old = config.status.clone().unwrap_or_default();
    let state = &desired.keys.state;
    let old_phase = old.rotation_phase.as_deref().and_then(Phase::parse);
    let pending = state.pending.as_ref().map(|p| p.creds.key.as_str());
    // A new rotation while the status still shows the previous one's Published: announce it again.
    let restarted = old_phase == Some(Phase::Published)
        && state.phase == Some(Phase::Published)
        && old.pending_api_key.as_deref() != pending;
    let mut entered = Phase::entered(old_phase, state.phase);
    if restarted {
        entered = vec![Phase::Published];
    }
    let signing = &desired.keys.signing().key;
    let policy = desired::policy(&config.spec);
    let chosen = state
        .pending
        .as_ref()
        .and_then(|p| rotation::chosen_note(&policy, p));
    for phase in entered {
        let note = match phase {
            Phase::Published => format!(
                "new API key {} is in keys.yaml; the sidecar keeps signing with {signing} until LiveKit accepts it{}",
                pending.unwrap_or(""),
                chosen.as_ref().map_or(String::new(), |n| format!("; {n}"))
            ),
            Phase::Accepted => format!("LiveKit accepts the new API key {}", pending.unwrap_or("")),
            Phase::Active => format!(
                "the sidecar signs with {signing}; earlier keys stay in keys.yaml for their grace period"
            ),
            Phase::Retired => format!("earlier keys left keys.yaml; only {signing} remains"),
        };
        publish(
            ctx,
            config,
            EventType::Normal,
            phase.as_str(),
            event::ROTATE,
            note,
        )
        .await;
    }
    let was_stuck = status::condition(Some(&old), status::ROTATING)
        .is_some_and(|c| c.reason == rotation::REASON_DEADLINE);
    let c = &desired.keys.condition;
    if c.reason == rotation::REASON_DEADLINE && !was_stuck {
        publish(
            ctx,
            config,
            EventType::Warning,
            rotation::REASON_DEADLINE,
            event::ROTATE,
            c.message.clone(),
        )
        .await;
    }
}
