//! Shared helpers for the cross-component tests.

pub mod app;
pub mod kubelet;
pub mod livekit_standin;
pub mod sidecar;
pub mod verifiers;
pub mod webhook;
