//! The operator at scale, small enough for CI: 50 `LiveKitConfig`s with their source Secrets among
//! 500 unrelated Secrets in ten namespaces, driven by the real controller against the fake API
//! server. The 1,000-config figure is `operator/benches/scale.rs` (BENCHMARKS.md). Counts, never
//! timing: every config Ready, the writes each config costs, and none in the steady state.

use livekit_operator_testkit as common;

use common::fake_api::FakeApi;
use common::scale;
use livekit_operator::reconcile::{self, Context};
use std::sync::Arc;
use std::time::Duration;

const CONFIGS: usize = 50;
const UNRELATED: usize = 500;
/// Below the number of configs, so the bound has something to hold back.
const CONCURRENCY: u16 = 4;

/// Polls `done` until it holds; a guard against a hang, not a timing assertion.
async fn wait_for(what: &str, api: &FakeApi, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never happened; requests: {:?}",
            api.requests().lines()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until neither the reconcile count nor the writes have moved for 300 ms: the reconciles
/// that the operator's own writes set off have run.
async fn settle(api: &FakeApi, ctx: &Context) {
    let mut last = (u64::MAX, u64::MAX);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let now = (reconciles(ctx), api.requests().writes());
        if now == last {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "never settled");
        last = now;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The reconciles counted by the operator's metrics.
fn reconciles(ctx: &Context) -> u64 {
    let text = ctx.metrics.render();
    text.lines()
        .filter(|l| l.starts_with("livekit_operator_reconciles_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_configs_among_unrelated_secrets_get_ready_and_then_write_nothing() {
    let api = FakeApi::default();
    scale::load(&api, CONFIGS, UNRELATED);
    let _ = api.take_requests();
    let _ = api.take_calls();
    let ctx =
        Arc::new(Context::new(api.client(), reconcile::reporter()).with_concurrency(CONCURRENCY));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(reconcile::run(ctx.clone(), None, async {
        let _ = stopped.await;
    }));

    wait_for("every config Ready", &api, || {
        scale::ready(&api, CONFIGS) == CONFIGS
    })
    .await;
    settle(&api, &ctx).await;
    let first = api.take_requests();
    let n = CONFIGS as u64;
    // What one config costs, derived from what the operator must do once: label its source Secret
    // (a merge patch), create its own Secret empty (create-only, so two writers never both win) and
    // apply it (server-side apply with the created resourceVersion as precondition): 1 Secret
    // create and 2 Secret patches; apply its ConfigMap; record one `Created` Event; write its
    // status once (Ready). Those decisions are taken on objects read from the API server (the
    // status too, when the controller's cache has not yet seen the operator's own status write),
    // so whatever the order in which the watches deliver the events of those writes, each happens
    // once.
    let lines = first.lines();
    assert_eq!(first.get("create", "secrets"), n, "{lines:?}");
    assert_eq!(first.get("patch", "secrets"), 2 * n, "{lines:?}");
    assert_eq!(first.get("patch", "configmaps"), n, "{lines:?}");
    assert_eq!(first.get("create", "events"), n, "{lines:?}");
    assert_eq!(first.get("patch", "livekitconfigs/status"), n, "{lines:?}");
    assert_eq!(first.writes(), 6 * n, "{lines:?}");
    // The controller's concurrency bound holds: never more reconciles at once than it allows.
    let peak = ctx.metrics.in_flight_peak();
    assert!(
        (1..=i64::from(CONCURRENCY)).contains(&peak),
        "{peak} reconciles at once"
    );
    // Reads name only what a config points at, never an unrelated Secret; the lists and watches of
    // Secrets are label-selected, so those never reach the operator either.
    let calls = api.take_calls();
    let unrelated: Vec<String> = calls
        .iter()
        .filter(|c| c.path.contains("/secrets/unrelated-"))
        .map(|c| format!("{} {}", c.method, c.path))
        .collect();
    assert_eq!(unrelated, Vec::<String>::new());
    // Lists and watches, that is: the POSTs to that path are the owned Secrets' creates.
    for c in calls
        .iter()
        .filter(|c| c.method == http::Method::GET && c.path.ends_with("/secrets"))
    {
        assert!(
            c.param("labelSelector").is_some(),
            "{} {}",
            c.method,
            c.query
        );
    }

    // The steady state: every watch ends (as an API server ends them) and every source Secret is
    // annotated by someone else, so every config is reconciled again. None may write.
    let before = reconciles(&ctx);
    assert!(before >= n, "{before} reconciles");
    api.close_watches();
    scale::touch_sources(&api, CONFIGS, "1");
    wait_for("a reconcile of every config", &api, || {
        reconciles(&ctx) >= before + n
    })
    .await;
    settle(&api, &ctx).await;
    let steady = api.take_requests();
    assert_eq!(steady.writes(), 0, "{:?}", steady.lines());
    assert_eq!(scale::ready(&api, CONFIGS), CONFIGS);

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the controller stops")
        .expect("the controller task");
}
