//! Prometheus metrics of the operator, served on the probe port. Labels are bounded: results, and the
//! namespace and name of each `LiveKitConfig` (objects a platform team creates, not user data).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::LiveKitConfig;
use crate::status;
use std::sync::atomic::{AtomicI64, Ordering};

/// A reconcile in flight; see [`Metrics::reconcile_started`].
pub struct InFlight<'a>(&'a IntGauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    reconcile_duration: Histogram,
    config_ready: IntGaugeVec,
    previous_key_expiry: IntGaugeVec,
    rotation_overdue: IntGaugeVec,
    leader: IntGauge,
    reconciles_in_flight: IntGauge,
    /// The most reconciles ever in flight at once (the controller's concurrency bound caps it).
    in_flight_peak: AtomicI64,
    /// The controller's cache, once it runs: `config_ready` is rebuilt from it on every scrape, so a
    /// deleted config leaves no stale series behind.
    store: Mutex<Option<Store<LiveKitConfig>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "livekit_operator_reconciles_total",
                "Reconciles of LiveKitConfigs by result (success, error)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let reconcile_duration = Histogram::with_opts(
            HistogramOpts::new(
                "livekit_operator_reconcile_duration_seconds",
                "Duration of one reconcile, API calls included",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )
        .expect("valid metric");
        let config_ready = IntGaugeVec::new(
            Opts::new(
                "livekit_operator_config_ready",
                "1 when the LiveKitConfig's Ready condition is True, else 0",
            ),
            &["namespace", "name"],
        )
        .expect("valid metric");
        let previous_key_expiry = IntGaugeVec::new(
            Opts::new(
                "livekit_operator_previous_key_expiry_timestamp_seconds",
                "While a rotation's grace period runs: when the previous API key leaves keys.yaml (Unix \
                 seconds). A series still present well past its value means the rotation is stuck.",
            ),
            &["namespace", "name"],
        )
        .expect("valid metric");
        let rotation_overdue = IntGaugeVec::new(
            Opts::new(
                "livekit_operator_rotation_overdue",
                "1 while a new key has passed its acceptance deadline without LiveKit accepting it \
                 (the Rotating condition's reason is AcceptanceDeadlineExceeded), else 0",
            ),
            &["namespace", "name"],
        )
        .expect("valid metric");
        let leader = IntGauge::new(
            "livekit_operator_leader",
            "1 while this replica leads and runs the controller",
        )
        .expect("valid metric");
        let reconciles_in_flight = IntGauge::new(
            "livekit_operator_reconciles_in_flight",
            "Reconciles running now; at most --max-concurrent-reconciles",
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "livekit_operator_build_info",
                "Version of the running operator; always 1",
            ),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for collector in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reconcile_duration.clone()),
            Box::new(config_ready.clone()),
            Box::new(previous_key_expiry.clone()),
            Box::new(rotation_overdue.clone()),
            Box::new(leader.clone()),
            Box::new(reconciles_in_flight.clone()),
            Box::new(build_info),
        ] {
            registry.register(collector).expect("unique metric");
        }
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("unique metric");
        for result in ["success", "error"] {
            reconciles.with_label_values(&[result]);
        }
        Self {
            registry,
            reconciles,
            reconcile_duration,
            config_ready,
            previous_key_expiry,
            rotation_overdue,
            leader,
            reconciles_in_flight,
            in_flight_peak: AtomicI64::new(0),
            store: Mutex::new(None),
        }
    }

    /// Counts a reconcile as running until the returned guard drops (when it ends, or when the
    /// controller is dropped with it in flight).
    pub fn reconcile_started(&self) -> InFlight<'_> {
        self.reconciles_in_flight.inc();
        self.in_flight_peak
            .fetch_max(self.reconciles_in_flight.get(), Ordering::Relaxed);
        InFlight(&self.reconciles_in_flight)
    }

    /// The most reconciles that were ever in flight at once.
    pub fn in_flight_peak(&self) -> i64 {
        self.in_flight_peak.load(Ordering::Relaxed)
    }

    /// Counts one reconcile.
    pub fn observe_reconcile(&self, success: bool, elapsed: Duration) {
        let result = if success { "success" } else { "error" };
        self.reconciles.with_label_values(&[result]).inc();
        self.reconcile_duration.observe(elapsed.as_secs_f64());
    }

    /// Records the Ready condition a reconcile wrote.
    pub fn set_ready(&self, namespace: &str, name: &str, ready: bool) {
        self.config_ready
            .with_label_values(&[namespace, name])
            .set(i64::from(ready));
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    pub fn set_store(&self, store: Store<LiveKitConfig>) {
        *self.store.lock().unwrap_or_else(|p| p.into_inner()) = Some(store);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(store) = store {
            self.config_ready.reset();
            self.previous_key_expiry.reset();
            self.rotation_overdue.reset();
            for config in store.state() {
                let overdue = rotation_overdue(config.status.as_ref());
                self.rotation_overdue
                    .with_label_values(&[
                        &config.namespace().unwrap_or_default(),
                        &config.name_any(),
                    ])
                    .set(i64::from(overdue));
                if let Some(at) = previous_key_expiry(config.status.as_ref()) {
                    self.previous_key_expiry
                        .with_label_values(&[
                            &config.namespace().unwrap_or_default(),
                            &config.name_any(),
                        ])
                        .set(at);
                }
                let ready =
                    status::ready(config.status.as_ref()).is_some_and(|c| c.status == "True");
                self.set_ready(
                    &config.namespace().unwrap_or_default(),
                    &config.name_any(),
                    ready,
                );
            }
        }
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding of gathered metrics cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

/// When the previous key of a rotation leaves `keys.yaml`, from the status, in Unix seconds.
fn previous_key_expiry(status: Option<&crate::crd::LiveKitConfigStatus>) -> Option<i64> {
    let at = status?.previous_api_key_expires_at.as_deref()?;
    at.parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}

/// Whether a rotated key is past its acceptance deadline, from the `Rotating` condition.
fn rotation_overdue(status: Option<&crate::crd::LiveKitConfigStatus>) -> bool {
    status::condition(status, status::ROTATING)
        .is_some_and(|c| c.reason == crate::rotation::REASON_DEADLINE)
}

/// Shared handle.
pub type SharedMetrics = Arc<Metrics>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_series_exist_from_the_start() {
        let m = Metrics::new();
        let text = m.render();
        assert!(text.contains("livekit_operator_reconciles_total{result=\"success\"} 0"));
        assert!(text.contains("livekit_operator_leader 0"));
        assert!(text.contains("livekit_operator_build_info{version=\""));
        m.set_leader(true);
        m.set_ready("apps", "chat", true);
        let text = m.render();
        assert!(text.contains("livekit_operator_leader 1"));
        assert!(text.contains("livekit_operator_config_ready{name=\"chat\",namespace=\"apps\"} 1"));
    }

    #[test]
    fn previous_key_expiry_comes_from_the_status() {
        let status = |at: Option<&str>| crate::LiveKitConfigStatus {
            previous_api_key_expires_at: at.map(str::to_owned),
            ..Default::default()
        };
        assert_eq!(
            previous_key_expiry(Some(&status(Some("2026-01-02T03:04:05Z")))),
            Some(1_767_323_045)
        );
        assert_eq!(previous_key_expiry(Some(&status(None))), None);
        assert_eq!(previous_key_expiry(Some(&status(Some("soon")))), None);
        assert_eq!(previous_key_expiry(None), None);
    }

    #[test]
    fn rotation_overdue_follows_the_rotating_condition() {
        let with = |type_: &str, reason: &str| crate::LiveKitConfigStatus {
            conditions: vec![crate::crd::Condition {
                type_: type_.into(),
                status: "True".into(),
                reason: reason.into(),
                message: String::new(),
                last_transition_time: "2026-01-01T00:00:00Z".into(),
                observed_generation: None,
            }],
            ..Default::default()
        };
        let deadline = crate::rotation::REASON_DEADLINE;
        assert!(rotation_overdue(Some(&with(status::ROTATING, deadline))));
        assert!(!rotation_overdue(Some(&with(
            status::ROTATING,
            "Published"
        ))));
        assert!(!rotation_overdue(Some(&with(status::READY, deadline))));
        assert!(!rotation_overdue(None));
    }
}
