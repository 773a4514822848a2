//! Pure functions from a `LiveKitConfig` and the inputs the reconciler read to the objects it should
//! write. Nothing here talks to the API server, reads a clock or draws a random number.

use crate::crd::{
    AuthorizationModeName, DeletionPolicy, LiveKitConfig, LiveKitConfigSpec, ROTATE_ANNOTATION,
    VerificationMode,
};
use crate::credentials::ApiCredentials;
use crate::rotation::workload::HashKey;
use crate::rotation::{self, KeyState, MIN_LIVEKIT_SECRET_CHARS, Policy, Step, Target, record};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::{Resource, ResourceExt};
use livekit_contract::{
    AuthorizationMode, AuthorizationSettings, CallerAuthSettings, ClaimsAuthorization, Features,
    Grants, SidecarSettings, TokenSettings, WebhookAuthorization, keys, render_keys_file,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// The one field manager for every server-side apply of this operator.
pub const FIELD_MANAGER: &str = "livekit-operator";
/// Label on owned objects; the operator's watches select on it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "livekit-operator";
/// Label on owned objects naming their LiveKitConfig.
pub const CONFIG_LABEL: &str = "livekit.kraken.dev/config";
/// Label the operator puts on source Secrets it reads, so that a label-selected watch sees them.
pub const SOURCE_LABEL: &str = "livekit.kraken.dev/source";
/// Label selector of the owned-object watches.
pub const OWNED_SELECTOR: &str = "app.kubernetes.io/managed-by=livekit-operator";
/// Label selector of the source-Secret watch.
pub const SOURCE_SELECTOR: &str = "livekit.kraken.dev/source=true";

/// Secret keys the operator writes; any of them present but not desired is drift to repair.
pub const OWNED_SECRET_KEYS: [&str; 5] = [
    keys::API_KEY,
    keys::API_SECRET,
    keys::KEYS_FILE,
    keys::CALLER_HS_SECRET,
    keys::CALLER_PUBLIC_KEYS,
];

pub use livekit_contract::limits::MIN_HMAC_SECRET_BYTES;

/// Name of the owned Secret and ConfigMap.
pub fn owned_name(config_name: &str) -> String {
    format!("{config_name}-livekit")
}

/// Why the desired objects could not be rendered. The owned objects are then left as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Reconciled,
    SourceSecretNotFound,
    SourceKeyMissing,
    InvalidSpec,
    SecretTooShort,
    /// A `secretRef` names a Secret this operator writes (another config's `<name>-livekit`).
    SourceSecretOwned,
    /// A value in a source Secret is unusable (not UTF-8, an HMAC secret too short, no usable
    /// public key). Unlike [`Self::InvalidSpec`] it is fixed by editing the Secret, not the config,
    /// so it is retried and the Secret stays watched.
    SourceValueInvalid,
    /// A Secret or ConfigMap `<name>-livekit` exists that this config does not control.
    OwnedObjectConflict,
    ApplyFailed,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reconciled => "Reconciled",
            Self::SourceSecretNotFound => "SourceSecretNotFound",
            Self::SourceKeyMissing => "SourceKeyMissing",
            Self::InvalidSpec => "InvalidSpec",
            Self::SecretTooShort => "SecretTooShort",
            Self::SourceSecretOwned => "SourceSecretOwned",
            Self::SourceValueInvalid => "SourceValueInvalid",
            Self::OwnedObjectConflict => "OwnedObjectConflict",
            Self::ApplyFailed => "ApplyFailed",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reason and a message for `Ready=False`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: Reason,
    pub message: String,
}

impl Problem {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// What the reconciler read, besides the config itself. `Debug` shows Secrets by name and keys,
/// never their values.
#[derive(Clone)]
pub struct Inputs {
    /// The Secret named by `credentials.secretRef`, when referenced and found.
    pub credentials_source: Option<Secret>,
    /// The Secret named by `auth.secretRef`, when referenced and found.
    pub auth_source: Option<Secret>,
    /// The owned Secret as it is now (it carries generated credentials across reconciles).
    pub existing_secret: Option<Secret>,
    /// A freshly generated pair, used only if one is needed.
    pub fresh_credentials: ApiCredentials,
    /// A fresh key for the workload restart hash, used only if none is recorded yet.
    pub fresh_hash_key: HashKey,
    /// What the reconciler observed about a pending key (server API check, workload rollout).
    pub observation: rotation::Observation,
    pub now: Timestamp,
}

/// The objects to apply, and what the status should say about them. `Debug` shows the Secret by
/// name and keys, never its values.
#[derive(Clone, PartialEq)]
pub struct Desired {
    pub secret: Secret,
    pub config_map: ConfigMap,
    pub settings: SidecarSettings,
    /// The rotation step: the keys to record, the `Rotating` condition, when to look again.
    pub keys: Step,
    /// Hash of the rendered `keys.yaml` (the workload restart annotation).
    pub keys_hash: String,
    pub config_hash: String,
}

/// A Secret in a `Debug` output: its name and the names of its keys, never a value.
struct Redacted<'a>(Option<&'a Secret>);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(s) = self.0 else {
            return f.write_str("None");
        };
        let keys: Vec<&String> = s.data.iter().flat_map(|d| d.keys()).collect();
        f.debug_struct("Secret")
            .field("name", &s.metadata.name)
            .field("keys", &keys)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Inputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inputs")
            .field(
                "credentials_source",
                &Redacted(self.credentials_source.as_ref()),
            )
            .field("auth_source", &Redacted(self.auth_source.as_ref()))
            .field("existing_secret", &Redacted(self.existing_secret.as_ref()))
            .field("fresh_credentials", &self.fresh_credentials)
            .field("fresh_hash_key", &self.fresh_hash_key)
            .field("observation", &self.observation)
            .field("now", &self.now)
            .finish()
    }
}

impl fmt::Debug for Desired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Desired")
            .field("secret", &Redacted(Some(&self.secret)))
            .field("config_map", &self.config_map)
            .field("settings", &self.settings)
            .field("keys", &self.keys)
            .field("keys_hash", &self.keys_hash)
            .field("config_hash", &self.config_hash)
            .finish()
    }
}

impl Desired {
    /// When to look again even if nothing changes: the next rotation step or the end of a grace period.
    pub fn requeue_at(&self) -> Option<Timestamp> {
        self.keys.next_at
    }
}

/// The rotation settings of a spec.
pub fn policy(spec: &LiveKitConfigSpec) -> Policy {
    let c = &spec.credentials;
    let v = &c.rotation.verification;
    let secs = |s: u32| SignedDuration::from_secs(i64::from(s));
    let api = v.server_api.clone().unwrap_or_default();
    let (consecutive, interval) = (api.consecutive_successes, secs(api.interval_seconds));
    let verification = match (v.mode, &v.delay) {
        (Some(VerificationMode::Delay), Some(d)) => rotation::Verification::Delay(secs(d.seconds)),
        (None, delay) => rotation::Verification::Detect {
            consecutive,
            interval,
            delay: delay
                .as_ref()
                .map_or(rotation::DETECTED_DELAY_DEFAULT, |d| secs(d.seconds)),
        },
        // Delay without its settings is refused by the CRD; checking is the safe reading.
        _ => rotation::Verification::ServerApi {
            consecutive,
            interval,
        },
    };
    Policy {
        verification,
        deadline: secs(c.rotation.deadline_seconds),
        grace: secs(c.rotation_grace_seconds),
        workload: spec
            .livekit_server
            .as_ref()
            .is_some_and(|l| l.workload_ref.is_some()),
    }
}

/// Maps the CRD spec onto the sidecar's settings file. Pure and total; validity is checked apart.
pub fn settings(spec: &LiveKitConfigSpec) -> SidecarSettings {
    let f = spec.features;
    let t = &spec.token;
    let a = &spec.auth;
    let z = &spec.authorization;
    SidecarSettings {
        server_url: spec.server_url.clone(),
        region: spec.region.clone(),
        features: Features {
            audio: f.audio,
            video: f.video,
            screen_share: f.screen_share,
            recording: f.recording,
        },
        token: TokenSettings {
            default_ttl_seconds: t.default_ttl_seconds,
            max_ttl_seconds: t.max_ttl_seconds,
            grants: Grants {
                can_publish: t.grants.can_publish,
                can_subscribe: t.grants.can_subscribe,
                can_publish_data: t.grants.can_publish_data,
            },
            allow_identity_override: t.allow_identity_override,
        },
        auth: CallerAuthSettings {
            issuer: a.issuer.clone(),
            audiences: a.audiences.clone(),
            algorithms: a.algorithms.clone(),
            jwks_url: a.jwks_url.clone(),
            allow_http_jwks: a.allow_http_jwks,
            allow_any_issuer_and_audience: a.allow_any_issuer_and_audience,
            identity_claim: a.identity_claim.clone(),
            name_claim: a.name_claim.clone(),
            leeway_seconds: a.leeway_seconds,
        },
        authorization: AuthorizationSettings {
            mode: match z.mode {
                AuthorizationModeName::Claims => AuthorizationMode::Claims,
                AuthorizationModeName::Webhook => AuthorizationMode::Webhook,
            },
            claims: z
                .claims
                .as_ref()
                .map(|c| ClaimsAuthorization {
                    claim: c.claim.clone(),
                })
                .unwrap_or_default(),
            webhook: z.webhook.as_ref().map(|w| WebhookAuthorization {
                url: w.url.clone(),
                timeout_ms: w.timeout_ms,
                cache_ttl_seconds: w.cache_ttl_seconds,
            }),
        },
    }
}

fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    let from_data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned());
    from_data
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key).cloned())
        })
        .filter(|v| !v.trim().is_empty())
}

/// Reads what the owned Secret records about keys.
pub fn recorded(existing: Option<&Secret>) -> KeyState {
    let Some(secret) = existing else {
        return KeyState::default();
    };
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    rotation::record::read(
        secret_value(secret, keys::API_KEY),
        secret_value(secret, keys::API_SECRET),
        secret_value(secret, keys::KEYS_FILE).as_deref(),
        &annotations,
    )
}

/// Whether `secret` is one this operator writes (labelled as managed by it, or controlled by a
/// LiveKitConfig). Such a Secret is never a source: its content follows another config.
pub fn operator_owned(secret: &Secret) -> bool {
    let labelled = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == MANAGED_BY_VALUE);
    let controlled = secret.metadata.owner_references.iter().flatten().any(|r| {
        r.controller == Some(true)
            && r.kind == "LiveKitConfig"
            && r.api_version.starts_with(crate::crd::GROUP)
    });
    labelled || controlled
}

/// The source Secret `name`, refused when it is missing or written by this operator.
fn source<'a>(found: Option<&'a Secret>, name: &str) -> Result<&'a Secret, Problem> {
    let src = found.ok_or_else(|| source_missing(name))?;
    if operator_owned(src) {
        return Err(Problem::new(
            Reason::SourceSecretOwned,
            format!(
                "Secret {name:?} is written by livekit-operator for another LiveKitConfig; point secretRef at a Secret you manage"
            ),
        ));
    }
    Ok(src)
}

fn source_missing(name: &str) -> Problem {
    Problem::new(
        Reason::SourceSecretNotFound,
        format!("Secret {name:?} (same namespace) was not found"),
    )
}

/// The value of `key` in the source Secret `name`: present, non-empty and UTF-8 (a lossy decoding
/// would hand the sidecar and livekit-server a different secret than the one written).
fn source_value(src: &Secret, name: &str, key: &str) -> Result<String, Problem> {
    if let Some(bytes) = src.data.as_ref().and_then(|d| d.get(key))
        && std::str::from_utf8(&bytes.0).is_err()
    {
        return Err(Problem::new(
            Reason::SourceValueInvalid,
            format!("Secret {name:?} key {key:?} is not valid UTF-8"),
        ));
    }
    secret_value(src, key).ok_or_else(|| key_missing(name, key))
}

fn key_missing(name: &str, key: &str) -> Problem {
    Problem::new(
        Reason::SourceKeyMissing,
        format!("Secret {name:?} has no non-empty key {key:?}"),
    )
}

/// Renders the desired Secret and ConfigMap, or says why not.
pub fn desired(config: &LiveKitConfig, inputs: &Inputs) -> Result<Desired, Problem> {
    let spec = &config.spec;
    let name = config.name_any();
    let namespace = config.namespace().unwrap_or_default();

    // 1. The spec, as the sidecar will see it. Anything it would reject is InvalidSpec.
    let settings = settings(spec);
    if let Err(invalid) = settings.validate() {
        return Err(Problem::new(Reason::InvalidSpec, invalid.to_string()));
    }
    let creds = &spec.credentials;
    if creds.secret_ref.is_some() == creds.generate.is_some() {
        return Err(Problem::new(
            Reason::InvalidSpec,
            "exactly one of credentials.secretRef or credentials.generate must be set",
        ));
    }

    // 2. Caller-auth key material.
    let mut caller_data = BTreeMap::new();
    let uses_jwks = settings.auth.jwks_url.is_some();
    if let Some(r) = &spec.auth.secret_ref {
        let src = source(inputs.auth_source.as_ref(), &r.name)?;
        if let Some(key) = &r.hs_secret_key {
            let v = source_value(src, &r.name, key)?;
            if settings.auth.uses_hmac() && v.trim().len() < MIN_HMAC_SECRET_BYTES {
                return Err(Problem::new(
                    Reason::SourceValueInvalid,
                    format!(
                        "Secret {:?} key {key:?} is shorter than {MIN_HMAC_SECRET_BYTES} bytes, which the sidecar requires of an HMAC secret",
                        r.name
                    ),
                ));
            }
            caller_data.insert(keys::CALLER_HS_SECRET, v);
        }
        if let Some(key) = &r.public_keys_key {
            let v = source_value(src, &r.name, key)?;
            if settings.auth.uses_public_keys()
                && let Err(why) =
                    crate::keymaterial::check_public_keys(&v, &settings.auth.algorithms)
            {
                return Err(Problem::new(
                    Reason::SourceValueInvalid,
                    format!("Secret {:?} key {key:?}: {why}", r.name),
                ));
            }
            caller_data.insert(keys::CALLER_PUBLIC_KEYS, v);
        }
    }
    if settings.auth.uses_hmac() && !caller_data.contains_key(keys::CALLER_HS_SECRET) {
        return Err(Problem::new(
            Reason::InvalidSpec,
            "HMAC algorithms need auth.secretRef.hsSecretKey",
        ));
    }
    if settings.auth.uses_public_keys()
        && !uses_jwks
        && !caller_data.contains_key(keys::CALLER_PUBLIC_KEYS)
    {
        return Err(Problem::new(
            Reason::InvalidSpec,
            "public-key algorithms need auth.jwksUrl or auth.secretRef.publicKeysKey",
        ));
    }

    // 3. LiveKit API credentials, one rotation step.
    let target = match &creds.secret_ref {
        Some(r) => {
            let src = source(inputs.credentials_source.as_ref(), &r.name)?;
            let key = source_value(src, &r.name, &r.api_key_key)?;
            let secret = source_value(src, &r.name, &r.api_secret_key)?;
            let secret = secret.trim();
            if secret.chars().count() < MIN_LIVEKIT_SECRET_CHARS {
                return Err(Problem::new(
                    Reason::SecretTooShort,
                    format!(
                        "Secret {:?} key {:?} (credentials.secretRef.apiSecretKey) has {} characters; livekit-server refuses API secrets shorter than {MIN_LIVEKIT_SECRET_CHARS}",
                        r.name,
                        r.api_secret_key,
                        secret.chars().count()
                    ),
                ));
            }
            Target::Source(ApiCredentials::new(key.trim(), secret))
        }
        None => Target::Generate {
            rotate_request: config.annotations().get(ROTATE_ANNOTATION).cloned(),
            fresh: inputs.fresh_credentials.clone(),
        },
    };
    let mut keys = rotation::step(
        &recorded(inputs.existing_secret.as_ref()),
        target,
        &policy(spec),
        &inputs.observation,
        inputs.now,
    );
    if keys.signing().secret.chars().count() < MIN_LIVEKIT_SECRET_CHARS {
        // Only a generated pair can get here; generation makes 43 characters.
        return Err(Problem::new(
            Reason::SecretTooShort,
            format!(
                "the generated API secret (credentials.generate) is shorter than {MIN_LIVEKIT_SECRET_CHARS} characters"
            ),
        ));
    }

    // 4. The objects.
    let keys_file = render_keys_file(keys.state.keys_file_pairs());
    let hash_key = keys
        .state
        .hash_key
        .get_or_insert_with(|| inputs.fresh_hash_key.clone());
    let keys_hash = rotation::workload::keys_hash(hash_key, &keys_file);
    let mut secret_data: BTreeMap<String, String> = BTreeMap::new();
    secret_data.insert(keys::API_KEY.into(), keys.signing().key.clone());
    secret_data.insert(keys::API_SECRET.into(), keys.signing().secret.clone());
    secret_data.insert(keys::KEYS_FILE.into(), keys_file);
    for (k, v) in caller_data {
        secret_data.insert(k.into(), v);
    }
    let settings_yaml = settings.to_yaml();
    let key_ids: Vec<&str> = keys
        .state
        .keys_file_pairs()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let config_hash = hash(
        &settings_yaml,
        keys.signing().key.as_str(),
        &key_ids,
        secret_data.keys().map(String::as_str),
    );

    let secret_annotations = record::annotations(&keys.state);

    // With `Retain` the Secret has no ownerReference at all: the garbage collector deletes an
    // object once all its owners are gone, controller or not. Its labels name the config instead.
    let owner = config.controller_owner_ref(&()).map(|r| vec![r]);
    let secret_owner = match spec.deletion_policy {
        DeletionPolicy::Delete => owner.clone(),
        DeletionPolicy::Retain => None,
    };
    let meta = |annotations: BTreeMap<String, String>,
                owner_references: Option<Vec<OwnerReference>>| ObjectMeta {
        name: Some(owned_name(&name)),
        namespace: Some(namespace.clone()),
        labels: Some(BTreeMap::from([
            (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
            (CONFIG_LABEL.to_owned(), name.clone()),
        ])),
        annotations: (!annotations.is_empty()).then_some(annotations),
        owner_references,
        ..ObjectMeta::default()
    };
    let secret = Secret {
        metadata: meta(secret_annotations, secret_owner),
        type_: Some("Opaque".into()),
        data: Some(
            secret_data
                .into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    };
    let config_map = ConfigMap {
        metadata: meta(BTreeMap::new(), owner),
        data: Some(BTreeMap::from([(keys::SETTINGS.to_owned(), settings_yaml)])),
        ..ConfigMap::default()
    };
    Ok(Desired {
        secret,
        config_map,
        settings,
        keys,
        keys_hash,
        config_hash,
    })
}

/// First 16 hex characters of SHA-256 over non-secret data only: the settings file, the signing key
/// id, the key ids in `keys.yaml` and the names of the Secret's keys. Status is readable by anyone
/// who can read the config, so a hash over secret values would let them test guesses offline.
pub fn hash<'a>(
    settings_yaml: &str,
    signing_key: &str,
    key_ids: &[&str],
    secret_keys: impl Iterator<Item = &'a str>,
) -> String {
    let mut h = Sha256::new();
    h.update(keys::SETTINGS.as_bytes());
    h.update([0]);
    h.update(settings_yaml.as_bytes());
    h.update([0]);
    h.update(signing_key.as_bytes());
    for id in key_ids {
        h.update([1]);
        h.update(id.as_bytes());
    }
    for k in secret_keys {
        h.update([2]);
        h.update(k.as_bytes());
    }
    let digest = h.finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Whether a LiveKitConfig reads the named Secret (for mapping Secret events back to configs).
pub fn references_secret(config: &LiveKitConfig, namespace: &str, secret_name: &str) -> bool {
    if config.namespace().as_deref() != Some(namespace) {
        return false;
    }
    let spec = &config.spec;
    spec.credentials
        .secret_ref
        .as_ref()
        .is_some_and(|r| r.name == secret_name)
        || spec
            .auth
            .secret_ref
            .as_ref()
            .is_some_and(|r| r.name == secret_name)
}

/// The names of source Secrets a config reads.
pub fn source_secret_names(spec: &LiveKitConfigSpec) -> Vec<String> {
    let mut names: Vec<String> = spec
        .credentials
        .secret_ref
        .iter()
        .map(|r| r.name.clone())
        .chain(spec.auth.secret_ref.iter().map(|r| r.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}
