//! The fake API server's objects and their writes: create, replace, merge patch, server-side apply
//! and delete, each checked the way a real API server checks it (resourceVersion preconditions,
//! immutable Secret `type`, one controller ownerReference, a status subresource that is the only
//! way to write `status`, `metadata.generation` bumped on spec changes, no-op writes that change
//! nothing), with field ownership per manager and a change log that feeds the watches.

use super::fields::{self, FieldSet, ListKeys};
use super::watch::Watchers;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// An API error as the API server reports it in a `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
        }
    }

    fn not_found(kind: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{kind} \"{name}\" not found"))
    }

    fn invalid(kind: &str, name: &str, detail: impl std::fmt::Display) -> Self {
        Self::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {detail}"),
        )
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manager {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: &'static str,
    pub subresource: Option<String>,
    pub fields: FieldSet,
    time: String,
}

#[derive(Debug, Clone)]
pub struct Stored {
    pub obj: Value,
    pub managers: Vec<Manager>,
}

/// How a write changes the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Replace,
    /// JSON merge patch (also used for strategic merge patches of the objects this fake serves:
    /// they hold no lists a strategic patch would merge differently).
    Merge,
    Apply {
        force: bool,
    },
}

pub struct Write<'a> {
    pub kind: &'a str,
    pub ns: &'a str,
    pub name: &'a str,
    pub subresource: Option<&'a str>,
    pub manager: &'a str,
    pub op: Op,
    pub body: &'a Value,
}

/// A change, as watches see it.
#[derive(Debug, Clone)]
pub struct Change {
    pub rv: u64,
    pub kind: String,
    pub ns: String,
    pub type_: &'static str,
    pub old: Option<Value>,
    pub new: Value,
}

#[derive(Default)]
pub struct Store {
    objects: BTreeMap<(String, String, String), Stored>,
    rv: u64,
    uids: u64,
    /// Kinds (plural) served with a status subresource and a generation (custom resources).
    status_kinds: BTreeSet<String>,
    lists: BTreeMap<String, ListKeys>,
    pub log: Vec<Change>,
    pub watchers: Watchers,
}

fn now() -> String {
    Timestamp::from_second(Timestamp::now().as_second())
        .unwrap()
        .to_string()
}

fn rv_of(obj: &Value) -> Option<&str> {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .filter(|s| !s.is_empty())
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().unwrap();
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn without(obj: &Value, keys: &[&str]) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        for k in keys {
            m.remove(*k);
        }
    }
    o
}

impl Store {
    /// Serves `kind` as a custom resource: a status subresource, a generation, and the associative
    /// lists its schema declares.
    pub fn custom_resource(&mut self, kind: &str, schema: &Value) {
        self.status_kinds.insert(kind.to_owned());
        self.lists
            .insert(kind.to_owned(), ListKeys::standard().with_schema(schema));
    }

    fn lists(&self, kind: &str) -> ListKeys {
        self.lists
            .get(kind)
            .cloned()
            .unwrap_or_else(ListKeys::standard)
    }

    pub fn rv(&self) -> u64 {
        self.rv
    }

    pub fn stored(&self, kind: &str, ns: &str, name: &str) -> Option<&Stored> {
        self.objects
            .get(&(kind.to_owned(), ns.to_owned(), name.to_owned()))
    }

    /// The object as the API server returns it, `managedFields` included.
    pub fn render(stored: &Stored) -> Value {
        let mut obj = stored.obj.clone();
        let managed: Vec<Value> = stored
            .managers
            .iter()
            .map(|m| {
                let mut e = json!({
                    "manager": m.manager, "operation": m.operation,
                    "apiVersion": obj["apiVersion"], "time": m.time,
                    "fieldsType": "FieldsV1", "fieldsV1": fields::to_fields_v1(&m.fields),
                });
                if let Some(s) = &m.subresource {
                    e["subresource"] = json!(s);
                }
                e
            })
            .collect();
        if !managed.is_empty() {
            obj["metadata"]["managedFields"] = json!(managed);
        }
        obj
    }

    pub fn get(&self, kind: &str, ns: &str, name: &str) -> Option<Value> {
        self.stored(kind, ns, name).map(Self::render)
    }

    /// Objects of `kind` (in `ns`, or everywhere), in name order.
    pub fn list(&self, kind: &str, ns: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((k, n, _), _)| k == kind && ns.is_none_or(|ns| ns == n))
            .map(|(_, s)| Self::render(s))
            .collect()
    }

    pub fn write(&mut self, w: Write<'_>) -> Result<Value, ApiError> {
        let key = (w.kind.to_owned(), w.ns.to_owned(), w.name.to_owned());
        let existing = self.objects.get(&key).cloned();
        let lists = self.lists(w.kind);
        let status_kind = self.status_kinds.contains(w.kind);
        if let Some(n) = w.body["metadata"]["name"].as_str()
            && n != w.name
        {
            return Err(ApiError::new(
                400,
                "BadRequest",
                format!(
                    "the name of the object ({n}) does not match the name on the URL ({})",
                    w.name
                ),
            ));
        }
        // The request's view: a status write sees only status, a main-resource write of a kind
        // with a status subresource never touches status.
        let body = match (w.subresource, status_kind) {
            (Some("status"), _) => json!({
                "apiVersion": w.body["apiVersion"], "kind": w.body["kind"],
                "metadata": {"name": w.body["metadata"]["name"],
                             "resourceVersion": w.body["metadata"]["resourceVersion"]},
                "status": w.body["status"],
            }),
            (Some(other), _) => {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    format!("no subresource {other}"),
                ));
            }
            (None, true) => without(w.body, &["status"]),
            (None, false) => w.body.clone(),
        };
        if let Some(want) = rv_of(&body) {
            match &existing {
                None if w.op == Op::Create => {
                    return Err(ApiError::invalid(
                        w.kind,
                        w.name,
                        "metadata.resourceVersion: must be empty on create",
                    ));
                }
                None => return Err(ApiError::not_found(w.kind, w.name)),
                Some(e) if rv_of(&e.obj) != Some(want) => {
                    return Err(ApiError::new(
                        409,
                        "Conflict",
                        format!(
                            "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                            w.kind, w.name
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        let mut managers = existing
            .as_ref()
            .map(|e| e.managers.clone())
            .unwrap_or_default();
        let old_obj = existing.as_ref().map(|e| e.obj.clone());
        let sub = w.subresource;
        let mut obj = match (w.op, &old_obj) {
            (Op::Create, Some(_)) => {
                return Err(ApiError::new(
                    409,
                    "AlreadyExists",
                    format!("{} \"{}\" already exists", w.kind, w.name),
                ));
            }
            (Op::Replace | Op::Merge, None) => return Err(ApiError::not_found(w.kind, w.name)),
            (Op::Create, None) => {
                let obj = body.clone();
                take_update(&mut managers, &json!({}), &obj, w.manager, sub, &lists);
                obj
            }
            (Op::Replace, Some(old)) => {
                let mut obj = if w.subresource.is_some() {
                    let mut o = old.clone();
                    o["status"] = body["status"].clone();
                    o
                } else {
                    body.clone()
                };
                if status_kind && w.subresource.is_none() {
                    obj["status"] = old["status"].clone();
                }
                strip_null_status(&mut obj);
                take_update(&mut managers, old, &obj, w.manager, sub, &lists);
                obj
            }
            (Op::Merge, Some(old)) => {
                let mut obj = old.clone();
                merge_patch(&mut obj, &without(&body, &["apiVersion", "kind"]));
                take_update(&mut managers, old, &obj, w.manager, sub, &lists);
                obj
            }
            (Op::Apply { force }, old) => {
                let mut obj = old.clone().unwrap_or_else(|| {
                    json!({"apiVersion": body["apiVersion"], "kind": body["kind"],
                           "metadata": {"name": w.name, "namespace": w.ns}})
                });
                apply(
                    &mut obj,
                    &mut managers,
                    &body,
                    w.manager,
                    sub,
                    force,
                    &lists,
                )?;
                obj
            }
        };
        // Server-owned metadata.
        let meta = obj["metadata"].as_object_mut().unwrap();
        meta.insert("name".into(), json!(w.name));
        if !w.ns.is_empty() {
            meta.insert("namespace".into(), json!(w.ns));
        }
        for k in ["uid", "creationTimestamp", "generation", "resourceVersion"] {
            meta.remove(k);
        }
        if let Some(old) = &old_obj {
            for k in ["uid", "creationTimestamp", "generation", "resourceVersion"] {
                if let Some(v) = old["metadata"].get(k) {
                    meta.insert(k.into(), v.clone());
                }
            }
        } else {
            self.uids += 1;
            meta.insert(
                "uid".into(),
                json!(format!("00000000-0000-4000-8000-{:012}", self.uids)),
            );
            meta.insert("creationTimestamp".into(), json!(now()));
            if status_kind {
                meta.insert("generation".into(), json!(1));
            }
        }
        if w.kind == "secrets" && obj.get("type").is_none() {
            obj["type"] = json!("Opaque");
        }
        validate(w.kind, w.name, old_obj.as_ref(), &obj)?;
        if let Some(old) = &old_obj {
            let same_managers = existing.as_ref().is_some_and(|e| {
                e.managers.len() == managers.len()
                    && e.managers.iter().zip(&managers).all(|(a, b)| {
                        (&a.manager, a.operation, &a.subresource, &a.fields)
                            == (&b.manager, b.operation, &b.subresource, &b.fields)
                    })
            });
            if *old == obj && same_managers {
                // A write that changes nothing is not persisted: no new resourceVersion, no event.
                return Ok(Self::render(existing.as_ref().unwrap()));
            }
            if status_kind
                && without(old, &["metadata", "status"]) != without(&obj, &["metadata", "status"])
            {
                let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                obj["metadata"]["generation"] = json!(g);
            }
        }
        let time = now();
        for m in &mut managers {
            let before = existing.as_ref().and_then(|e| {
                e.managers.iter().find(|o| {
                    (&o.manager, o.operation, &o.subresource)
                        == (&m.manager, m.operation, &m.subresource)
                })
            });
            if before.is_none_or(|b| b.fields != m.fields) || m.manager == w.manager {
                m.time = time.clone();
            }
        }
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let stored = Stored { obj, managers };
        let rendered = Self::render(&stored);
        self.objects.insert(key, stored);
        self.emit(
            w.kind,
            w.ns,
            if old_obj.is_some() {
                "MODIFIED"
            } else {
                "ADDED"
            },
            existing.as_ref().map(Self::render),
            rendered.clone(),
        );
        Ok(rendered)
    }

    /// Deletes an object and, as the garbage collector does shortly after, its dependents whose
    /// owners are all gone.
    pub fn delete(
        &mut self,
        kind: &str,
        ns: &str,
        name: &str,
        precondition_rv: Option<&str>,
    ) -> Result<Value, ApiError> {
        let key = (kind.to_owned(), ns.to_owned(), name.to_owned());
        let Some(stored) = self.objects.get(&key) else {
            return Err(ApiError::not_found(kind, name));
        };
        if let Some(want) = precondition_rv
            && rv_of(&stored.obj) != Some(want)
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                "resourceVersion precondition failed",
            ));
        }
        let stored = self.objects.remove(&key).unwrap();
        self.rv += 1;
        let mut gone = Self::render(&stored);
        gone["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let old = Self::render(&stored);
        self.emit(kind, ns, "DELETED", Some(old), gone.clone());
        let uid = stored.obj["metadata"]["uid"].clone();
        let orphans: Vec<(String, String, String)> = self
            .objects
            .iter()
            .filter(|((_, n, _), s)| {
                let owners = s.obj["metadata"]["ownerReferences"].as_array();
                n == ns
                    && owners.is_some_and(|o| {
                        o.iter().any(|r| r["uid"] == uid)
                            && o.iter().all(|r| !self.uid_exists(&r["uid"]))
                    })
            })
            .map(|(k, _)| k.clone())
            .collect();
        for (k, n, name) in orphans {
            let _ = self.delete(&k, &n, &name, None);
        }
        Ok(gone)
    }

    fn uid_exists(&self, uid: &Value) -> bool {
        self.objects
            .values()
            .any(|s| s.obj["metadata"]["uid"] == *uid)
    }

    fn emit(&mut self, kind: &str, ns: &str, type_: &'static str, old: Option<Value>, new: Value) {
        let change = Change {
            rv: self.rv,
            kind: kind.to_owned(),
            ns: ns.to_owned(),
            type_,
            old,
            new,
        };
        self.watchers.send(&change);
        self.log.push(change);
    }
}

fn strip_null_status(obj: &mut Value) {
    if obj.get("status").is_some_and(Value::is_null) {
        obj.as_object_mut().unwrap().remove("status");
    }
}

fn same_entry(m: &Manager, manager: &str, operation: &str, sub: Option<&str>) -> bool {
    m.manager == manager && m.operation == operation && m.subresource.as_deref() == sub
}

fn entry<'a>(
    managers: &'a mut Vec<Manager>,
    manager: &str,
    operation: &'static str,
    sub: Option<&str>,
) -> &'a mut Manager {
    if let Some(i) = managers
        .iter()
        .position(|m| same_entry(m, manager, operation, sub))
    {
        return &mut managers[i];
    }
    managers.push(Manager {
        manager: manager.to_owned(),
        operation,
        subresource: sub.map(str::to_owned),
        fields: FieldSet::new(),
        time: String::new(),
    });
    managers.last_mut().unwrap()
}

/// An update (create, replace, merge patch): the writer takes the fields it changed from everyone
/// else; fields it removed leave every manager.
fn take_update(
    managers: &mut Vec<Manager>,
    old: &Value,
    new: &Value,
    manager: &str,
    sub: Option<&str>,
    lists: &ListKeys,
) {
    let old_set = fields::field_set(old, lists);
    let new_set = fields::field_set(new, lists);
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| fields::get(old, p) != fields::get(new, p))
        .cloned()
        .collect();
    for m in managers.iter_mut() {
        m.fields
            .retain(|p| new_set.contains(p) || !old_set.contains(p));
        if !same_entry(m, manager, "Update", sub) {
            m.fields.retain(|p| !changed.contains(p));
        }
    }
    entry(managers, manager, "Update", sub)
        .fields
        .extend(changed);
    managers.retain(|m| !m.fields.is_empty());
}

/// Server-side apply of `patch` by `manager` onto `obj`.
fn apply(
    obj: &mut Value,
    managers: &mut Vec<Manager>,
    patch: &Value,
    manager: &str,
    sub: Option<&str>,
    force: bool,
    lists: &ListKeys,
) -> Result<(), ApiError> {
    let applied = fields::field_set(patch, lists);
    let mut conflicts = Vec::new();
    for m in managers.iter() {
        if same_entry(m, manager, "Apply", sub) {
            continue;
        }
        for p in m.fields.intersection(&applied) {
            if p.last().map(String::as_str) != Some(".")
                && fields::get(obj, p) != fields::get(patch, p)
            {
                conflicts.push((m.manager.clone(), p.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            let list: Vec<String> = conflicts
                .iter()
                .map(|(m, p)| {
                    let dotted: Vec<&str> = p
                        .iter()
                        .map(|s| s.strip_prefix("f:").unwrap_or(s))
                        .collect();
                    format!("conflict with \"{m}\": .{}", dotted.join("."))
                })
                .collect();
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Apply failed with {} conflicts: {}",
                    conflicts.len(),
                    list.join("; ")
                ),
            ));
        }
        for m in managers.iter_mut() {
            m.fields
                .retain(|p| !conflicts.iter().any(|(who, c)| *who == m.manager && c == p));
        }
    }
    let previous = managers
        .iter()
        .find(|m| same_entry(m, manager, "Apply", sub))
        .map(|m| m.fields.clone())
        .unwrap_or_default();
    for p in previous.difference(&applied) {
        let owned_elsewhere = managers
            .iter()
            .any(|m| !same_entry(m, manager, "Apply", sub) && m.fields.contains(p));
        if !owned_elsewhere {
            fields::remove(obj, p);
        }
    }
    fields::merge(obj, patch, lists);
    entry(managers, manager, "Apply", sub).fields = applied;
    managers.retain(|m| !m.fields.is_empty());
    Ok(())
}

/// The validations of a real API server that this operator can run into.
fn validate(kind: &str, name: &str, old: Option<&Value>, new: &Value) -> Result<(), ApiError> {
    let controllers = new["metadata"]["ownerReferences"]
        .as_array()
        .map(|o| o.iter().filter(|r| r["controller"] == json!(true)).count())
        .unwrap_or(0);
    if controllers > 1 {
        return Err(ApiError::invalid(
            kind,
            name,
            "metadata.ownerReferences: Invalid value: Only one reference can have Controller set to true",
        ));
    }
    if kind == "secrets"
        && let Some(old) = old
        && old["type"] != new["type"]
    {
        return Err(ApiError::invalid(
            kind,
            name,
            format!("type: Invalid value: {}: field is immutable", new["type"]),
        ));
    }
    Ok(())
}
