//! A fake Kubernetes API server behind a kube `Client`, as strict as a real one where this operator
//! depends on it: server-side apply with field ownership per manager ([`fields`]), watches that
//! stream ADDED/MODIFIED/DELETED ([`watch`]), resourceVersion preconditions, a status subresource,
//! `metadata.generation`, the validations that bite (Secret `type` immutable, one controller
//! ownerReference), Leases, paged lists, metadata-only lists and watches, and garbage collection
//! of dependents ([`store`]). It logs every call and fails calls on request.

pub mod fields;
pub mod requests;
mod serve;
pub mod store;
pub mod watch;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use kube::Client;
use kube::CustomResourceExt;
use livekit_operator::LiveKitConfig;
use requests::Requests;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use store::{ApiError, Op, Store, Write};
use watch::{Filter, Selector};

type ResponseBody = UnsyncBoxBody<Bytes, Infallible>;

/// One request the fake answered.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub accept: String,
    pub body: Value,
}

impl Call {
    pub fn is_write(&self) -> bool {
        self.method != Method::GET
    }

    /// A query parameter, decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

#[derive(Debug, Clone)]
struct Failure {
    method: Method,
    path_contains: String,
    code: u16,
    times: usize,
}

struct State {
    store: Store,
    calls: Vec<Call>,
    failures: Vec<Failure>,
    /// Record calls (off in benchmarks, which count them in `requests`).
    record: bool,
    requests: Requests,
    /// Connections accepted by [`FakeApi::serve`].
    connections: u64,
}

/// The fake API server; clones share state.
#[derive(Clone)]
pub struct FakeApi(Arc<Mutex<State>>);

impl Default for FakeApi {
    fn default() -> Self {
        let mut store = Store::default();
        let crd = LiveKitConfig::crd();
        let schema = serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .unwrap(),
        )
        .unwrap();
        store.custom_resource("livekitconfigs", &schema);
        // Workloads (livekitServer.workloadRef) have a status subresource and a generation too.
        for kind in ["deployments", "statefulsets"] {
            store.custom_resource(kind, &serde_json::json!({}));
        }
        Self(Arc::new(Mutex::new(State {
            store,
            calls: Vec::new(),
            failures: Vec::new(),
            record: true,
            requests: Requests::default(),
            connections: 0,
        })))
    }
}

fn respond(code: u16, value: &Value) -> Response<ResponseBody> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(value).unwrap())).boxed_unsync())
        .unwrap()
}

fn error(e: &ApiError) -> Response<ResponseBody> {
    respond(
        e.code,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": e.message, "reason": e.reason, "code": e.code,
        }),
    )
}

/// `/api/v1/...` or `/apis/<group>/<version>/...`: (namespace, kind, name, subresource).
type Route<'a> = (Option<&'a str>, &'a str, Option<&'a str>, Option<&'a str>);

fn route<'a>(segs: &[&'a str]) -> Option<Route<'a>> {
    let rest = match segs {
        ["api", "v1", rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => return None,
    };
    match rest {
        [kind] => Some((None, kind, None, None)),
        // Cluster-scoped objects (MutatingWebhookConfigurations): stored under namespace "".
        [kind, name] => Some((None, kind, Some(name), None)),
        ["namespaces", ns, kind] => Some((Some(ns), kind, None, None)),
        ["namespaces", ns, kind, name] => Some((Some(ns), kind, Some(name), None)),
        ["namespaces", ns, kind, name, sub] => Some((Some(ns), kind, Some(name), Some(sub))),
        _ => None,
    }
}

fn parse_body(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_yaml::from_slice(bytes).expect("request body is JSON or YAML"))
}

impl FakeApi {
    /// A kube Client whose every request this fake answers.
    pub fn client(&self) -> Client {
        let me = self.clone();
        let service = tower::service_fn(move |request: Request<kube::client::Body>| {
            let me = me.clone();
            async move { Ok::<_, Infallible>(me.handle(request).await) }
        });
        Client::new(service, "default")
    }

    /// A client whose first request with `method` to a path ending in `path_suffix` waits until
    /// `first` has run, then reaches the fake: another writer slipped in between this client's
    /// read and its write, as when two replicas race on a real API server.
    pub fn client_interleaved(
        &self,
        method: Method,
        path_suffix: &str,
        first: impl Future<Output = ()> + Send + 'static,
    ) -> Client {
        let me = self.clone();
        let suffix = path_suffix.to_owned();
        let first = Arc::new(tokio::sync::Mutex::new(Some(Box::pin(first))));
        let service = tower::service_fn(move |request: Request<kube::client::Body>| {
            let (me, first) = (me.clone(), first.clone());
            let hit = request.method() == method && request.uri().path().ends_with(&suffix);
            async move {
                if hit && let Some(f) = first.lock().await.take() {
                    f.await;
                }
                Ok::<_, Infallible>(me.handle(request).await)
            }
        });
        Client::new(service, "default")
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    /// Stops (or resumes) recording calls; counting stays available through [`Self::requests`].
    pub fn record_calls(&self, on: bool) {
        self.state().record = on;
    }

    /// The requests answered since the start or the last [`Self::take_requests`], by verb and
    /// resource.
    pub fn requests(&self) -> Requests {
        self.state().requests.clone()
    }

    /// Connections accepted over HTTP since the start ([`Self::serve`]).
    pub fn connections(&self) -> u64 {
        self.state().connections
    }

    /// [`Self::requests`], and starts counting from zero.
    pub fn take_requests(&self) -> Requests {
        std::mem::take(&mut self.state().requests)
    }

    /// Creates or replaces an object as `kubectl` would (an update by the `kubectl` manager).
    pub fn put(&self, kind: &str, ns: &str, name: &str, obj: Value) {
        self.put_as("kubectl", kind, ns, name, obj)
            .unwrap_or_else(|e| panic!("put {kind}/{name}: {e:?}"));
    }

    /// Creates or replaces an object as field manager `manager`.
    pub fn put_as(
        &self,
        manager: &str,
        kind: &str,
        ns: &str,
        name: &str,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        let mut st = self.state();
        let exists = st.store.stored(kind, ns, name).is_some();
        if let Some(m) = obj["metadata"].as_object_mut() {
            // The test's copy may be stale or invented: replace unconditionally.
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        let write = |op, subresource| Write {
            kind,
            ns,
            name,
            subresource,
            manager,
            op,
            body: &obj,
        };
        let op = if exists { Op::Replace } else { Op::Create };
        let result = st.store.write(write(op, None))?;
        // A status in the test object is written through the status subresource, as a
        // controller would.
        if obj.get("status").is_some_and(|s| !s.is_null())
            && result.get("status") != obj.get("status")
        {
            return st.store.write(write(Op::Replace, Some("status")));
        }
        Ok(result)
    }

    /// A server-side apply by another field manager (a user's `kubectl apply --server-side`).
    pub fn apply_as(
        &self,
        manager: &str,
        kind: &str,
        ns: &str,
        name: &str,
        obj: &Value,
        force: bool,
    ) -> Result<Value, ApiError> {
        self.state().store.write(Write {
            kind,
            ns,
            name,
            subresource: None,
            manager,
            op: Op::Apply { force },
            body: obj,
        })
    }

    /// The object as a GET returns it (with `managedFields`).
    pub fn get(&self, kind: &str, ns: &str, name: &str) -> Option<Value> {
        self.state().store.get(kind, ns, name)
    }

    /// Deletes an object (and, like the garbage collector, its dependents).
    pub fn delete(&self, kind: &str, ns: &str, name: &str) {
        let _ = self.state().store.delete(kind, ns, name, None);
    }

    /// The fields each manager owns: `(manager, operation, subresource, dotted paths)`.
    pub fn managers(&self, kind: &str, ns: &str, name: &str) -> Vec<(String, String, Vec<String>)> {
        let st = self.state();
        let Some(s) = st.store.stored(kind, ns, name) else {
            return Vec::new();
        };
        s.managers
            .iter()
            .map(|m| {
                (
                    m.manager.clone(),
                    format!(
                        "{}{}",
                        m.operation,
                        m.subresource
                            .as_ref()
                            .map(|s| format!("/{s}"))
                            .unwrap_or_default()
                    ),
                    m.fields.iter().map(|p| p.join(".")).collect(),
                )
            })
            .collect()
    }

    /// The current resourceVersion of the store.
    pub fn resource_version(&self) -> u64 {
        self.state().store.rv()
    }

    /// Fail the next `times` calls of `method` whose path contains `path_contains` with `code`.
    pub fn fail(&self, method: Method, path_contains: &str, code: u16, times: usize) {
        self.state().failures.push(Failure {
            method,
            path_contains: path_contains.into(),
            code,
            times,
        });
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.state().calls)
    }

    /// Ends every open watch stream, as a real API server does when a watch times out.
    pub fn close_watches(&self) {
        self.state().store.watchers.close_all();
    }

    /// How many watch streams are open.
    pub fn open_watches(&self) -> usize {
        self.state().store.watchers.len()
    }

    async fn handle<B>(&self, request: Request<B>) -> Response<ResponseBody>
    where
        B: http_body::Body,
        B::Error: std::fmt::Debug,
    {
        let (parts, body) = request.into_parts();
        let bytes = body.collect().await.expect("request body").to_bytes();
        let header = |h: &str| {
            parts
                .headers
                .get(h)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let call = Call {
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            content_type: header("content-type"),
            accept: header("accept"),
            body: parse_body(&bytes),
        };
        let user_agent = header("user-agent");
        self.answer(call, &user_agent)
    }

    fn answer(&self, call: Call, user_agent: &str) -> Response<ResponseBody> {
        let mut st = self.state();
        if st.record {
            st.calls.push(call.clone());
        }
        let segs: Vec<&str> = call.path.trim_matches('/').split('/').collect();
        if let Some((_, kind, name, sub)) = route(&segs) {
            st.requests.count(&call, kind, name, sub);
        }
        if let Some(f) = st.failures.iter_mut().find(|f| {
            f.times > 0 && f.method == call.method && call.path.contains(&f.path_contains)
        }) {
            f.times -= 1;
            let code = f.code;
            return error(&ApiError::new(code, "InternalError", "injected failure"));
        }
        let Some((ns, kind, name, sub)) = route(&segs) else {
            return error(&ApiError::new(
                404,
                "NotFound",
                format!("no route {}", call.path),
            ));
        };
        let result = match (&call.method, name) {
            (&Method::GET, None) => {
                let filter = match filter(&call, ns, kind) {
                    Ok(f) => f,
                    Err(e) => return error(&e),
                };
                if matches!(call.param("watch").as_deref(), Some("true" | "1")) {
                    return watch_response(&mut st.store, filter, &call);
                }
                Ok(list(&st.store, &filter, &call))
            }
            (&Method::GET, Some(name)) => st
                .store
                .get(kind, ns.unwrap_or_default(), name)
                .ok_or_else(|| {
                    ApiError::new(404, "NotFound", format!("{kind} \"{name}\" not found"))
                }),
            (&Method::POST, None) => {
                let mut body = call.body.clone();
                let name = match body["metadata"]["name"].as_str() {
                    Some(n) => n.to_owned(),
                    None => {
                        let prefix = body["metadata"]["generateName"].as_str().unwrap_or("");
                        let n = format!("{prefix}{:05}", st.store.rv() + 1);
                        body["metadata"]["name"] = json!(n);
                        n
                    }
                };
                let manager = manager(&call, user_agent);
                st.store
                    .write(Write {
                        kind,
                        ns: ns.unwrap_or_default(),
                        name: &name,
                        subresource: None,
                        manager: &manager,
                        op: Op::Create,
                        body: &body,
                    })
                    .map(|v| (201, v))
                    .map(|(_, v)| v)
            }
            (&Method::PATCH, Some(name)) if call.content_type == "application/json-patch+json" => {
                let manager = manager(&call, user_agent);
                json_patch_write(
                    &mut st.store,
                    kind,
                    ns.unwrap_or_default(),
                    name,
                    sub,
                    &manager,
                    &call.body,
                )
            }
            (m @ (&Method::PUT | &Method::PATCH), Some(name)) => {
                let op = if *m == Method::PUT {
                    Ok(Op::Replace)
                } else {
                    patch_op(&call)
                };
                let manager = manager(&call, user_agent);
                match op {
                    Ok(Op::Apply { .. }) if call.param("fieldManager").is_none() => {
                        Err(ApiError::new(
                            422,
                            "Invalid",
                            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                        ))
                    }
                    Ok(op) => st.store.write(Write {
                        kind,
                        ns: ns.unwrap_or_default(),
                        name,
                        subresource: sub,
                        manager: &manager,
                        op,
                        body: &call.body,
                    }),
                    Err(e) => Err(e),
                }
            }
            (&Method::DELETE, Some(name)) => {
                let rv = call.body["preconditions"]["resourceVersion"].as_str();
                st.store.delete(kind, ns.unwrap_or_default(), name, rv)
            }
            _ => Err(ApiError::new(405, "MethodNotAllowed", "unsupported")),
        };
        match result {
            Ok(v) => respond(
                if call.method == Method::POST {
                    201
                } else {
                    200
                },
                &v,
            ),
            Err(e) => error(&e),
        }
    }
}

fn manager(call: &Call, user_agent: &str) -> String {
    call.param("fieldManager").unwrap_or_else(|| {
        // The API server's default: the user agent up to the first '/'.
        user_agent.split('/').next().unwrap_or("unknown").to_owned()
    })
}

/// A JSON patch (RFC 6902) as the API server applies it: to the object as stored (so a `test`
/// of `/metadata/resourceVersion` guards it), 422 when an op fails (a `test` whose value differs
/// included), then written as an update; a patch that changes `resourceVersion` gets a 409.
fn json_patch_write(
    store: &mut Store,
    kind: &str,
    ns: &str,
    name: &str,
    sub: Option<&str>,
    manager: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    let mut obj = store
        .get(kind, ns, name)
        .ok_or_else(|| ApiError::new(404, "NotFound", format!("{kind} \"{name}\" not found")))?;
    let patch: json_patch::Patch = serde_json::from_value(body.clone())
        .map_err(|e| ApiError::new(400, "BadRequest", e.to_string()))?;
    json_patch::patch(&mut obj, &patch.0)
        .map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?;
    if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    store.write(Write {
        kind,
        ns,
        name,
        subresource: sub,
        manager,
        op: Op::Replace,
        body: &obj,
    })
}

fn patch_op(call: &Call) -> Result<Op, ApiError> {
    match call.content_type.as_str() {
        "application/apply-patch+yaml" => Ok(Op::Apply {
            force: call.param("force").as_deref() == Some("true"),
        }),
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => Ok(Op::Merge),
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the fake does not serve {other:?} patches"),
        )),
    }
}

fn filter(call: &Call, ns: Option<&str>, kind: &str) -> Result<Filter, ApiError> {
    Ok(Filter {
        kind: kind.to_owned(),
        ns: ns.map(str::to_owned),
        labels: Selector::parse(&call.param("labelSelector").unwrap_or_default())?,
        fields: Selector::parse(&call.param("fieldSelector").unwrap_or_default())?,
        metadata_only: call.accept.contains("as=PartialObjectMetadata"),
    })
}

/// A list, paged by `limit` and `continue` like the API server's.
fn list(store: &Store, filter: &Filter, call: &Call) -> Value {
    let items: Vec<Value> = store
        .list(&filter.kind, filter.ns.as_deref())
        .into_iter()
        .filter(|o| filter.selects(o))
        .map(|o| filter.view(&o))
        .collect();
    let start: usize = call
        .param("continue")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let limit: usize = call
        .param("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let end = start.saturating_add(limit).min(items.len());
    let mut metadata = json!({"resourceVersion": store.rv().to_string()});
    if end < items.len() {
        metadata["continue"] = json!(end.to_string());
    }
    let kind = if filter.metadata_only {
        "PartialObjectMetadataList"
    } else {
        "List"
    };
    json!({"apiVersion": "v1", "kind": kind, "metadata": metadata,
           "items": items[start.min(end)..end].to_vec()})
}

/// A watch: the changes after `resourceVersion` (or ADDED for every object when it is absent or
/// "0"), then every change as it happens, until the client goes away or the watches are closed.
fn watch_response(store: &mut Store, filter: Filter, call: &Call) -> Response<ResponseBody> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let since: u64 = call
        .param("resourceVersion")
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0);
    if since == 0 {
        for o in store.list(&filter.kind, filter.ns.as_deref()) {
            if filter.selects(&o) {
                let _ = tx.send(watch::line(
                    &json!({"type": "ADDED", "object": filter.view(&o)}),
                ));
            }
        }
    } else {
        for change in store.log.iter().filter(|c| c.rv > since) {
            if let Some(ev) = filter.event(change) {
                let _ = tx.send(watch::line(&ev));
            }
        }
    }
    store.watchers.add(filter, tx);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(StreamBody::new(stream).boxed_unsync())
        .unwrap()
}
