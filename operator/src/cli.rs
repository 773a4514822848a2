//! Command-line flags and the process lifecycle: client, probes, leader election, controller,
//! graceful shutdown.

use crate::crd::LiveKitConfig;
use crate::error::{Error, Result};
use crate::health::{self, Health, Phase};
use crate::leader::{self, LeaseConfig};
use crate::reconcile::{self, Context};
use crate::startup;
use clap::Parser;
use kube::Client;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// Kubernetes operator that renders LiveKitConfig resources into the Secret and ConfigMap the
/// LiveKit token sidecar reads.
#[derive(Debug, Clone, Parser)]
#[command(name = "livekit-operator", version)]
pub struct Args {
    /// A one-shot command instead of running the operator.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,

    /// Address of the probe and metrics port (`/livez`, `/readyz`, `/metrics`) [default: 0.0.0.0:8080
    /// inside a cluster (KUBERNETES_SERVICE_HOST set), where the kubelet and Prometheus reach the pod's
    /// IP; 127.0.0.1:8080 elsewhere, so a laptop does not expose it].
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Kubeconfig context to use (default: the current context, or the in-cluster config).
    #[arg(long, env = "KUBE_CONTEXT")]
    pub context: Option<String>,

    /// Elect a leader with a Lease so that only one replica reconciles (`--leader-elect=false` to
    /// run without, e.g. a single local instance).
    #[arg(long, env = "LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,

    /// Name of the Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "livekit-operator")]
    pub lease_name: String,

    /// Namespace of the Lease (default: POD_NAMESPACE, else --namespace, else `default`).
    #[arg(long, env = "LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// This replica's identity in the Lease (default: POD_NAME, else HOSTNAME, else random).
    #[arg(long, env = "LEASE_IDENTITY")]
    pub lease_identity: Option<String>,

    /// Seconds a lease stays valid without renewal: how long a standby waits before it takes over
    /// from a leader that stopped renewing.
    #[arg(long, env = "LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,

    /// Seconds the leader keeps failing to renew its lease before it stops reconciling and exits
    /// (to restart as a follower). Must be shorter than the lease duration, so the old leader has
    /// stopped before a standby can take over.
    #[arg(long, env = "LEASE_RENEW_DEADLINE_SECONDS", default_value_t = 10)]
    pub lease_renew_deadline_seconds: u64,

    /// Seconds between two attempts to acquire or renew the lease.
    #[arg(long, env = "LEASE_RETRY_PERIOD_SECONDS", default_value_t = 2)]
    pub lease_retry_period_seconds: u64,

    /// Reconciles run at once. Each is a handful of API calls; the bound keeps the start-up burst
    /// (every config at once) from opening a connection per config to the API server.
    #[arg(long, env = "MAX_CONCURRENT_RECONCILES", default_value_t = reconcile::DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_reconciles: u16,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub webhook: crate::webhook::args::WebhookArgs,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Print Kubernetes manifests with the LiveKit sidecar injected (the webhook's code path).
    Inject(crate::inject::args::InjectArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Args {
    /// The probe address: the flag, else [`default_probe_addr`] for where this process runs.
    pub fn probe_addr(&self) -> SocketAddr {
        self.metrics_addr.unwrap_or_else(|| {
            default_probe_addr(std::env::var_os("KUBERNETES_SERVICE_HOST").is_some())
        })
    }
}

/// All interfaces in a pod (the kubelet probes the pod IP), loopback anywhere else.
pub fn default_probe_addr(in_cluster: bool) -> SocketAddr {
    let ip = if in_cluster {
        std::net::Ipv4Addr::UNSPECIFIED
    } else {
        std::net::Ipv4Addr::LOCALHOST
    };
    SocketAddr::from((ip, 8080))
}

/// Colour codes only for a person at a terminal: never in a file, a pipe or a container log, and not
/// when `NO_COLOR` is set to anything non-empty (no-color.org).
pub fn use_ansi(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing(args: &Args) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = use_ansi(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The client and the URL of the API server it talks to (named in start-up errors).
async fn client(context: Option<&str>) -> Result<(Client, String)> {
    let config = match context {
        Some(ctx) => {
            let kubeconfig = Kubeconfig::read().map_err(|e| Error::Config(e.to_string()))?;
            let options = KubeConfigOptions {
                context: Some(ctx.to_owned()),
                ..KubeConfigOptions::default()
            };
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| Error::Config(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| Error::Config(e.to_string()))?,
    };
    let server = config.cluster_url.to_string();
    Ok((Client::try_from(config).map_err(Error::Kube)?, server))
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn identity(args: &Args) -> String {
    use rand::Rng;
    args.lease_identity
        .clone()
        .or_else(|| std::env::var("POD_NAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| {
            let n: u64 = rand::rng().random();
            format!("livekit-operator-{n:016x}")
        })
}

/// The Lease settings from the flags and the pod's environment.
pub fn lease_config(args: &Args) -> LeaseConfig {
    LeaseConfig {
        name: args.lease_name.clone(),
        namespace: args
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .or_else(|| args.namespace.clone())
            .unwrap_or_else(|| "default".into()),
        identity: identity(args),
        duration_seconds: args.lease_duration_seconds,
        renew_deadline: Duration::from_secs(args.lease_renew_deadline_seconds),
        retry_period: Duration::from_secs(args.lease_retry_period_seconds),
    }
}

/// Runs the operator until a signal (exit 0) or the loss of the lease (exit 1, to restart clean).
pub async fn run(args: Args) -> Result<ExitCode> {
    // Settings that cannot work are refused before anything starts.
    if args.leader_elect {
        lease_config(&args).validate()?;
    }
    let health = Health::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            info!("shutdown requested");
            let _ = stop_tx.send(true);
        });
    }
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let metrics = Arc::new(crate::metrics::Metrics::new());
    // Bound (and logged) here, before anything else can fail; served in the background.
    let listener = health::bind(args.probe_addr()).await?;
    let probes = tokio::spawn(health::serve(
        listener,
        health.clone(),
        metrics.clone(),
        stopped(),
    ));

    let (client, server) = client(args.context.as_deref()).await?;
    let configs: Api<LiveKitConfig> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    startup::check_api(&configs, &server).await?;
    crate::webhook::args::start(&args.webhook, client.clone(), &stopped)
        .await
        .map_err(Error::Config)?;
    let mut ctx = Context::new(client.clone(), reconcile::reporter())
        .with_concurrency(args.max_concurrent_reconciles);
    ctx.metrics = metrics;
    let ctx = Arc::new(ctx);

    let mut code = ExitCode::SUCCESS;
    if args.leader_elect {
        let lease = lease_config(&args);
        info!(lease = %lease.name, namespace = %lease.namespace, identity = %lease.identity, "waiting for the lease");
        let mut election = leader::start(client, &lease).await?;
        health.set(Phase::Standby);
        let acquired = tokio::select! {
            a = election.acquired() => a,
            _ = stopped() => false,
        };
        if acquired {
            info!("leading; starting the controller");
            health.set(Phase::Leading);
            // A shutdown lets reconciles in flight finish. A lost lease does not: another replica
            // may lead already, so the controller (and every reconcile in it) is dropped at once.
            tokio::select! {
                _ = reconcile::run(ctx, args.namespace.clone(), stopped()) => {}
                _ = election.lost() => {
                    warn!("lost the lease; stopped reconciling, exiting so that this replica restarts as a follower");
                    code = ExitCode::FAILURE;
                }
            }
        }
        health.set(Phase::ShuttingDown);
        election.release().await;
    } else {
        health.set(Phase::Leading);
        reconcile::run(ctx, args.namespace.clone(), stopped()).await;
        health.set(Phase::ShuttingDown);
    }
    let _ = stop_tx.send(true);
    match probes.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(Error::Io(e)),
        Err(e) => warn!(error = %e, "probe task failed"),
    }
    info!("stopped");
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_parse() {
        Args::command().debug_assert();
        let a = Args::try_parse_from(["livekit-operator"]).unwrap();
        assert!(a.leader_elect);
        assert_eq!(a.max_concurrent_reconciles, reconcile::DEFAULT_CONCURRENCY);
        assert!(
            Args::try_parse_from(["livekit-operator", "--max-concurrent-reconciles", "0"]).is_err(),
            "no reconcile at all is not a setting"
        );
        assert_eq!(a.metrics_addr, None);
        assert_eq!(a.namespace, None);
        let a = Args::try_parse_from([
            "livekit-operator",
            "--namespace",
            "apps",
            "--leader-elect=false",
            "--metrics-addr",
            "127.0.0.1:9000",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert!(!a.leader_elect);
        assert_eq!(a.namespace.as_deref(), Some("apps"));
        assert_eq!(a.log_format, LogFormat::Json);
        assert_eq!(a.probe_addr(), "127.0.0.1:9000".parse().unwrap());
        let a = Args::try_parse_from(["livekit-operator"]).unwrap();
        lease_config(&a).validate().expect("the defaults are valid");
        let a = Args::try_parse_from([
            "livekit-operator",
            "--lease-duration-seconds=10",
            "--lease-renew-deadline-seconds=10",
        ])
        .unwrap();
        let err = lease_config(&a).validate().unwrap_err().to_string();
        assert!(err.contains("longer than the renew deadline"), "{err}");
    }

    #[test]
    fn probes_bind_to_loopback_outside_a_cluster() {
        assert_eq!(default_probe_addr(false), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(default_probe_addr(true), "0.0.0.0:8080".parse().unwrap());
    }

    #[test]
    fn colour_only_for_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(use_ansi(true, None));
        assert!(use_ansi(true, Some(OsStr::new(""))));
        assert!(!use_ansi(true, Some(OsStr::new("1"))));
        assert!(!use_ansi(false, None));
    }
}
