//! A small fake API server behind kube's mock service (`tower-test`): it keeps Secrets, ConfigMaps
//! and LiveKitConfigs in memory, answers GET and server-side-apply PATCH like the API server would
//! for this operator's calls, records Events, logs every call, and fails calls on request.

#![allow(dead_code)]

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

impl Call {
    pub fn is_write(&self) -> bool {
        self.method != Method::GET
    }
}

#[derive(Debug, Clone)]
struct Failure {
    method: Method,
    path_contains: String,
    code: u16,
    times: usize,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    calls: Vec<Call>,
    failures: Vec<Failure>,
    rv: u64,
}

/// The fake API server; clone handles share state.
#[derive(Clone, Default)]
pub struct FakeApi(Arc<Mutex<State>>);

fn key(kind: &str, ns: &str, name: &str) -> String {
    format!("{kind}/{ns}/{name}")
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn ok(value: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(value).unwrap()))
        .unwrap()
}

fn ok_empty() -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from(Vec::new()))
        .unwrap()
}

/// `(namespace, kind)` of a collection path.
fn collection<'a>(segs: &[&'a str]) -> Option<(Option<&'a str>, &'a str)> {
    match segs {
        ["api", "v1", kind] | ["apis", _, _, kind] => Some((None, kind)),
        ["api", "v1", "namespaces", ns, kind] | ["apis", _, _, "namespaces", ns, kind] => {
            Some((Some(ns), kind))
        }
        _ => None,
    }
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| {
            v.replace("%3D", "=")
                .replace("%2F", "/")
                .replace("%2C", ",")
        })
    })
}

/// Equality selectors only (`a=b,c=d`), which is all the operator uses.
fn matches_selector(obj: &Value, selector: &str) -> bool {
    selector.split(',').all(|term| {
        let (k, v) = term.split_once('=').unwrap();
        obj["metadata"]["labels"][k] == json!(v)
    })
}

impl FakeApi {
    /// A kube Client whose every request this fake answers (on a spawned task).
    pub fn client(&self) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let me = self.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let response = me.handle(request).await;
                send.send_response(response);
            }
        });
        Client::new(service, "default")
    }

    pub fn put(&self, kind: &str, ns: &str, name: &str, mut obj: Value) {
        let mut st = self.0.lock().unwrap();
        st.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        st.objects.insert(key(kind, ns, name), obj);
    }

    pub fn get(&self, kind: &str, ns: &str, name: &str) -> Option<Value> {
        self.0
            .lock()
            .unwrap()
            .objects
            .get(&key(kind, ns, name))
            .cloned()
    }

    pub fn delete(&self, kind: &str, ns: &str, name: &str) {
        self.0.lock().unwrap().objects.remove(&key(kind, ns, name));
    }

    /// Fail the next `times` calls of `method` whose path contains `path_contains` with `code`.
    pub fn fail(&self, method: Method, path_contains: &str, code: u16, times: usize) {
        self.0.lock().unwrap().failures.push(Failure {
            method,
            path_contains: path_contains.into(),
            code,
            times,
        });
    }

    pub fn calls(&self) -> Vec<Call> {
        self.0.lock().unwrap().calls.clone()
    }

    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.0.lock().unwrap().calls)
    }

    async fn handle(&self, request: Request<Body>) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.unwrap();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                serde_yaml::from_slice(&bytes).expect("request body is JSON or YAML")
            })
        };
        let call = Call {
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            content_type: parts
                .headers
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
            body: body.clone(),
        };
        let mut st = self.0.lock().unwrap();
        st.calls.push(call.clone());
        if let Some(f) = st.failures.iter_mut().find(|f| {
            f.times > 0 && f.method == call.method && call.path.contains(&f.path_contains)
        }) {
            f.times -= 1;
            return status(f.code, "InternalError", "injected failure");
        }
        let segs: Vec<&str> = call.path.trim_matches('/').split('/').collect();
        if call.method == Method::GET
            && let Some((ns, kind)) = collection(&segs)
        {
            if call.query.contains("watch=true") {
                // A watch that ends at once; the watcher re-lists later.
                return ok_empty();
            }
            let selector = query_param(&call.query, "labelSelector");
            let items: Vec<Value> = st
                .objects
                .iter()
                .filter(|(k, _)| {
                    let mut p = k.splitn(3, '/');
                    p.next() == Some(kind) && ns.is_none_or(|ns| p.next() == Some(ns))
                })
                .map(|(_, v)| v.clone())
                .filter(|v| {
                    selector
                        .as_deref()
                        .is_none_or(|sel| matches_selector(v, sel))
                })
                .collect();
            let rv = st.rv.to_string();
            return ok(
                &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": rv}, "items": items}),
            );
        }
        match (&call.method, segs.as_slice()) {
            (&Method::POST, ["apis", "events.k8s.io", "v1", "namespaces", _ns, "events"]) => {
                ok(&body)
            }
            (
                &Method::PATCH,
                [
                    "apis",
                    "events.k8s.io",
                    "v1",
                    "namespaces",
                    _ns,
                    "events",
                    _,
                ],
            ) => ok(&body),
            (m, ["api", "v1", "namespaces", ns, kind, name])
            | (
                m,
                [
                    "apis",
                    "livekit.kraken.dev",
                    "v1alpha1",
                    "namespaces",
                    ns,
                    kind,
                    name,
                ],
            ) => {
                let k = key(kind, ns, name);
                match *m {
                    Method::GET => match st.objects.get(&k) {
                        Some(o) => ok(o),
                        None => status(404, "NotFound", &format!("{kind} \"{name}\" not found")),
                    },
                    Method::PATCH => {
                        assert_eq!(
                            call.content_type, "application/apply-patch+yaml",
                            "only server-side apply"
                        );
                        assert!(
                            call.query.contains("fieldManager=livekit-operator"),
                            "{}",
                            call.query
                        );
                        st.rv += 1;
                        let rv = st.rv;
                        let obj = apply(st.objects.get(&k).cloned(), &body, rv);
                        st.objects.insert(k, obj.clone());
                        ok(&obj)
                    }
                    _ => status(405, "MethodNotAllowed", "unsupported"),
                }
            }
            (
                &Method::PATCH,
                [
                    "apis",
                    "livekit.kraken.dev",
                    "v1alpha1",
                    "namespaces",
                    ns,
                    kind,
                    name,
                    "status",
                ],
            ) => {
                assert_eq!(
                    call.content_type, "application/apply-patch+yaml",
                    "only server-side apply"
                );
                let k = key(kind, ns, name);
                st.rv += 1;
                let rv = st.rv.to_string();
                match st.objects.get_mut(&k) {
                    Some(o) => {
                        o["status"] = body["status"].clone();
                        o["metadata"]["resourceVersion"] = json!(rv);
                        let o = o.clone();
                        ok(&o)
                    }
                    None => status(404, "NotFound", "no such config"),
                }
            }
            _ => status(
                404,
                "NotFound",
                &format!("fake has no route for {} {}", call.method, call.path),
            ),
        }
    }
}

/// Server-side apply as this operator relies on it: an object written by our field manager alone
/// takes the applied labels, annotations, owner references and data as they are (fields we stop
/// applying disappear); a label-only apply to someone else's object merges the labels.
fn apply(existing: Option<Value>, patch: &Value, rv: u64) -> Value {
    let owned_apply =
        patch.get("data").is_some() || patch["metadata"].get("ownerReferences").is_some();
    let mut obj = existing.unwrap_or_else(|| {
        json!({"apiVersion": patch["apiVersion"], "kind": patch["kind"], "metadata": {
            "name": patch["metadata"]["name"], "namespace": patch["metadata"]["namespace"],
            "uid": format!("uid-{rv}"),
        }})
    });
    let meta = obj["metadata"].as_object_mut().unwrap();
    for field in ["labels", "annotations", "ownerReferences"] {
        match patch["metadata"].get(field) {
            Some(v) if owned_apply || field != "labels" => {
                meta.insert(field.into(), v.clone());
            }
            Some(v) => {
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                for (k, val) in v.as_object().unwrap() {
                    labels[k] = val.clone();
                }
            }
            None if owned_apply => {
                meta.remove(field);
            }
            None => {}
        }
    }
    meta.insert("resourceVersion".into(), json!(rv.to_string()));
    if owned_apply {
        for field in ["data", "type"] {
            match patch.get(field) {
                Some(v) => obj[field] = v.clone(),
                None => {
                    obj.as_object_mut().unwrap().remove(field);
                }
            }
        }
    }
    obj
}
