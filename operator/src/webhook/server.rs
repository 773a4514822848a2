//! HTTPS for the webhook: `POST /mutate` takes an AdmissionReview v1 and answers one. Every TLS
//! connection is served by hyper over tokio-rustls; the certificate comes from a
//! [`SwappableCert`], so renewals need no restart.

use super::admission::{ConfigLookup, review};
use super::tls::{SwappableCert, server_config};
use crate::crd::LiveKitConfig;
use crate::inject::Defaults;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use kube::{Api, Client};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tracing::{debug, warn};

/// The path the MutatingWebhookConfiguration calls.
pub const PATH: &str = "/mutate";
/// Pods are at most a few hundred KiB; the API server's own request limit is 3 MiB.
const MAX_BODY: usize = 3 * 1024 * 1024;
/// Below the API server's webhook time-out (the chart sets 10 s), so that a slow lookup is
/// answered with a clear refusal rather than the API server's generic time-out.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// A client that opens a connection and sends nothing is dropped after this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Looks LiveKitConfigs up through the API server.
#[derive(Clone)]
pub struct KubeConfigs(pub Client);

impl ConfigLookup for KubeConfigs {
    async fn exists(&self, namespace: &str, name: &str) -> Result<bool, String> {
        let api: Api<LiveKitConfig> = Api::namespaced(self.0.clone(), namespace);
        match tokio::time::timeout(LOOKUP_TIMEOUT, api.get_opt(name)).await {
            Ok(Ok(found)) => Ok(found.is_some()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {LOOKUP_TIMEOUT:?}")),
        }
    }
}

struct AppState<L> {
    defaults: Defaults,
    configs: L,
}

async fn mutate<L: ConfigLookup + 'static>(
    State(state): State<Arc<AppState<L>>>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let answer = review(body, &state.defaults, &state.configs).await;
    if let Some(r) = &answer.response {
        debug!(uid = %r.uid, allowed = r.allowed, patched = r.patch.is_some(), "admission review");
    }
    match serde_json::to_value(answer) {
        Ok(v) => (StatusCode::OK, Json(v)),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": e.to_string()})),
        ),
    }
}

/// The webhook's routes.
pub fn router<L: ConfigLookup + 'static>(defaults: Defaults, configs: L) -> Router {
    Router::new()
        .route(PATH, post(mutate::<L>))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Arc::new(AppState { defaults, configs }))
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    cert: Arc<SwappableCert>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(cert));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "webhook accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "webhook TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
            if let Err(e) = conn {
                debug!(%peer, error = %e, "webhook connection ended");
            }
        });
    }
}
