//! The sidecar's non-secret settings, as the operator writes them into the ConfigMap key
//! [`crate::keys::SETTINGS`] and as the sidecar builds them from environment variables.
//!
//! Unknown fields are rejected: a sidecar that silently ignored a security setting written by a newer
//! operator would fail open. A rejected file keeps the last good configuration running.

use crate::fields;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Bounds shared by the CRD schema, the operator's validation and the sidecar's.
pub mod limits {
    /// Default lifetime of an issued LiveKit token.
    pub const DEFAULT_TTL_SECONDS: u32 = 3600;
    /// Default ceiling a caller may ask for.
    pub const DEFAULT_MAX_TTL_SECONDS: u32 = 86_400;
    /// No configuration may allow tokens longer than 30 days.
    pub const TTL_CEILING_SECONDS: u32 = 30 * 86_400;
    /// Default clock leeway when checking caller tokens.
    pub const DEFAULT_LEEWAY_SECONDS: u32 = 30;
    pub const MAX_LEEWAY_SECONDS: u32 = 300;
    pub const DEFAULT_WEBHOOK_TIMEOUT_MS: u32 = 500;
    pub const MAX_WEBHOOK_TIMEOUT_MS: u32 = 10_000;
    pub const DEFAULT_WEBHOOK_CACHE_TTL_SECONDS: u32 = 30;
    pub const MAX_WEBHOOK_CACHE_TTL_SECONDS: u32 = 3600;
    pub const MAX_AUDIENCES: usize = 16;
    /// Region names, claim names, issuers: generous, but bounded.
    pub const MAX_SHORT_STRING: usize = 253;
    pub const MAX_URL: usize = 2048;
    /// Shortest HMAC secret accepted for caller tokens (RFC 7518 asks for at least the hash size).
    pub const MIN_HMAC_SECRET_BYTES: usize = 32;
    /// Shortest LiveKit API secret: livekit-server refuses shorter ones outside its `--dev` mode, so a
    /// sidecar signing with one would issue tokens no production server accepts.
    pub const MIN_LIVEKIT_SECRET_CHARS: usize = 32;
}

/// Everything the sidecar needs besides secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SidecarSettings {
    /// The URL clients connect to (`ws`, `wss`, `http` or `https`), returned by connection-info.
    pub server_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default)]
    pub features: Features,
    #[serde(default)]
    pub token: TokenSettings,
    #[serde(default)]
    pub auth: CallerAuthSettings,
    #[serde(default)]
    pub authorization: AuthorizationSettings,
}

/// What connection-info advertises to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Features {
    pub audio: bool,
    pub video: bool,
    pub screen_share: bool,
    pub recording: bool,
}

impl Default for Features {
    fn default() -> Self {
        Self {
            audio: true,
            video: true,
            screen_share: true,
            recording: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TokenSettings {
    pub default_ttl_seconds: u32,
    pub max_ttl_seconds: u32,
    pub grants: Grants,
    /// Whether a caller may ask for a token whose identity differs from its own.
    pub allow_identity_override: bool,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            default_ttl_seconds: limits::DEFAULT_TTL_SECONDS,
            max_ttl_seconds: limits::DEFAULT_MAX_TTL_SECONDS,
            grants: Grants::default(),
            allow_identity_override: false,
        }
    }
}

/// The LiveKit video grants put into every token (`roomJoin` and `room` are always set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Grants {
    pub can_publish: bool,
    pub can_subscribe: bool,
    pub can_publish_data: bool,
}

impl Default for Grants {
    fn default() -> Self {
        Self {
            can_publish: true,
            can_subscribe: true,
            can_publish_data: true,
        }
    }
}

/// JWS algorithm names a caller token may be signed with.
// Only the configured ones are accepted: the token's own header never widens the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Algorithm {
    pub const ALL: [Algorithm; 12] = [
        Self::HS256,
        Self::HS384,
        Self::HS512,
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
    ];

    /// HMAC algorithms verify with a shared secret; all others with public keys.
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|a| a.as_str()).collect();
                format!(
                    "unknown algorithm {s:?}, expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// How the sidecar verifies the application's user JWTs. Key material lives in the Secret
/// ([`crate::keys::CALLER_HS_SECRET`], [`crate::keys::CALLER_PUBLIC_KEYS`]) or behind `jwksUrl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CallerAuthSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Accept a plain `http` JWKS URL. Off by default: keys fetched over http can be replaced on the
    /// way, and whoever replaces them can sign any caller. Only for an identity provider reached over
    /// a trusted network (in-cluster, loopback).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_http_jwks: bool,
    /// Accept public-key caller tokens without a configured issuer and audience. Off by default:
    /// a shared identity provider signs tokens for many applications and tenants with the same keys,
    /// and only `iss` and `aud` tell a token minted for this application from one minted for another.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_any_issuer_and_audience: bool,
    /// The claim that names the caller; the default LiveKit identity.
    pub identity_claim: String,
    /// The claim holding a display name; the default LiveKit participant name.
    pub name_claim: String,
    pub leeway_seconds: u32,
}

impl Default for CallerAuthSettings {
    fn default() -> Self {
        Self {
            issuer: None,
            audiences: Vec::new(),
            algorithms: Vec::new(),
            jwks_url: None,
            allow_http_jwks: false,
            allow_any_issuer_and_audience: false,
            identity_claim: "sub".into(),
            name_claim: "name".into(),
            leeway_seconds: limits::DEFAULT_LEEWAY_SECONDS,
        }
    }
}

impl CallerAuthSettings {
    pub fn uses_hmac(&self) -> bool {
        self.algorithms.iter().any(|a| a.is_hmac())
    }

    pub fn uses_public_keys(&self) -> bool {
        self.algorithms.iter().any(|a| !a.is_hmac())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthorizationMode {
    /// `JOIN_CHANNEL` (every room) or `JOIN_CHANNEL:<roomId>` in a claim of the caller's token.
    #[default]
    Claims,
    /// Ask the application over HTTP.
    Webhook,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AuthorizationSettings {
    pub mode: AuthorizationMode,
    pub claims: ClaimsAuthorization,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookAuthorization>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ClaimsAuthorization {
    /// The claim holding an array of permission strings.
    pub claim: String,
}

impl Default for ClaimsAuthorization {
    fn default() -> Self {
        Self {
            claim: "permissions".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookAuthorization {
    pub url: String,
    #[serde(default = "default_webhook_timeout")]
    pub timeout_ms: u32,
    #[serde(default = "default_webhook_cache_ttl")]
    pub cache_ttl_seconds: u32,
}

fn default_webhook_timeout() -> u32 {
    limits::DEFAULT_WEBHOOK_TIMEOUT_MS
}

fn default_webhook_cache_ttl() -> u32 {
    limits::DEFAULT_WEBHOOK_CACHE_TTL_SECONDS
}

impl WebhookAuthorization {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout_ms: default_webhook_timeout(),
            cache_ttl_seconds: default_webhook_cache_ttl(),
        }
    }
}

/// One problem with one field, named by its path in the settings file (`token.maxTtlSeconds`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found, not just the first, so one edit can fix them all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidSettings(pub Vec<FieldError>);

impl fmt::Display for InvalidSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "invalid settings: {}", parts.join("; "))
    }
}

impl SidecarSettings {
    /// Settings with defaults everywhere but the server URL.
    pub fn new(server_url: impl Into<String>) -> Self {
        Self {
            server_url: server_url.into(),
            region: None,
            features: Features::default(),
            token: TokenSettings::default(),
            auth: CallerAuthSettings::default(),
            authorization: AuthorizationSettings::default(),
        }
    }

    /// Parses and validates the settings file.
    pub fn from_yaml(text: &str) -> Result<Self, InvalidSettings> {
        let settings: Self = serde_yaml::from_str(text).map_err(|e| {
            InvalidSettings(vec![FieldError {
                field: crate::keys::SETTINGS.into(),
                message: e.to_string(),
            }])
        })?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("settings always serialise")
    }

    /// Checks what can be checked without the secrets; the sidecar checks key material on top.
    pub fn validate(&self) -> Result<(), InvalidSettings> {
        let mut errors = Vec::new();
        let mut push = |field: &str, message: String| {
            errors.push(FieldError {
                field: field.into(),
                message,
            })
        };

        if let Err(message) = check_url(&self.server_url, &["ws", "wss", "http", "https"]) {
            push(fields::SERVER_URL, message);
        }
        if let Some(Err(message)) = self.region.as_deref().map(check_short_string) {
            push(fields::REGION, message);
        }

        let token = &self.token;
        if token.default_ttl_seconds < 1 {
            push(fields::TOKEN_DEFAULT_TTL, "must be at least 1".into());
        }
        if token.max_ttl_seconds < 1 || token.max_ttl_seconds > limits::TTL_CEILING_SECONDS {
            push(
                fields::TOKEN_MAX_TTL,
                format!("must be between 1 and {}", limits::TTL_CEILING_SECONDS),
            );
        }
        if token.default_ttl_seconds > token.max_ttl_seconds {
            push(
                fields::TOKEN_DEFAULT_TTL,
                format!(
                    "must not be greater than token.maxTtlSeconds ({})",
                    token.max_ttl_seconds
                ),
            );
        }

        let auth = &self.auth;
        if auth.algorithms.is_empty() {
            push(
                fields::AUTH_ALGORITHMS,
                "must name at least one algorithm".into(),
            );
        }
        if auth.uses_hmac() && auth.uses_public_keys() {
            push(
                fields::AUTH_ALGORITHMS,
                "must not mix HMAC (HS*) with public-key algorithms".into(),
            );
        }
        if auth.uses_public_keys() && !auth.allow_any_issuer_and_audience {
            let why = format!(
                "is required with public-key algorithms: the same identity provider keys sign tokens for \
                 other applications and tenants (set {} to accept any)",
                fields::AUTH_ALLOW_ANY_ISSUER_AUDIENCE
            );
            if auth.issuer.is_none() {
                push(fields::AUTH_ISSUER, why.clone());
            }
            if auth.audiences.is_empty() {
                push(fields::AUTH_AUDIENCES, why);
            }
        }
        if let Some(Err(message)) = auth.issuer.as_deref().map(check_short_string) {
            push(fields::AUTH_ISSUER, message);
        }
        if auth.audiences.len() > limits::MAX_AUDIENCES {
            push(
                fields::AUTH_AUDIENCES,
                format!("must have at most {} entries", limits::MAX_AUDIENCES),
            );
        }
        if auth
            .audiences
            .iter()
            .any(|a| check_short_string(a).is_err())
        {
            push(
                fields::AUTH_AUDIENCES,
                format!(
                    "entries must be non-empty and at most {} characters",
                    limits::MAX_SHORT_STRING
                ),
            );
        }
        if let Some(url) = &auth.jwks_url {
            if let Err(message) = check_url(url, &["http", "https"]) {
                push(fields::AUTH_JWKS_URL, message);
            } else if !auth.allow_http_jwks
                && !url
                    .get(..8)
                    .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
            {
                push(
                    fields::AUTH_JWKS_URL,
                    format!(
                        "must be an https URL: keys fetched over plain http can be replaced on the way \
                         (set {} for an identity provider on a trusted network)",
                        fields::AUTH_ALLOW_HTTP_JWKS
                    ),
                );
            }
            if !auth.uses_public_keys() {
                push(
                    fields::AUTH_JWKS_URL,
                    "needs a public-key algorithm in auth.algorithms".into(),
                );
            }
        }
        if let Err(message) = check_short_string(&auth.identity_claim) {
            push(fields::AUTH_IDENTITY_CLAIM, message);
        }
        if let Err(message) = check_short_string(&auth.name_claim) {
            push(fields::AUTH_NAME_CLAIM, message);
        }
        if auth.leeway_seconds > limits::MAX_LEEWAY_SECONDS {
            push(
                fields::AUTH_LEEWAY,
                format!("must be at most {}", limits::MAX_LEEWAY_SECONDS),
            );
        }

        let authz = &self.authorization;
        if let Err(message) = check_short_string(&authz.claims.claim) {
            push(fields::AUTHZ_CLAIM, message);
        }
        match (&authz.mode, &authz.webhook) {
            (AuthorizationMode::Webhook, None) => push(
                fields::AUTHZ_WEBHOOK,
                "is required when authorization.mode is Webhook".into(),
            ),
            (_, Some(webhook)) => {
                if let Err(message) = check_url(&webhook.url, &["http", "https"]) {
                    push(fields::AUTHZ_WEBHOOK_URL, message);
                }
                if webhook.timeout_ms < 1 || webhook.timeout_ms > limits::MAX_WEBHOOK_TIMEOUT_MS {
                    push(
                        fields::AUTHZ_WEBHOOK_TIMEOUT,
                        format!("must be between 1 and {}", limits::MAX_WEBHOOK_TIMEOUT_MS),
                    );
                }
                if webhook.cache_ttl_seconds > limits::MAX_WEBHOOK_CACHE_TTL_SECONDS {
                    push(
                        fields::AUTHZ_WEBHOOK_CACHE_TTL,
                        format!("must be at most {}", limits::MAX_WEBHOOK_CACHE_TTL_SECONDS),
                    );
                }
            }
            (AuthorizationMode::Claims, None) => {}
        }

        if errors.is_empty() {
            Ok(())
        } else {
            Err(InvalidSettings(errors))
        }
    }
}

fn check_url(text: &str, schemes: &[&str]) -> Result<(), String> {
    if text.len() > limits::MAX_URL {
        return Err(format!("must be at most {} characters", limits::MAX_URL));
    }
    let url = url::Url::parse(text).map_err(|e| format!("is not a valid URL ({e})"))?;
    if !schemes.contains(&url.scheme()) {
        return Err(format!(
            "must use one of the schemes {}, not {:?}",
            schemes.join(", "),
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    Ok(())
}

fn check_short_string(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if text.len() > limits::MAX_SHORT_STRING {
        return Err(format!(
            "must be at most {} characters",
            limits::MAX_SHORT_STRING
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> SidecarSettings {
        let mut s = SidecarSettings::new("wss://livekit.example.com");
        s.auth.algorithms = vec![Algorithm::RS256];
        s.auth.issuer = Some("https://auth.example.com".into());
        s.auth.audiences = vec!["kraken".into()];
        s
    }

    #[test]
    fn public_key_callers_need_issuer_and_audience_unless_opted_out() {
        let mut s = valid();
        s.auth.issuer = None;
        s.auth.audiences.clear();
        let err = s.validate().unwrap_err();
        assert_eq!(
            fields(err.clone()),
            [fields::AUTH_ISSUER, fields::AUTH_AUDIENCES]
        );
        assert!(err.to_string().contains("other applications"), "{err}");
        s.auth.issuer = Some("https://auth.example.com".into());
        assert_eq!(fields(s.validate().unwrap_err()), [fields::AUTH_AUDIENCES]);
        // HMAC callers share a secret with this application alone: nothing more is required.
        let mut hs = SidecarSettings::new("wss://livekit.example.com");
        hs.auth.algorithms = vec![Algorithm::HS256];
        hs.validate().unwrap();
        // The explicit opt-out, written to the settings file only when set.
        s.auth.audiences.clear();
        s.auth.issuer = None;
        s.auth.allow_any_issuer_and_audience = true;
        s.validate().unwrap();
        assert!(s.to_yaml().contains("allowAnyIssuerAndAudience: true"));
        assert_eq!(SidecarSettings::from_yaml(&s.to_yaml()).unwrap(), s);
    }

    fn fields(err: InvalidSettings) -> Vec<String> {
        err.0.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn defaults_match_the_design() {
        let s = SidecarSettings::new("wss://x.example.com");
        assert_eq!(s.token.default_ttl_seconds, 3600);
        assert_eq!(s.token.max_ttl_seconds, 86_400);
        assert!(s.token.grants.can_publish && s.token.grants.can_subscribe);
        assert!(!s.token.allow_identity_override);
        assert!(!s.features.recording && s.features.screen_share);
        assert_eq!(s.auth.identity_claim, "sub");
        assert_eq!(s.authorization.claims.claim, "permissions");
        assert_eq!(s.authorization.mode, AuthorizationMode::Claims);
    }

    #[test]
    fn yaml_round_trips() {
        let mut s = valid();
        s.region = Some("us-east-1".into());
        s.auth.jwks_url = Some("https://auth.example.com/jwks.json".into());
        s.auth.audiences = vec!["kraken".into()];
        s.authorization.mode = AuthorizationMode::Webhook;
        s.authorization.webhook = Some(WebhookAuthorization::new("http://app:3001/authz"));
        let text = s.to_yaml();
        assert_eq!(SidecarSettings::from_yaml(&text).unwrap(), s);
    }

    #[test]
    fn plain_http_jwks_needs_the_explicit_opt_in() {
        let mut s = valid();
        s.auth.algorithms = vec![Algorithm::RS256];
        s.auth.jwks_url = Some("http://idp.auth.svc/jwks".into());
        let err = s.validate().unwrap_err();
        assert!(err.to_string().contains("must be an https URL"), "{err}");
        s.auth.allow_http_jwks = true;
        s.validate().unwrap();
        // The opt-in survives the settings file; off, it is not written at all.
        assert!(s.to_yaml().contains("allowHttpJwks: true"));
        assert_eq!(SidecarSettings::from_yaml(&s.to_yaml()).unwrap(), s);
        s.auth.allow_http_jwks = false;
        assert!(!s.to_yaml().contains("allowHttpJwks"));
        // The scheme is compared without regard to case, as URLs are.
        s.auth.jwks_url = Some("HTTPS://idp.example.com/jwks".into());
        s.validate().unwrap();
    }

    #[test]
    fn minimal_yaml_takes_defaults() {
        let s = SidecarSettings::from_yaml(
            "serverUrl: ws://localhost:7880\nauth:\n  algorithms: [HS256]\n",
        )
        .unwrap();
        assert_eq!(s.token, TokenSettings::default());
        assert_eq!(s.auth.leeway_seconds, limits::DEFAULT_LEEWAY_SECONDS);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = SidecarSettings::from_yaml(
            "serverUrl: ws://localhost:7880\nauth:\n  algorithms: [HS256]\n  skipVerify: true\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("skipVerify"), "{err}");
    }

    #[test]
    fn unknown_algorithm_is_rejected() {
        let err = SidecarSettings::from_yaml("serverUrl: ws://h\nauth:\n  algorithms: [none]\n")
            .unwrap_err();
        assert!(err.to_string().contains("none"), "{err}");
        assert!("none".parse::<Algorithm>().is_err());
        assert_eq!("EdDSA".parse::<Algorithm>(), Ok(Algorithm::EdDSA));
    }

    #[test]
    fn every_rule_names_its_field() {
        type Mutation = Box<dyn Fn(&mut SidecarSettings)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("serverUrl", Box::new(|s| s.server_url = "ftp://x".into())),
            ("serverUrl", Box::new(|s| s.server_url = "not a url".into())),
            (
                "serverUrl",
                Box::new(|s| s.server_url = "wss://u:p@h".into()),
            ),
            ("region", Box::new(|s| s.region = Some(" ".into()))),
            (
                "token.defaultTtlSeconds",
                Box::new(|s| s.token.default_ttl_seconds = 0),
            ),
            (
                "token.maxTtlSeconds",
                Box::new(|s| s.token.max_ttl_seconds = u32::MAX),
            ),
            (
                "token.defaultTtlSeconds",
                Box::new(|s| s.token.max_ttl_seconds = 60),
            ),
            ("auth.algorithms", Box::new(|s| s.auth.algorithms.clear())),
            (
                "auth.algorithms",
                Box::new(|s| s.auth.algorithms = vec![Algorithm::HS256, Algorithm::RS256]),
            ),
            (
                "auth.issuer",
                Box::new(|s| s.auth.issuer = Some(String::new())),
            ),
            (
                "auth.audiences",
                Box::new(|s| s.auth.audiences = vec![String::new()]),
            ),
            (
                "auth.audiences",
                Box::new(|s| s.auth.audiences = vec!["a".into(); limits::MAX_AUDIENCES + 1]),
            ),
            (
                "auth.jwksUrl",
                Box::new(|s| s.auth.jwks_url = Some("file:///etc/x".into())),
            ),
            (
                "auth.jwksUrl",
                Box::new(|s| {
                    s.auth.algorithms = vec![Algorithm::HS256];
                    s.auth.jwks_url = Some("https://a/jwks".into());
                }),
            ),
            (
                "auth.jwksUrl",
                Box::new(|s| {
                    s.auth.algorithms = vec![Algorithm::RS256];
                    s.auth.jwks_url = Some("http://idp.example.com/jwks".into());
                }),
            ),
            (
                "auth.identityClaim",
                Box::new(|s| s.auth.identity_claim.clear()),
            ),
            (
                "auth.nameClaim",
                Box::new(|s| s.auth.name_claim = "x".repeat(300)),
            ),
            (
                "auth.leewaySeconds",
                Box::new(|s| s.auth.leeway_seconds = 301),
            ),
            (
                "authorization.claims.claim",
                Box::new(|s| s.authorization.claims.claim.clear()),
            ),
            (
                "authorization.webhook",
                Box::new(|s| s.authorization.mode = AuthorizationMode::Webhook),
            ),
            (
                "authorization.webhook.url",
                Box::new(|s| s.authorization.webhook = Some(WebhookAuthorization::new("ws://x"))),
            ),
            (
                "authorization.webhook.timeoutMs",
                Box::new(|s| {
                    let mut w = WebhookAuthorization::new("http://x");
                    w.timeout_ms = 0;
                    s.authorization.webhook = Some(w);
                }),
            ),
            (
                "authorization.webhook.cacheTtlSeconds",
                Box::new(|s| {
                    let mut w = WebhookAuthorization::new("http://x");
                    w.cache_ttl_seconds = 3601;
                    s.authorization.webhook = Some(w);
                }),
            ),
        ];
        assert!(valid().validate().is_ok());
        for (field, mutate) in cases {
            let mut s = valid();
            mutate(&mut s);
            let got = fields(s.validate().unwrap_err());
            assert!(
                got.iter().any(|f| f == field),
                "expected {field} in {got:?}"
            );
        }
    }

    #[test]
    fn all_errors_are_reported_together() {
        let mut s = valid();
        s.server_url = "x".into();
        s.auth.algorithms.clear();
        let err = s.validate().unwrap_err();
        assert_eq!(err.0.len(), 2);
        assert!(err.to_string().starts_with("invalid settings: serverUrl: "));
    }
}
