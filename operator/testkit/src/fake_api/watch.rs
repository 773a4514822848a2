//! Watches: each open watch is a stream of `{"type", "object"}` lines, fed by every change of its
//! kind and namespace. As on a real API server, an object that starts matching the label selector
//! arrives as ADDED and one that stops matching as DELETED; a metadata-only watch
//! (`as=PartialObjectMetadata`) carries metadata and nothing else.

use super::store::{ApiError, Change};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

/// A label or field selector: `k=v`, `k==v`, `k!=v`, `k`, `!k`, joined by commas.
#[derive(Debug, Clone, Default)]
pub struct Selector(Vec<Term>);

#[derive(Debug, Clone)]
enum Term {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    Absent(String),
}

impl Selector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for t in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let term = if let Some((k, v)) = t.split_once("!=") {
                Term::Ne(k.into(), v.into())
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                Term::Eq(k.into(), v.into())
            } else if let Some(k) = t.strip_prefix('!') {
                Term::Absent(k.into())
            } else if t.contains(['(', ' ', '<', '>']) {
                return Err(ApiError::new(
                    400,
                    "BadRequest",
                    format!("unsupported selector {t:?}"),
                ));
            } else {
                Term::Exists(t.into())
            };
            terms.push(term);
        }
        Ok(Self(terms))
    }

    /// Against labels (`field = false`) or the fields `metadata.name`/`metadata.namespace`.
    pub fn matches(&self, obj: &Value, field: bool) -> bool {
        let value = |k: &str| -> Option<String> {
            if field {
                let (a, b) = k.split_once('.')?;
                obj[a][b].as_str().map(str::to_owned)
            } else {
                obj["metadata"]["labels"][k].as_str().map(str::to_owned)
            }
        };
        self.0.iter().all(|t| match t {
            Term::Eq(k, v) => value(k).as_deref() == Some(v),
            Term::Ne(k, v) => value(k).as_deref() != Some(v),
            Term::Exists(k) => value(k).is_some(),
            Term::Absent(k) => value(k).is_none(),
        })
    }
}

/// What a list or watch selects.
#[derive(Debug, Clone)]
pub struct Filter {
    pub kind: String,
    pub ns: Option<String>,
    pub labels: Selector,
    pub fields: Selector,
    pub metadata_only: bool,
}

impl Filter {
    pub fn selects(&self, obj: &Value) -> bool {
        self.labels.matches(obj, false) && self.fields.matches(obj, true)
    }

    /// The object as this request sees it.
    pub fn view(&self, obj: &Value) -> Value {
        if self.metadata_only {
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                   "metadata": obj["metadata"]})
        } else {
            obj.clone()
        }
    }

    /// The event this watch delivers for `change`, if any.
    pub fn event(&self, change: &Change) -> Option<Value> {
        if change.kind != self.kind || self.ns.as_ref().is_some_and(|ns| *ns != change.ns) {
            return None;
        }
        let was = change.old.as_ref().is_some_and(|o| self.selects(o));
        let is = self.selects(&change.new);
        let type_ = match (change.type_, was, is) {
            ("DELETED", true, _) => "DELETED",
            ("DELETED", false, _) => return None,
            (_, false, true) => "ADDED",
            (_, true, true) => "MODIFIED",
            (_, true, false) => "DELETED",
            (_, false, false) => return None,
        };
        Some(json!({"type": type_, "object": self.view(&change.new)}))
    }
}

pub fn line(event: &Value) -> Bytes {
    let mut v = serde_json::to_vec(event).unwrap();
    v.push(b'\n');
    Bytes::from(v)
}

/// The open watches.
#[derive(Default)]
pub struct Watchers(Vec<(Filter, UnboundedSender<Bytes>)>);

impl Watchers {
    pub fn add(&mut self, filter: Filter, tx: UnboundedSender<Bytes>) {
        self.0.push((filter, tx));
    }

    /// Delivers `change` to every watch that selects it; drops watches whose client went away.
    pub fn send(&mut self, change: &Change) {
        self.0.retain(|(filter, tx)| match filter.event(change) {
            Some(ev) => tx.send(line(&ev)).is_ok(),
            None => !tx.is_closed(),
        });
    }

    /// Ends every open watch, as the API server does when a watch times out.
    pub fn close_all(&mut self) {
        self.0.clear();
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
