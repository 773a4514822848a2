//! Leader election against the fake API server's Leases: a leader whose renewals keep failing (the
//! API server answers 500, or never answers) gives up leadership within its renew deadline, before
//! its lease expires for a standby, so two replicas never reconcile at once.

use livekit_operator_testkit as common;

use common::fake_api::FakeApi;
use http::Method;
use k8s_openapi::jiff::Timestamp;
use livekit_operator::leader::{self, LeaseConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

const NS: &str = "livekit-system";
const DURATION_SECONDS: u64 = 4;

fn lease_config(identity: &str) -> LeaseConfig {
    LeaseConfig {
        name: "livekit-operator".into(),
        namespace: NS.into(),
        identity: identity.into(),
        duration_seconds: DURATION_SECONDS,
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(250),
    }
}

/// A client over `api` whose Lease writes, once `hang` is set, never get an answer: a dropped
/// connection or a partitioned API server.
fn hanging_client(api: &FakeApi, hang: Arc<AtomicBool>) -> kube::Client {
    let inner = api.client();
    let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
        let inner = inner.clone();
        let hang = hang.load(Ordering::SeqCst)
            && req.method() != Method::GET
            && req.uri().path().contains("/leases");
        async move {
            if hang {
                std::future::pending::<()>().await;
            }
            inner.send(req).await
        }
    });
    kube::Client::new(service, "default")
}

/// When the lease, as last renewed, expires for a standby (holders compare `renewTime` plus the
/// duration).
fn expiry(api: &FakeApi) -> SystemTime {
    let lease = api
        .get("leases", NS, "livekit-operator")
        .expect("the Lease exists");
    let renewed: Timestamp = lease["spec"]["renewTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let seconds = lease["spec"]["leaseDurationSeconds"].as_u64().unwrap();
    SystemTime::from(renewed) + Duration::from_secs(seconds)
}

async fn leader_whose_renewals_fail(break_renewals: impl FnOnce(&FakeApi, &AtomicBool)) {
    let api = FakeApi::default();
    let hang = Arc::new(AtomicBool::new(false));
    let mut election = leader::start(hanging_client(&api, hang.clone()), &lease_config("a"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), election.acquired())
        .await
        .expect("the only replica acquires the lease");
    assert_eq!(
        api.get("leases", NS, "livekit-operator").unwrap()["spec"]["holderIdentity"],
        "a"
    );
    break_renewals(&api, &hang);
    let lost = election.lost();
    tokio::time::timeout(Duration::from_secs(DURATION_SECONDS + 2), lost)
        .await
        .expect("a leader that cannot renew gives up leadership");
    let given_up = SystemTime::now();
    let expires = expiry(&api);
    assert!(
        given_up < expires,
        "gave up {:?} after the lease expired for a standby",
        given_up.duration_since(expires).unwrap_or_default()
    );
}

#[tokio::test]
async fn a_leader_whose_renewals_get_500_stops_before_its_lease_expires() {
    leader_whose_renewals_fail(|api, _| {
        for method in [Method::PATCH, Method::PUT, Method::POST] {
            api.fail(method, "/leases", 500, usize::MAX);
        }
    })
    .await;
}

#[tokio::test]
async fn a_leader_whose_renewals_hang_stops_before_its_lease_expires() {
    leader_whose_renewals_fail(|_, hang| hang.store(true, Ordering::SeqCst)).await;
}

#[tokio::test]
async fn a_cut_off_leader_has_stopped_before_a_standby_takes_over() {
    let api = FakeApi::default();
    let hang = Arc::new(AtomicBool::new(false));
    let mut a = leader::start(hanging_client(&api, hang.clone()), &lease_config("a"))
        .await
        .unwrap();
    assert!(a.acquired().await);
    let mut b = leader::start(api.client(), &lease_config("b"))
        .await
        .unwrap();
    // a loses its connection to the API server; b still reaches it.
    hang.store(true, Ordering::SeqCst);
    let (a_lost, b_leads) = (a.lost(), b.acquired());
    let first = tokio::time::timeout(Duration::from_secs(3 * DURATION_SECONDS), async {
        tokio::select! {
            biased;
            _ = a_lost => "a stopped",
            _ = b_leads => "b took over",
        }
    })
    .await
    .expect("one of them moves");
    assert_eq!(first, "a stopped", "two leaders at once");
    tokio::time::timeout(Duration::from_secs(3 * DURATION_SECONDS), b.acquired())
        .await
        .expect("b takes over the expired lease");
    assert_eq!(
        api.get("leases", NS, "livekit-operator").unwrap()["spec"]["holderIdentity"],
        "b"
    );
    b.release().await;
}

#[tokio::test]
async fn a_standby_waits_while_the_leader_renews_and_takes_over_at_once_on_release() {
    let api = FakeApi::default();
    let mut a = leader::start(api.client(), &lease_config("a"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), a.acquired())
        .await
        .unwrap();
    let mut b = leader::start(api.client(), &lease_config("b"))
        .await
        .unwrap();
    // While a renews, b waits.
    let early = tokio::time::timeout(Duration::from_secs(DURATION_SECONDS + 1), b.acquired()).await;
    assert!(early.is_err(), "b took a lease that a keeps renewing");
    // a shuts down and releases: b takes over at once, well before a's lease would have expired.
    a.release().await;
    tokio::time::timeout(Duration::from_secs(DURATION_SECONDS - 1), b.acquired())
        .await
        .expect("b acquires a released lease");
    assert_eq!(
        api.get("leases", NS, "livekit-operator").unwrap()["spec"]["holderIdentity"],
        "b"
    );
    b.release().await;
}

/// The real binary, leading over HTTP against the fake: when its Lease writes start failing it
/// stops and exits 1 (to restart as a follower) within its renew deadline, before its lease
/// expires for a standby.
#[tokio::test]
async fn the_operator_process_exits_1_when_it_cannot_renew() {
    let api = FakeApi::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(api.clone().serve(listener));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{url}\"}}\nusers:\n- name: me\n  user: {{token: t}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: me}}\ncurrent-context: fake\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_livekit-operator"))
        .args([
            "--metrics-addr=127.0.0.1:0",
            "--namespace=apps",
            &format!("--lease-namespace={NS}"),
            "--lease-identity=a",
            &format!("--lease-duration-seconds={DURATION_SECONDS}"),
            "--lease-renew-deadline-seconds=2",
            "--lease-retry-period-seconds=1",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let leads = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let holder = api
                .get("leases", NS, "livekit-operator")
                .map(|l| l["spec"]["holderIdentity"].clone());
            if holder.is_some_and(|h| h == "a") {
                break;
            }
            assert!(child.try_wait().unwrap().is_none(), "the operator exited");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(leads.is_ok(), "never led: {}", log_text());
    for method in [Method::PATCH, Method::PUT, Method::POST] {
        api.fail(method, "/leases", 500, usize::MAX);
    }
    let status = tokio::time::timeout(Duration::from_secs(DURATION_SECONDS + 4), async {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let exited = SystemTime::now();
    let Ok(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("still running with failing renewals: {}", log_text());
    };
    server.abort();
    assert_eq!(status.code(), Some(1), "{}", log_text());
    assert!(exited < expiry(&api), "exited after the lease expired");
    assert!(log_text().contains("renew deadline"), "{}", log_text());
}
