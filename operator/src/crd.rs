//! The `LiveKitConfig` custom resource (`livekit.kraken.dev/v1alpha1`).
//!
//! Doc comments on these types become the descriptions `kubectl explain livekitconfig.spec` shows.
//! Schema bounds and CEL rules (`x-kubernetes-validations`) let the API server reject what it can;
//! the rest is checked by the operator and reported in status (`Ready=False`, reason `InvalidSpec`).

use kube::{CustomResource, CustomResourceExt, KubeSchema};
use livekit_contract::limits;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the custom resource.
pub const GROUP: &str = "livekit.kraken.dev";

/// The annotation that requests a credential rotation: set it to any new value (for example the
/// current time) and the operator rotates generated credentials once for that value.
pub const ROTATE_ANNOTATION: &str = "livekit.kraken.dev/rotate";

/// How the LiveKit token sidecar of an application is configured: which LiveKit server it issues
/// tokens for, with which API credentials, how it authenticates the application's callers and how it
/// authorizes them. The operator renders it into a Secret and a ConfigMap named `<name>-livekit` in
/// the same namespace, which the application pod mounts as one projected volume.
// Several `printcolumn(...)` entries repeat `type_ = "string"`, which clippy mistakes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "livekit.kraken.dev",
    version = "v1alpha1",
    kind = "LiveKitConfig",
    plural = "livekitconfigs",
    shortname = "lkc",
    namespaced,
    status = "LiveKitConfigStatus",
    derive = "PartialEq",
    doc = "A LiveKitConfig configures the LiveKit token sidecar of an application; the operator renders it into the Secret and ConfigMap <name>-livekit.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Server", type_ = "string", json_path = ".spec.serverUrl"),
    printcolumn(name = "Region", type_ = "string", json_path = ".spec.region"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct LiveKitConfigSpec {
    /// The LiveKit server URL clients connect to, with scheme ws, wss, http or https
    /// (for example wss://livekit.example.com). Returned to clients by the sidecar.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.matches('^(wss?|https?)://[^\\\\s/?#@]+([/?#]\\\\S*)?$')"
    ).message("must be a ws, wss, http or https URL with a host and no credentials"))]
    pub server_url: String,

    /// Optional region name advertised to clients (for example us-east-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub region: Option<String>,

    /// Media features advertised to clients.
    #[serde(default)]
    pub features: FeaturesSpec,

    /// The LiveKit API key and secret the sidecar signs tokens with: exactly one of `secretRef`
    /// (read from a Secret in the same namespace) or `generate` (the operator makes and keeps a pair).
    pub credentials: CredentialsSpec,

    /// Lifetimes and grants of the LiveKit tokens the sidecar issues.
    #[serde(default)]
    pub token: TokenSpec,

    /// How the sidecar verifies the application's user JWTs (the Bearer token of each request).
    pub auth: AuthSpec,

    /// How the sidecar decides whether a caller may join a room.
    #[serde(default)]
    pub authorization: AuthorizationSpec,
}

/// Media features advertised to clients.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct FeaturesSpec {
    /// Audio tracks are available. Default true.
    pub audio: bool,
    /// Video tracks are available. Default true.
    pub video: bool,
    /// Screen sharing is available. Default true.
    pub screen_share: bool,
    /// Recording is available. Default false.
    pub recording: bool,
}

impl Default for FeaturesSpec {
    fn default() -> Self {
        Self {
            audio: true,
            video: true,
            screen_share: true,
            recording: false,
        }
    }
}

/// Where the LiveKit API key and secret come from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.secretRef) != has(self.generate)")
    .message("exactly one of credentials.secretRef or credentials.generate must be set"))]
pub struct CredentialsSpec {
    /// Read the key and secret from a Secret in the same namespace. The operator labels that Secret
    /// `livekit.kraken.dev/source=true` so that a change to it is picked up at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<CredentialsSecretRef>,

    /// Let the operator generate a key pair and keep it in the owned Secret across reconciles.
    /// Rotate it by setting the annotation `livekit.kraken.dev/rotate` to a new value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<GenerateSpec>,

    /// When the API key changes (a rotation, or a new key in the source Secret), the previous key
    /// stays in `keys.yaml` (the file livekit-server reads) for this many seconds, so tokens
    /// already issued with it keep working. The sidecar signs with the new key only. Default 86400.
    #[serde(default = "default_rotation_grace")]
    #[schemars(range(min = 0, max = 2_592_000))]
    pub rotation_grace_seconds: u32,
}

fn default_rotation_grace() -> u32 {
    86_400
}

/// A reference to a Secret, in the same namespace, holding the LiveKit API key and secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Name of the Secret (same namespace as the LiveKitConfig).
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Key in the Secret that holds the API key. Default `api-key`.
    #[serde(default = "default_api_key_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub api_key_key: String,
    /// Key in the Secret that holds the API secret. Default `api-secret`.
    #[serde(default = "default_api_secret_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub api_secret_key: String,
}

fn default_api_key_key() -> String {
    "api-key".into()
}

fn default_api_secret_key() -> String {
    "api-secret".into()
}

/// Ask the operator to generate the LiveKit API key (`API` + 12 random characters) and secret
/// (32 random bytes, base64url). It has no fields today.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GenerateSpec {}

/// Lifetimes and grants of issued LiveKit tokens.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.defaultTtlSeconds <= self.maxTtlSeconds")
    .message("token.defaultTtlSeconds must not be greater than token.maxTtlSeconds"))]
pub struct TokenSpec {
    /// Lifetime of a token when the caller does not ask for one. Default 3600.
    #[serde(default = "default_ttl")]
    #[schemars(range(min = 1, max = 2_592_000))]
    pub default_ttl_seconds: u32,
    /// The longest lifetime a caller may ask for. Default 86400, at most 30 days.
    #[serde(default = "default_max_ttl")]
    #[schemars(range(min = 1, max = 2_592_000))]
    pub max_ttl_seconds: u32,
    /// LiveKit video grants put into every token (`roomJoin` and `room` are always set).
    #[serde(default)]
    pub grants: GrantsSpec,
    /// Whether a caller may ask for a token whose identity differs from its own. Default false.
    #[serde(default)]
    pub allow_identity_override: bool,
}

fn default_ttl() -> u32 {
    limits::DEFAULT_TTL_SECONDS
}

fn default_max_ttl() -> u32 {
    limits::DEFAULT_MAX_TTL_SECONDS
}

impl Default for TokenSpec {
    fn default() -> Self {
        Self {
            default_ttl_seconds: limits::DEFAULT_TTL_SECONDS,
            max_ttl_seconds: limits::DEFAULT_MAX_TTL_SECONDS,
            grants: GrantsSpec::default(),
            allow_identity_override: false,
        }
    }
}

/// LiveKit video grants.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct GrantsSpec {
    /// May publish tracks. Default true.
    pub can_publish: bool,
    /// May subscribe to tracks. Default true.
    pub can_subscribe: bool,
    /// May publish data messages. Default true.
    pub can_publish_data: bool,
}

impl Default for GrantsSpec {
    fn default() -> Self {
        Self {
            can_publish: true,
            can_subscribe: true,
            can_publish_data: true,
        }
    }
}

/// How the sidecar verifies the application's user JWTs. Keys come from `jwksUrl` or from a Secret
/// (`secretRef`): an HMAC secret for HS* algorithms, PEM public keys for the others.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new(
        "!(self.algorithms.exists(a, a.startsWith('HS')) && self.algorithms.exists(a, !a.startsWith('HS')))"
    ).message("auth.algorithms must not mix HMAC (HS*) with public-key algorithms"),
    validation = kube::core::Rule::new(
        "!self.algorithms.exists(a, a.startsWith('HS')) || (has(self.secretRef) && has(self.secretRef.hsSecretKey))"
    ).message("HMAC algorithms need auth.secretRef.hsSecretKey"),
    validation = kube::core::Rule::new(
        "!self.algorithms.exists(a, !a.startsWith('HS')) || has(self.jwksUrl) || (has(self.secretRef) && has(self.secretRef.publicKeysKey))"
    ).message("public-key algorithms need auth.jwksUrl or auth.secretRef.publicKeysKey"),
    validation = kube::core::Rule::new("!has(self.jwksUrl) || !self.algorithms.all(a, a.startsWith('HS'))")
        .message("auth.jwksUrl needs a public-key algorithm in auth.algorithms"),
)]
pub struct AuthSpec {
    /// Required `iss` of caller tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub issuer: Option<String>,
    /// Accepted `aud` values of caller tokens (any one must match). At most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 253)))]
    pub audiences: Vec<String>,
    /// Algorithms caller tokens may be signed with; the token header never widens this list.
    /// Do not mix HS* with public-key algorithms.
    #[schemars(length(min = 1, max = 12))]
    #[x_kube(validation = kube::core::Rule::new("self.all(a, self.exists_one(b, b == a))")
        .message("auth.algorithms must not repeat an algorithm"))]
    pub algorithms: Vec<livekit_contract::Algorithm>,
    /// JWKS endpoint (http or https) with the public keys of the caller token issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^https?://[^\\\\s/?#@]+([/?#]\\\\S*)?$')")
        .message("auth.jwksUrl must be an http or https URL with a host"))]
    pub jwks_url: Option<String>,
    /// A Secret in the same namespace with caller key material; the operator copies it into the owned Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<AuthSecretRef>,
    /// The claim naming the caller; the default LiveKit identity. Default `sub`.
    #[serde(default = "default_identity_claim")]
    #[schemars(length(min = 1, max = 253))]
    pub identity_claim: String,
    /// The claim holding a display name; the default participant name. Default `name`.
    #[serde(default = "default_name_claim")]
    #[schemars(length(min = 1, max = 253))]
    pub name_claim: String,
    /// Clock leeway when checking `exp` and `nbf`. Default 30, at most 300.
    #[serde(default = "default_leeway")]
    #[schemars(range(min = 0, max = 300))]
    pub leeway_seconds: u32,
}

fn default_identity_claim() -> String {
    "sub".into()
}

fn default_name_claim() -> String {
    "name".into()
}

fn default_leeway() -> u32 {
    limits::DEFAULT_LEEWAY_SECONDS
}

/// A Secret in the same namespace with caller-auth key material.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.hsSecretKey) || has(self.publicKeysKey)")
    .message("auth.secretRef needs hsSecretKey or publicKeysKey"))]
pub struct AuthSecretRef {
    /// Name of the Secret.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Key holding the shared HMAC secret (for HS* algorithms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub hs_secret_key: Option<String>,
    /// Key holding one or more PEM public keys (RSA, EC or Ed25519).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub public_keys_key: Option<String>,
}

/// How a caller is authorized to join a room.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AuthorizationModeName {
    /// `JOIN_CHANNEL` or `JOIN_CHANNEL:<roomId>` in a claim of the caller token.
    #[default]
    Claims,
    /// Ask the application over HTTP.
    Webhook,
}

/// How the sidecar decides whether a caller may join a room.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.mode != 'Webhook' || has(self.webhook)")
    .message("authorization.webhook is required when authorization.mode is Webhook"))]
pub struct AuthorizationSpec {
    /// `Claims` (default) or `Webhook`.
    #[serde(default)]
    pub mode: AuthorizationModeName,
    /// Settings of the `Claims` mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimsSpec>,
    /// Settings of the `Webhook` mode (required for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSpec>,
}

/// Claims mode settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimsSpec {
    /// The claim holding an array of permission strings. Default `permissions`.
    #[serde(default = "default_claim")]
    #[schemars(length(min = 1, max = 253))]
    pub claim: String,
}

fn default_claim() -> String {
    "permissions".into()
}

/// Webhook mode settings: the sidecar asks the application whether a caller may join.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSpec {
    /// The application's authorization endpoint (http or https).
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^https?://[^\\\\s/?#@]+([/?#]\\\\S*)?$')")
        .message("authorization.webhook.url must be an http or https URL with a host"))]
    pub url: String,
    /// Time limit of one call; on timeout the sidecar denies. Default 500, at most 10000.
    #[serde(default = "default_timeout_ms")]
    #[schemars(range(min = 1, max = 10_000))]
    pub timeout_ms: u32,
    /// How long an answer is cached. Default 30, at most 3600.
    #[serde(default = "default_cache_ttl")]
    #[schemars(range(min = 0, max = 3600))]
    pub cache_ttl_seconds: u32,
}

fn default_timeout_ms() -> u32 {
    limits::DEFAULT_WEBHOOK_TIMEOUT_MS
}

fn default_cache_ttl() -> u32 {
    limits::DEFAULT_WEBHOOK_CACHE_TTL_SECONDS
}

/// What the operator last did with this LiveKitConfig.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LiveKitConfigStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions; `Ready` says whether the sidecar can start from what was written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Name of the owned Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Name of the owned ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_name: Option<String>,
    /// SHA-256 (hex, first 16 characters) of the rendered Secret and ConfigMap data. Put it in a pod
    /// template annotation to restart pods when the configuration changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// The LiveKit API key the sidecar signs with (never the secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// The previous API key, still accepted in keys.yaml until `previousApiKeyExpiresAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_api_key: Option<String>,
    /// When the previous API key leaves keys.yaml (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_api_key_expires_at: Option<String>,
}

/// A status condition in the standard Kubernetes shape.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason in PascalCase, e.g. `Reconciled` or `SourceSecretNotFound`.
    pub reason: String,
    /// Human-readable explanation.
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The `metadata.generation` the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The CRD as YAML, exactly as `crdgen` prints it and as `crds/livekitconfig.yaml` holds it.
pub fn crd_yaml() -> String {
    serde_yaml::to_string(&LiveKitConfig::crd()).expect("the CRD always serialises")
}
