//! The verification mode of a rotation when `verification.mode` is not configured: chosen once, at
//! Publish, from whether LiveKit's server API answers, and recorded with the pending key so that it
//! never changes during the rotation. Pure: the reachability observation is passed in.

use super::{KeyState, Pending, Policy, Verification};
use k8s_openapi::jiff::SignedDuration;

/// Under `Detect` without `delay.seconds`, how long after Publish a key counts as accepted.
pub const DETECTED_DELAY_DEFAULT: SignedDuration = SignedDuration::from_secs(600);

/// A verification mode chosen for one rotation under [`Verification::Detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    ServerApi,
    Delay,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ServerApi => "ServerApi",
            Mode::Delay => "Delay",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        [Mode::ServerApi, Mode::Delay]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// The mode chosen for a rotation, and why (shown in the condition and the Published Event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub mode: Mode,
    pub why: String,
}

/// Whether LiveKit's server API answered a request without credentials, made at Publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reachability {
    /// Any HTTP answer (401 included: it is the server refusing, so it is there): what it was.
    Answered(String),
    /// No HTTP answer: connection refused, DNS failure, time-out, TLS failure: why.
    Unreachable(String),
}

/// The verification of a rotation whose mode is not configured. Any HTTP answer means the operator
/// can prove acceptance with the server API, which is the stronger proof; only when nothing answers
/// does it fall back to the propagation delay (and the workload rollout, with a `workloadRef`).
pub fn choose(r: &Reachability) -> Chosen {
    match r {
        Reachability::Answered(what) => Chosen {
            mode: Mode::ServerApi,
            why: format!("the server API answered: {what}"),
        },
        Reachability::Unreachable(why) => Chosen {
            mode: Mode::Delay,
            why: format!("the server API did not answer: {why}"),
        },
    }
}

/// How `p` is verified: the configured mode, or under `Detect` the one chosen for it. `None` while
/// undecided (the key is then never accepted).
pub fn effective(policy: &Policy, p: &Pending) -> Option<Verification> {
    match policy.verification {
        Verification::Detect {
            consecutive,
            interval,
            delay,
        } => p.chosen.as_ref().map(|c| match c.mode {
            Mode::ServerApi => Verification::ServerApi {
                consecutive,
                interval,
            },
            Mode::Delay => Verification::Delay(delay),
        }),
        v => Some(v),
    }
}

/// Whether the pending key in `state` waits for a [`Reachability`] observation to choose its mode.
pub fn needs_reachability(state: &KeyState, policy: &Policy) -> bool {
    matches!(policy.verification, Verification::Detect { .. })
        && state.pending.as_ref().is_some_and(|p| p.chosen.is_none())
}

/// The chosen mode and why, for messages: only when it was chosen, not configured.
pub fn chosen_note(policy: &Policy, p: &Pending) -> Option<String> {
    let c = p.chosen.as_ref()?;
    matches!(policy.verification, Verification::Detect { .. }).then(|| {
        format!(
            "verified by {} (verification.mode is not set; chosen at publish: {})",
            c.mode.as_str(),
            c.why
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{api_policy, at, gen_target, signing, stored};
    use super::super::{Check, Observation, Phase, Rollout, Step, check_due, record, step};
    use super::*;

    const DELAY: SignedDuration = SignedDuration::from_secs(300);

    fn detect() -> Policy {
        Policy {
            verification: Verification::Detect {
                consecutive: 2,
                interval: SignedDuration::from_secs(10),
                delay: DELAY,
            },
            ..api_policy()
        }
    }

    fn answered() -> Reachability {
        Reachability::Answered(
            "http://lk:7880/twirp/livekit.RoomService/ListRooms answered 401 Unauthorized".into(),
        )
    }

    fn refused() -> Reachability {
        Reachability::Unreachable(
            "http://lk:7880/twirp/livekit.RoomService/ListRooms could not be reached: connection refused".into(),
        )
    }

    fn observe(
        check: Option<Check>,
        rollout: Option<Rollout>,
        reach: Option<Reachability>,
    ) -> Observation {
        Observation {
            check,
            rollout,
            reachability: reach,
        }
    }

    /// One step of a generated config asked to rotate, from the stored form of `prev`.
    fn go(prev: &KeyState, policy: &Policy, obs: Observation, secs: i64) -> Step {
        step(&stored(prev), gen_target(Some("1")), policy, &obs, at(secs))
    }

    #[test]
    fn any_http_answer_chooses_the_server_api_and_no_answer_the_delay() {
        for status in [
            "401 Unauthorized",
            "200 OK",
            "404 Not Found",
            "502 Bad Gateway",
        ] {
            let c = choose(&Reachability::Answered(format!("url answered {status}")));
            assert_eq!(c.mode, Mode::ServerApi, "{status}");
            assert!(c.why.contains(status), "{}", c.why);
        }
        for why in [
            "could not be reached: Connection refused (os error 111)",
            "could not be reached: dns error: failed to lookup address information",
            "did not answer in time",
            "could not be reached: invalid peer certificate: UnknownIssuer",
        ] {
            let c = choose(&Reachability::Unreachable(why.into()));
            assert_eq!(c.mode, Mode::Delay, "{why}");
            assert!(c.why.contains(why), "{}", c.why);
        }
    }

    #[test]
    fn the_mode_is_chosen_at_publish_recorded_and_never_flips() {
        let policy = detect();
        let published = go(
            &signing("APIold"),
            &policy,
            observe(None, None, Some(answered())),
            0,
        );
        let p = published.state.pending.as_ref().expect("published");
        assert_eq!(p.chosen.as_ref().map(|c| c.mode), Some(Mode::ServerApi));
        assert!(
            published
                .condition
                .message
                .contains("verified by ServerApi")
                && published.condition.message.contains("401"),
            "{}",
            published.condition.message
        );
        assert!(!needs_reachability(&published.state, &policy));
        // Recorded in the Secret: a later probe saying otherwise changes nothing.
        let later = go(
            &published.state,
            &policy,
            observe(None, None, Some(refused())),
            1,
        );
        assert_eq!(
            later.state.pending.unwrap().chosen.map(|c| c.mode),
            Some(Mode::ServerApi)
        );
        assert!(check_due(&stored(&published.state), &policy, at(0)).is_some());
        // Under ServerApi, time alone never accepts: only consecutive 200s do.
        let waited = go(&published.state, &policy, observe(None, None, None), 3600);
        assert_eq!(waited.state.phase, Some(Phase::Published));
        let s1 = go(
            &published.state,
            &policy,
            observe(Some(Check::Accepted), None, None),
            0,
        );
        let s2 = go(
            &s1.state,
            &policy,
            observe(Some(Check::Accepted), None, None),
            10,
        );
        assert_eq!(s2.state.phase, Some(Phase::Accepted));
    }

    #[test]
    fn unreachable_at_publish_falls_back_to_the_delay_and_the_rollout() {
        let policy = detect();
        let published = go(
            &signing("APIold"),
            &policy,
            observe(None, None, Some(refused())),
            0,
        );
        let p = published.state.pending.as_ref().unwrap();
        assert_eq!(p.chosen.as_ref().map(|c| c.mode), Some(Mode::Delay));
        assert!(
            published.condition.message.contains("verified by Delay")
                && published.condition.message.contains("connection refused"),
            "{}",
            published.condition.message
        );
        assert_eq!(check_due(&stored(&published.state), &policy, at(0)), None);
        assert_eq!(published.next_at, Some(at(300)));
        let early = go(&published.state, &policy, observe(None, None, None), 299);
        assert_eq!(early.state.phase, Some(Phase::Published));
        let due = go(&published.state, &policy, observe(None, None, None), 300);
        assert_eq!(due.state.phase, Some(Phase::Accepted));
        // With a workloadRef, the rollout must be complete too.
        let workload = Policy {
            workload: true,
            ..policy
        };
        let rolling = go(
            &published.state,
            &workload,
            observe(None, Some(Rollout::Waiting("1 of 2".into())), None),
            300,
        );
        assert_eq!(rolling.state.phase, Some(Phase::Published));
        let rolled = go(
            &published.state,
            &workload,
            observe(None, Some(Rollout::Complete), None),
            300,
        );
        assert_eq!(rolled.state.phase, Some(Phase::Accepted));
    }

    #[test]
    fn undecided_is_never_accepted_and_asks_for_a_probe_at_once() {
        let policy = detect();
        let published = go(&signing("APIold"), &policy, observe(None, None, None), 0);
        assert!(needs_reachability(&published.state, &policy));
        assert_eq!(published.next_at, Some(at(0)));
        for secs in [300, 3600, 86_400] {
            let s = go(
                &published.state,
                &policy,
                observe(Some(Check::Accepted), Some(Rollout::Complete), None),
                secs,
            );
            assert_eq!(s.state.phase, Some(Phase::Published), "after {secs}s");
        }
        assert_eq!(check_due(&stored(&published.state), &policy, at(0)), None);
        // An upgrade's pending key without a recorded mode is decided by the next probe.
        let decided = go(
            &published.state,
            &policy,
            observe(None, None, Some(refused())),
            5,
        );
        assert_eq!(
            decided.state.pending.unwrap().chosen.map(|c| c.mode),
            Some(Mode::Delay)
        );
    }

    #[test]
    fn a_configured_mode_ignores_reachability() {
        let policy = api_policy();
        let s = go(
            &signing("APIold"),
            &policy,
            observe(None, None, Some(refused())),
            0,
        );
        assert_eq!(s.state.pending.as_ref().unwrap().chosen, None);
        assert!(!needs_reachability(&s.state, &policy));
        assert!(!s.condition.message.contains("verified by"));
        assert!(
            !record::annotations(&s.state).contains_key(record::VERIFICATION),
            "nothing recorded"
        );
    }
}
