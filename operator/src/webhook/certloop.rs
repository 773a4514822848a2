//! Keeps the self-managed serving certificate: reads its Secret, acts on [`certs::decide`], serves
//! the result, and keeps the `caBundle` of the MutatingWebhookConfiguration equal to the Secret's.
//! Every replica runs this loop (every replica serves the webhook); the create-only first write and
//! the resourceVersion-guarded replacement make one of them win and the others adopt its result.

use super::certs::{self, Action, Bundle};
use super::tls::SwappableCert;
use base64::Engine as _;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Where the certificate lives and what it is for.
#[derive(Debug, Clone)]
pub struct CertConfig {
    pub namespace: String,
    pub secret_name: String,
    pub webhook_config_name: String,
    pub dns_names: Vec<String>,
    pub validity: SignedDuration,
}

/// Look again at least this often: a Secret another replica renewed, or a caBundle reset by a
/// `helm upgrade`, is picked up within it.
const RESYNC: Duration = Duration::from_secs(300);
const RETRY: Duration = Duration::from_secs(10);

/// JSON patch ops that set every webhook's caBundle to `bundle`, guarded by the resourceVersion
/// read (a concurrent change makes the patch fail and the next pass re-reads). Empty when all
/// are already equal: the steady state writes nothing.
pub fn ca_bundle_patch(
    config: &MutatingWebhookConfiguration,
    bundle: &str,
) -> Vec<serde_json::Value> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(bundle);
    let mut ops: Vec<serde_json::Value> = config
        .webhooks
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, w)| w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(bundle.as_bytes()))
        .map(|(i, _)| json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": encoded}))
        .collect();
    if !ops.is_empty() {
        let rv = config.metadata.resource_version.clone().unwrap_or_default();
        ops.insert(
            0,
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}),
        );
    }
    ops
}

/// Acts on the decision for the Secret as read. `None` when another replica wrote it first
/// (409: AlreadyExists on create, Conflict on replace): its Secret is then the one to use.
async fn write_secret(
    secrets: &Api<Secret>,
    cfg: &CertConfig,
    existing: Option<Secret>,
    action: Action,
    now: Timestamp,
) -> Result<Option<(Bundle, Duration)>, String> {
    let (bundle, result, what) = match action {
        Action::Use { bundle, recheck_at } => {
            let until = u64::try_from(recheck_at.duration_since(now).as_secs())
                .unwrap_or(0)
                .max(1);
            return Ok(Some((bundle, RESYNC.min(Duration::from_secs(until)))));
        }
        Action::Create(bundle) => {
            let secret = certs::to_secret(&cfg.secret_name, &cfg.namespace, &bundle);
            let result = secrets.create(&PostParams::default(), &secret).await;
            (bundle, result, "created")
        }
        Action::Replace(bundle) => {
            let mut secret = certs::to_secret(&cfg.secret_name, &cfg.namespace, &bundle);
            secret.metadata.resource_version = existing.and_then(|s| s.metadata.resource_version);
            let result = secrets
                .replace(&cfg.secret_name, &PostParams::default(), &secret)
                .await;
            (bundle, result, "renewed")
        }
    };
    match result {
        Ok(_) => {
            info!(secret = %cfg.secret_name, "{what} the webhook's serving certificate");
            Ok(Some((bundle, RESYNC)))
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            info!(secret = %cfg.secret_name, "another replica wrote the webhook's serving certificate first: using theirs");
            Ok(None)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// One pass: the bundle to serve and when to look again. Public so that tests can drive passes
/// with the time of their choosing.
pub async fn pass(
    client: &Client,
    cfg: &CertConfig,
    now: Timestamp,
) -> Result<(Bundle, Duration), String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &cfg.namespace);
    // A replica that loses the race re-reads the winner's Secret in the same pass, so it serves
    // at once (a replica without a certificate fails every admission call it gets) and never
    // overwrites what the winner serves. Bounded: a third writer in between is left to the retry.
    let mut read = 0;
    let (bundle, wait) = loop {
        read += 1;
        let existing = secrets
            .get_opt(&cfg.secret_name)
            .await
            .map_err(|e| e.to_string())?;
        let action = certs::decide(existing.as_ref(), &cfg.dns_names, now, cfg.validity)
            .map_err(|e| e.to_string())?;
        match write_secret(&secrets, cfg, existing, action, now).await? {
            Some(done) => break done,
            None if read < 2 => continue,
            None => return Err("the certificate Secret keeps changing under this replica".into()),
        }
    };
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let config = configs
        .get(&cfg.webhook_config_name)
        .await
        .map_err(|e| e.to_string())?;
    let ops = ca_bundle_patch(&config, &bundle.ca_bundle);
    if !ops.is_empty() {
        let patch: json_patch::Patch =
            serde_json::from_value(serde_json::Value::Array(ops)).map_err(|e| e.to_string())?;
        configs
            .patch(
                &cfg.webhook_config_name,
                &PatchParams::default(),
                &Patch::<()>::Json(patch),
            )
            .await
            .map_err(|e| e.to_string())?;
        info!(config = %cfg.webhook_config_name, "set the caBundle of the webhook configuration");
    }
    Ok((bundle, wait))
}

/// Runs until `stop` resolves.
pub async fn run(
    client: Client,
    cfg: CertConfig,
    cert: Arc<SwappableCert>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let wait = match pass(&client, &cfg, Timestamp::now()).await {
            Ok((bundle, wait)) => {
                if let Err(e) = cert.set(&bundle.cert, &bundle.key) {
                    warn!(error = %e, "the webhook certificate in the Secret is unusable");
                }
                wait
            }
            Err(e) => {
                warn!(error = %e, "webhook certificate: retrying");
                RETRY
            }
        };
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(wait) => {},
        }
    }
}

/// cert-manager mode: re-reads `tls.crt`/`tls.key` from the mounted Secret, which the kubelet
/// updates when cert-manager renews it.
pub async fn watch_dir(
    dir: std::path::PathBuf,
    cert: Arc<SwappableCert>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut last = None;
    loop {
        let read = (
            tokio::fs::read_to_string(dir.join(certs::TLS_CERT)).await,
            tokio::fs::read_to_string(dir.join(certs::TLS_KEY)).await,
        );
        match read {
            (Ok(c), Ok(k)) if last.as_ref() != Some(&(c.clone(), k.clone())) => {
                match cert.set(&c, &k) {
                    Ok(()) => {
                        info!(dir = %dir.display(), "loaded the webhook certificate");
                        last = Some((c, k));
                    }
                    Err(e) => warn!(error = %e, "webhook certificate files unusable"),
                }
            }
            (Ok(_), Ok(_)) => {}
            (c, k) => {
                warn!(cert = ?c.err(), key = ?k.err(), "webhook certificate files unreadable")
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(RETRY) => {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::admissionregistration::v1::{MutatingWebhook, WebhookClientConfig};

    fn config(bundles: &[Option<&str>]) -> MutatingWebhookConfiguration {
        let mut c = MutatingWebhookConfiguration::default();
        c.metadata.resource_version = Some("42".into());
        c.webhooks = Some(
            bundles
                .iter()
                .map(|b| MutatingWebhook {
                    client_config: WebhookClientConfig {
                        ca_bundle: b.map(|b| ByteString(b.as_bytes().to_vec())),
                        ..Default::default()
                    },
                    ..Default::default()
                })
                .collect(),
        );
        c
    }

    #[test]
    fn patches_only_the_stale_bundles_guarded_by_the_resource_version() {
        let ops = ca_bundle_patch(&config(&[None, Some("CA"), Some("old")]), "CA");
        let b64 = base64::engine::general_purpose::STANDARD.encode("CA");
        assert_eq!(
            ops,
            vec![
                json!({"op": "test", "path": "/metadata/resourceVersion", "value": "42"}),
                json!({"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": b64}),
                json!({"op": "add", "path": "/webhooks/2/clientConfig/caBundle", "value": b64}),
            ]
        );
        assert!(
            ca_bundle_patch(&config(&[Some("CA")]), "CA").is_empty(),
            "steady state writes nothing"
        );
    }
}
