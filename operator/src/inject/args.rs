//! Flags shared by the webhook and `livekit-operator inject`: the sidecar's defaults, and the
//! `inject` subcommand itself.

use super::manifest::inject_manifests;
use super::{Defaults, LogFormat, Outcome};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// What the injector adds when a pod's annotations do not say otherwise.
#[derive(Debug, Clone, clap::Args)]
pub struct DefaultsArgs {
    /// Sidecar image injected by default (annotation `livekit.kraken.dev/sidecar-image` overrides).
    #[arg(long, env = "SIDECAR_IMAGE", default_value_t = super::default_image())]
    pub sidecar_image: String,
    #[arg(long, env = "SIDECAR_IMAGE_PULL_POLICY", default_value = "IfNotPresent",
          value_parser = ["Always", "IfNotPresent", "Never"])]
    pub sidecar_image_pull_policy: String,
    #[arg(long, env = "SIDECAR_DEFAULT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub sidecar_log_format: LogFormat,
    #[arg(long, default_value = "10m")]
    pub sidecar_cpu_request: String,
    /// No CPU limit by default (throttling a token signer hurts latency more than it saves).
    #[arg(long)]
    pub sidecar_cpu_limit: Option<String>,
    #[arg(long, default_value = "16Mi")]
    pub sidecar_memory_request: String,
    #[arg(long, default_value = "64Mi")]
    pub sidecar_memory_limit: String,
}

impl DefaultsArgs {
    /// The defaults, checked with the same rules as the annotations.
    pub fn defaults(&self) -> Result<Defaults, String> {
        let mut limits = BTreeMap::from([("memory".to_owned(), self.sidecar_memory_limit.clone())]);
        if let Some(cpu) = &self.sidecar_cpu_limit {
            limits.insert("cpu".into(), cpu.clone());
        }
        let d = Defaults {
            image: self.sidecar_image.clone(),
            image_pull_policy: self.sidecar_image_pull_policy.clone(),
            log_format: self.sidecar_log_format,
            requests: BTreeMap::from([
                ("cpu".to_owned(), self.sidecar_cpu_request.clone()),
                ("memory".to_owned(), self.sidecar_memory_request.clone()),
            ]),
            limits,
            ..Defaults::default()
        };
        // Run the defaults through the annotation rules as if a pod had set every one of them.
        let as_annotations = BTreeMap::from([
            (super::annotations::IMAGE.to_owned(), d.image.clone()),
            (
                super::annotations::CPU_REQUEST.to_owned(),
                d.requests["cpu"].clone(),
            ),
            (
                super::annotations::MEMORY_REQUEST.to_owned(),
                d.requests["memory"].clone(),
            ),
            (
                super::annotations::MEMORY_LIMIT.to_owned(),
                d.limits["memory"].clone(),
            ),
        ]);
        let mut as_annotations = as_annotations;
        if let Some(cpu) = d.limits.get("cpu") {
            as_annotations.insert(super::annotations::CPU_LIMIT.to_owned(), cpu.clone());
        }
        super::annotations::settings(&as_annotations, "defaults", &d)
            .map_err(|e| format!("sidecar defaults: {e}"))?;
        Ok(d)
    }
}

/// `livekit-operator inject`: prints the manifests with the sidecar added (like `linkerd inject`),
/// the same code path as the admission webhook.
#[derive(Debug, Clone, clap::Args)]
pub struct InjectArgs {
    /// Annotate every pod template for this LiveKitConfig (in the namespace the manifests are
    /// applied to) before injecting. Without it, only templates already annotated with
    /// `livekit.kraken.dev/inject` are injected.
    #[arg(long)]
    pub config: Option<String>,
    /// Manifest file (multi-document YAML or JSON); `-` or absent: standard input.
    #[arg(short = 'f', long = "filename")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub defaults: DefaultsArgs,
}

/// Runs `inject`: the manifests on `out`, one line per pod template on `err`.
pub fn run_inject(
    args: &InjectArgs,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> ExitCode {
    let fail = |err: &mut dyn Write, msg: String| {
        let _ = writeln!(err, "error: {msg}");
        ExitCode::FAILURE
    };
    let defaults = match args.defaults.defaults() {
        Ok(d) => d,
        Err(e) => return fail(err, e),
    };
    let mut text = String::new();
    let read = match args.file.as_deref() {
        Some(p) if p.as_os_str() != "-" => std::fs::read_to_string(p)
            .map(|t| text = t)
            .map_err(|e| format!("{}: {e}", p.display())),
        _ => stdin
            .read_to_string(&mut text)
            .map(|_| ())
            .map_err(|e| format!("standard input: {e}")),
    };
    if let Err(e) = read {
        return fail(err, e);
    }
    match inject_manifests(&text, args.config.as_deref(), &defaults) {
        Ok((manifests, reports)) => {
            for r in &reports {
                let what = match &r.outcome {
                    Outcome::Injected { config } => format!("injected (LiveKitConfig {config})"),
                    Outcome::Skipped(s) => format!("skipped: {}", s.as_str()),
                };
                let _ = writeln!(err, "{} {}: {what}", r.kind, r.name);
            }
            if out.write_all(manifests.as_bytes()).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(err, e.to_string()),
    }
}
