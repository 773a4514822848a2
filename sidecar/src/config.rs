//! Configuration: three sources (the operator's mounted directory, environment variables, `--dev`) give
//! one [`ConfigInput`]; [`Snapshot::build`] validates it completely into an immutable snapshot that
//! requests read through an atomic pointer. Loading is a pure function of its source so that hot reload
//! can call it again and keep the last good snapshot when it fails.

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use livekit_contract::{
    Algorithm, AuthorizationMode, InvalidSettings, SidecarSettings, WebhookAuthorization, keys,
};

use crate::auth::{CallerKeyMaterial, CallerVerifier, KeyMaterialError};
use crate::authz::Authorizer;
use crate::jwks::JwksSource;
use crate::token::LiveKitSigner;

/// A secret string that never shows itself in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Largest file read from the config directory.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    /// A problem with one named field or variable.
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    #[error(transparent)]
    Settings(#[from] InvalidSettings),
    /// Caller key material, named by the file or variable it came from.
    #[error("{field}: {error}")]
    KeyMaterial {
        field: String,
        error: KeyMaterialError,
    },
}

fn field_error(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: field.into(),
        message: message.into(),
    }
}

/// Where a configuration came from; shown in logs, never secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Dir(PathBuf),
    Env,
    Dev,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dir(path) => write!(f, "directory {}", path.display()),
            Self::Env => f.write_str("environment"),
            Self::Dev => f.write_str("dev mode"),
        }
    }
}

/// LiveKit API credentials.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub api_key: String,
    pub api_secret: Secret,
}

/// What a source says, before it is validated and prepared.
#[derive(Debug)]
pub struct ConfigInput {
    pub source: Source,
    /// `None` when the source holds no LiveKit credentials at all: the sidecar runs unconfigured.
    pub configured: Option<(SidecarSettings, Credentials)>,
    pub caller_keys: CallerKeyMaterial,
    /// For a directory source: the [`fingerprint`] taken before the files were read, so a change
    /// made during the read is seen as a change afterwards.
    pub fingerprint: Option<u64>,
}

impl fmt::Debug for CallerKeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallerKeyMaterial")
            .field("hmac_secret", &self.hmac_secret)
            .field("public_keys_pem", &self.public_keys_pem.is_some())
            .finish()
    }
}

/// Everything a request needs, validated and immutable.
pub struct Snapshot {
    pub source: Source,
    pub service: Option<Service>,
    pub fingerprint: Option<u64>,
}

/// The parts of a configured snapshot.
pub struct Service {
    pub settings: SidecarSettings,
    pub signer: LiveKitSigner,
    pub verifier: CallerVerifier,
    pub authorizer: Authorizer,
}

impl Snapshot {
    /// Validates an input and prepares keys. `previous` lends its JWKS cache when the URL is unchanged.
    pub fn build(input: ConfigInput, previous: Option<&Snapshot>) -> Result<Self, ConfigError> {
        let Some((settings, credentials)) = input.configured else {
            return Ok(Self {
                source: input.source,
                service: None,
                fingerprint: input.fingerprint,
            });
        };
        settings.validate()?;
        check_api_key(&credentials.api_key)?;
        if credentials.api_secret.expose().is_empty() {
            return Err(field_error(keys::API_SECRET, "must not be empty"));
        }

        let jwks = match &settings.auth.jwks_url {
            Some(url) => Some(reuse_or_new_jwks(url, previous)?),
            None => None,
        };
        let verifier =
            CallerVerifier::new(&settings.auth, &input.caller_keys, jwks).map_err(|error| {
                let file = error.field();
                let field = match input.source {
                    Source::Env => ENV_VARS
                        .iter()
                        .find(|(_, f)| *f == file)
                        .map_or(file.to_owned(), |(var, _)| (*var).to_owned()),
                    _ => file.to_owned(),
                };
                ConfigError::KeyMaterial { field, error }
            })?;
        let authorizer = Authorizer::new(&settings.authorization)
            .map_err(|e| field_error("authorization.webhook.url", e.to_string()))?;
        let signer = LiveKitSigner::new(credentials.api_key, &credentials.api_secret);
        Ok(Self {
            source: input.source,
            fingerprint: input.fingerprint,
            service: Some(Service {
                settings,
                signer,
                verifier,
                authorizer,
            }),
        })
    }

    pub fn is_configured(&self) -> bool {
        self.service.is_some()
    }
}

fn reuse_or_new_jwks(
    url: &str,
    previous: Option<&Snapshot>,
) -> Result<Arc<JwksSource>, ConfigError> {
    let parsed = url::Url::parse(url).map_err(|e| field_error("auth.jwksUrl", e.to_string()))?;
    let reusable = previous
        .and_then(|p| p.service.as_ref())
        .and_then(|s| s.verifier.jwks())
        .filter(|j| j.url() == &parsed);
    Ok(reusable.unwrap_or_else(|| Arc::new(JwksSource::new(parsed))))
}

fn check_api_key(key: &str) -> Result<(), ConfigError> {
    if key.is_empty() {
        return Err(field_error(keys::API_KEY, "must not be empty"));
    }
    if key.len() > 256 || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(field_error(
            keys::API_KEY,
            "must be at most 256 characters without spaces or control characters",
        ));
    }
    Ok(())
}

/// Reads the directory the operator's Secret and ConfigMap are mounted at (one file per key).
pub fn load_dir(dir: &Path) -> Result<ConfigInput, ConfigError> {
    let source_dir = dir;
    let fingerprint = fingerprint(dir);
    if !dir.is_dir() {
        return Err(ConfigError::Read {
            path: dir.to_owned(),
            message: "not a directory".into(),
        });
    }
    // Read every file from one resolved `..data` target, so a kubelet swap in the middle of the reads
    // cannot pair an old API key with a new secret.
    let dir = &resolve_data_dir(dir);
    let settings_text = read_optional(dir, keys::SETTINGS)?;
    let api_key = read_optional(dir, keys::API_KEY)?.map(trimmed);
    let api_secret = read_optional(dir, keys::API_SECRET)?.map(trimmed);
    let caller_keys = CallerKeyMaterial {
        hmac_secret: read_optional(dir, keys::CALLER_HS_SECRET)?.map(|s| Secret::new(trimmed(s))),
        public_keys_pem: read_optional(dir, keys::CALLER_PUBLIC_KEYS)?,
    };

    let credentials = match (api_key, api_secret) {
        (None, None) => None,
        (Some(api_key), Some(api_secret)) => Some(Credentials {
            api_key,
            api_secret: Secret::new(api_secret),
        }),
        (Some(_), None) => return Err(field_error(keys::API_SECRET, "file is missing")),
        (None, Some(_)) => return Err(field_error(keys::API_KEY, "file is missing")),
    };
    let settings = settings_text
        .map(|text| SidecarSettings::from_yaml(&text))
        .transpose()?;
    let configured = match (settings, credentials) {
        (Some(settings), Some(credentials)) => Some((settings, credentials)),
        (None, Some(_)) => return Err(field_error(keys::SETTINGS, "file is missing")),
        (_, None) => None,
    };
    Ok(ConfigInput {
        source: Source::Dir(source_dir.to_owned()),
        configured,
        caller_keys,
        fingerprint: Some(fingerprint),
    })
}

/// A hash of everything a directory source would load, so unchanged files cost no rebuild.
pub fn fingerprint(dir: &Path) -> u64 {
    let base = resolve_data_dir(dir);
    let mut hasher = DefaultHasher::new();
    base.hash(&mut hasher);
    for name in [
        keys::SETTINGS,
        keys::API_KEY,
        keys::API_SECRET,
        keys::CALLER_HS_SECRET,
        keys::CALLER_PUBLIC_KEYS,
    ] {
        name.hash(&mut hasher);
        std::fs::read(base.join(name)).ok().hash(&mut hasher);
    }
    hasher.finish()
}

/// The directory the kubelet's `..data` symlink points at, or `dir` itself when there is none.
pub fn resolve_data_dir(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir.join("..data")).unwrap_or_else(|_| dir.to_owned())
}

fn trimmed(text: String) -> String {
    text.trim().to_owned()
}

fn read_optional(dir: &Path, name: &str) -> Result<Option<String>, ConfigError> {
    let path = dir.join(name);
    let read_error = |message: String| ConfigError::Read {
        path: path.clone(),
        message,
    };
    let metadata = match std::fs::metadata(&path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(e.to_string())),
    };
    if metadata.len() > MAX_FILE_BYTES {
        return Err(read_error(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    std::fs::read_to_string(&path)
        .map(Some)
        .map_err(|e| read_error(e.to_string()))
}

/// The environment variables the sidecar reads, with the settings field each one sets.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("LIVEKIT_SERVER_URL", "serverUrl"),
    ("LIVEKIT_API_KEY", keys::API_KEY),
    ("LIVEKIT_API_SECRET", keys::API_SECRET),
    ("LIVEKIT_DEFAULT_TOKEN_TTL", "token.defaultTtlSeconds"),
    ("LIVEKIT_MAX_TOKEN_TTL", "token.maxTtlSeconds"),
    ("LIVEKIT_REGION", "region"),
    ("LIVEKIT_FEATURES", "features"),
    ("LIVEKIT_TOKEN_GRANTS", "token.grants"),
    (
        "LIVEKIT_ALLOW_IDENTITY_OVERRIDE",
        "token.allowIdentityOverride",
    ),
    ("SIDECAR_AUTH_ALGORITHMS", "auth.algorithms"),
    ("SIDECAR_AUTH_HS_SECRET", keys::CALLER_HS_SECRET),
    ("SIDECAR_AUTH_PUBLIC_KEYS", keys::CALLER_PUBLIC_KEYS),
    ("SIDECAR_AUTH_PUBLIC_KEYS_FILE", keys::CALLER_PUBLIC_KEYS),
    ("SIDECAR_AUTH_JWKS_URL", "auth.jwksUrl"),
    ("SIDECAR_AUTH_ISSUER", "auth.issuer"),
    ("SIDECAR_AUTH_AUDIENCES", "auth.audiences"),
    ("SIDECAR_AUTH_IDENTITY_CLAIM", "auth.identityClaim"),
    ("SIDECAR_AUTH_NAME_CLAIM", "auth.nameClaim"),
    ("SIDECAR_AUTH_LEEWAY_SECONDS", "auth.leewaySeconds"),
    ("SIDECAR_AUTHZ_MODE", "authorization.mode"),
    ("SIDECAR_AUTHZ_CLAIM", "authorization.claims.claim"),
    ("SIDECAR_AUTHZ_WEBHOOK_URL", "authorization.webhook.url"),
    (
        "SIDECAR_AUTHZ_WEBHOOK_TIMEOUT_MS",
        "authorization.webhook.timeoutMs",
    ),
    (
        "SIDECAR_AUTHZ_WEBHOOK_CACHE_TTL_SECONDS",
        "authorization.webhook.cacheTtlSeconds",
    ),
];

/// Builds the input from environment variables; `lookup` is `std::env::var` outside tests.
/// Empty values count as unset. Settings errors name the variable that sets the field.
pub fn load_env(lookup: impl Fn(&str) -> Option<String>) -> Result<ConfigInput, ConfigError> {
    let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    let caller_keys = CallerKeyMaterial {
        hmac_secret: get("SIDECAR_AUTH_HS_SECRET").map(|s| Secret::new(trimmed(s))),
        public_keys_pem: match (
            get("SIDECAR_AUTH_PUBLIC_KEYS"),
            get("SIDECAR_AUTH_PUBLIC_KEYS_FILE"),
        ) {
            (Some(_), Some(_)) => {
                return Err(field_error(
                    "SIDECAR_AUTH_PUBLIC_KEYS_FILE",
                    "set either SIDECAR_AUTH_PUBLIC_KEYS or SIDECAR_AUTH_PUBLIC_KEYS_FILE, not both",
                ));
            }
            (Some(pem), None) => Some(pem),
            (None, Some(path)) => {
                Some(
                    std::fs::read_to_string(&path).map_err(|e| ConfigError::Read {
                        path: path.into(),
                        message: e.to_string(),
                    })?,
                )
            }
            (None, None) => None,
        },
    };
    let source = Source::Env;

    // Every variable is parsed, even without credentials, so a typo is reported at once.
    let mut s = SidecarSettings::new(get("LIVEKIT_SERVER_URL").unwrap_or_default().trim());
    s.region = get("LIVEKIT_REGION").map(|r| r.trim().to_owned());
    if let Some(v) = get("LIVEKIT_DEFAULT_TOKEN_TTL") {
        s.token.default_ttl_seconds = parse_number("LIVEKIT_DEFAULT_TOKEN_TTL", &v)?;
    }
    if let Some(v) = get("LIVEKIT_MAX_TOKEN_TTL") {
        s.token.max_ttl_seconds = parse_number("LIVEKIT_MAX_TOKEN_TTL", &v)?;
    }
    if let Some(v) = get("LIVEKIT_FEATURES") {
        let enabled = parse_flags(
            "LIVEKIT_FEATURES",
            &v,
            &["audio", "video", "screenShare", "recording"],
        )?;
        s.features.audio = enabled.contains(&"audio");
        s.features.video = enabled.contains(&"video");
        s.features.screen_share = enabled.contains(&"screenShare");
        s.features.recording = enabled.contains(&"recording");
    }
    if let Some(v) = get("LIVEKIT_TOKEN_GRANTS") {
        let granted = parse_flags(
            "LIVEKIT_TOKEN_GRANTS",
            &v,
            &["canPublish", "canSubscribe", "canPublishData"],
        )?;
        s.token.grants.can_publish = granted.contains(&"canPublish");
        s.token.grants.can_subscribe = granted.contains(&"canSubscribe");
        s.token.grants.can_publish_data = granted.contains(&"canPublishData");
    }
    if let Some(v) = get("LIVEKIT_ALLOW_IDENTITY_OVERRIDE") {
        s.token.allow_identity_override = parse_bool("LIVEKIT_ALLOW_IDENTITY_OVERRIDE", &v)?;
    }

    if let Some(v) = get("SIDECAR_AUTH_ALGORITHMS") {
        s.auth.algorithms = split_list(&v)
            .map(|name| name.parse::<Algorithm>())
            .collect::<Result<_, _>>()
            .map_err(|e| field_error("SIDECAR_AUTH_ALGORITHMS", e))?;
    }
    s.auth.jwks_url = get("SIDECAR_AUTH_JWKS_URL").map(|v| v.trim().to_owned());
    s.auth.issuer = get("SIDECAR_AUTH_ISSUER").map(|v| v.trim().to_owned());
    if let Some(v) = get("SIDECAR_AUTH_AUDIENCES") {
        s.auth.audiences = split_list(&v).map(str::to_owned).collect();
    }
    if let Some(v) = get("SIDECAR_AUTH_IDENTITY_CLAIM") {
        s.auth.identity_claim = v.trim().to_owned();
    }
    if let Some(v) = get("SIDECAR_AUTH_NAME_CLAIM") {
        s.auth.name_claim = v.trim().to_owned();
    }
    if let Some(v) = get("SIDECAR_AUTH_LEEWAY_SECONDS") {
        s.auth.leeway_seconds = parse_number("SIDECAR_AUTH_LEEWAY_SECONDS", &v)?;
    }

    if let Some(v) = get("SIDECAR_AUTHZ_MODE") {
        s.authorization.mode = match v.trim().to_ascii_lowercase().as_str() {
            "claims" => AuthorizationMode::Claims,
            "webhook" => AuthorizationMode::Webhook,
            _ => {
                return Err(field_error(
                    "SIDECAR_AUTHZ_MODE",
                    format!("must be Claims or Webhook, not {:?}", v.trim()),
                ));
            }
        };
    }
    if let Some(v) = get("SIDECAR_AUTHZ_CLAIM") {
        s.authorization.claims.claim = v.trim().to_owned();
    }
    if let Some(url) = get("SIDECAR_AUTHZ_WEBHOOK_URL") {
        let mut webhook = WebhookAuthorization::new(url.trim());
        if let Some(v) = get("SIDECAR_AUTHZ_WEBHOOK_TIMEOUT_MS") {
            webhook.timeout_ms = parse_number("SIDECAR_AUTHZ_WEBHOOK_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = get("SIDECAR_AUTHZ_WEBHOOK_CACHE_TTL_SECONDS") {
            webhook.cache_ttl_seconds =
                parse_number("SIDECAR_AUTHZ_WEBHOOK_CACHE_TTL_SECONDS", &v)?;
        }
        s.authorization.webhook = Some(webhook);
    }

    let (api_key, api_secret) = match (get("LIVEKIT_API_KEY"), get("LIVEKIT_API_SECRET")) {
        (None, None) => {
            return Ok(ConfigInput {
                source,
                configured: None,
                caller_keys,
                fingerprint: None,
            });
        }
        (Some(key), Some(secret)) => (trimmed(key), Secret::new(trimmed(secret))),
        (Some(_), None) => {
            return Err(field_error(
                "LIVEKIT_API_SECRET",
                "is not set but LIVEKIT_API_KEY is",
            ));
        }
        (None, Some(_)) => {
            return Err(field_error(
                "LIVEKIT_API_KEY",
                "is not set but LIVEKIT_API_SECRET is",
            ));
        }
    };
    if get("LIVEKIT_SERVER_URL").is_none() {
        return Err(field_error(
            "LIVEKIT_SERVER_URL",
            "is required when LiveKit credentials are set",
        ));
    }
    s.validate().map_err(name_env_vars)?;
    Ok(ConfigInput {
        source,
        configured: Some((
            s,
            Credentials {
                api_key,
                api_secret,
            },
        )),
        caller_keys,
        fingerprint: None,
    })
}

/// Rewrites settings field names into the environment variables that set them.
fn name_env_vars(mut invalid: InvalidSettings) -> InvalidSettings {
    for error in &mut invalid.0 {
        if let Some((var, _)) = ENV_VARS.iter().find(|(_, field)| *field == error.field) {
            error.field = format!("{var} ({})", error.field);
        }
    }
    invalid
}

fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn parse_number(var: &str, value: &str) -> Result<u32, ConfigError> {
    value.trim().parse().map_err(|_| {
        field_error(
            var,
            format!("must be a whole number, not {:?}", value.trim()),
        )
    })
}

fn parse_bool(var: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        other => Err(field_error(
            var,
            format!("must be true or false, not {other:?}"),
        )),
    }
}

/// A comma-separated list drawn from `allowed`; an empty-but-set value is not possible (unset).
fn parse_flags<'a>(
    var: &str,
    value: &str,
    allowed: &[&'a str],
) -> Result<Vec<&'a str>, ConfigError> {
    split_list(value)
        .map(|item| {
            allowed
                .iter()
                .find(|a| **a == item)
                .copied()
                .ok_or_else(|| {
                    field_error(
                        var,
                        format!(
                            "unknown entry {item:?}, expected some of {}",
                            allowed.join(",")
                        ),
                    )
                })
        })
        .collect()
}

/// `--dev`: LiveKit's own development credentials and HS256 caller tokens with a published secret.
pub mod dev {
    use super::*;

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const HS: &str = "0123456789abcdef0123456789abcdef";

    fn base_env() -> Vec<(&'static str, &'static str)> {
        vec![
            ("LIVEKIT_SERVER_URL", "wss://lk.example.com"),
            ("LIVEKIT_API_KEY", "APIkey"),
            ("LIVEKIT_API_SECRET", "topsecret"),
            ("SIDECAR_AUTH_ALGORITHMS", "HS256"),
            ("SIDECAR_AUTH_HS_SECRET", HS),
        ]
    }

    #[test]
    fn typos_are_reported_even_without_credentials() {
        let err = load_env(env(&[("LIVEKIT_DEFAULT_TOKEN_TTL", "abc")])).unwrap_err();
        assert!(
            err.to_string().contains("LIVEKIT_DEFAULT_TOKEN_TTL"),
            "{err}"
        );
    }

    #[test]
    fn empty_environment_is_unconfigured_not_an_error() {
        let input = load_env(env(&[])).unwrap();
        assert!(input.configured.is_none());
        let snapshot = Snapshot::build(input, None).unwrap();
        assert!(!snapshot.is_configured());
    }

    #[test]
    fn environment_sets_every_field() {
        let mut vars = base_env();
        vars.extend([
            ("LIVEKIT_DEFAULT_TOKEN_TTL", "600"),
            ("LIVEKIT_MAX_TOKEN_TTL", "1200"),
            ("LIVEKIT_REGION", "eu-west-1"),
            ("LIVEKIT_FEATURES", "audio, recording"),
            ("LIVEKIT_TOKEN_GRANTS", "canSubscribe"),
            ("LIVEKIT_ALLOW_IDENTITY_OVERRIDE", "true"),
            ("SIDECAR_AUTH_ISSUER", "https://auth"),
            ("SIDECAR_AUTH_AUDIENCES", "a,b"),
            ("SIDECAR_AUTH_IDENTITY_CLAIM", "uid"),
            ("SIDECAR_AUTH_NAME_CLAIM", "display"),
            ("SIDECAR_AUTH_LEEWAY_SECONDS", "5"),
            ("SIDECAR_AUTHZ_MODE", "webhook"),
            ("SIDECAR_AUTHZ_CLAIM", "perms"),
            ("SIDECAR_AUTHZ_WEBHOOK_URL", "http://127.0.0.1:9/authz"),
            ("SIDECAR_AUTHZ_WEBHOOK_TIMEOUT_MS", "250"),
            ("SIDECAR_AUTHZ_WEBHOOK_CACHE_TTL_SECONDS", "0"),
        ]);
        let input = load_env(env(&vars)).unwrap();
        let (s, creds) = input.configured.as_ref().unwrap();
        assert_eq!(creds.api_key, "APIkey");
        assert_eq!(s.token.default_ttl_seconds, 600);
        assert_eq!(s.token.max_ttl_seconds, 1200);
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        assert!(s.features.audio && s.features.recording && !s.features.video);
        assert!(!s.token.grants.can_publish && s.token.grants.can_subscribe);
        assert!(s.token.allow_identity_override);
        assert_eq!(s.auth.audiences, vec!["a", "b"]);
        assert_eq!(s.auth.identity_claim, "uid");
        assert_eq!(s.authorization.mode, AuthorizationMode::Webhook);
        assert_eq!(s.authorization.webhook.as_ref().unwrap().timeout_ms, 250);
        assert!(Snapshot::build(input, None).unwrap().is_configured());
    }

    #[test]
    fn environment_errors_name_the_variable() {
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![("LIVEKIT_API_KEY", "k")], "LIVEKIT_API_SECRET"),
            (vec![("LIVEKIT_API_SECRET", "s")], "LIVEKIT_API_KEY"),
            (
                vec![("LIVEKIT_API_KEY", "k"), ("LIVEKIT_API_SECRET", "s")],
                "LIVEKIT_SERVER_URL",
            ),
            (
                vec![("LIVEKIT_DEFAULT_TOKEN_TTL", "soon")],
                "LIVEKIT_DEFAULT_TOKEN_TTL",
            ),
            (
                vec![("LIVEKIT_DEFAULT_TOKEN_TTL", "0")],
                "LIVEKIT_DEFAULT_TOKEN_TTL",
            ),
            (vec![("LIVEKIT_MAX_TOKEN_TTL", "60")], "maxTtlSeconds (60)"),
            (
                vec![("LIVEKIT_MAX_TOKEN_TTL", "99999999")],
                "LIVEKIT_MAX_TOKEN_TTL",
            ),
            (
                vec![("LIVEKIT_FEATURES", "audio,smell")],
                "LIVEKIT_FEATURES",
            ),
            (
                vec![("LIVEKIT_ALLOW_IDENTITY_OVERRIDE", "maybe")],
                "LIVEKIT_ALLOW_IDENTITY_OVERRIDE",
            ),
            (
                vec![("SIDECAR_AUTH_ALGORITHMS", "none")],
                "SIDECAR_AUTH_ALGORITHMS",
            ),
            (vec![("SIDECAR_AUTHZ_MODE", "vibes")], "SIDECAR_AUTHZ_MODE"),
            (
                vec![("SIDECAR_AUTHZ_MODE", "Webhook")],
                "authorization.webhook",
            ),
            (
                vec![("LIVEKIT_SERVER_URL", "ftp://x")],
                "LIVEKIT_SERVER_URL",
            ),
        ];
        for (overrides, expected) in cases {
            let mut vars: HashMap<&str, &str> = base_env().into_iter().collect();
            for (k, v) in &overrides {
                vars.insert(k, v);
            }
            if overrides.len() == 1 && overrides[0].0.starts_with("LIVEKIT_API") {
                vars.remove(if overrides[0].0 == "LIVEKIT_API_KEY" {
                    "LIVEKIT_API_SECRET"
                } else {
                    "LIVEKIT_API_KEY"
                });
            }
            if overrides.len() == 2 {
                vars.remove("LIVEKIT_SERVER_URL");
            }
            let pairs: Vec<(&str, &str)> = vars.into_iter().collect();
            let err = load_env(env(&pairs)).unwrap_err().to_string();
            assert!(err.contains(expected), "expected {expected} in {err:?}");
        }
    }

    #[test]
    fn missing_key_material_is_an_error() {
        let vars: Vec<_> = base_env()
            .into_iter()
            .filter(|(k, _)| *k != "SIDECAR_AUTH_HS_SECRET")
            .collect();
        let err = Snapshot::build(load_env(env(&vars)).unwrap(), None)
            .err()
            .unwrap();
        assert!(
            err.to_string().starts_with("SIDECAR_AUTH_HS_SECRET: "),
            "{err}"
        );
        assert!(matches!(
            err,
            ConfigError::KeyMaterial {
                error: KeyMaterialError::MissingHmacSecret,
                ..
            }
        ));

        let mut short = base_env();
        short.retain(|(k, _)| *k != "SIDECAR_AUTH_HS_SECRET");
        short.push(("SIDECAR_AUTH_HS_SECRET", "short"));
        let err = Snapshot::build(load_env(env(&short)).unwrap(), None)
            .err()
            .unwrap();
        assert!(matches!(
            err,
            ConfigError::KeyMaterial {
                error: KeyMaterialError::ShortHmacSecret,
                ..
            }
        ));

        let mut rs = base_env();
        rs.retain(|(k, _)| *k != "SIDECAR_AUTH_ALGORITHMS");
        rs.push(("SIDECAR_AUTH_ALGORITHMS", "RS256"));
        let err = Snapshot::build(load_env(env(&rs)).unwrap(), None)
            .err()
            .unwrap();
        assert!(matches!(
            err,
            ConfigError::KeyMaterial {
                error: KeyMaterialError::MissingPublicKeys,
                ..
            }
        ));
    }

    #[test]
    fn directory_source() {
        let dir = tempfile::tempdir().unwrap();
        // Empty directory: nothing written yet, so unconfigured.
        assert!(load_dir(dir.path()).unwrap().configured.is_none());

        let mut settings = SidecarSettings::new("wss://lk.example.com");
        settings.auth.algorithms = vec![Algorithm::HS256];
        std::fs::write(dir.path().join(keys::SETTINGS), settings.to_yaml()).unwrap();
        std::fs::write(dir.path().join(keys::API_KEY), "APIabc\n").unwrap();
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains(keys::API_SECRET), "{err}");

        std::fs::write(dir.path().join(keys::API_SECRET), "s3cret\n").unwrap();
        std::fs::write(dir.path().join(keys::CALLER_HS_SECRET), HS).unwrap();
        let input = load_dir(dir.path()).unwrap();
        let (_, creds) = input.configured.as_ref().unwrap();
        assert_eq!(creds.api_key, "APIabc");
        assert_eq!(creds.api_secret.expose(), "s3cret");
        assert!(Snapshot::build(input, None).unwrap().is_configured());

        std::fs::write(dir.path().join(keys::SETTINGS), "serverUrl: 5\nbogus: 1\n").unwrap();
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains(keys::SETTINGS), "{err}");

        std::fs::remove_file(dir.path().join(keys::SETTINGS)).unwrap();
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("sidecar.yaml: file is missing"), "{err}");

        assert!(load_dir(&dir.path().join("nope")).is_err());
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let input = load_env(env(&base_env())).unwrap();
        let shown = format!("{input:?}");
        assert!(!shown.contains("topsecret"), "{shown}");
        assert!(!shown.contains(HS), "{shown}");
        let snapshot = Snapshot::build(input, None).unwrap();
        let signer = format!("{:?}", snapshot.service.unwrap().signer);
        assert!(!signer.contains("topsecret"));
    }

    #[test]
    fn dev_mode_builds() {
        assert!(Snapshot::build(dev::input(), None).unwrap().is_configured());
    }
}
