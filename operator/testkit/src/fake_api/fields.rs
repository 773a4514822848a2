//! Server-side apply's field ownership, as the API server's structured-merge-diff does it for the
//! shapes this operator writes: every leaf field and every item of an associative list
//! (`metadata.ownerReferences` keyed by `uid`, and the lists a CRD schema marks
//! `x-kubernetes-list-type: map`) belongs to the managers that set it. An apply owns exactly what it
//! sent: fields it owned before and left out are removed (unless another manager owns them too),
//! fields another manager owns with a different value conflict (409) unless the apply forces, and
//! then change hands. Other lists and scalars are atomic.

use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// A field path in `fieldsV1` spelling: `f:<name>` for a field, `k:{...}` for a list item, and a
/// final `.` for the item itself.
pub type FieldPath = Vec<String>;
pub type FieldSet = BTreeSet<FieldPath>;

/// Associative lists: the path of the list (field names only) and its key fields.
#[derive(Debug, Clone, Default)]
pub struct ListKeys(BTreeMap<Vec<String>, Vec<String>>);

impl ListKeys {
    /// `metadata.ownerReferences` keyed by `uid`, as for every object.
    pub fn standard() -> Self {
        let mut m = BTreeMap::new();
        m.insert(
            vec!["metadata".to_owned(), "ownerReferences".to_owned()],
            vec!["uid".to_owned()],
        );
        Self(m)
    }

    /// Adds the `x-kubernetes-list-type: map` lists an OpenAPI v3 schema declares.
    pub fn with_schema(mut self, schema: &Value) -> Self {
        fn walk(
            schema: &Value,
            path: &mut Vec<String>,
            out: &mut BTreeMap<Vec<String>, Vec<String>>,
        ) {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, s) in props {
                    path.push(k.clone());
                    walk(s, path, out);
                    path.pop();
                }
            }
            if schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
                let keys = schema["x-kubernetes-list-map-keys"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|k| k.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert(path.clone(), keys);
            }
            if let Some(items) = schema.get("items") {
                walk(items, path, out);
            }
        }
        walk(schema, &mut Vec::new(), &mut self.0);
        self
    }

    fn keys(&self, names: &[String]) -> Option<&Vec<String>> {
        self.0.get(names)
    }
}

/// Fields the API server sets itself; no manager owns them.
fn server_field(names: &[String], key: &str) -> bool {
    match names {
        [] => matches!(key, "apiVersion" | "kind"),
        [m] if m == "metadata" => matches!(
            key,
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "managedFields"
                | "deletionTimestamp"
                | "selfLink"
        ),
        _ => false,
    }
}

fn item_key(item: &Value, keys: &[String]) -> String {
    let mut m = Map::new();
    for k in keys {
        m.insert(k.clone(), item.get(k).cloned().unwrap_or(Value::Null));
    }
    format!("k:{}", Value::Object(m))
}

/// The fields `value` sets.
pub fn field_set(value: &Value, lists: &ListKeys) -> FieldSet {
    let mut out = FieldSet::new();
    collect(value, &mut Vec::new(), &mut Vec::new(), lists, &mut out);
    out
}

fn collect(
    value: &Value,
    path: &mut FieldPath,
    names: &mut Vec<String>,
    lists: &ListKeys,
    out: &mut FieldSet,
) {
    let Some(map) = value.as_object() else {
        out.insert(path.clone());
        return;
    };
    for (k, v) in map {
        if server_field(names, k) || v.is_null() {
            continue;
        }
        path.push(format!("f:{k}"));
        names.push(k.clone());
        match (v, lists.keys(names)) {
            (Value::Object(m), _) if !m.is_empty() => collect(v, path, names, lists, out),
            (Value::Array(items), Some(keys)) => {
                for item in items {
                    path.push(item_key(item, keys));
                    path.push(".".to_owned());
                    out.insert(path.clone());
                    path.pop();
                    collect(item, path, names, lists, out);
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        }
        names.pop();
        path.pop();
    }
}

fn matches_key(item: &Value, seg: &str) -> bool {
    let Some(json) = seg.strip_prefix("k:") else {
        return false;
    };
    let key: Value = serde_json::from_str(json).unwrap();
    key.as_object()
        .unwrap()
        .iter()
        .all(|(k, v)| item.get(k) == Some(v))
}

/// The value at `path`, if any (`.` yields the list item).
pub fn get<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = value;
    for seg in path {
        cur = if let Some(name) = seg.strip_prefix("f:") {
            cur.get(name)?
        } else if seg == "." {
            cur
        } else {
            cur.as_array()?.iter().find(|i| matches_key(i, seg))?
        };
    }
    Some(cur)
}

/// Removes the field at `path` (the whole item for a `.` path), pruning maps left empty.
pub fn remove(value: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    if last == "." {
        remove(value, parent);
        return;
    }
    if let Some(parent_value) = get_mut(value, parent) {
        if let Some(name) = last.strip_prefix("f:") {
            if let Some(m) = parent_value.as_object_mut() {
                m.remove(name);
            }
        } else if let Some(items) = parent_value.as_array_mut() {
            items.retain(|i| !matches_key(i, last));
        }
    }
    // Prune containers the removal emptied (never the object itself).
    if !parent.is_empty()
        && get(value, parent).is_some_and(|v| {
            v.as_object().is_some_and(Map::is_empty) || v.as_array().is_some_and(Vec::is_empty)
        })
    {
        remove(value, parent);
    }
}

fn get_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut cur = value;
    for seg in path {
        cur = if let Some(name) = seg.strip_prefix("f:") {
            cur.get_mut(name)?
        } else if seg == "." {
            cur
        } else {
            cur.as_array_mut()?
                .iter_mut()
                .find(|i| matches_key(i, seg))?
        };
    }
    Some(cur)
}

/// Merges an applied configuration into the live object: maps field by field, associative lists
/// item by item, everything else replaced.
pub fn merge(dst: &mut Value, src: &Value, lists: &ListKeys) {
    merge_at(dst, src, &mut Vec::new(), lists);
}

fn merge_at(dst: &mut Value, src: &Value, names: &mut Vec<String>, lists: &ListKeys) {
    let (Some(d), Some(s)) = (dst.as_object_mut(), src.as_object()) else {
        *dst = src.clone();
        return;
    };
    for (k, v) in s {
        if server_field(names, k) || v.is_null() {
            continue;
        }
        names.push(k.clone());
        match (d.get_mut(k), v, lists.keys(names)) {
            (Some(existing @ Value::Object(_)), Value::Object(_), _) => {
                merge_at(existing, v, names, lists)
            }
            (Some(Value::Array(have)), Value::Array(items), Some(keys)) => {
                for item in items {
                    let seg = item_key(item, keys);
                    match have.iter_mut().find(|i| matches_key(i, &seg)) {
                        Some(existing) => merge_at(existing, item, names, lists),
                        None => have.push(item.clone()),
                    }
                }
            }
            _ => {
                d.insert(k.clone(), v.clone());
            }
        }
        names.pop();
    }
}

/// Renders a field set as `fieldsV1`.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = json!({});
    for path in set {
        let mut cur = &mut root;
        for seg in path {
            cur = cur
                .as_object_mut()
                .unwrap()
                .entry(seg.clone())
                .or_insert_with(|| json!({}));
        }
    }
    root
}

/// Parses `fieldsV1` back into a field set (leaves and `.` entries).
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn walk(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
        let m = v.as_object().unwrap();
        if m.is_empty() {
            out.insert(path.clone());
        }
        for (k, sub) in m {
            path.push(k.clone());
            walk(sub, path, out);
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out.remove(&Vec::new());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_sets_walk_maps_and_key_associative_lists() {
        let obj = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "a", "labels": {"x": "1"},
                         "ownerReferences": [{"uid": "u1", "name": "c", "controller": true}]},
            "data": {"k": "dg=="}, "type": "Opaque",
        });
        let set = field_set(&obj, &ListKeys::standard());
        let paths: Vec<String> = set.iter().map(|p| p.join("/")).collect();
        assert_eq!(
            paths,
            [
                "f:data/f:k",
                "f:metadata/f:labels/f:x",
                "f:metadata/f:ownerReferences/k:{\"uid\":\"u1\"}/.",
                "f:metadata/f:ownerReferences/k:{\"uid\":\"u1\"}/f:controller",
                "f:metadata/f:ownerReferences/k:{\"uid\":\"u1\"}/f:name",
                "f:metadata/f:ownerReferences/k:{\"uid\":\"u1\"}/f:uid",
                "f:type",
            ]
        );
        assert_eq!(from_fields_v1(&to_fields_v1(&set)), set);
        let mut o = obj.clone();
        remove(&mut o, &set.iter().nth(2).unwrap().clone());
        assert!(o["metadata"].get("ownerReferences").is_none());
        remove(
            &mut o,
            &["f:metadata".into(), "f:labels".into(), "f:x".into()],
        );
        assert!(o["metadata"].get("labels").is_none(), "{o}");
    }
}
