//! Table tests of every transition, and the crash-safety property: a step depends only on what the
//! owned Secret records (round-tripped through its annotations and keys.yaml) and on fresh observations.

use super::*;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const T0: &str = "2026-01-01T00:00:00Z";

pub(super) fn at(secs: i64) -> Timestamp {
    t(T0) + SignedDuration::from_secs(secs)
}

pub(super) fn pair(k: &str) -> ApiCredentials {
    ApiCredentials::new(k, format!("{k}-secret-0123456789abcdefghijklmnop"))
}

pub(super) fn api_policy() -> Policy {
    Policy {
        verification: Verification::ServerApi {
            consecutive: 2,
            interval: SignedDuration::from_secs(10),
        },
        deadline: SignedDuration::from_secs(600),
        grace: SignedDuration::from_secs(3600),
        workload: false,
    }
}

pub(super) fn signing(k: &str) -> KeyState {
    KeyState {
        signing: Some(pair(k)),
        ..KeyState::default()
    }
}

pub(super) fn gen_target(req: Option<&str>) -> Target {
    Target::Generate {
        rotate_request: req.map(str::to_owned),
        fresh: pair("APIfresh"),
    }
}

fn obs(check: Option<Check>) -> Observation {
    Observation {
        check,
        ..Observation::default()
    }
}

/// One step of a generated config whose rotate annotation is "1".
fn gen1(prev: &KeyState, policy: &Policy, check: Option<Check>, secs: i64) -> Step {
    step(prev, gen_target(Some("1")), policy, &obs(check), at(secs))
}

/// One step of a config reading `creds` from its source Secret.
fn src(
    prev: &KeyState,
    creds: ApiCredentials,
    policy: &Policy,
    check: Option<Check>,
    secs: i64,
) -> Step {
    step(prev, Target::Source(creds), policy, &obs(check), at(secs))
}

/// Round-trips a state through what the owned Secret stores.
pub(super) fn stored(s: &KeyState) -> KeyState {
    let keys_file = livekit_contract::render_keys_file(s.keys_file_pairs());
    let signing = s.signing.clone();
    record::read(
        signing.as_ref().map(|c| c.key.clone()),
        signing.map(|c| c.secret),
        Some(&keys_file),
        &record::annotations(s),
    )
}

fn keys_of(s: &KeyState) -> Vec<&str> {
    s.keys_file_pairs().into_iter().map(|(k, _)| k).collect()
}

#[test]
fn first_key_signs_at_once_and_a_rotate_value_at_creation_is_only_recorded() {
    let s = step(
        &KeyState::default(),
        gen_target(Some("1")),
        &api_policy(),
        &obs(None),
        at(0),
    );
    assert_eq!(s.state.signing, Some(pair("APIfresh")));
    assert_eq!(s.state.pending, None);
    assert_eq!(s.state.phase, None);
    assert_eq!(s.state.rotation_handled.as_deref(), Some("1"));
    assert_eq!(s.condition.reason, "NoRotation");
    assert!(!s.condition.rotating);
    assert_eq!(s.next_at, None);
}

#[test]
fn a_rotate_request_publishes_without_switching_the_signer() {
    let prev = KeyState {
        rotation_handled: Some("1".into()),
        ..signing("APIold")
    };
    let s = step(
        &prev,
        gen_target(Some("2")),
        &api_policy(),
        &obs(None),
        at(0),
    );
    assert_eq!(
        s.state.signing,
        Some(pair("APIold")),
        "still signs with the old key"
    );
    let p = s.state.pending.as_ref().unwrap();
    assert_eq!(p.creds, pair("APIfresh"));
    assert_eq!(p.published_at, at(0));
    assert!(!p.accepted);
    assert_eq!(s.state.phase, Some(Phase::Published));
    assert_eq!(keys_of(&s.state), ["APIfresh", "APIold"]);
    assert_eq!(s.state.rotation_handled.as_deref(), Some("2"));
    assert!(s.condition.rotating);
    assert_eq!(s.condition.reason, "Published");
    assert_eq!(s.next_at, Some(at(0)), "the first check is due at once");
    // The same value again does nothing.
    let again = step(
        &s.state,
        gen_target(Some("2")),
        &api_policy(),
        &obs(None),
        at(1),
    );
    assert_eq!(again.state, s.state);
}

#[test]
fn a_request_during_a_rotation_waits_for_it() {
    let published = step(
        &signing("APIold"),
        gen_target(Some("1")),
        &api_policy(),
        &obs(None),
        at(0),
    );
    let mut fresh2 = gen_target(Some("2"));
    if let Target::Generate { fresh, .. } = &mut fresh2 {
        *fresh = pair("APIfresh2");
    }
    let s = step(&published.state, fresh2, &api_policy(), &obs(None), at(1));
    assert_eq!(s.state.pending.as_ref().unwrap().creds.key, "APIfresh");
    assert_eq!(
        s.state.rotation_handled.as_deref(),
        Some("1"),
        "2 is not handled yet"
    );
}

#[test]
fn server_api_needs_consecutive_successes_spread_over_the_interval() {
    let policy = api_policy();
    let s0 = gen1(&signing("APIold"), &policy, None, 0).state;
    assert_eq!(
        check_due(&s0, &policy, at(0)).map(|c| c.key),
        Some("APIfresh".into())
    );

    // 401: not yet; the failure backs the next check off (20 s instead of 10 s).
    let s1 = gen1(&s0, &policy, Some(Check::NotAccepted), 0);
    let p = s1.state.pending.as_ref().unwrap();
    assert_eq!((p.checks, p.failures, p.last_check), (0, 1, Some(at(0))));
    assert!(
        s1.condition.message.contains("401"),
        "{}",
        s1.condition.message
    );
    // Recorded: a reconcile without a check (not due yet) still says why, and changes nothing.
    let quiet = gen1(&stored(&s1.state), &policy, None, 5);
    assert_eq!(quiet.condition, s1.condition);
    assert_eq!(quiet.state, s1.state);
    assert_eq!(s1.next_at, Some(at(20)));
    assert_eq!(check_due(&s1.state, &policy, at(19)), None);

    // A check made before it is due (a watch event woke the reconciler) is not counted.
    let early = gen1(&s1.state, &policy, Some(Check::Accepted), 5);
    assert_eq!(early.state, s1.state);

    let s2 = gen1(&s1.state, &policy, Some(Check::Accepted), 20);
    let p = s2.state.pending.as_ref().unwrap();
    assert_eq!((p.checks, p.failures, p.accepted), (1, 0, false));
    assert_eq!(s2.state.phase, Some(Phase::Published));
    assert_eq!(s2.next_at, Some(at(30)));

    // A failure between successes starts the count over.
    let broken = step(
        &s2.state,
        gen_target(Some("1")),
        &policy,
        &obs(Some(Check::Failed("timeout".into()))),
        at(30),
    );
    assert_eq!(broken.state.pending.as_ref().unwrap().checks, 0);
    assert!(broken.condition.message.contains("timeout"));

    let s3 = gen1(&s2.state, &policy, Some(Check::Accepted), 30);
    assert!(s3.state.pending.as_ref().unwrap().accepted);
    assert_eq!(s3.state.phase, Some(Phase::Accepted));
    assert_eq!(
        s3.state.signing,
        Some(pair("APIold")),
        "Accepted is recorded before anyone signs"
    );
    assert_eq!(s3.condition.reason, "Accepted");
    assert_eq!(s3.next_at, Some(at(30)), "the switch follows at once");

    // Active: the signer switches, the old key stays for the grace period.
    let s4 = gen1(&s3.state, &policy, None, 31);
    assert_eq!(s4.state.signing, Some(pair("APIfresh")));
    assert_eq!(s4.state.pending, None);
    assert_eq!(
        s4.state.retiring,
        vec![Retiring {
            creds: pair("APIold"),
            expires_at: at(31 + 3600)
        }]
    );
    assert_eq!(s4.state.phase, Some(Phase::Active));
    assert_eq!(keys_of(&s4.state), ["APIfresh", "APIold"]);
    assert!(!s4.condition.rotating);
    assert_eq!(s4.next_at, Some(at(31 + 3600)));

    // Retired once the grace period is over.
    let s5 = gen1(&s4.state, &policy, None, 31 + 3600);
    assert_eq!(s5.state.retiring, vec![]);
    assert_eq!(s5.state.phase, Some(Phase::Retired));
    assert_eq!(keys_of(&s5.state), ["APIfresh"]);
    assert_eq!(s5.condition.reason, "Retired");
    assert_eq!(s5.next_at, None);
}

#[test]
fn with_a_workload_only_checks_after_a_complete_rollout_count() {
    let policy = Policy {
        workload: true,
        ..api_policy()
    };
    let s0 = gen1(&signing("APIold"), &policy, None, 0).state;
    let waiting = Observation {
        check: Some(Check::Accepted),
        rollout: Some(Rollout::Waiting(
            "1 out of 3 new replicas have been updated".into(),
        )),
        reachability: None,
    };
    let s1 = step(&s0, gen_target(Some("1")), &policy, &waiting, at(0));
    let p = s1.state.pending.as_ref().unwrap();
    assert_eq!(
        (p.checks, p.failures),
        (0, 0),
        "one pod's 200 during a rollout counts for nothing"
    );
    assert!(
        s1.condition.message.contains("1 out of 3"),
        "{}",
        s1.condition.message
    );
    let done = |check| Observation {
        check,
        rollout: Some(Rollout::Complete),
        reachability: None,
    };
    let s2 = step(
        &s1.state,
        gen_target(Some("1")),
        &policy,
        &done(Some(Check::Accepted)),
        at(10),
    );
    let s3 = step(
        &s2.state,
        gen_target(Some("1")),
        &policy,
        &done(Some(Check::Accepted)),
        at(20),
    );
    assert_eq!(s3.state.phase, Some(Phase::Accepted));
    // Without a rollout observation nothing is accepted, even after enough checks.
    let s3b = gen1(&s2.state, &policy, Some(Check::Accepted), 20);
    assert_eq!(s3b.state.phase, Some(Phase::Published));
}

#[test]
fn delay_mode_accepts_after_the_delay_and_the_rollout() {
    let policy = Policy {
        verification: Verification::Delay(SignedDuration::from_secs(300)),
        ..api_policy()
    };
    let s0 = gen1(&signing("APIold"), &policy, None, 0);
    assert_eq!(
        check_due(&s0.state, &policy, at(0)),
        None,
        "Delay never calls LiveKit"
    );
    assert_eq!(s0.next_at, Some(at(300)));
    let s1 = gen1(&s0.state, &policy, None, 299);
    assert_eq!(s1.state.phase, Some(Phase::Published));
    let s2 = gen1(&s1.state, &policy, None, 300);
    assert_eq!(s2.state.phase, Some(Phase::Accepted));

    let with_workload = Policy {
        workload: true,
        ..policy
    };
    let w = gen1(&s1.state, &with_workload, None, 300);
    assert_eq!(
        w.state.phase,
        Some(Phase::Published),
        "the rollout is not known complete"
    );
    assert_eq!(w.next_at, Some(at(310)), "look at the rollout again soon");
}

#[test]
fn a_key_past_its_deadline_stays_published_and_says_so() {
    let policy = api_policy();
    let mut s = gen1(&signing("APIold"), &policy, None, 0).state;
    for i in 0..40 {
        s = gen1(&s, &policy, Some(Check::NotAccepted), i * 80).state;
    }
    let last = gen1(&s, &policy, None, 3200);
    assert_eq!(last.state.phase, Some(Phase::Published));
    assert_eq!(
        last.state.signing,
        Some(pair("APIold")),
        "never signs with an unaccepted key"
    );
    assert_eq!(last.condition.reason, REASON_DEADLINE);
    assert!(
        last.condition.message.contains("APIfresh") && last.condition.message.contains("APIold")
    );
    // Checks go on (backed off to 8 intervals) so a late restart of LiveKit still completes it.
    let p = last.state.pending.as_ref().unwrap();
    assert_eq!(
        last.next_at,
        Some(p.last_check.unwrap() + SignedDuration::from_secs(80))
    );
}

#[test]
fn source_secret_changes_rotate_in_phases() {
    let policy = api_policy();
    let prev = signing("APIsrc1");
    // Unchanged: nothing.
    let same = src(&prev, pair("APIsrc1"), &policy, None, 0);
    assert_eq!(same.state, prev);
    // A new key: Published.
    let s = src(&prev, pair("APIsrc2"), &policy, None, 0);
    assert_eq!(s.state.signing, Some(pair("APIsrc1")));
    assert_eq!(s.state.pending.as_ref().unwrap().creds, pair("APIsrc2"));
    // Changed again before acceptance: the unsigned pending key is replaced.
    let s2 = src(&s.state, pair("APIsrc3"), &policy, None, 5);
    assert_eq!(s2.state.pending.as_ref().unwrap().creds, pair("APIsrc3"));
    assert_eq!(keys_of(&s2.state), ["APIsrc1", "APIsrc3"]);
    // Reverted: the pending key goes, nothing else changes.
    let back = src(&s2.state, pair("APIsrc1"), &policy, None, 6);
    assert_eq!(back.state.pending, None);
    assert_eq!(keys_of(&back.state), ["APIsrc1"]);
}

#[test]
fn a_new_secret_under_the_same_key_id_is_a_rotation() {
    let policy = api_policy();
    let prev = signing("APIsrc");
    let edited = ApiCredentials::new("APIsrc", "a-completely-new-secret-0123456789abcdef");
    let s = src(&prev, edited.clone(), &policy, None, 0);
    assert_eq!(
        s.state.signing,
        Some(pair("APIsrc")),
        "keeps signing with the old secret"
    );
    assert_eq!(s.state.pending.as_ref().unwrap().creds, edited);
    assert_eq!(
        s.state.keys_file_pairs(),
        vec![("APIsrc", edited.secret.as_str())],
        "LiveKit needs the new secret to ever accept it"
    );
    assert!(
        s.condition.message.contains("same key id"),
        "{}",
        s.condition.message
    );
    let s1 = src(&s.state, edited.clone(), &policy, Some(Check::Accepted), 0);
    let s2 = src(
        &s1.state,
        edited.clone(),
        &policy,
        Some(Check::Accepted),
        10,
    );
    let s3 = src(&s2.state, edited.clone(), &policy, None, 11);
    assert_eq!(s3.state.signing, Some(edited));
    assert_eq!(
        s3.state.retiring,
        vec![],
        "one id holds one secret: nothing to keep"
    );
    assert_eq!(s3.state.phase, Some(Phase::Retired));
}

#[test]
fn every_key_within_its_grace_period_is_kept() {
    let policy = Policy {
        verification: Verification::Delay(SignedDuration::from_secs(10)),
        ..api_policy()
    };
    let mut s = signing("APIk0");
    let mut now = 0;
    for i in 1..=3 {
        let target = Target::Source(pair(&format!("APIk{i}")));
        for _ in 0..3 {
            s = step(&s, target.clone(), &policy, &obs(None), at(now)).state;
            now += 10;
        }
        assert_eq!(s.signing, Some(pair(&format!("APIk{i}"))));
    }
    assert_eq!(keys_of(&s), ["APIk0", "APIk1", "APIk2", "APIk3"]);
    assert_eq!(s.retiring.len(), 3);
    assert_eq!(s.phase, Some(Phase::Active));
    // They leave one by one as their own grace periods end.
    let first_expiry = s.retiring.iter().map(|r| r.expires_at).min().unwrap();
    let later = step(
        &s,
        Target::Source(pair("APIk3")),
        &policy,
        &obs(None),
        first_expiry,
    );
    assert_eq!(keys_of(&later.state), ["APIk1", "APIk2", "APIk3"]);
}

#[test]
fn zero_grace_drops_the_old_key_at_the_switch() {
    let policy = Policy {
        grace: SignedDuration::ZERO,
        verification: Verification::Delay(SignedDuration::from_secs(1)),
        ..api_policy()
    };
    let s0 = gen1(&signing("APIold"), &policy, None, 0).state;
    let s1 = gen1(&s0, &policy, None, 1).state;
    let s2 = gen1(&s1, &policy, None, 2);
    assert_eq!(keys_of(&s2.state), ["APIfresh"]);
    assert_eq!(s2.state.phase, Some(Phase::Retired));
}

#[test]
fn phases_entered_between_status_and_secret() {
    use Phase::*;
    assert_eq!(Phase::entered(None, None), vec![]);
    assert_eq!(Phase::entered(None, Some(Published)), vec![Published]);
    assert_eq!(
        Phase::entered(Some(Published), Some(Active)),
        vec![Accepted, Active]
    );
    assert_eq!(Phase::entered(Some(Active), Some(Active)), vec![]);
    assert_eq!(
        Phase::entered(Some(Retired), Some(Accepted)),
        vec![Published, Accepted]
    );
    assert_eq!(
        Phase::entered(Some(Active), Some(Published)),
        vec![Published]
    );
}

#[test]
fn the_secret_records_everything_a_step_needs() {
    // A whole rotation, with every intermediate state stored in and read back from the Secret:
    // the stored state equals the computed one at each step.
    let policy = api_policy();
    let mut s = signing("APIold");
    let script: Vec<(i64, Option<Check>)> = vec![
        (0, None),
        (0, Some(Check::NotAccepted)),
        (20, Some(Check::Accepted)),
        (30, Some(Check::Accepted)),
        (31, None),
        (3700, None),
    ];
    for (secs, check) in script {
        let next = gen1(&s, &policy, check, secs).state;
        assert_eq!(stored(&next), next, "at {secs}s");
        s = next;
    }
    assert_eq!(s.phase, Some(Phase::Retired));
}

#[test]
fn a_crash_before_any_write_repeats_the_same_step() {
    // The reconciler writes the Secret once per step. Dying before that write leaves the previous
    // Secret: the next reconcile makes the same step from it (same observations, same time), and
    // dying after it leaves the new Secret, from which the following step goes on. Either way the
    // end state is the one of an uninterrupted run.
    let policy = api_policy();
    let script: Vec<(i64, Option<Check>)> = vec![
        (0, None),
        (0, Some(Check::Accepted)),
        (10, Some(Check::Accepted)),
        (11, None),
        (3700, None),
    ];
    let run = |crash_at: Option<usize>| {
        let mut stored_state = signing("APIold");
        for (i, (secs, check)) in script.iter().enumerate() {
            let next = gen1(&stored_state, &policy, check.clone(), *secs);
            if crash_at == Some(i) {
                // Died before the write: the retry sees the old Secret and the same world.
                let retry = gen1(&stored(&stored_state), &policy, check.clone(), *secs);
                assert_eq!(retry, next);
            }
            stored_state = stored(&next.state);
        }
        stored_state
    };
    let clean = run(None);
    assert_eq!(clean.phase, Some(Phase::Retired));
    for crash in 0..script.len() {
        assert_eq!(run(Some(crash)), clean, "crash before write {crash}");
    }
}

#[test]
fn legacy_previous_key_annotation_keeps_its_grace_period() {
    let keys_file = livekit_contract::render_keys_file([
        ("APInew", pair("APInew").secret.as_str()),
        ("APIold", pair("APIold").secret.as_str()),
    ]);
    let annotations = std::collections::BTreeMap::from([(
        record::LEGACY_PREVIOUS_EXPIRES.to_owned(),
        at(100).to_string(),
    )]);
    let s = record::read(
        Some("APInew".into()),
        Some(pair("APInew").secret),
        Some(&keys_file),
        &annotations,
    );
    assert_eq!(
        s.retiring,
        vec![Retiring {
            creds: pair("APIold"),
            expires_at: at(100)
        }]
    );
}

#[test]
fn a_hand_edited_api_secret_reads_as_the_secret_livekit_loads() {
    let keys_file = livekit_contract::render_keys_file([("APIk", pair("APIk").secret.as_str())]);
    let s = record::read(
        Some("APIk".into()),
        Some("edited".into()),
        Some(&keys_file),
        &Default::default(),
    );
    assert_eq!(
        s.signing,
        Some(pair("APIk")),
        "drift, repaired from keys.yaml"
    );
}
