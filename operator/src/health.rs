//! Probes on their own port: `/livez` (the process serves) and `/readyz` (it has a working API
//! client and is either leading with the controller running or standing by for the lease).
//! Metric names come with the metrics issue; `/metrics` is served on the same port then.

use axum::{Router, extract::State, http::StatusCode, routing::get};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

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

async fn readyz(State(health): State<Health>) -> (StatusCode, String) {
    let phase = health.phase();
    let code = if health.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, format!("{phase:?}\n").to_lowercase())
}

/// The probe router.
pub fn router(health: Health) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .with_state(health)
}

/// Serves the probes on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "probes listening");
    axum::serve(listener, router(health))
        .with_graceful_shutdown(shutdown)
        .await
}
