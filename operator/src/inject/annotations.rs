//! The pod annotations users set, read and checked all at once: a bad value refuses the pod with a
//! message naming the annotation, before anything is changed.

use super::quantity;
use super::{Defaults, InjectError, LogFormat};
use std::collections::BTreeMap;

/// The pod annotation that asks for the sidecar; its value names the LiveKitConfig in the pod's
/// namespace.
pub const INJECT: &str = "livekit.kraken.dev/inject";
/// Sidecar image, e.g. `ghcr.io/kraken-dev/livekit-sidecar:0.1.0` or a digest reference.
pub const IMAGE: &str = "livekit.kraken.dev/sidecar-image";
/// Port of the sidecar's API on 127.0.0.1 (default 3001).
pub const PORT: &str = "livekit.kraken.dev/sidecar-port";
/// Port of the sidecar's probes and metrics on 0.0.0.0 (default 9464).
pub const METRICS_PORT: &str = "livekit.kraken.dev/sidecar-metrics-port";
/// `text` or `json`.
pub const LOG_FORMAT: &str = "livekit.kraken.dev/sidecar-log-format";
pub const CPU_REQUEST: &str = "livekit.kraken.dev/sidecar-cpu-request";
pub const CPU_LIMIT: &str = "livekit.kraken.dev/sidecar-cpu-limit";
pub const MEMORY_REQUEST: &str = "livekit.kraken.dev/sidecar-memory-request";
pub const MEMORY_LIMIT: &str = "livekit.kraken.dev/sidecar-memory-limit";

/// Every annotation the injector reads (the docs list them; a test checks they are documented).
pub const ALL: [&str; 9] = [
    INJECT,
    IMAGE,
    PORT,
    METRICS_PORT,
    LOG_FORMAT,
    CPU_REQUEST,
    CPU_LIMIT,
    MEMORY_REQUEST,
    MEMORY_LIMIT,
];

/// The sidecar as it will be injected: the operator's defaults with the pod's annotations applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub config: String,
    pub sidecar: Defaults,
}

fn bad(annotation: &str, message: impl Into<String>) -> InjectError {
    InjectError::Annotation {
        annotation: annotation.to_owned(),
        message: message.into(),
    }
}

/// A Kubernetes object name (RFC 1123 subdomain), which a LiveKitConfig name is.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn port(
    annotations: &BTreeMap<String, String>,
    key: &str,
    default: u16,
) -> Result<u16, InjectError> {
    match annotations.get(key) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u16>() {
            Ok(p) if p >= 1 => Ok(p),
            _ => Err(bad(key, format!("{v:?} is not a port number (1-65535)"))),
        },
    }
}

fn quantity_pair(
    annotations: &BTreeMap<String, String>,
    resource: &str,
    (request_key, limit_key): (&str, &str),
    defaults: &Defaults,
    settings: &mut Settings,
) -> Result<(), InjectError> {
    for (key, target, default) in [
        (
            request_key,
            &mut settings.sidecar.requests,
            defaults.requests.get(resource),
        ),
        (
            limit_key,
            &mut settings.sidecar.limits,
            defaults.limits.get(resource),
        ),
    ] {
        match annotations.get(key) {
            Some(v) => {
                let v = v.trim();
                match quantity::parse(v) {
                    Some(n) if n > 0.0 => {
                        target.insert(resource.to_owned(), v.to_owned());
                    }
                    _ => {
                        return Err(bad(
                            key,
                            format!("{v:?} is not a positive quantity (e.g. 10m, 64Mi)"),
                        ));
                    }
                }
            }
            None => {
                if let Some(d) = default {
                    target.insert(resource.to_owned(), d.clone());
                }
            }
        }
    }
    if let (Some(req), Some(lim)) = (
        settings.sidecar.requests.get(resource),
        settings.sidecar.limits.get(resource),
    ) && quantity::parse(req) > quantity::parse(lim)
    {
        // Name the annotation the user set; if both came from defaults the operator's own
        // defaults are wrong, which its flag parsing refuses before this.
        let key = if annotations.contains_key(request_key) {
            request_key
        } else {
            limit_key
        };
        return Err(bad(
            key,
            format!("{resource} request {req} is above its limit {lim}"),
        ));
    }
    Ok(())
}

/// Reads the sidecar settings of a pod that asked for injection with `config`.
pub fn settings(
    annotations: &BTreeMap<String, String>,
    config: &str,
    defaults: &Defaults,
) -> Result<Settings, InjectError> {
    if !valid_name(config) {
        return Err(bad(
            INJECT,
            format!("{config:?} is not a LiveKitConfig name (a lowercase RFC 1123 subdomain)"),
        ));
    }
    let image = match annotations.get(IMAGE) {
        None => defaults.image.clone(),
        Some(v) if !v.is_empty() && !v.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            v.clone()
        }
        Some(v) => return Err(bad(IMAGE, format!("{v:?} is not an image reference"))),
    };
    let log_format = match annotations.get(LOG_FORMAT).map(String::as_str) {
        None => defaults.log_format,
        Some("json") => LogFormat::Json,
        Some("text") => LogFormat::Text,
        Some(v) => return Err(bad(LOG_FORMAT, format!("{v:?} is neither text nor json"))),
    };
    let api_port = port(annotations, PORT, defaults.api_port)?;
    let metrics_port = port(annotations, METRICS_PORT, defaults.metrics_port)?;
    if api_port == metrics_port {
        let key = if annotations.contains_key(PORT) {
            PORT
        } else {
            METRICS_PORT
        };
        return Err(bad(
            key,
            format!("the API and the metrics port are both {api_port}"),
        ));
    }
    let mut s = Settings {
        config: config.to_owned(),
        sidecar: Defaults {
            image,
            image_pull_policy: defaults.image_pull_policy.clone(),
            api_port,
            metrics_port,
            log_format,
            requests: BTreeMap::new(),
            limits: BTreeMap::new(),
        },
    };
    quantity_pair(
        annotations,
        "cpu",
        (CPU_REQUEST, CPU_LIMIT),
        defaults,
        &mut s,
    )?;
    quantity_pair(
        annotations,
        "memory",
        (MEMORY_REQUEST, MEMORY_LIMIT),
        defaults,
        &mut s,
    )?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let d = Defaults::default();
        let s = settings(&BTreeMap::new(), "chat", &d).unwrap();
        assert_eq!(s.sidecar.image, d.image);
        assert_eq!((s.sidecar.api_port, s.sidecar.metrics_port), (3001, 9464));
        assert_eq!(
            s.sidecar.requests.get("cpu").map(String::as_str),
            Some("10m")
        );
        assert_eq!(
            s.sidecar.limits.get("memory").map(String::as_str),
            Some("64Mi")
        );
    }

    #[test]
    fn overrides_apply() {
        let a = ann(&[
            (IMAGE, "registry.local/sidecar@sha256:abc"),
            (PORT, "4000"),
            (METRICS_PORT, "9000"),
            (LOG_FORMAT, "text"),
            (CPU_LIMIT, "500m"),
            (MEMORY_REQUEST, "32Mi"),
            (MEMORY_LIMIT, "128Mi"),
        ]);
        let s = settings(&a, "chat", &Defaults::default()).unwrap();
        assert_eq!(s.sidecar.image, "registry.local/sidecar@sha256:abc");
        assert_eq!((s.sidecar.api_port, s.sidecar.metrics_port), (4000, 9000));
        assert_eq!(s.sidecar.log_format, LogFormat::Text);
        assert_eq!(
            s.sidecar.limits.get("cpu").map(String::as_str),
            Some("500m")
        );
        assert_eq!(
            s.sidecar.requests.get("memory").map(String::as_str),
            Some("32Mi")
        );
    }

    #[test]
    fn each_bad_value_names_its_annotation() {
        let cases: [(&str, &str, &str); 9] = [
            (IMAGE, "has space", "not an image reference"),
            (PORT, "0", "not a port number"),
            (PORT, "70000", "not a port number"),
            (METRICS_PORT, "http", "not a port number"),
            (LOG_FORMAT, "yaml", "neither text nor json"),
            (CPU_REQUEST, "lots", "not a positive quantity"),
            (MEMORY_LIMIT, "-1Mi", "not a positive quantity"),
            (MEMORY_REQUEST, "1Gi", "above its limit"),
            (PORT, "9464", "both 9464"),
        ];
        for (key, value, want) in cases {
            let err = settings(&ann(&[(key, value)]), "chat", &Defaults::default()).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(key) && text.contains(want),
                "{key}={value}: {text}"
            );
        }
        for name in ["Chat", "", "-chat", "chat_1", "a..b"] {
            let err = settings(&BTreeMap::new(), name, &Defaults::default()).unwrap_err();
            assert!(err.to_string().contains(INJECT), "{name:?}: {err}");
        }
    }
}
