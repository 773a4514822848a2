//! What "healthy" means: configured and, when probing is on and required, the LiveKit server answers.
//! The probe task ([`crate::probe`]) writes the reachability; health, `/readyz` and the gauges read it.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// The last probe's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    /// Probing is off, or nothing has been probed yet.
    Unknown,
    Reachable,
    Unreachable,
}

#[derive(Debug, Default)]
pub struct ReachabilityCell(AtomicU8);

impl ReachabilityCell {
    pub fn get(&self) -> Reachability {
        match self.0.load(Ordering::Relaxed) {
            1 => Reachability::Reachable,
            2 => Reachability::Unreachable,
            _ => Reachability::Unknown,
        }
    }

    pub fn set(&self, value: Reachability) {
        let raw = match value {
            Reachability::Unknown => 0,
            Reachability::Reachable => 1,
            Reachability::Unreachable => 2,
        };
        self.0.store(raw, Ordering::Relaxed);
    }
}

/// How the probe runs and what it means for health.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    /// Zero turns probing off; health then rests on configuration alone.
    pub interval: Duration,
    pub timeout: Duration,
    /// Whether an unreachable (or not yet probed) server makes health `unhealthy` (never `/readyz`).
    pub unreachable_is_unhealthy: bool,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            unreachable_is_unhealthy: true,
        }
    }
}

/// Whether the sidecar reports healthy (and ready).
pub fn is_healthy(configured: bool, reachability: Reachability, probe: &ProbeSettings) -> bool {
    let probing = !probe.interval.is_zero();
    let reachable = reachability == Reachability::Reachable;
    configured && (reachable || !probing || !probe.unreachable_is_unhealthy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_round_trips() {
        let cell = ReachabilityCell::default();
        assert_eq!(cell.get(), Reachability::Unknown);
        cell.set(Reachability::Unreachable);
        assert_eq!(cell.get(), Reachability::Unreachable);
        cell.set(Reachability::Reachable);
        assert_eq!(cell.get(), Reachability::Reachable);
    }

    #[test]
    fn health_follows_the_probe_only_when_asked() {
        let on = ProbeSettings::default();
        assert!(is_healthy(true, Reachability::Reachable, &on));
        assert!(!is_healthy(true, Reachability::Unreachable, &on));
        assert!(!is_healthy(true, Reachability::Unknown, &on));
        assert!(!is_healthy(false, Reachability::Reachable, &on));
        let lenient = ProbeSettings {
            unreachable_is_unhealthy: false,
            ..ProbeSettings::default()
        };
        assert!(is_healthy(true, Reachability::Unreachable, &lenient));
        let off = ProbeSettings {
            interval: Duration::ZERO,
            ..ProbeSettings::default()
        };
        assert!(is_healthy(true, Reachability::Unknown, &off));
    }
}
