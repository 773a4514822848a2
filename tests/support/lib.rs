//! Shared helpers for the cross-component tests.

pub mod kubelet;
pub mod sidecar;
pub mod verifiers;
pub mod webhook;
