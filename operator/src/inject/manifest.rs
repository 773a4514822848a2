//! `livekit-operator inject`: the sidecar added to the pod templates of a multi-document YAML (or
//! JSON) stream of Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs and
//! `List`s of them. Other documents pass through unchanged. YAML comments are not kept.

use super::{
    Defaults, InjectError, OPT_OUT_LABEL, OPT_OUT_VALUE, OWN_LABEL, Outcome, annotate,
    inject_template,
};
use serde::Deserialize;
use serde_json::Value;

/// What happened to one pod template.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub kind: String,
    pub name: String,
    pub outcome: Outcome,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("document {index}: not YAML: {source}")]
    Yaml {
        index: usize,
        source: serde_yaml::Error,
    },
    #[error("{kind} {name}: {source}")]
    Inject {
        kind: String,
        name: String,
        source: InjectError,
    },
}

/// Where a kind keeps its pod template (`None`: not a pod-bearing kind).
fn template_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some(""),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Labels that keep `--config` from annotating a template at all.
fn excluded(template: &Value) -> bool {
    let label = |k: &str| {
        template
            .pointer("/metadata/labels")
            .and_then(|l| l.get(k))
            .and_then(Value::as_str)
    };
    label(OPT_OUT_LABEL) == Some(OPT_OUT_VALUE) || label(OWN_LABEL.0) == Some(OWN_LABEL.1)
}

/// kubectl reads YAML 1.1, where `defaultMode: 0440` is the octal number 288; serde_yaml reads
/// YAML 1.2, where it is the string "0440". File modes are the one place pod specs use octal, so
/// those keys are read the way kubectl reads them (and written back as the number).
fn octal_modes(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if let ("defaultMode" | "mode", Value::String(s)) = (k.as_str(), &*child)
                    && s.len() > 1
                    && s.starts_with('0')
                    && s.chars().all(|c| ('0'..='7').contains(&c))
                    && let Ok(n) = i64::from_str_radix(s, 8)
                {
                    *child = Value::from(n);
                } else {
                    octal_modes(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(octal_modes),
        _ => {}
    }
}

fn process(
    doc: &mut Value,
    config: Option<&str>,
    defaults: &Defaults,
    reports: &mut Vec<Report>,
) -> Result<(), ManifestError> {
    let kind = str_at(doc, "/kind").to_owned();
    if kind == "List" {
        if let Some(items) = doc.get_mut("items").and_then(Value::as_array_mut) {
            for item in items {
                process(item, config, defaults, reports)?;
            }
        }
        return Ok(());
    }
    let Some(pointer) = template_pointer(&kind) else {
        return Ok(());
    };
    let name = str_at(doc, "/metadata/name").to_owned();
    let Some(template) = doc.pointer_mut(pointer) else {
        return Ok(());
    };
    if let Some(config) = config
        && !excluded(template)
    {
        annotate(template, config);
    }
    let outcome = inject_template(template, defaults).map_err(|source| ManifestError::Inject {
        kind: kind.clone(),
        name: name.clone(),
        source,
    })?;
    reports.push(Report {
        kind,
        name,
        outcome,
    });
    Ok(())
}

/// Injects every pod template of `text`; with `config`, every template is first annotated for that
/// LiveKitConfig (except opted-out ones and the operator's own). One bad template fails the whole
/// run, so that a pipeline never applies half an injection.
pub fn inject_manifests(
    text: &str,
    config: Option<&str>,
    defaults: &Defaults,
) -> Result<(String, Vec<Report>), ManifestError> {
    let mut out = String::new();
    let mut reports = Vec::new();
    for (index, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let mut doc =
            Value::deserialize(de).map_err(|source| ManifestError::Yaml { index, source })?;
        if doc.is_null() {
            continue;
        }
        octal_modes(&mut doc);
        process(&mut doc, config, defaults, &mut reports)?;
        if !out.is_empty() {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml::to_string(&doc).expect("JSON values serialise as YAML"));
    }
    Ok((out, reports))
}
