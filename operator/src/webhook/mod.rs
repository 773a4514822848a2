//! The mutating admission webhook: [`admission`] (the decision), [`server`] (HTTPS with rustls),
//! [`certs`] (self-managed CA and serving certificate).

pub mod admission;
