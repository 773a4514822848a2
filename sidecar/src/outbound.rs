//! The one way the sidecar makes outbound HTTP calls (JWKS, authorization webhook, LiveKit probe):
//! every call bounded in time, and redirects never followed, so a configured URL cannot be bent to
//! another host.

use std::time::Duration;

pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client with static settings always builds")
}
