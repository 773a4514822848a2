//! The webhook served over real TLS on loopback, called as the API server calls it: HTTPS POST of
//! an AdmissionReview v1 to /mutate, trusting only the `caBundle` (the self-managed CA), checking
//! the serving certificate's name. A renewal swaps the certificate without a restart.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use livekit_operator::inject::Defaults;
use livekit_operator::webhook::admission::ConfigLookup;
use livekit_operator::webhook::certs::{Bundle, issue, service_dns_names};
use livekit_operator::webhook::server::{PATH, router, serve};
use livekit_operator::webhook::tls::SwappableCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Chat;

impl ConfigLookup for Chat {
    async fn exists(&self, namespace: &str, name: &str) -> Result<bool, String> {
        Ok((namespace, name) == ("apps", "chat"))
    }
}

const HOST: &str = "lk-webhook.livekit-system.svc";

fn bundle() -> Bundle {
    let names = service_dns_names("lk-webhook", "livekit-system");
    issue(
        &names,
        Timestamp::now(),
        SignedDuration::from_hours(24),
        None,
    )
    .unwrap()
}

fn connector(ca_bundle: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_bundle.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// One HTTPS request, as the API server sends it (HTTP/1.1, JSON, Connection: close).
async fn post(
    addr: std::net::SocketAddr,
    ca_bundle: &str,
    host: &str,
    body: &Value,
) -> Result<(u16, Value), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.to_owned()).unwrap();
    let mut tls = connector(ca_bundle)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(body).unwrap();
    let head = format!(
        "POST {PATH}?timeout=10s HTTP/1.1\r\nHost: {host}:443\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&body).await.unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

fn review(annotations: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "b1c2", "operation": "CREATE", "namespace": "apps",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": "chat-", "annotations": annotations},
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}
            }
        }
    })
}

async fn start(
    cert: Arc<SwappableCert>,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(
        listener,
        cert,
        router(Defaults::default(), Chat),
        async {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

#[tokio::test]
async fn api_server_style_calls_over_tls() {
    let b = bundle();
    let cert = Arc::new(SwappableCert::default());
    cert.set(&b.cert, &b.key).unwrap();
    let (addr, _stop) = start(cert).await;

    let (status, out) = post(
        addr,
        &b.ca_bundle,
        HOST,
        &review(json!({"livekit.kraken.dev/inject": "chat"})),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(out["response"]["uid"], "b1c2");
    assert_eq!(out["response"]["allowed"], true);
    assert_eq!(out["response"]["patchType"], "JSONPatch");
    let bytes: Vec<u8> = serde_json::from_value(out["response"]["patch"].clone()).unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut pod = review(json!({}))["request"]["object"].clone();
    json_patch::patch(&mut pod, &patch).unwrap();
    assert_eq!(pod["spec"]["initContainers"][0]["name"], "livekit-sidecar");

    let (status, out) = post(
        addr,
        &b.ca_bundle,
        HOST,
        &review(json!({"livekit.kraken.dev/inject": "nope"})),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "a refusal is an answer, not an HTTP error");
    assert_eq!(out["response"]["allowed"], false);
    assert!(
        out["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("\"nope\" not found")
    );

    let (status, out) = post(addr, &b.ca_bundle, HOST, &json!("not a review"))
        .await
        .unwrap();
    assert_eq!(
        (status, &out["response"]["allowed"]),
        (200, &json!(false)),
        "answered, and refused"
    );
}

#[tokio::test]
async fn only_the_ca_bundle_and_the_service_name_are_trusted() {
    let b = bundle();
    let cert = Arc::new(SwappableCert::default());
    cert.set(&b.cert, &b.key).unwrap();
    let (addr, _stop) = start(cert).await;
    let other = bundle();
    let err = post(addr, &other.ca_bundle, HOST, &review(json!({})))
        .await
        .unwrap_err();
    assert!(
        err.contains("UnknownIssuer") || err.contains("invalid peer certificate"),
        "{err}"
    );
    let err = post(addr, &b.ca_bundle, "evil.example.com", &review(json!({})))
        .await
        .unwrap_err();
    assert!(
        err.contains("NotValidForName") || err.contains("certificate not valid for name"),
        "{err}"
    );
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart_and_the_bundle_covers_both() {
    let first = bundle();
    let cert = Arc::new(SwappableCert::default());
    assert!(!cert.is_set());
    cert.set(&first.cert, &first.key).unwrap();
    let (addr, _stop) = start(cert.clone()).await;
    let names = service_dns_names("lk-webhook", "livekit-system");
    let second = issue(
        &names,
        Timestamp::now(),
        SignedDuration::from_hours(24),
        Some(&first.ca_cert),
    )
    .unwrap();
    // During the rollover the API server may still hold the old caBundle, or already the new one.
    assert!(
        post(addr, &first.ca_bundle, HOST, &review(json!({})))
            .await
            .is_ok()
    );
    cert.set(&second.cert, &second.key).unwrap();
    assert!(
        post(addr, &second.ca_bundle, HOST, &review(json!({})))
            .await
            .is_ok()
    );
    assert!(
        post(addr, &first.ca_bundle, HOST, &review(json!({})))
            .await
            .is_err(),
        "the new leaf is served"
    );
    // A bad pair leaves the good certificate in place.
    assert!(cert.set(&second.cert, &first.key).is_err());
    assert!(cert.set("garbage", &second.key).is_err());
    assert!(
        post(addr, &second.ca_bundle, HOST, &review(json!({})))
            .await
            .is_ok()
    );
}
