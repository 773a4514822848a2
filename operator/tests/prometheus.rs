//! A real Prometheus (Debian's, installed by scripts/test-deps.sh) scrapes both binaries' metrics
//! endpoints on loopback: the operator's, after reconciles against the fake API server, and the real
//! sidecar process's, after it issued tokens. Targets must be up, the series must carry the values the
//! traffic implies, and `promtool check metrics` must pass on both outputs.

use livekit_operator_testkit as common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::configs::*;
use common::fake_api::FakeApi;
use kube::runtime::events::Reporter;
use livekit_integration_tests::sidecar::{Http, SidecarProcess, run_to_exit};
use livekit_operator::health::{self, Health, Phase};
use livekit_operator::reconcile::{self, Backoff, Context};
use serde_json::{Value, json};

/// Kills the child when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (run ./scripts/test-deps.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics:\n{report}"
    );
}

/// One instant-vector query; returns `metric labels → value` pairs.
fn query(http: &Http, prometheus: &str, promql: &str) -> Vec<(Value, f64)> {
    let url = format!("{prometheus}/api/v1/query?query={}", urlencode(promql));
    let body = http.get(&url, None).unwrap().json();
    assert_eq!(body["status"], "success", "{body}");
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"].clone(),
                r["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn scalar(http: &Http, prometheus: &str, promql: &str) -> Option<f64> {
    let result = query(http, prometheus, promql);
    assert!(result.len() <= 1, "{promql}: {result:?}");
    result.first().map(|(_, v)| *v)
}

#[test]
fn prometheus_scrapes_both_binaries() {
    let runtime = tokio::runtime::Runtime::new().unwrap();

    // The operator: two reconciles of one config against the fake API, metrics served on loopback.
    let operator_addr: SocketAddr = runtime.block_on(async {
        let api = FakeApi::default();
        api.put(
            "livekitconfigs",
            NS,
            "chat",
            serde_json::to_value(config("chat", GENERATE_SPEC)).unwrap(),
        );
        let mut source = serde_json::to_value(app_jwt()).unwrap();
        source["apiVersion"] = json!("v1");
        source["kind"] = json!("Secret");
        api.put("secrets", NS, "app-jwt", source);
        let ctx = Arc::new(Context::with_clock(
            api.client(),
            Reporter {
                controller: "livekit-operator".into(),
                instance: None,
            },
            Backoff::new(Duration::from_secs(5), Duration::from_secs(300)),
            common::t0,
        ));
        for _ in 0..2 {
            let current =
                serde_json::from_value(api.get("livekitconfigs", NS, "chat").unwrap()).unwrap();
            reconcile::reconcile(Arc::new(current), ctx.clone())
                .await
                .unwrap();
        }
        let health = Health::default();
        health.set(Phase::Leading);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = health::router(health, ctx.metrics.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr
    });
    // Keep the runtime (and so the operator's server) alive on a thread of its own.
    let _operator_runtime =
        std::thread::spawn(move || runtime.block_on(std::future::pending::<()>()));

    // The sidecar: the real binary in dev mode, three tokens issued and one caller refused.
    let sidecar = SidecarProcess::start(&["--dev"], &[]);
    let http = Http::new();
    let caller = run_to_exit(
        &["dev-token", "--identity", "alice"],
        &[],
        Duration::from_secs(10),
    )
    .stdout
    .trim()
    .to_owned();
    for room in ["r1", "r2", "r3"] {
        let reply = http
            .post_json(
                &sidecar.api_url("/api/livekit/token"),
                Some(&caller),
                &json!({"roomId": room}),
            )
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let refused = http
        .post_json(
            &sidecar.api_url("/api/livekit/token"),
            Some("garbage"),
            &json!({"roomId": "r"}),
        )
        .unwrap();
    assert_eq!(refused.status, 401);

    let operator_metrics = http
        .get(&format!("http://{operator_addr}/metrics"), None)
        .unwrap()
        .text;
    let sidecar_metrics = http
        .get(&sidecar.metrics_url("/metrics"), None)
        .unwrap()
        .text;
    promtool_check(&operator_metrics);
    promtool_check(&sidecar_metrics);

    // A real Prometheus, scraping both every second.
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\n\
         scrape_configs:\n\
         - job_name: livekit-operator\n  static_configs: [{{targets: ['{operator_addr}']}}]\n\
         - job_name: livekit-sidecar\n  static_configs: [{{targets: ['{}']}}]\n",
        sidecar.metrics
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let prometheus = format!("http://127.0.0.1:{port}");
    let _server = Killed(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (run ./scripts/test-deps.sh)"),
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = http
            .get(&format!("{prometheus}/api/v1/query?query=up"), None)
            .ok()
            .filter(|r| r.status == 200)
            .map(|r| r.json());
        let ready = up.as_ref().is_some_and(|body| {
            let results = body["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            results.len() == 2 && results.iter().all(|r| r["value"][1] == "1")
        });
        let scraped = ready
            && scalar(
                &http,
                &prometheus,
                "livekit_sidecar_tokens_total{outcome=\"issued\"}",
            )
            .is_some()
            && scalar(
                &http,
                &prometheus,
                "livekit_operator_reconciles_total{result=\"success\"}",
            )
            .is_some();
        if scraped {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw both targets up: {up:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    let expect = |promql: &str, want: f64| {
        assert_eq!(scalar(&http, &prometheus, promql), Some(want), "{promql}");
    };
    expect("up{job=\"livekit-operator\"}", 1.0);
    expect("up{job=\"livekit-sidecar\"}", 1.0);
    expect("livekit_sidecar_tokens_total{outcome=\"issued\"}", 3.0);
    expect(
        "livekit_sidecar_tokens_total{outcome=\"unauthenticated\"}",
        1.0,
    );
    expect(
        "livekit_sidecar_caller_auth_failures_total{reason=\"malformed\"}",
        1.0,
    );
    expect("livekit_sidecar_configured", 1.0);
    expect("livekit_sidecar_build_info", 1.0);
    expect(
        "sum(livekit_sidecar_http_requests_total{route=\"/api/livekit/token\"})",
        4.0,
    );
    expect(
        "livekit_sidecar_config_reloads_total{result=\"failure\"}",
        0.0,
    );
    expect("livekit_operator_reconciles_total{result=\"success\"}", 2.0);
    expect("livekit_operator_reconciles_total{result=\"error\"}", 0.0);
    expect(
        "livekit_operator_config_ready{namespace=\"apps\",name=\"chat\"}",
        1.0,
    );
    expect("livekit_operator_leader", 1.0);
    expect("livekit_operator_build_info", 1.0);
    expect("livekit_operator_reconcile_duration_seconds_count", 2.0);
    // No unbounded label ever reaches Prometheus.
    let rooms = query(
        &http,
        &prometheus,
        "{__name__=~\"livekit_.*\", room=~\".+\"}",
    );
    assert!(rooms.is_empty(), "{rooms:?}");
}
