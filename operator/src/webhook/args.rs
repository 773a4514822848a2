//! The operator's webhook flags, and starting the webhook next to the controller.

use super::certloop::{self, CertConfig};
use super::certs::service_dns_names;
use super::server::{KubeConfigs, router, serve};
use super::tls::SwappableCert;
use crate::inject::args::DefaultsArgs;
use k8s_openapi::jiff::SignedDuration;
use kube::Client;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tracing::info;

#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// Serve the sidecar-injection webhook (HTTPS) on this address; off when absent. Every
    /// replica serves it, leader or not.
    #[arg(long, env = "WEBHOOK_ADDR")]
    pub webhook_addr: Option<SocketAddr>,
    /// Read the serving certificate (`tls.crt`, `tls.key`) from this directory (cert-manager's
    /// Secret, mounted); re-read when it changes. Without it the operator keeps its own CA and
    /// certificate in the Secret `--webhook-cert-secret`.
    #[arg(long, env = "WEBHOOK_CERT_DIR")]
    pub webhook_cert_dir: Option<PathBuf>,
    /// Secret of the self-managed CA and serving certificate (in the operator's namespace).
    #[arg(
        long,
        env = "WEBHOOK_CERT_SECRET",
        default_value = "livekit-operator-webhook-tls"
    )]
    pub webhook_cert_secret: String,
    /// The Service in front of the webhook: the certificate's DNS names.
    #[arg(
        long,
        env = "WEBHOOK_SERVICE",
        default_value = "livekit-operator-webhook"
    )]
    pub webhook_service: String,
    /// The MutatingWebhookConfiguration whose caBundle the operator keeps (self-managed mode).
    #[arg(long, env = "WEBHOOK_CONFIG_NAME", default_value = "livekit-operator")]
    pub webhook_config_name: String,
    /// Lifetime of the self-managed certificates; renewed after two thirds of it.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(2..=3650))]
    pub webhook_cert_validity_days: u32,
    /// Namespace of the Secret and the Service (default: POD_NAMESPACE).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub webhook_namespace: String,
    #[command(flatten)]
    pub sidecar: DefaultsArgs,
}

/// Starts the webhook (and its certificate upkeep) if `--webhook-addr` is set; returns once it
/// listens. The tasks end when `stop` resolves.
pub async fn start<F: Future<Output = ()> + Send + 'static>(
    args: &WebhookArgs,
    client: Client,
    stop: impl Fn() -> F,
) -> Result<(), String> {
    let Some(addr) = args.webhook_addr else {
        return Ok(());
    };
    let defaults = args.sidecar.defaults()?;
    let cert = Arc::new(SwappableCert::default());
    match &args.webhook_cert_dir {
        Some(dir) => {
            tokio::spawn(certloop::watch_dir(dir.clone(), cert.clone(), stop()));
        }
        None => {
            let cfg = CertConfig {
                namespace: args.webhook_namespace.clone(),
                secret_name: args.webhook_cert_secret.clone(),
                webhook_config_name: args.webhook_config_name.clone(),
                dns_names: service_dns_names(&args.webhook_service, &args.webhook_namespace),
                validity: SignedDuration::from_hours(
                    24 * i64::from(args.webhook_cert_validity_days),
                ),
            };
            tokio::spawn(certloop::run(client.clone(), cfg, cert.clone(), stop()));
        }
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("webhook listener {addr}: {e}"))?;
    info!(%addr, "serving the sidecar-injection webhook");
    tokio::spawn(serve(
        listener,
        cert,
        router(defaults, KubeConfigs(client)),
        stop(),
    ));
    Ok(())
}
