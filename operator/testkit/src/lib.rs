//! Test support for livekit-operator, shared by its integration tests and benchmarks: a fake API
//! server as strict as a real one ([`fake_api`]), test LiveKitConfigs and Secrets ([`configs`]),
//! admission as the API server does it for the CRD ([`schema`]), and the tests' fixed clock.

pub mod configs;
pub mod fake_api;
pub mod schema;

use k8s_openapi::jiff::Timestamp;

/// The instant every test clock starts at.
pub const T0: &str = "2026-01-01T00:00:00Z";

/// [`T0`] as a timestamp: the one "now" of the tests.
pub fn t0() -> Timestamp {
    T0.parse().expect("T0 is RFC 3339")
}
