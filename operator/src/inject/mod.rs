//! Injection of the LiveKit token sidecar into a pod template: the one code path behind the
//! mutating admission webhook and `livekit-operator inject`.
//!
//! [`inject_template`] takes a pod template (`{metadata, spec}` as JSON, the shape of a Pod and of
//! every workload's `spec.template`), the operator's [`Defaults`], and either changes it so that it
//! carries the sidecar exactly as `examples/app-with-sidecar.yaml` does, or says why it left it
//! alone, or refuses it with an error naming the bad annotation. Nothing is changed on an error.
//! The template is edited in place as JSON (not round-tripped through typed structs), so fields
//! this operator's Kubernetes types do not know survive untouched, and the webhook's JSON patch is
//! the difference between the pod before and after.

pub mod annotations;
pub mod args;
pub mod manifest;
pub mod quantity;
mod sidecar;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use std::collections::BTreeMap;

pub use annotations::Settings;
pub use sidecar::{API_ENV, CONTAINER_NAME, MOUNT_PATH, VOLUME_NAME};

/// Pod label that opts a pod out. A label, not an annotation, so that the webhook's
/// `objectSelector` keeps such pods away from the webhook altogether.
pub const OPT_OUT_LABEL: &str = "livekit.kraken.dev/inject";
pub const OPT_OUT_VALUE: &str = "disabled";
/// Label carried by the operator's own pods (the chart's `app.kubernetes.io/part-of`): never
/// injected, so that the webhook can never wait on itself.
pub const OWN_LABEL: (&str, &str) = ("app.kubernetes.io/part-of", "livekit-operator");
/// The group the projected files belong to when the pod sets no `fsGroup` (distroless `nonroot`).
pub const DEFAULT_FS_GROUP: i64 = 65532;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

/// What the operator injects when a pod does not say otherwise (operator flags).
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    pub image: String,
    pub image_pull_policy: String,
    pub api_port: u16,
    pub metrics_port: u16,
    pub log_format: LogFormat,
    pub requests: BTreeMap<String, String>,
    pub limits: BTreeMap<String, String>,
}

/// The sidecar image of this release.
pub fn default_image() -> String {
    format!(
        "ghcr.io/kraken-dev/livekit-sidecar:{}",
        env!("CARGO_PKG_VERSION")
    )
}

impl Default for Defaults {
    /// The values of `examples/app-with-sidecar.yaml`.
    fn default() -> Self {
        Self {
            image: default_image(),
            image_pull_policy: "IfNotPresent".into(),
            api_port: 3001,
            metrics_port: 9464,
            log_format: LogFormat::Json,
            requests: [("cpu", "10m"), ("memory", "16Mi")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
            limits: [("memory".to_owned(), "64Mi".to_owned())].into(),
        }
    }
}

/// Why a template was left as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// No `livekit.kraken.dev/inject` annotation.
    NotRequested,
    /// Labelled `livekit.kraken.dev/inject: disabled`.
    OptedOut,
    /// The sidecar is there already (injecting twice changes nothing).
    AlreadyInjected,
    /// One of the operator's own pods.
    OperatorPod,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotRequested => "no livekit.kraken.dev/inject annotation",
            Self::OptedOut => "labelled livekit.kraken.dev/inject=disabled",
            Self::AlreadyInjected => "the sidecar is already there",
            Self::OperatorPod => "one of the operator's own pods",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The sidecar was added for this LiveKitConfig.
    Injected {
        config: String,
    },
    Skipped(Skip),
}

/// Why a pod cannot be injected. The pod is refused; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InjectError {
    #[error("annotation {annotation}: {message}")]
    Annotation { annotation: String, message: String },
    /// The pod already uses a name or port the sidecar needs.
    #[error("{message}")]
    Conflict { message: String },
    /// The template is not a pod template the API server would accept.
    #[error("not a valid pod template: {0}")]
    Malformed(String),
}

/// Reads what the injector needs to know without changing anything: the metadata and the spec.
fn read(template: &Value) -> Result<(ObjectMeta, PodSpec), InjectError> {
    let field = |name: &str| template.get(name).cloned().unwrap_or(Value::Null);
    let meta = match field("metadata") {
        Value::Null => ObjectMeta::default(),
        v => serde_json::from_value(v)
            .map_err(|e| InjectError::Malformed(format!("metadata: {e}")))?,
    };
    let spec = serde_json::from_value(field("spec"))
        .map_err(|e| InjectError::Malformed(format!("spec: {e}")))?;
    Ok((meta, spec))
}

/// Whether the template asks for the sidecar, and for which config.
pub fn requested(meta: &ObjectMeta, spec: &PodSpec) -> Result<String, Skip> {
    let labels = meta.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    if label(OWN_LABEL.0) == Some(OWN_LABEL.1) {
        return Err(Skip::OperatorPod);
    }
    if label(OPT_OUT_LABEL) == Some(OPT_OUT_VALUE) {
        return Err(Skip::OptedOut);
    }
    let Some(config) = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotations::INJECT))
    else {
        return Err(Skip::NotRequested);
    };
    let injected = spec
        .init_containers
        .iter()
        .flatten()
        .any(|c| c.name == CONTAINER_NAME);
    if injected {
        return Err(Skip::AlreadyInjected);
    }
    Ok(config.trim().to_owned())
}

/// Adds the sidecar to a pod template (`{metadata, spec}`), or says why not. See the module docs.
pub fn inject_template(template: &mut Value, defaults: &Defaults) -> Result<Outcome, InjectError> {
    let (meta, spec) = read(template)?;
    let config = match requested(&meta, &spec) {
        Ok(c) => c,
        Err(skip) => return Ok(Outcome::Skipped(skip)),
    };
    let settings = annotations::settings(&meta.annotations.unwrap_or_default(), &config, defaults)?;
    sidecar::check_conflicts(&spec, &settings)?;
    let spec_value = template
        .get_mut("spec")
        .ok_or_else(|| InjectError::Malformed("no spec".into()))?;
    sidecar::apply(spec_value, &spec, &settings);
    Ok(Outcome::Injected { config })
}

/// Sets the `livekit.kraken.dev/inject` annotation of a template (what `inject --config` does
/// before injecting, so that the result is the pod the webhook would have produced).
pub fn annotate(template: &mut Value, config: &str) {
    if !template.is_object() {
        return;
    }
    let meta = object(&mut template["metadata"]);
    object(meta.entry("annotations").or_insert(Value::Null)).insert(
        annotations::INJECT.to_owned(),
        Value::String(config.to_owned()),
    );
}

/// The object in `slot`, made an empty one first when it is absent or not an object.
fn object(slot: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !slot.is_object() {
        *slot = Value::Object(Default::default());
    }
    slot.as_object_mut().expect("made an object above")
}
