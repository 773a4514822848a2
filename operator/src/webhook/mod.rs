//! The mutating admission webhook: [`admission`] (the decision), [`server`] (HTTPS with rustls),
//! [`tls`] (a swappable serving certificate), [`certs`] (self-managed CA and serving certificate,
//! pure decisions), [`certloop`] (their Secret and the `caBundle`, through the API).

pub mod admission;
pub mod args;
pub mod certloop;
pub mod certs;
pub mod server;
pub mod tls;
