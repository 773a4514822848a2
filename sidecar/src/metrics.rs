//! Prometheus metrics of the sidecar, served on the metrics port. Every label is drawn from a small
//! closed set: never a user, room or token.

use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Outcomes of a token request, one per status the endpoint can answer with.
pub const TOKEN_OUTCOMES: &[&str] = &[
    "issued",
    "invalid_request",
    "unauthenticated",
    "forbidden",
    "not_found",
    "unavailable",
    "not_configured",
    "error",
];

/// The route label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

struct RouteHandles {
    by_class: [IntCounter; 5],
    duration: Histogram,
    counts_tokens: bool,
}

/// The series of a counter whose label values form a closed set, resolved once: counting a value is
/// a comparison of a few short strings, never a hash of label values.
pub struct LabelledCounters(Vec<(&'static str, IntCounter)>);

impl LabelledCounters {
    /// Resolves (and so creates, at zero) the series of every value, so rates and absent() behave.
    fn new(counters: &IntCounterVec, values: &[&'static str]) -> Self {
        Self(
            values
                .iter()
                .map(|value| (*value, counters.with_label_values(&[value])))
                .collect(),
        )
    }

    /// Counts one `value`, which must be one of the values the set was made with.
    pub fn inc(&self, value: &str) {
        debug_assert!(self.0.iter().any(|(v, _)| *v == value), "{value}");
        if let Some((_, counter)) = self.0.iter().find(|(v, _)| *v == value) {
            counter.inc();
        }
    }
}

/// Pre-resolved series of the API routes.
pub struct RouteMetrics {
    /// The known routes, then [`UNMATCHED`] last.
    routes: Vec<(&'static str, RouteHandles)>,
    tokens: LabelledCounters,
}

impl RouteMetrics {
    /// The index of a matched route path, or of [`UNMATCHED`].
    pub fn index(&self, matched: Option<&str>) -> usize {
        matched
            .and_then(|path| self.routes.iter().position(|(route, _)| *route == path))
            .unwrap_or(self.routes.len() - 1)
    }

    pub fn counts_tokens(&self, route: usize) -> bool {
        self.routes[route].1.counts_tokens
    }

    pub fn observe(&self, route: usize, status: u16, elapsed: Duration) {
        let handles = &self.routes[route].1;
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        handles.by_class[class].inc();
        handles.duration.observe(elapsed.as_secs_f64());
    }

    /// Counts a finished token request; `outcome` is one of [`TOKEN_OUTCOMES`].
    pub fn observe_token(&self, outcome: &str) {
        self.tokens.inc(outcome);
    }
}

pub struct Metrics {
    registry: Registry,
    log_lines_dropped: prometheus::IntCounter,
    pub configured: IntGauge,
    pub healthy: IntGauge,
    pub livekit_reachable: IntGauge,
    pub tokens: IntCounterVec,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    /// By [`crate::auth::AUTH_FAILURE_REASONS`].
    pub auth_failures: LabelledCounters,
    /// By [`crate::authz::WEBHOOK_OUTCOMES`].
    pub webhook_requests: LabelledCounters,
    pub webhook_duration: Histogram,
    pub reloads: IntCounterVec,
    pub last_reload_success: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| {
            register(&registry, IntGauge::new(name, help).expect("valid metric"))
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            register(&registry, c)
        };
        // Tokens take well under a millisecond; webhooks and JWKS fetches take up to seconds.
        let buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];

        let log_lines_dropped = register(
            &registry,
            prometheus::IntCounter::new(
                "livekit_sidecar_log_lines_dropped_total",
                "Log lines dropped because the log writer fell behind (it never blocks requests)",
            )
            .expect("valid metric"),
        );
        let configured = gauge(
            "livekit_sidecar_configured",
            "1 when LiveKit credentials and caller authentication are configured",
        );
        let healthy = gauge(
            "livekit_sidecar_healthy",
            "1 when the health endpoint reports healthy",
        );
        let livekit_reachable = gauge(
            "livekit_sidecar_livekit_reachable",
            "1 when the last probe of the LiveKit server succeeded",
        );
        let tokens = counter(
            "livekit_sidecar_tokens_total",
            "Token requests by outcome",
            &["outcome"],
        );
        let http_requests = counter(
            "livekit_sidecar_http_requests_total",
            "API requests by route and status class",
            &["route", "status_class"],
        );
        let http_duration = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "livekit_sidecar_http_request_duration_seconds",
                    "API request duration by route",
                )
                .buckets(buckets.clone()),
                &["route"],
            )
            .expect("valid metric"),
        );
        let auth_failures = counter(
            "livekit_sidecar_caller_auth_failures_total",
            "Refused caller tokens by reason",
            &["reason"],
        );
        let webhook_requests = counter(
            "livekit_sidecar_authz_webhook_requests_total",
            "Authorization webhook calls by outcome (allow, deny, not_found, invalid_answer, error, timeout)",
            &["outcome"],
        );
        let webhook_duration = register(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "livekit_sidecar_authz_webhook_duration_seconds",
                    "Authorization webhook call duration",
                )
                .buckets(buckets),
            )
            .expect("valid metric"),
        );
        let reloads = counter(
            "livekit_sidecar_config_reloads_total",
            "Configuration reloads by result (success, failure)",
            &["result"],
        );
        let last_reload_success = register(
            &registry,
            Gauge::new(
                "livekit_sidecar_config_last_reload_success_timestamp_seconds",
                "Unix time of the last configuration load that was swapped in",
            )
            .expect("valid metric"),
        );
        let build_info = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "livekit_sidecar_build_info",
                    "Version of the running sidecar; always 1",
                ),
                &["version"],
            )
            .expect("valid metric"),
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("unique metric");

        // Every known label value exists from the start, so rates and absent() behave.
        for outcome in TOKEN_OUTCOMES {
            tokens.with_label_values(&[outcome]);
        }
        for result in ["success", "failure"] {
            reloads.with_label_values(&[result]);
        }
        let webhook_requests =
            LabelledCounters::new(&webhook_requests, crate::authz::WEBHOOK_OUTCOMES);
        let auth_failures =
            LabelledCounters::new(&auth_failures, crate::auth::AUTH_FAILURE_REASONS);

        Self {
            registry,
            log_lines_dropped,
            configured,
            healthy,
            livekit_reachable,
            tokens,
            http_requests,
            http_duration,
            auth_failures,
            webhook_requests,
            webhook_duration,
            reloads,
            last_reload_success,
        }
    }

    /// Handles for the series of `routes` (path, counts token outcomes), resolved once so requests
    /// never look a label up.
    pub fn routes(&self, routes: &[(&'static str, bool)]) -> RouteMetrics {
        let handles = |route: &str, tokens: bool| RouteHandles {
            by_class: ["1xx", "2xx", "3xx", "4xx", "5xx"]
                .map(|class| self.http_requests.with_label_values(&[route, class])),
            duration: self.http_duration.with_label_values(&[route]),
            counts_tokens: tokens,
        };
        let mut all: Vec<(&'static str, RouteHandles)> = routes
            .iter()
            .map(|&(route, tokens)| (route, handles(route, tokens)))
            .collect();
        all.push((UNMATCHED, handles(UNMATCHED, false)));
        RouteMetrics {
            routes: all,
            tokens: LabelledCounters::new(&self.tokens, TOKEN_OUTCOMES),
        }
    }

    pub fn record_reload(&self, success: bool) {
        if success {
            self.reloads.with_label_values(&["success"]).inc();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            self.last_reload_success.set(now);
        } else {
            self.reloads.with_label_values(&["failure"]).inc();
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        sync_counter(&self.log_lines_dropped, crate::log_budget::dropped_lines());
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding of gathered metrics cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

/// Brings a counter mirrored from elsewhere up to `observed` (never down).
fn sync_counter(counter: &prometheus::IntCounter, observed: u64) {
    let current = counter.get();
    if observed > current {
        counter.inc_by(observed - current);
    }
}

/// Registers a collector and hands back the handle to update it.
fn register<C: Collector + Clone + 'static>(registry: &Registry, collector: C) -> C {
    registry
        .register(Box::new(collector.clone()))
        .expect("unique metric");
    collector
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrored_counters_only_go_up() {
        let counter = prometheus::IntCounter::new("c", "c").unwrap();
        sync_counter(&counter, 5);
        assert_eq!(counter.get(), 5);
        sync_counter(&counter, 3);
        assert_eq!(counter.get(), 5);
        sync_counter(&counter, 9);
        assert_eq!(counter.get(), 9);
        assert!(
            Metrics::new()
                .render()
                .contains("livekit_sidecar_log_lines_dropped_total 0")
        );
    }

    #[test]
    fn renders_known_series_from_the_start() {
        let metrics = Metrics::new();
        let text = metrics.render();
        assert!(text.contains("livekit_sidecar_tokens_total{outcome=\"issued\"} 0"));
        assert!(text.contains("livekit_sidecar_build_info{version=\""));
        assert!(text.contains("livekit_sidecar_config_reloads_total{result=\"failure\"} 0"));
        assert!(
            text.contains(
                "livekit_sidecar_caller_auth_failures_total{reason=\"keys_unavailable\"} 0"
            )
        );
        assert!(
            text.contains("livekit_sidecar_authz_webhook_requests_total{outcome=\"timeout\"} 0")
        );
    }

    #[test]
    fn statuses_map_to_classes() {
        let metrics = Metrics::new();
        let routes =
            metrics.routes(&[("/api/livekit/token", true), ("/api/livekit/health", false)]);
        let token = routes.index(Some("/api/livekit/token"));
        assert!(routes.counts_tokens(token));
        assert!(!routes.counts_tokens(routes.index(Some("/api/livekit/health"))));
        assert_eq!(routes.index(Some("/elsewhere")), routes.index(None));
        for status in [200, 400, 401, 500, 503, 599] {
            routes.observe(token, status, Duration::from_millis(1));
        }
        routes.observe(routes.index(None), 404, Duration::from_millis(1));
        routes.observe_token("invalid_request");
        let text = metrics.render();
        assert!(text.contains("livekit_sidecar_tokens_total{outcome=\"invalid_request\"} 1"));
        assert!(text.contains(
            "livekit_sidecar_http_requests_total{route=\"/api/livekit/token\",status_class=\"5xx\"} 3"
        ));
        assert!(text.contains(
            "livekit_sidecar_http_requests_total{route=\"/api/livekit/token\",status_class=\"4xx\"} 2"
        ));
        assert!(text.contains(
            "livekit_sidecar_http_requests_total{route=\"unmatched\",status_class=\"4xx\"} 1"
        ));
    }
}
