//! Leader election with a `coordination.k8s.io` Lease, as client-go's `leaderelection` does it: a
//! lease duration, a renew deadline shorter than it, and a retry period.
//!
//! Only the leader runs the controller. The leader tries to renew every retry period; when no
//! renewal has succeeded for the renew deadline (the API server answers errors, or never answers),
//! it reports leadership lost and the process exits to restart as a follower. The deadline is
//! shorter than the lease duration, so the old leader has stopped before any standby can see the
//! lease expire and take over: two replicas never reconcile at once. (kube-lease-manager, used
//! before, retried a renewal that failed with anything but a conflict forever and kept reporting
//! leadership.) On shutdown the leader releases the lease at once, so a standby takes over without
//! waiting for it to expire.
//!
//! Expiry is judged as client-go judges it, on this replica's own monotonic clock: a lease held by
//! another replica is expired once its record has not changed for its `leaseDurationSeconds`, so
//! clock skew between nodes does not matter. Every write carries the resourceVersion it was decided
//! on (a 409 means another replica wrote first). Calls: GET the Lease, POST it when missing, merge
//! PATCH it to acquire, renew and release (the RBAC verbs get, create, patch).

use crate::error::{Error, Result};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use rand::Rng;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// The field manager of Lease writes.
pub const FIELD_MANAGER: &str = "livekit-operator-leader-election";

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// Seconds a lease is valid after its last renewal: how long a standby waits before it takes
    /// over a lease whose holder stopped renewing.
    pub duration_seconds: u64,
    /// How long the leader keeps failing to renew before it gives up leadership. Shorter than the
    /// lease duration, so it has stopped before a standby may take over.
    pub renew_deadline: Duration,
    /// Time between two attempts to acquire or renew.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// The rules client-go enforces: duration > renew deadline > retry period > 0.
    pub fn validate(&self) -> Result<()> {
        let duration = Duration::from_secs(self.duration_seconds);
        if self.retry_period.is_zero() {
            return Err(Error::Config(
                "the lease retry period must be positive".into(),
            ));
        }
        if self.renew_deadline <= self.retry_period {
            return Err(Error::Config(format!(
                "the lease renew deadline ({:?}) must be longer than the retry period ({:?})",
                self.renew_deadline, self.retry_period
            )));
        }
        if duration <= self.renew_deadline {
            return Err(Error::Config(format!(
                "the lease duration ({duration:?}) must be longer than the renew deadline ({:?}): a leader that cannot renew must stop before a standby takes over",
                self.renew_deadline
            )));
        }
        Ok(())
    }
}

/// What to do with the Lease as last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// There is no Lease: create it, held by this replica.
    Create,
    /// Nobody holds it, or its holder let it expire: take it.
    Acquire,
    /// This replica holds it: renew it.
    Renew,
    /// Another replica holds a valid lease.
    Wait,
}

/// The decision, given the Lease and how long its record has been unchanged as seen from here.
pub fn step(me: &str, lease: Option<&LeaseSpec>, unchanged_for: Duration) -> Step {
    let Some(spec) = lease else {
        return Step::Create;
    };
    match spec.holder_identity.as_deref().filter(|h| !h.is_empty()) {
        Some(holder) if holder == me => Step::Renew,
        None => Step::Acquire,
        Some(_) => {
            let valid = u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0);
            if unchanged_for >= Duration::from_secs(valid) {
                Step::Acquire
            } else {
                Step::Wait
            }
        }
    }
}

/// The record of a Lease that, when it changes, shows its holder is alive.
type RecordKey = (Option<String>, Option<MicroTime>, Option<i32>);

fn record_key(spec: &LeaseSpec) -> RecordKey {
    (
        spec.holder_identity.clone(),
        spec.renew_time.clone(),
        spec.lease_transitions,
    )
}

/// When this replica last saw the Lease record change.
#[derive(Default)]
struct Observed(Option<(RecordKey, Instant)>);

impl Observed {
    /// How long the record has been unchanged, counting from its first sight here.
    fn see(&mut self, lease: Option<&Lease>, now: Instant) -> Duration {
        let key = lease.and_then(|l| l.spec.as_ref()).map(record_key);
        match (&self.0, key) {
            (Some((seen, at)), Some(key)) if *seen == key => now.duration_since(*at),
            (_, Some(key)) => {
                self.0 = Some((key, now));
                Duration::ZERO
            }
            (_, None) => {
                self.0 = None;
                Duration::ZERO
            }
        }
    }
}

/// The result of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// This replica holds the lease, renewed just now.
    Held,
    /// Another replica holds a valid lease.
    HeldByOther,
    /// Another replica wrote between our read and our write; try again.
    Raced,
}

struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Observed,
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl Elector {
    /// Reads the Lease and takes or renews it when [`step`] says so.
    async fn attempt(&mut self) -> std::result::Result<Attempt, kube::Error> {
        let lease = self.api.get_opt(&self.config.name).await?;
        let unchanged_for = self.observed.see(lease.as_ref(), Instant::now());
        let spec = lease.as_ref().map(|l| l.spec.clone().unwrap_or_default());
        let decision = step(&self.config.identity, spec.as_ref(), unchanged_for);
        let now = MicroTime(Timestamp::now());
        let duration = i32::try_from(self.config.duration_seconds).unwrap_or(i32::MAX);
        let result = match (decision, lease) {
            (Step::Wait, _) => return Ok(Attempt::HeldByOther),
            (Step::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.config.identity.clone()),
                        lease_duration_seconds: Some(duration),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                let params = PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PostParams::default()
                };
                match self.api.create(&params, &lease).await {
                    Err(kube::Error::Api(s)) if s.code == 409 => return Ok(Attempt::Raced),
                    other => other,
                }
            }
            (step, Some(current)) => {
                let old = current.spec.clone().unwrap_or_default();
                let mut spec = serde_json::json!({
                    "holderIdentity": self.config.identity,
                    "leaseDurationSeconds": duration,
                    "renewTime": now,
                });
                if step == Step::Acquire {
                    spec["acquireTime"] = serde_json::json!(now);
                    spec["leaseTransitions"] =
                        serde_json::json!(old.lease_transitions.unwrap_or(0).saturating_add(1));
                }
                // The resourceVersion makes the patch conditional: it fails with 409 when the
                // Lease changed since it was read.
                let patch = serde_json::json!({
                    "metadata": {"resourceVersion": current.resource_version()},
                    "spec": spec,
                });
                self.patch(&patch).await
            }
            (_, None) => unreachable!("step is Create when there is no Lease"),
        };
        match result {
            Ok(written) => {
                self.observed.see(Some(&written), Instant::now());
                Ok(Attempt::Held)
            }
            Err(e) if is_conflict(&e) => Ok(Attempt::Raced),
            Err(e) => Err(e),
        }
    }

    async fn patch(&self, patch: &serde_json::Value) -> std::result::Result<Lease, kube::Error> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        self.api
            .patch(&self.config.name, &params, &Patch::Merge(patch))
            .await
    }

    /// Gives the lease up, if this replica still holds it: no holder and a one-second duration,
    /// so a standby takes over at once. Bounded by the renew deadline.
    async fn release(&self) {
        let release = async {
            let Some(lease) = self.api.get_opt(&self.config.name).await? else {
                return Ok(false);
            };
            let holder = lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref());
            if holder != Some(self.config.identity.as_str()) {
                return Ok(false);
            }
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": lease.resource_version()},
                "spec": {"holderIdentity": null, "leaseDurationSeconds": 1,
                         "renewTime": MicroTime(Timestamp::now())},
            });
            self.patch(&patch).await.map(|_| true)
        };
        match tokio::time::timeout(self.config.renew_deadline, release).await {
            Ok(Ok(true)) => info!("lease released"),
            Ok(Ok(false)) => debug!("lease not held; nothing to release"),
            Ok(Err(e)) => warn!(error = %e, "lease release failed"),
            Err(_) => warn!("lease release timed out"),
        }
    }

    /// The wait before the next attempt of a follower: the retry period plus up to 20 % jitter
    /// (as client-go's), so standbys do not all call at once.
    fn follower_wait(&self) -> Duration {
        self.config
            .retry_period
            .mul_f64(1.0 + 0.2 * rand::rng().random::<f64>())
    }

    /// Competes for the lease, then holds it until it cannot renew it in time or `stop` fires.
    async fn run(mut self, leading: watch::Sender<bool>, mut stop: oneshot::Receiver<()>) {
        // Follower: until the lease is ours.
        let mut renewed;
        loop {
            renewed = Instant::now();
            let attempt = tokio::select! {
                _ = &mut stop => return,
                a = tokio::time::timeout(self.config.renew_deadline, self.attempt()) => a,
            };
            match attempt {
                Ok(Ok(Attempt::Held)) => break,
                Ok(Ok(other)) => debug!(attempt = ?other, "lease not acquired"),
                Ok(Err(e)) => warn!(error = %e, "could not acquire the lease"),
                Err(_) => warn!("acquiring the lease timed out"),
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(self.follower_wait()) => {}
            }
        }
        let _ = leading.send(true);
        // Leader: renew every retry period; give up once none succeeded for the renew deadline.
        // A renewal counts from the moment its request was built (its renewTime), so the deadline
        // is never later than what a standby measures.
        loop {
            tokio::select! {
                _ = &mut stop => {
                    self.release().await;
                    return;
                }
                _ = tokio::time::sleep(self.config.retry_period) => {}
            }
            let started = Instant::now();
            let left = self
                .config
                .renew_deadline
                .saturating_sub(started.duration_since(renewed));
            let outcome = tokio::select! {
                _ = &mut stop => {
                    self.release().await;
                    return;
                }
                a = tokio::time::timeout(left, self.attempt()) => a,
            };
            match outcome {
                Ok(Ok(Attempt::Held)) => renewed = started,
                Ok(Ok(Attempt::HeldByOther)) => {
                    warn!("another replica holds the lease");
                    let _ = leading.send(false);
                    return;
                }
                Ok(Ok(Attempt::Raced)) => debug!("lease renewal raced with another writer"),
                Ok(Err(e)) => warn!(error = %e, "lease renewal failed"),
                Err(_) => warn!("lease renewal timed out"),
            }
            if renewed.elapsed() >= self.config.renew_deadline {
                warn!(
                    deadline = ?self.config.renew_deadline,
                    "no lease renewal succeeded within the renew deadline; giving up leadership"
                );
                let _ = leading.send(false);
                return;
            }
        }
    }
}

/// A running election: `is_leader` flips as the lease is won or lost.
pub struct Election {
    pub is_leader: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// Starts competing for the lease.
pub async fn start(client: Client, config: &LeaseConfig) -> Result<Election> {
    config.validate()?;
    let elector = Elector {
        api: Api::namespaced(client, &config.namespace),
        config: config.clone(),
        observed: Observed::default(),
    };
    let (leading, is_leader) = watch::channel(false);
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(elector.run(leading, stopped));
    Ok(Election {
        is_leader,
        stop: Some(stop),
        task,
    })
}

impl Election {
    /// Waits until this replica holds the lease.
    pub async fn acquired(&mut self) -> bool {
        self.is_leader.wait_for(|l| *l).await.is_ok()
    }

    /// Resolves when the lease is lost (or the election ended).
    pub fn lost(&self) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.is_leader.clone();
        async move {
            let _ = rx.wait_for(|l| !*l).await;
        }
    }

    /// Stops competing and releases the lease if this replica holds it; waits for that to finish.
    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(e) = (&mut self.task).await {
            warn!(error = %e, "lease task failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: Option<&str>, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(seconds),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_held_by_another_is_taken_only_once_unchanged_for_its_duration() {
        let other = held_by(Some("b"), 15);
        assert_eq!(step("a", None, Duration::ZERO), Step::Create);
        assert_eq!(
            step("a", Some(&held_by(None, 15)), Duration::ZERO),
            Step::Acquire
        );
        assert_eq!(
            step("a", Some(&held_by(Some(""), 1)), Duration::ZERO),
            Step::Acquire
        );
        assert_eq!(
            step("a", Some(&held_by(Some("a"), 15)), Duration::ZERO),
            Step::Renew
        );
        assert_eq!(step("a", Some(&other), Duration::from_secs(14)), Step::Wait);
        assert_eq!(
            step("a", Some(&other), Duration::from_millis(14_999)),
            Step::Wait
        );
        assert_eq!(
            step("a", Some(&other), Duration::from_secs(15)),
            Step::Acquire
        );
    }

    #[test]
    fn the_record_counts_as_unchanged_from_its_first_sight() {
        let mut seen = Observed::default();
        let t = Instant::now();
        let lease = |renew: i64| Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some("b".into()),
                renew_time: Some(MicroTime(Timestamp::from_second(renew).unwrap())),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        assert_eq!(seen.see(Some(&lease(1)), t), Duration::ZERO);
        let later = t + Duration::from_secs(5);
        assert_eq!(seen.see(Some(&lease(1)), later), Duration::from_secs(5));
        // Renewed: the holder is alive, the count starts again.
        assert_eq!(seen.see(Some(&lease(2)), later), Duration::ZERO);
        assert_eq!(seen.see(None, later), Duration::ZERO);
    }

    #[test]
    fn timings_must_nest() {
        let config = |duration, deadline, retry| LeaseConfig {
            name: "l".into(),
            namespace: "n".into(),
            identity: "a".into(),
            duration_seconds: duration,
            renew_deadline: Duration::from_secs(deadline),
            retry_period: Duration::from_secs(retry),
        };
        assert!(config(15, 10, 2).validate().is_ok());
        assert!(config(10, 10, 2).validate().is_err());
        assert!(config(15, 2, 2).validate().is_err());
        assert!(config(15, 10, 0).validate().is_err());
    }
}
