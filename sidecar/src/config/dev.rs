//! `--dev`: LiveKit's own development credentials and HS256 caller tokens with a published secret.

use livekit_contract::{Algorithm, Secret, SidecarSettings};

use super::{ConfigInput, Credentials, Source};
use crate::auth::CallerKeyMaterial;

pub const API_KEY: &str = "devkey";
pub const API_SECRET: &str = "secret";
pub const SERVER_URL: &str = "ws://localhost:7880";
/// The caller-token secret of `--dev` and `dev-token`. Public: never use it for anything real.
pub const CALLER_SECRET: &str = "livekit-sidecar-dev-caller-secret-not-for-production";
pub const CALLER_ISSUER: &str = "livekit-sidecar-dev";
pub const CALLER_AUDIENCE: &str = "livekit-sidecar";

pub fn input() -> ConfigInput {
    let mut settings = SidecarSettings::new(SERVER_URL);
    settings.auth.algorithms = vec![Algorithm::HS256];
    settings.auth.issuer = Some(CALLER_ISSUER.into());
    settings.auth.audiences = vec![CALLER_AUDIENCE.into()];
    ConfigInput {
        source: Source::Dev,
        configured: Some((
            settings,
            Credentials {
                api_key: API_KEY.into(),
                api_secret: Secret::new(API_SECRET),
            },
        )),
        caller_keys: CallerKeyMaterial {
            hmac_secret: Some(Secret::new(CALLER_SECRET)),
            public_keys_pem: None,
        },
        fingerprint: None,
    }
}
