//! The operator at scale: `LiveKitConfig`s with their source Secrets among unrelated Secrets, served
//! by the testkit's fake API server, driven by the real controller (`reconcile::run`, as
//! `livekit-operator --leader-elect=false` runs it).
//!
//! Two processes, so that memory is measured for the controller alone. This binary starts as the
//! driver: it loads the fake, serves it over HTTP on loopback, and starts itself again as the
//! controller (`SCALE_ROLE=controller`). The controller process holds nothing but the operator, its
//! kube client and runtime; its global allocator counts live heap bytes (`cap`), and it reports them
//! with its RSS and reconcile count when the driver asks on stdin. The driver counts every request
//! at the fake by verb and resource.
//!
//! For each load `CONFIGSxUNRELATED` in `SCALE_LOADS` (default `0x10000,1000x10000,1000x20000`): the
//! time from the controller's start until every config is Ready for its generation, reconciles,
//! requests and writes per config until then, the controller's heap and RSS, and the writes over a
//! quiet window afterwards, which must be 0: `SCALE_QUIET_SECS` (default 10) of nothing, split in
//! the middle by the end of every watch (as an API server ends them) and an annotation on every
//! source Secret by another writer, which makes every config reconcile once more. The run fails (exit 1) when a load
//! does not get Ready within `SCALE_TIMEOUT_SECS` (default 600) or writes in the quiet window.
//! `SCALE_CLIENT_REQUESTS=N` (a diagnostic) limits the controller's client to N requests in flight.
//!
//! Run with `bench/operator-scale.sh` (or `cargo bench -p livekit-operator --bench scale`).

use cap::Cap;
use livekit_operator::reconcile::{self, Context};
use livekit_operator_testkit::fake_api::FakeApi;
use livekit_operator_testkit::fake_api::requests::Requests;
use livekit_operator_testkit::scale;
use serde_json::{Value, json};
use std::alloc::System;
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

const ROLE: &str = "SCALE_ROLE";
const API_URL: &str = "SCALE_API_URL";
const CLIENT_REQUESTS: &str = "SCALE_CLIENT_REQUESTS";

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if std::env::var(ROLE).as_deref() == Ok("controller") {
        runtime.block_on(controller())
    } else {
        runtime.block_on(driver())
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------- controller process

/// `VmRSS` and `VmHWM` of this process, in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A counter of the operator's own metrics, read from their text rendering.
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn memory_report(ctx: &Context) -> Value {
    let (rss, hwm) = rss();
    let text = ctx.metrics.render();
    json!({
        "heap": ALLOC.allocated(), "heap_peak": ALLOC.max_allocated(), "rss": rss, "rss_peak": hwm,
        "reconciles": metric(&text, "livekit_operator_reconciles_total{result=\"success\"}")
            + metric(&text, "livekit_operator_reconciles_total{result=\"error\"}"),
        "reconcile_errors": metric(&text, "livekit_operator_reconciles_total{result=\"error\"}"),
    })
}

async fn controller() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let url = std::env::var(API_URL).expect("SCALE_API_URL");
    let config = kube::Config::new(url.parse().expect("API URL"));
    let builder = kube::client::ClientBuilder::try_from(config).expect("kube client");
    // A diagnostic, off by default: at most this many requests in flight, so at most this many
    // pooled connections besides the watches, to tell the memory of the connection pool apart from
    // the memory per config.
    let client = match env_or::<usize>(CLIENT_REQUESTS, 0) {
        0 => builder.build(),
        n => builder
            .with_layer(&tower::limit::ConcurrencyLimitLayer::new(n))
            .build(),
    };
    let ctx = Arc::new(Context::new(client, reconcile::reporter()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // The baseline: runtime, client and context exist; the controller has not started.
    println!("{}", memory_report(&ctx));
    let run = tokio::spawn(reconcile::run(ctx.clone(), None, async {
        let _ = stop_rx.await;
    }));
    // The driver's requests, read on a thread of their own: stdin is blocking.
    let (tx, mut requests) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = requests.recv().await {
        match line.trim() {
            "report" => println!("{}", memory_report(&ctx)),
            _ => break,
        }
    }
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), run).await;
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------- driver process

/// The controller process; killed if the driver fails before stopping it.
struct Controller {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Controller {
    fn start(url: &str) -> Self {
        let mut child = std::process::Command::new(std::env::current_exe().expect("own path"))
            .env(ROLE, "controller")
            .env(API_URL, url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the controller process");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// The next report. The controller answers at once, without calling the API server, so a
    /// blocking read never holds up the fake for long.
    fn read(&mut self) -> Value {
        let line = self
            .stdout
            .next()
            .expect("controller exited")
            .expect("controller output");
        serde_json::from_str(&line).expect("controller report is JSON")
    }

    fn report(&mut self) -> Value {
        writeln!(self.stdin, "report").expect("ask the controller");
        self.read()
    }

    /// Asks the controller to stop, as SIGTERM would, and waits up to 30 s for it.
    async fn stop(mut self) {
        let _ = writeln!(self.stdin, "stop");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

struct Measured {
    configs: usize,
    unrelated: usize,
    ready_after: Option<Duration>,
    settled_after: Duration,
    connections: u64,
    baseline: Value,
    settled: Value,
    after_quiet: Value,
    until_settled: Requests,
    quiet: Requests,
}

fn mib(v: &Value) -> f64 {
    v.as_u64().unwrap_or(0) as f64 / (1024.0 * 1024.0)
}

fn reconciles(report: &Value) -> u64 {
    report["reconciles"].as_u64().unwrap_or(0)
}

/// Waits until the controller has gone `SETTLE` without a reconcile and the fake without a write:
/// the reconciles that the operator's own writes set off have run. On a loaded machine a second
/// without either can happen in the middle of a backlog, hence several.
async fn settle(api: &FakeApi, controller: &mut Controller, timeout: Duration) -> Value {
    const SETTLE: Duration = Duration::from_secs(5);
    let started = Instant::now();
    let mut last = (u64::MAX, u64::MAX);
    let mut since = Instant::now();
    loop {
        let report = controller.report();
        let now = (reconciles(&report), api.requests().writes());
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= SETTLE || started.elapsed() > timeout {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn measure(configs: usize, unrelated: usize, quiet: Duration, timeout: Duration) -> Measured {
    let api = FakeApi::default();
    api.record_calls(false);
    let loaded = Instant::now();
    scale::load(&api, configs, unrelated);
    eprintln!(
        "loaded {configs} configs and {unrelated} unrelated Secrets in {:.1} s",
        loaded.elapsed().as_secs_f64()
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let server = tokio::spawn(api.clone().serve(listener));
    let _ = api.take_requests();

    let mut controller = Controller::start(&url);
    let baseline = controller.read();
    let started = Instant::now();
    let mut ready_after = None;
    while started.elapsed() < timeout {
        if scale::ready(&api, configs) == configs {
            ready_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if ready_after.is_none() {
        eprintln!(
            "only {} of {configs} configs Ready after {timeout:?}",
            scale::ready(&api, configs)
        );
    }
    let settled = settle(&api, &mut controller, timeout).await;
    let settled_after = started.elapsed();
    let until_settled = api.take_requests();
    let connections = api.connections();

    // The steady state: a quiet half-window; then every watch ends and every source Secret is
    // annotated by someone else, so every config is reconciled again; then the other half.
    tokio::time::sleep(quiet / 2).await;
    api.close_watches();
    scale::touch_sources(&api, configs, "1");
    let touched = Instant::now();
    while touched.elapsed() < timeout
        && reconciles(&controller.report()) < reconciles(&settled) + configs as u64
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(quiet / 2).await;
    let quiet_requests = api.take_requests();
    let after_quiet = controller.report();
    controller.stop().await;
    server.abort();
    Measured {
        configs,
        unrelated,
        ready_after,
        settled_after,
        connections,
        baseline,
        settled,
        after_quiet,
        until_settled,
        quiet: quiet_requests,
    }
}

fn per(n: u64, configs: usize) -> String {
    if configs == 0 {
        "–".into()
    } else {
        format!("{:.2}", n as f64 / configs as f64)
    }
}

fn print(m: &Measured) {
    let n = m.configs;
    let heap_growth = m.after_quiet["heap"].as_u64().unwrap_or(0) as f64
        - m.baseline["heap"].as_u64().unwrap_or(0) as f64;
    let reads = m.until_settled.0.values().sum::<u64>() - m.until_settled.writes();
    println!(
        "| {n} | {} | {} | {:.1} s | {} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {} |",
        m.unrelated,
        m.ready_after
            .map_or("not Ready".into(), |d| format!("{:.1} s", d.as_secs_f64())),
        m.settled_after.as_secs_f64(),
        per(reconciles(&m.settled), n),
        per(m.until_settled.writes(), n),
        per(reads, n),
        heap_growth / (1024.0 * 1024.0),
        mib(&m.after_quiet["heap_peak"]),
        mib(&m.after_quiet["rss"]),
        m.quiet.writes(),
        reconciles(&m.after_quiet) - reconciles(&m.settled),
    );
    eprintln!(
        "  requests until settled: {}",
        m.until_settled.lines().join(", ")
    );
    eprintln!(
        "  HTTP connections the controller opened: {}",
        m.connections
    );
    eprintln!(
        "  requests in the quiet window: {}",
        m.quiet.lines().join(", ")
    );
    eprintln!(
        "  controller: baseline {}, settled {}, after the quiet window {}",
        m.baseline, m.settled, m.after_quiet
    );
}

async fn driver() -> ExitCode {
    let loads =
        std::env::var("SCALE_LOADS").unwrap_or_else(|_| "0x10000,1000x10000,1000x20000".into());
    let quiet = Duration::from_secs(env_or("SCALE_QUIET_SECS", 10));
    let timeout = Duration::from_secs(env_or("SCALE_TIMEOUT_SECS", 600));
    println!(
        "| configs | unrelated Secrets | all Ready after | settled after | reconciles/config | writes/config | reads/config | controller heap growth MiB | heap peak MiB | RSS MiB | writes in quiet window | reconciles in quiet window |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut ok = true;
    for load in loads.split(',').map(str::trim).filter(|l| !l.is_empty()) {
        let Some((configs, unrelated)) = load
            .split_once('x')
            .and_then(|(c, u)| Some((c.parse().ok()?, u.parse().ok()?)))
        else {
            eprintln!("bad load {load:?}: want CONFIGSxUNRELATED");
            return ExitCode::FAILURE;
        };
        let m = measure(configs, unrelated, quiet, timeout).await;
        print(&m);
        ok &= m.ready_after.is_some() && m.quiet.writes() == 0;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
