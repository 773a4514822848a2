//! Test support for livekit-operator, shared by its integration tests and benchmarks: a fake API
//! server as strict as a real one ([`fake_api`]), test LiveKitConfigs and Secrets ([`configs`]),
//! admission as the API server does it for the CRD ([`schema`]), a cluster at scale ([`scale`]), a
//! reconcile harness ([`harness`]), and the tests' fixed clock.

pub mod configs;
pub mod fake_api;
pub mod harness;
pub mod scale;
pub mod schema;

use k8s_openapi::jiff::Timestamp;

/// The instant every test clock starts at.
pub const T0: &str = "2026-01-01T00:00:00Z";

/// [`T0`] as a timestamp: the one "now" of the tests.
pub fn t0() -> Timestamp {
    T0.parse().expect("T0 is RFC 3339")
}

/// A reconciler context over `client` whose clock is the test's `clock`, with the Event reporter
/// the tests expect.
pub fn context(
    client: kube::Client,
    backoff: livekit_operator::reconcile::Backoff,
    clock: &std::sync::Arc<std::sync::Mutex<Timestamp>>,
) -> livekit_operator::reconcile::Context {
    let clock = clock.clone();
    livekit_operator::reconcile::Context::with_clock(
        client,
        kube::runtime::events::Reporter {
            controller: "livekit-operator".into(),
            instance: None,
        },
        backoff,
        move || *clock.lock().expect("test clock"),
    )
}
