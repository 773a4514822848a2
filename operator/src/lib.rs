//! The LiveKitConfig operator: turns a `LiveKitConfig` into the Secret and ConfigMap `<name>-livekit`
//! that the LiveKit token sidecar reads, and reports the truth in status.
//!
//! Layout: [`crd`] (the custom resource), [`desired`] (pure functions from spec and inputs to the
//! desired objects), [`owned`] (whether existing owned objects are the config's and need a write),
//! [`credentials`] (generation and rotation of LiveKit API keys), [`status`]
//! (conditions), [`reconcile`] (fetch, apply, patch status), [`error`], [`health`] (probes and
//! metrics port), [`leader`] (Lease-based leader election), [`inject`] (the sidecar added to pod
//! templates, for the admission webhook and `livekit-operator inject`), [`startup`] (the first call to
//! the API server and the words for each way it fails).

pub mod backoff;
pub mod cli;
pub mod context;
pub mod crd;
pub mod credentials;
pub mod desired;
pub mod error;
pub mod events;
pub mod health;
pub mod inject;
pub mod keymaterial;
pub mod leader;
pub mod metrics;
pub mod owned;
pub mod reconcile;
pub mod rotation;
pub mod rotation_io;
pub mod startup;
pub mod status;
pub mod webhook;

pub use crd::{LiveKitConfig, LiveKitConfigSpec, LiveKitConfigStatus};
pub use error::{Error, Result};
