//! Shared helpers for the cross-component tests.

pub mod verifiers;
