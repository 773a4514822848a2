//! Key rotation in phases, as a pure state machine.
//!
//! livekit-server reads its keys once, at start. A new key therefore goes through phases, each one
//! proven before the next, so that the sidecar never signs with a key LiveKit does not hold:
//!
//! 1. **Published**: the new pair is added to `keys.yaml`; the sidecar keeps signing with the current one.
//! 2. **Accepted**: LiveKit is proven to accept it (server API calls, or a delay; with a workload,
//!    after its restart has rolled out).
//! 3. **Active**: `api-key`/`api-secret` switch to it; earlier keys stay in `keys.yaml` for the grace
//!    period.
//! 4. **Retired**: the last earlier key has left `keys.yaml`.
//!
//! The only state is the owned Secret ([`record`] reads and writes it), and [`step`] makes at most
//! one transition from what it holds plus what the reconciler observed just now. A crash between
//! two writes therefore leaves a Secret from which the next reconcile derives the same next step.

pub mod detect;
pub mod record;
pub mod server_api;
pub mod workload;

pub use detect::{
    Chosen, DETECTED_DELAY_DEFAULT, Mode, Reachability, choose, chosen_note, effective,
    needs_reachability,
};

use crate::credentials::{ApiCredentials, truncate};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// LiveKit refuses (outside `--dev`) to start with an API secret shorter than this; the sidecar
/// enforces the same minimum.
pub use livekit_contract::limits::MIN_LIVEKIT_SECRET_CHARS;

/// The phase of the latest rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Published,
    Accepted,
    Active,
    Retired,
}

impl Phase {
    pub const ALL: [Phase; 4] = [
        Phase::Published,
        Phase::Accepted,
        Phase::Active,
        Phase::Retired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Published => "Published",
            Phase::Accepted => "Accepted",
            Phase::Active => "Active",
            Phase::Retired => "Retired",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The phases entered when going from `from` to `to`, in order: what to announce when status
    /// still says `from` and the Secret says `to` (several steps may have happened while status
    /// writes failed). A lower or equal phase means a new rotation started over at Published.
    pub fn entered(from: Option<Phase>, to: Option<Phase>) -> Vec<Phase> {
        let Some(to) = to else { return Vec::new() };
        if from == Some(to) {
            return Vec::new();
        }
        let start = match from {
            Some(f) if f < to => f as usize + 1,
            _ => 0,
        };
        Phase::ALL[start..=to as usize].to_vec()
    }
}

/// A new key that is in `keys.yaml` but not yet signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub creds: ApiCredentials,
    pub published_at: Timestamp,
    /// Proven accepted; the next step makes it the signing key.
    pub accepted: bool,
    /// Consecutive successful server API checks (reset by any failed one).
    pub checks: u32,
    /// Consecutive failed checks (reset by a successful one); they space the next check out.
    pub failures: u32,
    pub last_check: Option<Timestamp>,
    /// Why the last check failed (recorded, so the condition says it on every reconcile).
    pub last_error: Option<String>,
    /// Under [`Verification::Detect`], how this key is verified: chosen once, at Publish, and
    /// recorded with the key, so it never changes during the rotation.
    pub chosen: Option<Chosen>,
}

impl Pending {
    fn new(creds: ApiCredentials, now: Timestamp) -> Self {
        Self {
            creds,
            published_at: truncate(now),
            accepted: false,
            checks: 0,
            failures: 0,
            last_check: None,
            last_error: None,
            chosen: None,
        }
    }
}

/// An earlier key kept in `keys.yaml` until `expires_at`, so tokens signed with it keep working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retiring {
    pub creds: ApiCredentials,
    pub expires_at: Timestamp,
}

/// Everything the owned Secret records about keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyState {
    /// What the sidecar signs with (`api-key`, `api-secret`).
    pub signing: Option<ApiCredentials>,
    pub pending: Option<Pending>,
    /// Sorted by key id.
    pub retiring: Vec<Retiring>,
    /// Absent until the first rotation.
    pub phase: Option<Phase>,
    /// The config's rotate annotation value last honoured.
    pub rotation_handled: Option<String>,
    /// The key of the workload restart hash; made once, with the first key.
    pub hash_key: Option<workload::HashKey>,
}

impl KeyState {
    /// The `key: secret` pairs of `keys.yaml`: every key LiveKit must accept. A pending secret under
    /// the signing key's id (a source Secret edited in place) wins: LiveKit holds one secret per id.
    pub fn keys_file_pairs(&self) -> Vec<(&str, &str)> {
        let mut pairs = std::collections::BTreeMap::new();
        for r in &self.retiring {
            pairs.insert(r.creds.key.as_str(), r.creds.secret.as_str());
        }
        if let Some(s) = &self.signing {
            pairs.insert(s.key.as_str(), s.secret.as_str());
        }
        if let Some(p) = &self.pending {
            pairs.insert(p.creds.key.as_str(), p.creds.secret.as_str());
        }
        pairs.into_iter().collect()
    }
}

/// Where the wanted key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The pair in the source Secret (`credentials.secretRef`).
    Source(ApiCredentials),
    /// Generated: `fresh` is used only for a first key or a new rotate request.
    Generate {
        rotate_request: Option<String>,
        fresh: ApiCredentials,
    },
}

/// How acceptance is proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    ServerApi {
        consecutive: u32,
        interval: SignedDuration,
    },
    Delay(SignedDuration),
    /// Not configured: each rotation uses `ServerApi` (with these settings) when the server API
    /// answered at Publish, else `Delay` (with `delay`).
    Detect {
        consecutive: u32,
        interval: SignedDuration,
        delay: SignedDuration,
    },
}

/// The rotation settings of a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub verification: Verification,
    pub deadline: SignedDuration,
    pub grace: SignedDuration,
    /// A `livekitServer.workloadRef` is set: acceptance also needs its rollout complete.
    pub workload: bool,
}

/// The answer of one server API call made with the pending key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// 200: the server holds the key.
    Accepted,
    /// 401: not (yet).
    NotAccepted,
    /// Anything else: timeout, connection error, another status.
    Failed(String),
}

/// The workload's rollout of the current `keys.yaml`, judged as `kubectl rollout status` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    Complete,
    Waiting(String),
    Failed(String),
}

/// What the reconciler observed just now, besides the stored state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// Made only when [`check_due`] said so.
    pub check: Option<Check>,
    /// Read only with a workload.
    pub rollout: Option<Rollout>,
    /// Made only when [`needs_reachability`] said so.
    pub reachability: Option<Reachability>,
}

/// The condition `Rotating` describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatingCondition {
    /// True while a new key is Published or Accepted.
    pub rotating: bool,
    pub reason: &'static str,
    pub message: String,
}

pub const REASON_DEADLINE: &str = "AcceptanceDeadlineExceeded";

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub state: KeyState,
    pub condition: RotatingCondition,
    /// When to look again even if nothing else changes.
    pub next_at: Option<Timestamp>,
}

impl Step {
    pub fn signing(&self) -> &ApiCredentials {
        self.state
            .signing
            .as_ref()
            .expect("a step always ends with a signing key")
    }
}

/// While waiting for a rollout in `Delay` mode, how often to look at the workload again.
const ROLLOUT_POLL: SignedDuration = SignedDuration::from_secs(10);

/// Failed checks double the wait before the next one, up to this many doublings.
const MAX_BACKOFF_DOUBLINGS: u32 = 3;

/// When the next server API check of `p` is due: `interval` after the last one, doubled per
/// consecutive failure (at most 8 times the interval).
fn next_check(p: &Pending, interval: SignedDuration) -> Option<Timestamp> {
    let factor = 1i32 << p.failures.min(MAX_BACKOFF_DOUBLINGS);
    p.last_check.map(|at| at + interval * factor)
}

/// The pending key to check with the server API now, if a check is due.
pub fn check_due(state: &KeyState, policy: &Policy, now: Timestamp) -> Option<ApiCredentials> {
    let p = state.pending.as_ref().filter(|p| !p.accepted)?;
    let Some(Verification::ServerApi { interval, .. }) = effective(policy, p) else {
        return None;
    };
    next_check(p, interval)
        .is_none_or(|at| now >= at)
        .then(|| p.creds.clone())
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// Makes at most one transition. Pure: time, the fresh pair and the observations are passed in.
pub fn step(
    prev: &KeyState,
    target: Target,
    policy: &Policy,
    obs: &Observation,
    now: Timestamp,
) -> Step {
    let mut s = prev.clone();
    let mut activated = false;

    // 1. The wanted key.
    match target {
        Target::Generate {
            rotate_request,
            fresh,
        } => {
            let request = nonempty(rotate_request);
            if s.signing.is_none() {
                // A first key has nothing to protect: LiveKit cannot know any key of this config yet.
                s.signing = Some(fresh);
                s.pending = None;
                s.rotation_handled = request.or(s.rotation_handled);
            } else if s.pending.is_none()
                && let Some(req) = request
                && s.rotation_handled.as_deref() != Some(req.as_str())
            {
                // A request made during a rotation waits for it to finish (it is not recorded yet).
                s.pending = Some(Pending::new(fresh, now));
                s.rotation_handled = Some(req);
            }
        }
        Target::Source(pair) => {
            if s.signing.is_none() {
                s.signing = Some(pair);
                s.pending = None;
            } else if s.signing.as_ref() == Some(&pair) {
                // Unchanged, or reverted: a pending key nobody signed with is simply dropped.
                s.pending = None;
            } else if s.pending.as_ref().map(|p| &p.creds) != Some(&pair) {
                // A new pair, or a new secret under the same id: a rotation. A pending pair it
                // replaces was never signed with, so it can go at once.
                s.pending = Some(Pending::new(pair, now));
            }
        }
    }

    // 2. Advance the pending key by one phase.
    let rollout_ok = !policy.workload || matches!(obs.rollout, Some(Rollout::Complete));
    if let Some(p) = s.pending.as_mut() {
        if p.accepted {
            // Accepted was recorded by an earlier step: switch the signer (Active).
            let p = s.pending.take().expect("pending");
            let old = s.signing.replace(p.creds).expect("a signing key");
            let new_key = s.signing.as_ref().expect("signing").key.clone();
            if old.key != new_key && policy.grace > SignedDuration::ZERO {
                s.retiring.retain(|r| r.creds.key != old.key);
                s.retiring.push(Retiring {
                    creds: old,
                    expires_at: truncate(now) + policy.grace,
                });
            }
            activated = true;
        } else {
            if p.chosen.is_none() && matches!(policy.verification, Verification::Detect { .. }) {
                p.chosen = obs.reachability.as_ref().map(choose);
            }
            match effective(policy, p) {
                Some(Verification::ServerApi {
                    consecutive,
                    interval,
                }) => {
                    let due = next_check(p, interval).is_none_or(|at| now >= at);
                    if let (true, Some(check)) = (due, &obs.check) {
                        match (check, rollout_ok) {
                            (Check::Accepted, true) => {
                                p.checks = p.checks.saturating_add(1);
                                p.failures = 0;
                            }
                            // A 200 from a pod while others still roll out proves nothing yet.
                            (Check::Accepted, false) => p.checks = 0,
                            _ => {
                                p.checks = 0;
                                p.failures = p.failures.saturating_add(1);
                            }
                        }
                        p.last_error = match check {
                            Check::Accepted => None,
                            Check::NotAccepted => Some(
                                "LiveKit's server API answered 401 (the key is not loaded yet)"
                                    .to_owned(),
                            ),
                            Check::Failed(why) => {
                                Some(format!("LiveKit's server API check failed: {why}"))
                            }
                        };
                        p.last_check = Some(truncate(now));
                    }
                    p.accepted = rollout_ok && p.checks >= consecutive.max(1);
                }
                Some(Verification::Delay(delay)) => {
                    p.accepted = rollout_ok && now >= p.published_at + delay;
                }
                // Undecided: nothing proves the key, so it is not accepted.
                Some(Verification::Detect { .. }) | None => p.accepted = false,
            }
        }
    }

    // 3. Earlier keys past their grace period leave keys.yaml.
    let signing_key = s.signing.as_ref().map(|c| c.key.clone());
    let pending_key = s.pending.as_ref().map(|p| p.creds.key.clone());
    s.retiring.retain(|r| {
        r.expires_at > now
            && Some(&r.creds.key) != signing_key.as_ref()
            && Some(&r.creds.key) != pending_key.as_ref()
    });
    s.retiring.sort_by(|a, b| a.creds.key.cmp(&b.creds.key));

    // 4. The phase.
    s.phase = match &s.pending {
        Some(p) if p.accepted => Some(Phase::Accepted),
        Some(_) => Some(Phase::Published),
        None if prev.phase.is_some() || activated => Some(if s.retiring.is_empty() {
            Phase::Retired
        } else {
            Phase::Active
        }),
        None => None,
    };

    let condition = condition(&s, policy, obs, now);
    let next_at = next_at(&s, policy, now);
    Step {
        state: s,
        condition,
        next_at,
    }
}

fn condition(
    s: &KeyState,
    policy: &Policy,
    obs: &Observation,
    now: Timestamp,
) -> RotatingCondition {
    let signing = s.signing.as_ref().map(|c| c.key.as_str()).unwrap_or("");
    let Some(p) = &s.pending else {
        let retiring: Vec<String> = s
            .retiring
            .iter()
            .map(|r| format!("{} until {}", r.creds.key, r.expires_at))
            .collect();
        let (reason, message) = match s.phase {
            Some(Phase::Active) => (
                "Active",
                format!(
                    "the sidecar signs with {signing}; keys.yaml keeps {}",
                    retiring.join(", ")
                ),
            ),
            Some(Phase::Retired) => (
                "Retired",
                format!("the sidecar signs with {signing}; no earlier key is left in keys.yaml"),
            ),
            _ => ("NoRotation", format!("the sidecar signs with {signing}")),
        };
        return RotatingCondition {
            rotating: false,
            reason,
            message,
        };
    };
    let key = &p.creds.key;
    let same_id = if Some(key) == s.signing.as_ref().map(|c| &c.key) {
        " (the secret changed under the same key id: LiveKit holds one secret per id, so pods restarted with the new secret refuse tokens of the old one until the switch; use a new key id to rotate without that gap)"
    } else {
        ""
    };
    if p.accepted {
        return RotatingCondition {
            rotating: true,
            reason: "Accepted",
            message: format!("LiveKit accepts {key}; the sidecar switches to it next{same_id}"),
        };
    }
    let waiting = match (&obs.rollout, policy.workload) {
        (Some(Rollout::Waiting(why)), true) => {
            format!("waiting for the livekit-server rollout: {why}")
        }
        (Some(Rollout::Failed(why)), true) => format!("the livekit-server rollout failed: {why}"),
        (None, true) => "waiting for the livekit-server rollout".to_owned(),
        _ => match effective(policy, p) {
            Some(Verification::ServerApi { consecutive, .. }) => match &p.last_error {
                Some(why) => why.clone(),
                None => format!(
                    "{} of {consecutive} consecutive server API checks passed",
                    p.checks
                ),
            },
            Some(Verification::Delay(d)) => {
                format!("waiting until {} (verification delay)", p.published_at + d)
            }
            Some(Verification::Detect { .. }) | None => {
                "choosing how to verify it: is LiveKit's server API reachable?".to_owned()
            }
        },
    };
    let waiting = match chosen_note(policy, p) {
        Some(note) => format!("{note}; {waiting}"),
        None => waiting,
    };
    let overdue = now >= p.published_at + policy.deadline;
    let (reason, message) = if overdue {
        (
            REASON_DEADLINE,
            format!(
                "{key} was published at {} and is still not accepted: {waiting}; the sidecar keeps signing with {signing}{same_id}",
                p.published_at
            ),
        )
    } else {
        (
            "Published",
            format!("{key} is in keys.yaml; {waiting}; the sidecar signs with {signing}{same_id}"),
        )
    };
    RotatingCondition {
        rotating: true,
        reason,
        message,
    }
}

fn next_at(s: &KeyState, policy: &Policy, now: Timestamp) -> Option<Timestamp> {
    let mut at: Vec<Timestamp> = s.retiring.iter().map(|r| r.expires_at).collect();
    if let Some(p) = &s.pending {
        if p.accepted {
            at.push(now);
        } else {
            let deadline = p.published_at + policy.deadline;
            if deadline > now {
                at.push(deadline);
            }
            match effective(policy, p) {
                Some(Verification::ServerApi { interval, .. }) => {
                    at.push(next_check(p, interval).unwrap_or(now));
                }
                Some(Verification::Detect { .. }) | None => at.push(now),
                Some(Verification::Delay(d)) => {
                    let ready = p.published_at + d;
                    at.push(if ready > now {
                        ready
                    } else {
                        now + ROLLOUT_POLL
                    });
                }
            }
        }
    }
    at.into_iter().min().map(|t| t.max(now))
}

#[cfg(test)]
mod tests;
