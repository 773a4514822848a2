//! Leader election with a Kubernetes Lease, through the `kube-lease-manager` crate (kube 5).
//!
//! Only the leader runs the controller. A replica that loses the lease stops its controller and
//! exits, so it restarts as a clean follower; on shutdown the leader releases the lease at once so
//! a standby takes over without waiting for it to expire.

use crate::error::Result;
use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// Seconds a lease is valid after its last renewal.
    pub duration_seconds: u64,
    /// Seconds before expiry at which the holder renews.
    pub grace_seconds: u64,
}

/// A running election: `is_leader` flips as the lease is won or lost.
pub struct Election {
    pub is_leader: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

/// Starts competing for the lease. The Lease is written under a field manager per replica (the
/// crate's default, `kube-lease-manager-<identity>`): its conflict detection relies on that, so this
/// is the one object not written under [`crate::desired::FIELD_MANAGER`].
pub async fn start(client: Client, config: &LeaseConfig) -> Result<Election> {
    let manager = LeaseManagerBuilder::new(client, &config.name)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(config.duration_seconds)
        .with_grace(config.grace_seconds)
        .build()
        .await?;
    let (is_leader, task) = manager.watch().await;
    Ok(Election { is_leader, task })
}

impl Election {
    /// Waits until this replica holds the lease.
    pub async fn acquired(&mut self) -> bool {
        self.is_leader.wait_for(|l| *l).await.is_ok()
    }

    /// Resolves when the lease is lost (or the election task ended).
    pub fn lost(&self) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.is_leader.clone();
        async move {
            let _ = rx.wait_for(|l| !*l).await;
        }
    }

    /// Releases the lease (by closing the channel, which makes the manager release it) and waits
    /// for that to finish.
    pub async fn release(self) {
        drop(self.is_leader);
        match self.task.await {
            Ok(Ok(_)) => tracing::info!("lease released"),
            Ok(Err(e)) => tracing::warn!(error = %e, "lease release failed"),
            Err(e) => tracing::warn!(error = %e, "lease task failed"),
        }
    }
}
