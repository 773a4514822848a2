//! livekit-sidecar: issues LiveKit access tokens to the application in the same pod, after verifying
//! the application's user JWT and the caller's `JOIN_CHANNEL` permission.
//!
//! Modules by concern, dependencies pointing one way (no cycles):
//! - domain, free of HTTP: [`auth`] and [`jwks`] (caller authentication), [`authz`] (JOIN_CHANNEL),
//!   [`validation`] and [`token`] (pure request → claims → token), [`health`] (what healthy means);
//! - [`config`]: the sources and the immutable snapshot built from them;
//! - [`state`]: what every request shares (snapshot pointer, limits, metrics, reachability);
//! - [`http`]: router, layers, extractors, handlers, probes, the API error and the OpenAPI document;
//! - running it: [`server`] (listeners and shutdown), [`reload`] (hot reload), [`probe`] (LiveKit
//!   reachability), [`metrics`] (Prometheus), [`cli`], [`dev`] (`dev-token`).

pub mod auth;
pub mod authz;
pub mod cli;
pub mod config;
pub mod dev;
pub mod health;
pub mod http;
pub mod jwks;
pub mod log_budget;
pub mod metrics;
pub mod outbound;
pub mod probe;
pub mod reload;
pub mod server;
pub mod state;
pub mod token;
pub mod validation;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;
use crate::config::{ConfigError, Snapshot};
use crate::http::{api_router, probe_router};
use crate::state::AppState;

/// Makes sure the process signs and verifies with the crypto backend this crate was built for.
pub fn install_crypto_provider() {
    // Err only means it was installed already, which is what we want.
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration from {source_name}: {error}")]
    Config {
        source_name: String,
        error: ConfigError,
    },
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error(
        "--dev refuses to listen on {0}: dev mode accepts caller tokens signed with a published secret, \
         so its API must stay on a loopback address (e.g. --listen 127.0.0.1:3001)"
    )]
    DevNotLoopback(SocketAddr),
}

/// `--dev` serves its API on loopback only: anyone who can reach it can mint a caller token.
pub fn check_dev_listen(dev: bool, listen: SocketAddr) -> Result<(), StartError> {
    if dev && !listen.ip().is_loopback() {
        return Err(StartError::DevNotLoopback(listen));
    }
    Ok(())
}

/// A running sidecar.
pub struct Running {
    pub api_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub state: AppState,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<()>,
}

/// Loads and validates the configuration, binds both listeners and serves until `shutdown` is cancelled.
pub async fn start(args: &ServeArgs, shutdown: CancellationToken) -> Result<Running, StartError> {
    install_crypto_provider();
    check_dev_listen(args.dev, args.listen)?;
    let config_error = |error| StartError::Config {
        source_name: source_name(args),
        error,
    };
    let input = config::load(&args.config_source()).map_err(config_error)?;
    let snapshot = Snapshot::build(input, None).map_err(config_error)?;
    if args.dev {
        tracing::warn!(
            "DEV MODE: LiveKit dev credentials (devkey/secret) and a PUBLISHED caller secret are in use. \
             Anyone can mint caller tokens. NEVER run --dev in production."
        );
    }
    serve_snapshot(snapshot, args, shutdown).await
}

/// Serves an already built snapshot with the listeners and limits of `args`.
pub async fn serve_snapshot(
    snapshot: Snapshot,
    args: &ServeArgs,
    shutdown: CancellationToken,
) -> Result<Running, StartError> {
    install_crypto_provider();
    match &snapshot.service {
        Some(service) => tracing::info!(
            source = %snapshot.source,
            api_key = service.signer.api_key(),
            server_url = %service.settings.server_url,
            verifier = ?service.verifier,
            authorizer = ?service.authorizer,
            "configuration loaded"
        ),
        None => tracing::warn!(
            source = %snapshot.source,
            "no LiveKit credentials configured: health reports unhealthy and tokens are refused"
        ),
    }

    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|error| StartError::Bind { addr, error })
    };
    let api_listener = bind(args.listen).await?;
    let metrics_listener = bind(args.metrics_listen).await?;
    let api_addr = api_listener
        .local_addr()
        .expect("bound socket has an address");
    let metrics_addr = metrics_listener
        .local_addr()
        .expect("bound socket has an address");

    let state = AppState::new(snapshot, args.request_limits(), args.probe_settings());
    probe::spawn(state.clone(), args.probe_settings(), shutdown.clone());
    reload::spawn(
        state.clone(),
        args.clone(),
        std::time::Duration::from_secs(args.reload_check_seconds),
        shutdown.clone(),
    );
    let limits = args.connection_limits();
    let api = server::serve(
        api_listener,
        api_router(state.clone()),
        limits.clone(),
        shutdown.clone(),
    );
    let probes = server::serve(
        metrics_listener,
        probe_router(state.clone()),
        limits,
        shutdown.clone(),
    );
    let task = tokio::spawn(async move {
        tokio::join!(api, probes);
    });
    tracing::info!(api = %api_addr, metrics = %metrics_addr, "listening");
    Ok(Running {
        api_addr,
        metrics_addr,
        state,
        shutdown,
        task,
    })
}

fn source_name(args: &ServeArgs) -> String {
    if args.dev {
        "--dev".into()
    } else if let Some(dir) = &args.config_dir {
        format!("--config-dir {}", dir.display())
    } else {
        "environment".into()
    }
}

#[cfg(test)]
mod dev_listen_tests {
    use super::*;

    #[test]
    fn dev_mode_stays_on_loopback() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        for ok in ["127.0.0.1:3001", "127.0.0.2:0", "[::1]:3001"] {
            assert!(check_dev_listen(true, addr(ok)).is_ok(), "{ok}");
        }
        for refused in ["0.0.0.0:3001", "[::]:3001", "10.0.0.5:3001"] {
            let error = check_dev_listen(true, addr(refused))
                .unwrap_err()
                .to_string();
            assert!(error.contains("loopback"), "{refused}: {error}");
            assert!(
                check_dev_listen(false, addr(refused)).is_ok(),
                "{refused} without --dev"
            );
        }
    }
}
