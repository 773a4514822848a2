//! Per-object retry delays for failed reconciles.

use crate::LiveKitConfig;
use kube::runtime::reflector::ObjectRef;
use rand::Rng;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Per-object exponential backoff with jitter. kube-runtime's controller has none per object.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    pub(crate) max: Duration,
    /// Consecutive failures and when the last one happened, per object.
    failures: Mutex<HashMap<ObjectRef<LiveKitConfig>, (u32, std::time::Instant)>>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_secs(5), Duration::from_secs(300))
    }
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::default(),
        }
    }

    /// The delay after the `attempt`-th consecutive failure (1-based), before jitter: base·2^(n-1),
    /// capped at max.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// "Equal jitter": half the ceiling plus a random part of the other half, so retries of many
    /// objects spread out but never come sooner than half the ceiling.
    pub fn with_jitter(ceiling: Duration, unit: f64) -> Duration {
        let half = ceiling / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// Records a failure of `obj` and returns how long to wait. Entries whose last failure is more
    /// than twice the longest delay old are dropped: their object was deleted (no success will
    /// reset them) or has long been retried, so the map stays as large as the set of failing objects.
    pub fn next(&self, obj: &ObjectRef<LiveKitConfig>) -> Duration {
        let now = std::time::Instant::now();
        let attempt = {
            let mut map = self.failures.lock().expect("backoff lock");
            let stale = self.max.saturating_mul(2);
            map.retain(|_, (_, at)| now.duration_since(*at) <= stale);
            let e = map.entry(obj.clone()).or_insert((0, now));
            e.0 = e.0.saturating_add(1);
            e.1 = now;
            e.0
        };
        Self::with_jitter(self.ceiling(attempt), rand::rng().random())
    }

    /// Forgets the failures of `obj` after a success.
    pub fn reset(&self, obj: &ObjectRef<LiveKitConfig>) {
        self.failures.lock().expect("backoff lock").remove(obj);
    }

    /// Consecutive failures recorded for `obj`.
    pub fn failures(&self, obj: &ObjectRef<LiveKitConfig>) -> u32 {
        self.failures
            .lock()
            .expect("backoff lock")
            .get(obj)
            .map_or(0, |e| e.0)
    }

    /// How many objects have failures recorded.
    pub fn tracked(&self) -> usize {
        self.failures.lock().expect("backoff lock").len()
    }
}
