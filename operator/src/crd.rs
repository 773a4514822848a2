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
    printcolumn(
        name = "Rotation",
        type_ = "string",
        json_path = ".status.rotationPhase"
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

    /// The livekit-server that reads this config's `keys.yaml`. Optional: without it the operator
    /// only proves through `credentials.rotation.verification` that a new key is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub livekit_server: Option<LiveKitServerSpec>,

    /// What happens to the Secret `<name>-livekit` when this LiveKitConfig is deleted: `Retain`
    /// (default) keeps it, so generated API keys that livekit-server and running sidecars hold
    /// survive an accidental or GitOps-driven deletion, and a LiveKitConfig of the same name
    /// created later takes the Secret and its keys back; `Delete` lets Kubernetes' garbage
    /// collector remove it with the config. The ConfigMap, which holds no secret, is always
    /// deleted with the config.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// What happens to the owned Secret when its LiveKitConfig is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Keep the Secret (it carries no ownerReference, only the labels naming its config).
    #[default]
    Retain,
    /// Delete the Secret with the config (a controller ownerReference to the config).
    Delete,
}

/// The livekit-server workload that mounts the owned Secret's `keys.yaml`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LiveKitServerSpec {
    /// A Deployment or StatefulSet in the same namespace running livekit-server. livekit-server reads
    /// its keys only at start, so when `keys.yaml` changes the operator restarts it the way
    /// `kubectl rollout restart` does (a pod-template annotation carrying a hash of `keys.yaml`), and
    /// a new key counts as accepted only once that rollout is complete. Needs the chart's
    /// `rbac.workloadRestart` permission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_ref: Option<WorkloadRef>,
}

/// Kinds of workload the operator can restart.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
}

/// A Deployment or StatefulSet in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    /// `Deployment` or `StatefulSet` (group `apps`).
    pub kind: WorkloadKind,
    /// Name of the workload (same namespace as the LiveKitConfig).
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
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

    /// How a new key is proven accepted by LiveKit before the sidecar signs with it.
    #[serde(default)]
    pub rotation: RotationSpec,
}

/// Rotation in phases: Published (the new key is in `keys.yaml`, the sidecar still signs with the
/// current one), Accepted (LiveKit is proven to accept the new key), Active (the sidecar signs with
/// it; older keys stay in `keys.yaml` for `rotationGraceSeconds`), Retired (they have left it).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RotationSpec {
    /// How acceptance is proven. Without a `mode`, the operator chooses at each rotation's Publish:
    /// `ServerApi` when LiveKit's server API answers, else `Delay`.
    #[serde(default)]
    pub verification: VerificationSpec,
    /// A new key not accepted after this many seconds is reported (condition `Rotating`, reason
    /// `AcceptanceDeadlineExceeded`, a Warning Event); it stays Published and is never signed with.
    /// Default 1800.
    #[serde(default = "default_rotation_deadline")]
    #[schemars(range(min = 10, max = 604_800))]
    pub deadline_seconds: u32,
}

impl Default for RotationSpec {
    fn default() -> Self {
        Self {
            verification: VerificationSpec::default(),
            deadline_seconds: default_rotation_deadline(),
        }
    }
}

fn default_rotation_deadline() -> u32 {
    1800
}

// How the operator proves LiveKit accepts a new key. (No doc comment: the schema of the `mode`
// field would show it instead of the field's own.)
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerificationMode {
    /// Call LiveKit's server API (`ListRooms`) with a token signed by the new key: 200 is accepted,
    /// 401 is not yet. The operator must reach LiveKit (`serverApi.url`, else `serverUrl`).
    ServerApi,
    /// Wait `delay.seconds` after publishing, for setups where the operator cannot reach LiveKit.
    Delay,
}

/// How acceptance is proven: `mode` and the settings of that mode.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.mode) || self.mode != 'Delay' || has(self.delay)")
    .message("credentials.rotation.verification.delay is required when mode is Delay"))]
pub struct VerificationSpec {
    /// `ServerApi` or `Delay`. Unset: chosen once per rotation, when the new key is published and
    /// recorded with it: `ServerApi` when the server API answers at all (any HTTP status, 401
    /// included), `Delay` when it cannot be reached (refused, DNS, time-out, TLS). The choice and
    /// why are in the `Rotating` condition and the `Published` Event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<VerificationMode>,
    /// Settings of the `ServerApi` mode (all defaulted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_api: Option<ServerApiVerification>,
    /// Settings of the `Delay` mode (required for it). Without a `mode`, the period used when the
    /// operator falls back to `Delay` (default 600 seconds then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<DelayVerification>,
}

/// The `ServerApi` check. Several livekit-server replicas usually sit behind one URL and one answer
/// proves one pod, so the check must pass on several consecutive calls spread over time.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServerApiVerification {
    /// Where the operator reaches LiveKit's server API (http or https), e.g. the in-cluster Service
    /// `http://livekit.livekit.svc:7880`. Default: `serverUrl` with ws mapped to http, wss to https.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^https?://[^\\\\s/?#@]+([/?#]\\\\S*)?$')")
        .message("credentials.rotation.verification.serverApi.url must be an http or https URL with a host"))]
    pub url: Option<String>,
    /// Consecutive successful calls needed. Default 3.
    #[serde(default = "default_consecutive")]
    #[schemars(range(min = 1, max = 100))]
    pub consecutive_successes: u32,
    /// Seconds between two calls. Default 10.
    #[serde(default = "default_check_interval")]
    #[schemars(range(min = 1, max = 3600))]
    pub interval_seconds: u32,
    /// Time limit of one call. Default 5.
    #[serde(default = "default_check_timeout")]
    #[schemars(range(min = 1, max = 60))]
    pub timeout_seconds: u32,
}

impl Default for ServerApiVerification {
    fn default() -> Self {
        Self {
            url: None,
            consecutive_successes: default_consecutive(),
            interval_seconds: default_check_interval(),
            timeout_seconds: default_check_timeout(),
        }
    }
}

fn default_consecutive() -> u32 {
    3
}

fn default_check_interval() -> u32 {
    10
}

fn default_check_timeout() -> u32 {
    5
}

/// The `Delay` mode: a new key counts as accepted this long after it was published (and, with a
/// `livekitServer.workloadRef`, once the restart it triggered has rolled out).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DelayVerification {
    /// Seconds to wait after publishing the new key.
    #[schemars(range(min = 1, max = 604_800))]
    pub seconds: u32,
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
    validation = kube::core::Rule::new("!has(self.jwksUrl) || self.jwksUrl.matches('^[hH][tT][tT][pP][sS]://') || (has(self.allowHttpJwks) && self.allowHttpJwks)")
        .message("auth.jwksUrl must be https unless auth.allowHttpJwks is true"),
    validation = kube::core::Rule::new("self.algorithms.all(a, a.startsWith('HS')) || (has(self.issuer) && has(self.audiences) && size(self.audiences) > 0) || (has(self.allowAnyIssuerAndAudience) && self.allowAnyIssuerAndAudience)")
        .message("public-key algorithms need auth.issuer and auth.audiences unless auth.allowAnyIssuerAndAudience is true"),
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
    /// JWKS endpoint (https; http only with allowHttpJwks) with the public keys of the caller token issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^https?://[^\\\\s/?#@]+([/?#]\\\\S*)?$')")
        .message("auth.jwksUrl must be an http or https URL with a host"))]
    pub jwks_url: Option<String>,
    /// Accept a plain `http` jwksUrl (an identity provider on a trusted network only: keys fetched over
    /// http can be replaced on the way). Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_http_jwks: bool,
    /// Accept public-key caller tokens without issuer and audience (default false: tokens that a shared
    /// identity provider minted for any other application or tenant would verify).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_any_issuer_and_audience: bool,
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
    // A map keyed by `type`, as metav1.Condition lists are, so server-side apply merges conditions
    // of different writers by type instead of replacing the whole list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Name of the owned Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Name of the owned ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_name: Option<String>,
    /// SHA-256 (hex, first 16 characters) of the non-secret configuration: the rendered settings, the
    /// API key ids and the names of the Secret's keys, never a secret value. Put it in a pod template
    /// annotation to restart pods when the configuration changes.
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
    /// Phase of the latest key rotation: `Published`, `Accepted`, `Active` or `Retired`
    /// (absent before the first rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_phase: Option<String>,
    /// The new API key while it is Published or Accepted (in keys.yaml, not yet signed with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_api_key: Option<String>,
    /// Every earlier API key still in keys.yaml for its grace period, with when it leaves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retiring_api_keys: Vec<RetiringApiKey>,
}

/// An earlier API key kept in keys.yaml until `expiresAt`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RetiringApiKey {
    /// The API key (never the secret).
    pub api_key: String,
    /// When it leaves keys.yaml (RFC 3339).
    pub expires_at: String,
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
