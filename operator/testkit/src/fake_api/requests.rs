//! Requests counted by Kubernetes verb and resource, as the API server's `apiserver_request_total`
//! counts them: cheap enough to stay on when a benchmark turns the call log off.

use super::Call;
use http::Method;
use std::collections::BTreeMap;

/// Request counts keyed by `(verb, resource)`, e.g. `("patch", "livekitconfigs/status")`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requests(pub BTreeMap<(&'static str, String), u64>);

/// The verbs that change nothing.
pub const READ_VERBS: [&str; 3] = ["get", "list", "watch"];

impl Requests {
    pub(super) fn count(&mut self, call: &Call, kind: &str, name: Option<&str>, sub: Option<&str>) {
        let verb = verb(call, name.is_some());
        let resource = match sub {
            Some(s) => format!("{kind}/{s}"),
            None => kind.to_owned(),
        };
        *self.0.entry((verb, resource)).or_default() += 1;
    }

    /// Requests of `verb` on `resource`.
    pub fn get(&self, verb: &str, resource: &str) -> u64 {
        self.0
            .iter()
            .filter(|((v, r), _)| *v == verb && r == resource)
            .map(|(_, n)| n)
            .sum()
    }

    /// Every request that may change state (create, update, patch, delete).
    pub fn writes(&self) -> u64 {
        self.0
            .iter()
            .filter(|((v, _), _)| !READ_VERBS.contains(v))
            .map(|(_, n)| n)
            .sum()
    }

    /// Every request of `verb`, on any resource.
    pub fn verb(&self, verb: &str) -> u64 {
        self.0
            .iter()
            .filter(|((v, _), _)| *v == verb)
            .map(|(_, n)| n)
            .sum()
    }

    /// `verb resource=count` lines, for a report.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|((v, r), n)| format!("{v} {r}={n}"))
            .collect()
    }
}

/// The API server's verb for a request: a GET of one object is `get`, of a collection `list`, or
/// `watch` with `watch=true`.
fn verb(call: &Call, named: bool) -> &'static str {
    match call.method {
        Method::GET if named => "get",
        Method::GET if matches!(call.param("watch").as_deref(), Some("true" | "1")) => "watch",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "other",
    }
}
