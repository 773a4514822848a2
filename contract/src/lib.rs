//! The contract between the operator and the sidecar.
//!
//! The operator renders a `LiveKitConfig` into one ConfigMap and one Secret; the kubelet mounts both into
//! the application pod as a single projected volume directory, one file per key. This crate is the only
//! place that names those keys and defines the settings file, so the two sides cannot drift apart.
//! It deliberately carries no server or Kubernetes dependencies.

pub mod fields;
mod keys_file;
mod secret;
mod settings;

pub use keys_file::{KeysFileError, parse_keys_file, render_keys_file};
pub use secret::Secret;
pub use settings::{
    Algorithm, AuthorizationMode, AuthorizationSettings, CallerAuthSettings, ClaimsAuthorization,
    Features, FieldError, Grants, InvalidSettings, SidecarSettings, TokenSettings,
    WebhookAuthorization, limits,
};

/// File names inside the mounted directory (ConfigMap and Secret keys alike).
pub mod keys {
    /// ConfigMap key: the sidecar's non-secret settings as YAML ([`crate::SidecarSettings`]).
    pub const SETTINGS: &str = "sidecar.yaml";
    /// Secret key: the LiveKit API key the sidecar signs with (the token's `iss`).
    pub const API_KEY: &str = "api-key";
    /// Secret key: the LiveKit API secret the sidecar signs with.
    pub const API_SECRET: &str = "api-secret";
    /// Secret key: the `key: secret` map livekit-server reads (`--key-file`); during a rotation it holds
    /// the previous key too, while the sidecar signs with [`API_KEY`] only.
    pub const KEYS_FILE: &str = "keys.yaml";
    /// Secret key: the shared secret for HS256/384/512 caller tokens, when callers use HMAC.
    pub const CALLER_HS_SECRET: &str = "caller-hs-secret";
    /// Secret key: one or more PEM public keys (RSA, EC or Ed25519) that caller tokens may be signed by.
    pub const CALLER_PUBLIC_KEYS: &str = "caller-public-keys.pem";
}
