//! The start-up check: before leader election and the controller, one `list` of LiveKitConfigs proves
//! that the API server is reachable, that the CRD is installed and that this identity may read it. Each
//! way it can fail gets its own words, naming the server, so a newcomer fixes the right thing (a
//! stopped cluster is not an RBAC problem).

use crate::crd::LiveKitConfig;
use crate::error::{Error, Result};
use kube::api::{Api, ListParams};

/// Lists at most one LiveKitConfig; on failure, an error that says which of the three it was.
pub async fn check_api(configs: &Api<LiveKitConfig>, server: &str) -> Result<()> {
    match configs.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::Startup(explain_list_error(&e, server))),
    }
}

/// The sentence for a failed `list` of LiveKitConfigs against `server`.
pub fn explain_list_error(error: &kube::Error, server: &str) -> String {
    let kube::Error::Api(status) = error else {
        // No HTTP answer at all: connection refused, DNS, TLS, a timeout.
        return format!(
            "cannot reach the Kubernetes API server at {server}: {}; is the cluster running, and is \
             this the right kubeconfig context (KUBECONFIG, --context)?",
            chain(error)
        );
    };
    let said = if status.message.is_empty() {
        status.reason.clone()
    } else {
        status.message.clone()
    };
    match status.code {
        401 => format!(
            "the API server at {server} refused this identity's credentials (401: {said}); \
             refresh or fix the kubeconfig"
        ),
        403 => format!(
            "this identity may not list livekitconfigs.livekit.kraken.dev on the API server at \
             {server} (403: {said}); grant it the chart's ClusterRole (charts/livekit-operator)"
        ),
        404 => format!(
            "the API server at {server} does not serve livekitconfigs.livekit.kraken.dev (404): the \
             CRD is not installed; kubectl apply -f crds/livekitconfig.yaml, or install the chart"
        ),
        code => format!(
            "the API server at {server} answered {code} to a list of LiveKitConfigs: {said}"
        ),
    }
}

/// An error and its sources, outermost first: kube's own message ("ServiceError: client error
/// (Connect)") says little without the cause underneath ("Connection refused").
fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    const SERVER: &str = "https://10.0.0.1:6443/";

    fn api(code: u16, message: &str, reason: &str) -> kube::Error {
        kube::Error::Api(Status::failure(message, reason).with_code(code).boxed())
    }

    #[test]
    fn a_connection_failure_names_the_server_and_not_the_crd_or_rbac() {
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let msg = explain_list_error(&kube::Error::Service(Box::new(refused)), SERVER);
        assert!(
            msg.starts_with("cannot reach the Kubernetes API server at https://10.0.0.1:6443/"),
            "{msg}"
        );
        assert!(msg.contains("Connection refused"), "{msg}");
        assert!(
            !msg.contains("CRD") && !msg.contains("RBAC") && !msg.contains("ClusterRole"),
            "{msg}"
        );
    }

    #[test]
    fn each_api_answer_says_what_to_fix() {
        let cases = [
            (
                api(
                    404,
                    "the server could not find the requested resource",
                    "NotFound",
                ),
                "CRD is not installed",
            ),
            (
                api(
                    403,
                    "livekitconfigs is forbidden: User \"bob\" cannot list",
                    "Forbidden",
                ),
                "ClusterRole",
            ),
            (
                api(401, "", "Unauthorized"),
                "refused this identity's credentials (401: Unauthorized)",
            ),
            (
                api(500, "etcd is down", "InternalError"),
                "answered 500 to a list of LiveKitConfigs: etcd is down",
            ),
        ];
        for (error, want) in cases {
            let msg = explain_list_error(&error, SERVER);
            assert!(msg.contains(want), "{msg}");
            assert!(msg.contains(SERVER), "{msg}");
        }
        let forbidden =
            explain_list_error(&api(403, "User \"bob\" cannot list", "Forbidden"), SERVER);
        assert!(
            forbidden.contains("User \"bob\" cannot list"),
            "{forbidden}"
        );
    }

    #[test]
    fn the_chain_keeps_every_distinct_cause() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("client error (Connect)")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("tcp connect error"));
        assert_eq!(chain(&e), "client error (Connect): tcp connect error");
    }
}
