//! The owned objects `<name>-livekit` as they exist: whether this config may write them at all
//! (controller-runtime's `IsControlledBy` convention, widened by the retain labels), and whether
//! they need a write, judged only over the fields this operator's field manager owns, as
//! server-side apply itself does. Pure functions over what the reconciler read.

use crate::crd::LiveKitConfig;
use crate::desired::{
    CONFIG_LABEL, FIELD_MANAGER, MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNED_SECRET_KEYS, Problem,
    Reason,
};
use crate::rotation::record;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use livekit_contract::keys;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Whether the existing object `meta` is `config`'s to write. It is when its controller
/// ownerReference points at this config's uid, or, with no controller at all, when it carries both
/// labels naming this config: what a `Retain` Secret keeps after its config was deleted, and the
/// deliberate way to hand an existing object over. Anything else (a Secret someone created by hand,
/// another controller's object, the leftover of a deleted config that the garbage collector has
/// not removed yet) is left alone; the error says why.
pub fn controlled_by(meta: &ObjectMeta, config: &LiveKitConfig) -> Result<(), String> {
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    if let Some(c) = controller {
        if config.meta().uid.as_deref() == Some(c.uid.as_str()) {
            return Ok(());
        }
        return Err(format!(
            "it is controlled by {} {:?} (uid {})",
            c.kind, c.name, c.uid
        ));
    }
    let labels = meta.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    if label(MANAGED_BY_LABEL) == Some(MANAGED_BY_VALUE)
        && label(CONFIG_LABEL) == Some(config.name_any().as_str())
    {
        return Ok(());
    }
    Err(format!(
        "it has no controller ownerReference to this LiveKitConfig and not both labels {MANAGED_BY_LABEL}={MANAGED_BY_VALUE} and {CONFIG_LABEL}={}",
        config.name_any()
    ))
}

/// The config an owned object belongs to, by its config label (the ownerReference is absent
/// on a `Retain` Secret): what a change to that object should reconcile.
pub fn config_of(meta: &ObjectMeta) -> Option<ObjectRef<LiveKitConfig>> {
    let name = meta.labels.as_ref()?.get(CONFIG_LABEL)?;
    let mut r = ObjectRef::new(name);
    if let Some(ns) = &meta.namespace {
        r = r.within(ns);
    }
    Some(r)
}

/// Refuses to go on when `<name>-livekit` exists as a Secret or ConfigMap this config does not
/// control (see [`controlled_by`]). Nothing is written to such an object.
pub fn check(
    config: &LiveKitConfig,
    secret: Option<&Secret>,
    config_map: Option<&ConfigMap>,
) -> Result<(), Problem> {
    let found = [
        ("Secret", secret.map(|s| &s.metadata)),
        ("ConfigMap", config_map.map(|c| &c.metadata)),
    ];
    for (kind, meta) in found {
        let Some(meta) = meta else { continue };
        if let Err(why) = controlled_by(meta, config) {
            return Err(Problem::new(
                Reason::OwnedObjectConflict,
                format!(
                    "{kind} {:?} already exists and this LiveKitConfig does not control it: {why}; it is left untouched. Delete or rename it, or label it {MANAGED_BY_LABEL}={MANAGED_BY_VALUE} and {CONFIG_LABEL}={} to hand it over",
                    meta.name.as_deref().unwrap_or_default(),
                    config.name_any()
                ),
            ));
        }
    }
    Ok(())
}

/// The fields of an object that this operator's server-side apply sets (or, read from
/// `managedFields`, owns): data keys, label and annotation keys, ownerReference uids.
#[derive(Debug, Default, PartialEq, Eq)]
struct Fields {
    data: BTreeSet<String>,
    labels: BTreeSet<String>,
    annotations: BTreeSet<String>,
    owners: BTreeSet<String>,
}

impl Fields {
    fn of<'a>(meta: &ObjectMeta, data: impl Iterator<Item = &'a String>) -> Self {
        let keys = |m: &Option<BTreeMap<String, String>>| {
            m.iter().flatten().map(|(k, _)| k.clone()).collect()
        };
        Self {
            data: data.cloned().collect(),
            labels: keys(&meta.labels),
            annotations: keys(&meta.annotations),
            owners: meta
                .owner_references
                .iter()
                .flatten()
                .map(|r| r.uid.clone())
                .collect(),
        }
    }

    /// What the `Apply` entry of [`FIELD_MANAGER`] owns, or `None` when the object carries no
    /// `managedFields` at all (then nothing tells whose fields are whose).
    fn applied(meta: &ObjectMeta) -> Option<Self> {
        let entries = meta.managed_fields.as_ref().filter(|m| !m.is_empty())?;
        let mut owned = Self::default();
        let ours = entries.iter().filter(|e| {
            e.manager.as_deref() == Some(FIELD_MANAGER)
                && e.operation.as_deref() == Some("Apply")
                && e.subresource.as_deref().unwrap_or_default().is_empty()
        });
        for e in ours {
            let Some(f) = &e.fields_v1 else { continue };
            let v = &f.0;
            let names = |v: &Value, prefix: &str| -> BTreeSet<String> {
                v.as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, _)| k.strip_prefix(prefix).map(str::to_owned))
                    .collect()
            };
            owned.data.extend(names(&v["f:data"], "f:"));
            owned
                .labels
                .extend(names(&v["f:metadata"]["f:labels"], "f:"));
            owned
                .annotations
                .extend(names(&v["f:metadata"]["f:annotations"], "f:"));
            for key in names(&v["f:metadata"]["f:ownerReferences"], "k:") {
                let uid = serde_json::from_str::<Value>(&key)
                    .ok()
                    .and_then(|k| k["uid"].as_str().map(str::to_owned));
                owned.owners.extend(uid);
            }
        }
        Some(owned)
    }
}

/// Labels, annotations and ownerReferences of `desired` all present with the same values.
fn meta_covers(existing: &ObjectMeta, desired: &ObjectMeta) -> bool {
    let covers = |have: &Option<BTreeMap<String, String>>,
                  want: &Option<BTreeMap<String, String>>| {
        want.iter()
            .flatten()
            .all(|(k, v)| have.as_ref().and_then(|h| h.get(k)) == Some(v))
    };
    let owners_ok = desired.owner_references.iter().flatten().all(|want| {
        existing
            .owner_references
            .iter()
            .flatten()
            .any(|have| have.uid == want.uid && have.controller == want.controller)
    });
    covers(&existing.labels, &desired.labels)
        && covers(&existing.annotations, &desired.annotations)
        && owners_ok
}

/// Whether applying `desired` would change nothing this operator owns. The values it applies must
/// be there, and, when `managedFields` say what its manager owns, that set must be exactly the set
/// it applies: a field it owns but no longer applies is one the apply would remove, and a field it
/// applies but does not own was taken over by someone else (`kubectl edit`), so it is reclaimed.
/// Fields other managers added (a data key, a label, an annotation) are theirs and never a reason
/// to write. Without `managedFields`, `legacy_keys` (the data keys this operator ever writes) and
/// its rotation annotations stand in for its field set.
fn up_to_date<V: PartialEq>(
    existing: (&ObjectMeta, Option<&BTreeMap<String, V>>),
    desired: (&ObjectMeta, Option<&BTreeMap<String, V>>),
    legacy_keys: &[&str],
) -> bool {
    let ((have_meta, have), (want_meta, want)) = (existing, desired);
    let empty = BTreeMap::new();
    let (have, want) = (have.unwrap_or(&empty), want.unwrap_or(&empty));
    if !want.iter().all(|(k, v)| have.get(k) == Some(v)) || !meta_covers(have_meta, want_meta) {
        return false;
    }
    let wanted = Fields::of(want_meta, want.keys());
    match Fields::applied(have_meta) {
        Some(owned) => owned == wanted,
        None => {
            let stale_annotation = record::ANNOTATIONS.iter().any(|a| {
                have_meta
                    .annotations
                    .as_ref()
                    .is_some_and(|m| m.contains_key(*a))
                    && !wanted.annotations.contains(*a)
            });
            let legacy_data_ok = legacy_keys.iter().all(|k| have.get(*k) == want.get(*k));
            legacy_data_ok && !stale_annotation
        }
    }
}

/// Whether the existing owned Secret already is what we would apply (so no write is needed).
pub fn secret_up_to_date(existing: Option<&Secret>, desired: &Secret) -> bool {
    existing.is_some_and(|e| {
        let opaque = |s: &Secret| s.type_.clone().unwrap_or_else(|| "Opaque".into());
        opaque(e) == opaque(desired)
            && up_to_date(
                (&e.metadata, e.data.as_ref()),
                (&desired.metadata, desired.data.as_ref()),
                &OWNED_SECRET_KEYS,
            )
    })
}

/// Whether the existing owned ConfigMap already is what we would apply.
pub fn config_map_up_to_date(existing: Option<&ConfigMap>, desired: &ConfigMap) -> bool {
    existing.is_some_and(|e| {
        up_to_date(
            (&e.metadata, e.data.as_ref()),
            (&desired.metadata, desired.data.as_ref()),
            &[keys::SETTINGS],
        )
    })
}
