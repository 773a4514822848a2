//! The operator's one error type.

/// Everything that can go wrong in the operator. Problems with a spec or its source Secrets are not
/// errors: they are reported in status (`Ready=False`) and do not hot-loop.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed; retried with per-object backoff.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// A namespaced object came without a namespace (should never happen).
    #[error("LiveKitConfig {0} has no namespace")]
    MissingNamespace(String),
    /// An object could not be serialised for an apply.
    #[error("could not serialise {what}: {source}")]
    Serialize {
        what: &'static str,
        source: serde_json::Error,
    },
    /// Reading the kubeconfig or in-cluster configuration failed.
    #[error("Kubernetes client configuration: {0}")]
    Config(String),
    /// The start-up check of the API server failed; the message says why (see [`crate::startup`]).
    #[error("{0}")]
    Startup(String),
    /// The probe/metrics listener failed.
    #[error("health server: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Kube(kube::Error::Api(status)) => {
                status.code >= 500 || status.code == 429 || status.code == 409
            }
            Self::Kube(_) | Self::Io(_) => true,
            Self::MissingNamespace(_)
            | Self::Serialize { .. }
            | Self::Config(_)
            | Self::Startup(_) => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
