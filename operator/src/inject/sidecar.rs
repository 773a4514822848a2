//! The sidecar container, its projected volume and the few pod fields it needs, as in
//! `examples/app-with-sidecar.yaml`.

use super::annotations::{self, Settings};
use super::{DEFAULT_FS_GROUP, InjectError};
use crate::desired::owned_name;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapProjection, Container, ContainerPort, EnvVar, HTTPGetAction, PodSpec,
    Probe, ProjectedVolumeSource, ResourceRequirements, SeccompProfile, SecretProjection,
    SecurityContext, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use std::collections::BTreeMap;

pub const CONTAINER_NAME: &str = "livekit-sidecar";
pub const VOLUME_NAME: &str = "livekit";
pub const MOUNT_PATH: &str = "/etc/livekit";
/// Environment variable the injector gives every app container: where the sidecar's API is.
pub const API_ENV: &str = "LIVEKIT_SIDECAR_URL";
const METRICS_PORT_NAME: &str = "sidecar-metrics";
/// Owner and group may read; nobody else (livekit-server refuses a keys file with "other" bits,
/// and the sidecar needs no more). The group is the pod's `fsGroup`.
pub const FILE_MODE: i32 = 0o440;
const SIDECAR_UID: i64 = 65532;

/// Refuses a pod that already uses what the sidecar needs, naming what to change.
pub fn check_conflicts(spec: &PodSpec, s: &Settings) -> Result<(), InjectError> {
    let conflict = |message: String| Err(InjectError::Conflict { message });
    if spec.volumes.iter().flatten().any(|v| v.name == VOLUME_NAME) {
        return conflict(format!(
            "the pod already has a volume named {VOLUME_NAME:?}, which the sidecar's projected volume needs"
        ));
    }
    let all = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in all {
        if c.name == CONTAINER_NAME {
            return conflict(format!(
                "the pod already has a regular container named {CONTAINER_NAME:?}"
            ));
        }
        for p in c.ports.iter().flatten() {
            for (port, key) in [
                (s.sidecar.api_port, annotations::PORT),
                (s.sidecar.metrics_port, annotations::METRICS_PORT),
            ] {
                if p.container_port == i32::from(port) {
                    return conflict(format!(
                        "port {port} is already declared by container {:?}; choose another with the annotation {key}",
                        c.name
                    ));
                }
            }
        }
    }
    Ok(())
}

fn quantities(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, Quantity>> {
    (!map.is_empty()).then(|| {
        map.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect()
    })
}

fn probe(path: &str, period: i32, timeout: Option<i32>, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(METRICS_PORT_NAME.into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: timeout,
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// The native sidecar: an init container with `restartPolicy: Always` (Kubernetes >= 1.29).
pub fn container(s: &Settings) -> Container {
    Container {
        name: CONTAINER_NAME.into(),
        image: Some(s.sidecar.image.clone()),
        image_pull_policy: Some(s.sidecar.image_pull_policy.clone()),
        restart_policy: Some("Always".into()),
        args: Some(vec![
            "--config-dir".into(),
            MOUNT_PATH.into(),
            "--listen".into(),
            // Loopback only: no other pod can ask this sidecar for a token.
            format!("127.0.0.1:{}", s.sidecar.api_port),
            "--metrics-listen".into(),
            format!("0.0.0.0:{}", s.sidecar.metrics_port),
        ]),
        env: Some(vec![EnvVar {
            name: "SIDECAR_LOG_FORMAT".into(),
            value: Some(s.sidecar.log_format.as_str().into()),
            ..Default::default()
        }]),
        ports: Some(vec![ContainerPort {
            name: Some(METRICS_PORT_NAME.into()),
            container_port: i32::from(s.sidecar.metrics_port),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        startup_probe: Some(probe("/livez", 1, None, 30)),
        liveness_probe: Some(probe("/livez", 10, Some(2), 3)),
        readiness_probe: Some(probe("/readyz", 5, Some(2), 2)),
        resources: Some(ResourceRequirements {
            requests: quantities(&s.sidecar.requests),
            limits: quantities(&s.sidecar.limits),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(SIDECAR_UID),
            run_as_group: Some(SIDECAR_UID),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: VOLUME_NAME.into(),
            mount_path: MOUNT_PATH.into(),
            read_only: Some(true),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

/// One projected volume of the config's Secret and ConfigMap, mounted without subPath so that the
/// kubelet swaps the files atomically on rotation and the sidecar hot-reloads them.
pub fn volume(config: &str) -> Volume {
    let name = owned_name(config);
    Volume {
        name: VOLUME_NAME.into(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(FILE_MODE),
            sources: Some(vec![
                VolumeProjection {
                    secret: Some(SecretProjection {
                        name: name.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("Kubernetes types serialise")
}

/// The array at `key` of an object, created when absent or null.
fn array<'a>(obj: &'a mut Value, key: &str) -> &'a mut Vec<Value> {
    let slot = &mut obj[key];
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut().expect("made an array above")
}

/// Edits the spec (already read into `typed` and checked) in place.
pub fn apply(spec: &mut Value, typed: &PodSpec, s: &Settings) {
    // First, so that it is up before any other init container, which may then use it too.
    array(spec, "initContainers").insert(0, to_value(&container(s)));
    array(spec, "volumes").push(to_value(&volume(&s.config)));
    let url = format!("http://127.0.0.1:{}", s.sidecar.api_port);
    for (i, c) in typed.containers.iter().enumerate() {
        if !c.env.iter().flatten().any(|e| e.name == API_ENV) {
            let env = EnvVar {
                name: API_ENV.into(),
                value: Some(url.clone()),
                ..Default::default()
            };
            array(&mut spec["containers"][i], "env").push(to_value(&env));
        }
    }
    // The projected files are mode 0440, owned by root and the pod's fsGroup; the kubelet adds
    // the fsGroup to every container's groups, so the sidecar can read them whatever the group.
    let has_fs_group = typed
        .security_context
        .as_ref()
        .is_some_and(|sc| sc.fs_group.is_some());
    if !has_fs_group {
        super::object(&mut spec["securityContext"])
            .insert("fsGroup".into(), Value::from(DEFAULT_FS_GROUP));
    }
}
