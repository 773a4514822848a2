//! What every request shares: the current configuration snapshot, limits, metrics and reachability.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Snapshot;
use crate::health::{ProbeSettings, Reachability, ReachabilityCell, is_healthy};
use crate::metrics::Metrics;

/// Limits applied to every API request.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// How long a client may take to send its body.
    pub body_timeout: Duration,
    /// Requests handled at once; more are refused with 503 rather than queued without bound.
    pub max_concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024,
            body_timeout: Duration::from_secs(10),
            max_concurrency: 512,
        }
    }
}

/// All requests at work hold a slot; none is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

#[derive(Clone)]
pub struct AppState {
    config: Arc<ArcSwap<Snapshot>>,
    limits: Arc<Limits>,
    in_flight: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    reachability: Arc<ReachabilityCell>,
    probe: Arc<ProbeSettings>,
}

impl AppState {
    pub fn new(snapshot: Snapshot, limits: Limits, probe: ProbeSettings) -> Self {
        let state = Self {
            config: Arc::new(ArcSwap::from_pointee(snapshot)),
            in_flight: Arc::new(Semaphore::new(limits.max_concurrency)),
            limits: Arc::new(limits),
            metrics: Arc::new(Metrics::new()),
            reachability: Arc::new(ReachabilityCell::default()),
            probe: Arc::new(probe),
        };
        state.metrics.record_reload(true);
        state.refresh_health_gauges();
        state
    }

    /// The snapshot a request works with from start to end, whatever a reload does meanwhile.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.config.load_full()
    }

    /// Swaps in a new, already validated snapshot.
    pub fn replace(&self, snapshot: Snapshot) {
        self.config.store(Arc::new(snapshot));
        self.refresh_health_gauges();
    }

    /// A slot among `--max-concurrency` requests at work; refused, never queued without bound.
    pub fn try_enter(&self) -> Result<OwnedSemaphorePermit, Busy> {
        self.in_flight.clone().try_acquire_owned().map_err(|_| Busy)
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn reachability(&self) -> &ReachabilityCell {
        &self.reachability
    }

    /// Configured, and — when the setting asks for it and probing is on — the LiveKit server answers.
    pub fn is_healthy(&self) -> bool {
        is_healthy(
            self.snapshot().is_configured(),
            self.reachability.get(),
            &self.probe,
        )
    }

    pub fn refresh_health_gauges(&self) {
        let m = &self.metrics;
        m.configured.set(i64::from(self.snapshot().is_configured()));
        m.healthy.set(i64::from(self.is_healthy()));
        m.livekit_reachable.set(i64::from(
            self.reachability.get() == Reachability::Reachable,
        ));
    }
}
