//! The real `livekit-operator` binary started the way a newcomer starts it on a laptop, against an API
//! server that does not answer: its log must be plain text in a pipe, name the server it could not
//! reach (not the CRD or RBAC), and report "probes listening" before, never after, the fatal error.

use std::io::Read as _;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An "API server" on loopback that accepts each connection and closes it at once: the TLS handshake
/// fails the way it does against a cluster that is down or a port that is not Kubernetes.
fn closing_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    url
}

fn kubeconfig(dir: &std::path::Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: laptop
  cluster: {{server: \"{server}\", insecure-skip-tls-verify: true}}
users:
- name: me
  user: {{token: not-a-real-token}}
contexts:
- name: laptop
  context: {{cluster: laptop, user: me}}
current-context: laptop
"
        ),
    )
    .unwrap();
    path
}

#[test]
fn an_unreachable_api_server_is_named_in_plain_text_after_the_probes_started() {
    let server = closing_server();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_livekit-operator"))
        .args(["--leader-elect=false", "--metrics-addr", "127.0.0.1:0"])
        .env("KUBECONFIG", kubeconfig(dir.path(), &server))
        .env("RUST_LOG", "info")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("NO_COLOR")
        .env_remove("METRICS_ADDR")
        .env_remove("LOG_FORMAT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Reading stderr to its end is waiting for the exit; the deadline only stops a hang (generous for
    // a loaded machine: the failure itself takes well under a second).
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        stderr.read_to_string(&mut out).unwrap();
        out
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the operator did not exit on an unreachable API server");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = reader.join().unwrap();

    assert!(!status.success(), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escape codes in a log that is not a terminal:\n{log}"
    );
    let fatal = log
        .find("cannot reach the Kubernetes API server at https://127.0.0.1:")
        .unwrap_or_else(|| panic!("the error does not name the API server:\n{log}"));
    assert!(log[fatal..].contains(&server), "{log}");
    assert!(
        !log.contains("CRD") && !log.contains("RBAC"),
        "blames the CRD or RBAC:\n{log}"
    );
    let probes = log
        .find("probes listening")
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        probes < fatal,
        "\"probes listening\" after the fatal error:\n{log}"
    );
    assert!(
        log[probes..].lines().next().unwrap().contains("127.0.0.1:"),
        "{log}"
    );
}
