//! The mutating webhook's decision: an AdmissionReview in, an AdmissionReview out, through the same
//! [`inject_template`](crate::inject::inject_template) as `livekit-operator inject`.
//!
//! A pod that does not ask for the sidecar is admitted unchanged. A pod that asks for it with a bad
//! annotation, a conflicting name or port, or a LiveKitConfig that does not exist in its namespace,
//! is refused with a message saying what to fix: a pod without its sidecar would start and then
//! fail on every token request, which is harder to see than a refused ReplicaSet event.

use crate::inject::{Defaults, InjectError, Outcome, inject_template};
use kube::core::DynamicObject;
use kube::core::Status;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde_json::Value;
use std::future::Future;

/// Whether a LiveKitConfig exists; `Err` when the API server could not say.
pub trait ConfigLookup: Send + Sync {
    fn exists(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<bool, String>> + Send;
}

/// What the webhook will answer before asking whether the config exists.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Admit unchanged.
    Admit,
    /// Refuse: (HTTP-style code, reason, message).
    Deny(u16, &'static str, String),
    /// Admit with this patch if the config exists.
    Patch {
        config: String,
        namespace: String,
        patch: json_patch::Patch,
    },
}

/// The pure part: the injection and its JSON patch, for a Pod CREATE.
pub fn plan(req: &AdmissionRequest<DynamicObject>, defaults: &Defaults) -> Plan {
    let is_pod = req.kind.group.is_empty() && req.kind.kind == "Pod" && req.sub_resource.is_none();
    if !is_pod || req.operation != Operation::Create {
        return Plan::Admit;
    }
    let Some(object) = &req.object else {
        return Plan::Admit;
    };
    let before = match serde_json::to_value(object) {
        Ok(v) => v,
        Err(e) => return Plan::Deny(400, "BadRequest", format!("unreadable pod: {e}")),
    };
    let mut after = before.clone();
    match inject_template(&mut after, defaults) {
        Ok(Outcome::Skipped(_)) => Plan::Admit,
        Ok(Outcome::Injected { config }) => Plan::Patch {
            config,
            // The request's namespace is the truth: pods of a ReplicaSet arrive without one in
            // their metadata.
            namespace: req.namespace.clone().unwrap_or_default(),
            patch: json_patch::diff(&before, &after),
        },
        Err(e) => {
            let reason = match e {
                InjectError::Annotation { .. } => "Invalid",
                InjectError::Conflict { .. } => "Conflict",
                InjectError::Malformed(_) => "BadRequest",
            };
            Plan::Deny(400, reason, format!("livekit sidecar injection: {e}"))
        }
    }
}

fn deny(resp: AdmissionResponse, code: u16, reason: &str, message: String) -> AdmissionResponse {
    let mut resp = resp.deny(&message);
    resp.result = Status::failure(&message, reason).with_code(code);
    resp
}

/// Answers one request: [`plan`], then the config lookup when there is a patch to give.
pub async fn respond(
    req: &AdmissionRequest<DynamicObject>,
    defaults: &Defaults,
    configs: &impl ConfigLookup,
) -> AdmissionResponse {
    let resp = AdmissionResponse::from(req);
    match plan(req, defaults) {
        Plan::Admit => resp,
        Plan::Deny(code, reason, message) => deny(resp, code, reason, message),
        Plan::Patch {
            config,
            namespace,
            patch,
        } => match configs.exists(&namespace, &config).await {
            Ok(true) => match resp.clone().with_patch(patch) {
                Ok(r) => r,
                Err(e) => deny(
                    resp,
                    500,
                    "InternalError",
                    format!("livekit sidecar injection: {e}"),
                ),
            },
            Ok(false) => deny(
                resp,
                400,
                "NotFound",
                format!(
                    "livekit sidecar injection: LiveKitConfig {config:?} not found in namespace {namespace:?}; create it, or correct the livekit.kraken.dev/inject annotation"
                ),
            ),
            // Fail closed for the pods that asked for the sidecar: their controller retries.
            Err(e) => deny(
                resp,
                503,
                "ServiceUnavailable",
                format!(
                    "livekit sidecar injection: could not look up LiveKitConfig {config:?} in {namespace:?}: {e}"
                ),
            ),
        },
    }
}

/// Answers a whole AdmissionReview body (`admission.k8s.io/v1`).
pub async fn review(
    body: Value,
    defaults: &Defaults,
    configs: &impl ConfigLookup,
) -> AdmissionReview<DynamicObject> {
    let review: AdmissionReview<DynamicObject> = match serde_json::from_value(body) {
        Ok(r) => r,
        Err(e) => {
            return AdmissionResponse::invalid(format!("not an AdmissionReview: {e}"))
                .into_review();
        }
    };
    let req: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(_) => {
            return AdmissionResponse::invalid("an AdmissionReview without a request")
                .into_review();
        }
    };
    respond(&req, defaults, configs).await.into_review()
}
