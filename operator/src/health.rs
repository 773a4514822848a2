//! Probes and metrics on their own port: `/livez` (the process serves), `/readyz` (it has a working
//! API client and is either leading with the controller running or standing by for the lease), and
//! `/metrics` (Prometheus text format).

use crate::metrics::Metrics;
use axum::response::IntoResponse;
use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    routing::get,
};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use tokio::net::TcpListener;

/// Where the process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Starting = 0,
    Standby = 1,
    Leading = 2,
    ShuttingDown = 3,
}

/// Shared, lock-free phase for the probes.
#[derive(Debug, Default, Clone)]
pub struct Health(Arc<AtomicU8>);

impl Health {
    pub fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::SeqCst);
    }

    pub fn phase(&self) -> Phase {
        match self.0.load(Ordering::SeqCst) {
            1 => Phase::Standby,
            2 => Phase::Leading,
            3 => Phase::ShuttingDown,
            _ => Phase::Starting,
        }
    }

    pub fn ready(&self) -> bool {
        matches!(self.phase(), Phase::Standby | Phase::Leading)
    }
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<ProbeState>) -> (StatusCode, String) {
    let phase = state.health.phase();
    let code = if state.health.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, format!("{phase:?}\n").to_lowercase())
}

async fn serve_metrics(State(state): State<ProbeState>) -> impl IntoResponse {
    state
        .metrics
        .set_leader(state.health.phase() == Phase::Leading);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

#[derive(Clone)]
struct ProbeState {
    health: Health,
    metrics: Arc<Metrics>,
}

/// The probe and metrics router.
pub fn router(health: Health, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(serve_metrics))
        .with_state(ProbeState { health, metrics })
}

/// Binds the probe port. The caller binds before anything that can fail at start, so "probes
/// listening" is logged before, never after, a fatal error.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "probes listening");
    Ok(listener)
}

/// Serves the probes on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    health: Health,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(health, metrics))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    async fn get(health: &Health, path: &str) -> StatusCode {
        router(health.clone(), Arc::new(Metrics::new()))
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn probes_follow_the_phase() {
        let h = Health::default();
        assert_eq!(get(&h, "/livez").await, StatusCode::OK);
        assert_eq!(get(&h, "/readyz").await, StatusCode::SERVICE_UNAVAILABLE);
        for (phase, want) in [
            (Phase::Standby, StatusCode::OK),
            (Phase::Leading, StatusCode::OK),
            (Phase::ShuttingDown, StatusCode::SERVICE_UNAVAILABLE),
        ] {
            h.set(phase);
            assert_eq!(get(&h, "/readyz").await, want, "{phase:?}");
            assert_eq!(get(&h, "/livez").await, StatusCode::OK);
        }
        assert_eq!(get(&h, "/nope").await, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn serves_on_loopback_and_shuts_down_gracefully() {
        // The listener is bound before the server starts, so the connection below is queued by the
        // kernel however late the server task runs: no port to lose, no connect loop.
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            Health::default(),
            Arc::new(Metrics::new()),
            async {
                let _ = rx.await;
            },
        ));
        // Bounds here only stop a broken server from hanging the test; they are generous for a
        // loaded machine.
        let bound = std::time::Duration::from_secs(30);
        let mut stream = tokio::time::timeout(bound, tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect within the bound")
            .unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        tokio::time::timeout(bound, stream.read_to_string(&mut out))
            .await
            .expect("answer within the bound")
            .unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        tx.send(()).unwrap();
        tokio::time::timeout(bound, server)
            .await
            .expect("graceful shutdown within the bound")
            .unwrap()
            .unwrap();
    }
}
