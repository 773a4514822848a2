//! Pure functions from a `LiveKitConfig` and the inputs the reconciler read to the objects it should
//! write. Nothing here talks to the API server, reads a clock or draws a random number.

use crate::crd::{AuthorizationModeName, LiveKitConfig, LiveKitConfigSpec, ROTATE_ANNOTATION};
use crate::credentials::{self, ApiCredentials, KeyPlan, Recorded, Source};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
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
    ApplyFailed,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reconciled => "Reconciled",
            Self::SourceSecretNotFound => "SourceSecretNotFound",
            Self::SourceKeyMissing => "SourceKeyMissing",
            Self::InvalidSpec => "InvalidSpec",
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

/// What the reconciler read, besides the config itself.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The Secret named by `credentials.secretRef`, when referenced and found.
    pub credentials_source: Option<Secret>,
    /// The Secret named by `auth.secretRef`, when referenced and found.
    pub auth_source: Option<Secret>,
    /// The owned Secret as it is now (it carries generated credentials across reconciles).
    pub existing_secret: Option<Secret>,
    /// A freshly generated pair, used only if one is needed.
    pub fresh_credentials: ApiCredentials,
    pub now: Timestamp,
}

/// The objects to apply, and what the status should say about them.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub secret: Secret,
    pub config_map: ConfigMap,
    pub settings: SidecarSettings,
    pub keys: KeyPlan,
    pub config_hash: String,
}

impl Desired {
    /// When to look again even if nothing changes: at the end of a rotation grace period.
    pub fn requeue_at(&self) -> Option<Timestamp> {
        self.keys.previous.as_ref().map(|(_, at)| *at)
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

/// Reads what the owned Secret records about credentials.
pub fn recorded(existing: Option<&Secret>) -> Recorded {
    let Some(secret) = existing else {
        return Recorded::default();
    };
    let current = match (
        secret_value(secret, keys::API_KEY),
        secret_value(secret, keys::API_SECRET),
    ) {
        (Some(k), Some(s)) => Some(ApiCredentials::new(k, s)),
        _ => None,
    };
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    let expires = annotations
        .get(credentials::PREVIOUS_EXPIRES_ANNOTATION)
        .and_then(|v| v.parse::<Timestamp>().ok());
    let previous = match (&current, expires, secret_value(secret, keys::KEYS_FILE)) {
        (Some(cur), Some(at), Some(text)) => livekit_contract::parse_keys_file(&text)
            .ok()
            .and_then(|map| map.into_iter().find(|(k, _)| *k != cur.key))
            .map(|(k, s)| (ApiCredentials::new(k, s), at)),
        _ => None,
    };
    Recorded {
        current,
        previous,
        rotation_handled: annotations
            .get(credentials::ROTATION_HANDLED_ANNOTATION)
            .cloned(),
    }
}

fn source_missing(name: &str) -> Problem {
    Problem::new(
        Reason::SourceSecretNotFound,
        format!("Secret {name:?} (same namespace) was not found"),
    )
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
        let src = inputs
            .auth_source
            .as_ref()
            .ok_or_else(|| source_missing(&r.name))?;
        if let Some(key) = &r.hs_secret_key {
            let v = secret_value(src, key).ok_or_else(|| key_missing(&r.name, key))?;
            if settings.auth.uses_hmac() && v.trim().len() < MIN_HMAC_SECRET_BYTES {
                return Err(Problem::new(
                    Reason::InvalidSpec,
                    format!(
                        "Secret {:?} key {key:?} is shorter than {MIN_HMAC_SECRET_BYTES} bytes, which the sidecar requires of an HMAC secret",
                        r.name
                    ),
                ));
            }
            caller_data.insert(keys::CALLER_HS_SECRET, v);
        }
        if let Some(key) = &r.public_keys_key {
            let v = secret_value(src, key).ok_or_else(|| key_missing(&r.name, key))?;
            if settings.auth.uses_public_keys()
                && let Err(why) =
                    crate::keymaterial::check_public_keys(&v, &settings.auth.algorithms)
            {
                return Err(Problem::new(
                    Reason::InvalidSpec,
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

    // 3. LiveKit API credentials.
    let source = match &creds.secret_ref {
        Some(r) => {
            let src = inputs
                .credentials_source
                .as_ref()
                .ok_or_else(|| source_missing(&r.name))?;
            let key = secret_value(src, &r.api_key_key)
                .ok_or_else(|| key_missing(&r.name, &r.api_key_key))?;
            let secret = secret_value(src, &r.api_secret_key)
                .ok_or_else(|| key_missing(&r.name, &r.api_secret_key))?;
            Source::FromSecret(ApiCredentials::new(key.trim(), secret.trim()))
        }
        None => Source::Generate,
    };
    let rotate = config
        .annotations()
        .get(ROTATE_ANNOTATION)
        .map(String::as_str);
    let keys = credentials::plan(
        source,
        &recorded(inputs.existing_secret.as_ref()),
        rotate,
        inputs.fresh_credentials.clone(),
        SignedDuration::from_secs(i64::from(creds.rotation_grace_seconds)),
        inputs.now,
    );

    // 4. The objects.
    let mut pairs = vec![(keys.current.key.as_str(), keys.current.secret.as_str())];
    if let Some((prev, _)) = &keys.previous {
        pairs.push((prev.key.as_str(), prev.secret.as_str()));
    }
    let mut secret_data: BTreeMap<String, String> = BTreeMap::new();
    secret_data.insert(keys::API_KEY.into(), keys.current.key.clone());
    secret_data.insert(keys::API_SECRET.into(), keys.current.secret.clone());
    secret_data.insert(keys::KEYS_FILE.into(), render_keys_file(pairs));
    for (k, v) in caller_data {
        secret_data.insert(k.into(), v);
    }
    let settings_yaml = settings.to_yaml();
    let config_hash = hash(&settings_yaml, &secret_data);

    let mut secret_annotations = BTreeMap::new();
    if let Some((_, at)) = &keys.previous {
        secret_annotations.insert(
            credentials::PREVIOUS_EXPIRES_ANNOTATION.to_owned(),
            at.to_string(),
        );
    }
    if let Some(handled) = &keys.rotation_handled {
        secret_annotations.insert(
            credentials::ROTATION_HANDLED_ANNOTATION.to_owned(),
            handled.clone(),
        );
    }

    let meta = |annotations: BTreeMap<String, String>| ObjectMeta {
        name: Some(owned_name(&name)),
        namespace: Some(namespace.clone()),
        labels: Some(BTreeMap::from([
            (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
            (CONFIG_LABEL.to_owned(), name.clone()),
        ])),
        annotations: (!annotations.is_empty()).then_some(annotations),
        owner_references: config.controller_owner_ref(&()).map(|r| vec![r]),
        ..ObjectMeta::default()
    };
    let secret = Secret {
        metadata: meta(secret_annotations),
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
        metadata: meta(BTreeMap::new()),
        data: Some(BTreeMap::from([(keys::SETTINGS.to_owned(), settings_yaml)])),
        ..ConfigMap::default()
    };
    Ok(Desired {
        secret,
        config_map,
        settings,
        keys,
        config_hash,
    })
}

/// First 16 hex characters of SHA-256 over the settings file and the Secret data, in key order.
pub fn hash(settings_yaml: &str, secret_data: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    h.update(keys::SETTINGS.as_bytes());
    h.update([0]);
    h.update(settings_yaml.as_bytes());
    for (k, v) in secret_data {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
    }
    let digest = h.finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn meta_covers(existing: &ObjectMeta, desired: &ObjectMeta) -> bool {
    let covers = |have: &Option<BTreeMap<String, String>>,
                  want: &Option<BTreeMap<String, String>>| {
        let have = have.clone().unwrap_or_default();
        want.iter().flatten().all(|(k, v)| have.get(k) == Some(v))
    };
    let owners_ok = desired.owner_references.iter().flatten().all(|want| {
        existing
            .owner_references
            .iter()
            .flatten()
            .any(|have| have.uid == want.uid && have.controller == want.controller)
    });
    // An annotation the operator manages but no longer wants must go.
    let stale_annotation = [
        credentials::PREVIOUS_EXPIRES_ANNOTATION,
        credentials::ROTATION_HANDLED_ANNOTATION,
    ]
    .iter()
    .any(|a| {
        existing
            .annotations
            .as_ref()
            .is_some_and(|m| m.contains_key(*a))
            && !desired
                .annotations
                .as_ref()
                .is_some_and(|m| m.contains_key(*a))
    });
    covers(&existing.labels, &desired.labels)
        && covers(&existing.annotations, &desired.annotations)
        && owners_ok
        && !stale_annotation
}

/// Whether the existing owned Secret already is what we would apply (so no write is needed).
pub fn secret_up_to_date(existing: Option<&Secret>, desired: &Secret) -> bool {
    let Some(existing) = existing else {
        return false;
    };
    let empty = BTreeMap::new();
    let have = existing.data.as_ref().unwrap_or(&empty);
    let want = desired.data.as_ref().unwrap_or(&empty);
    let data_ok = OWNED_SECRET_KEYS
        .iter()
        .all(|k| have.get(*k) == want.get(*k));
    data_ok
        && existing.type_.as_deref().unwrap_or("Opaque")
            == desired.type_.as_deref().unwrap_or("Opaque")
        && meta_covers(&existing.metadata, &desired.metadata)
}

/// Whether the existing owned ConfigMap already is what we would apply.
pub fn config_map_up_to_date(existing: Option<&ConfigMap>, desired: &ConfigMap) -> bool {
    let Some(existing) = existing else {
        return false;
    };
    let get = |c: &ConfigMap| c.data.as_ref().and_then(|d| d.get(keys::SETTINGS)).cloned();
    get(existing) == get(desired) && meta_covers(&existing.metadata, &desired.metadata)
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
