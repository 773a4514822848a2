//! The reconciler: reads inputs, applies the desired objects (server-side apply, one field manager),
//! patches status and records Events. All decisions are in [`crate::desired`] and [`crate::status`].

use crate::crd::{LiveKitConfig, LiveKitConfigStatus};
use crate::credentials::{self, ApiCredentials};
use crate::desired::{
    self, Desired, FIELD_MANAGER, Inputs, OWNED_SELECTOR, Problem, Reason, SOURCE_LABEL,
    SOURCE_SELECTOR, owned_name,
};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::owned;
use crate::rotation::workload::HashKey;
use crate::rotation::{self, Phase};
use crate::rotation_io;
use crate::status::{self, Outcome};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use rand::Rng;
use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{debug, info, warn};

/// Event reasons and actions recorded by the reconciler, besides the `Ready` problem reasons
/// ([`Reason`]) and the rotation phases, which carry their own names.
pub mod event {
    /// Reason: the owned objects were created.
    pub const CREATED: &str = "Created";
    /// Reason: the owned objects were brought up to date.
    pub const UPDATED: &str = "Updated";
    /// Reason: the workload was restarted to load a new `keys.yaml`.
    pub const RESTARTED: &str = "Restarted";
    /// Action: a reconcile that found a problem.
    pub const RECONCILE: &str = "Reconcile";
    /// Action: applying the owned objects.
    pub const APPLY: &str = "Apply";
    /// Action: a rotation step.
    pub const ROTATE: &str = "Rotate";
}

/// How often an unchanged, healthy config is looked at again (drift repair without an event).
pub const RESYNC: Duration = Duration::from_secs(3600);

/// Per-object exponential backoff with jitter. kube-runtime's controller has none per object.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    /// Consecutive failures and when the last one happened, per object.
    failures: Mutex<HashMap<ObjectRef<LiveKitConfig>, (u32, std::time::Instant)>>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_secs(5), Duration::from_secs(300))
    }
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::default(),
        }
    }

    /// The delay after the `attempt`-th consecutive failure (1-based), before jitter: base·2^(n-1),
    /// capped at max.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// "Equal jitter": half the ceiling plus a random part of the other half, so retries of many
    /// objects spread out but never come sooner than half the ceiling.
    pub fn with_jitter(ceiling: Duration, unit: f64) -> Duration {
        let half = ceiling / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// Records a failure of `obj` and returns how long to wait. Entries whose last failure is more
    /// than twice the longest delay old are dropped: their object was deleted (no success will
    /// reset them) or has long been retried, so the map stays as large as the set of failing objects.
    pub fn next(&self, obj: &ObjectRef<LiveKitConfig>) -> Duration {
        let now = std::time::Instant::now();
        let attempt = {
            let mut map = self.failures.lock().expect("backoff lock");
            let stale = self.max.saturating_mul(2);
            map.retain(|_, (_, at)| now.duration_since(*at) <= stale);
            let e = map.entry(obj.clone()).or_insert((0, now));
            e.0 = e.0.saturating_add(1);
            e.1 = now;
            e.0
        };
        Self::with_jitter(self.ceiling(attempt), rand::rng().random())
    }

    /// Forgets the failures of `obj` after a success.
    pub fn reset(&self, obj: &ObjectRef<LiveKitConfig>) {
        self.failures.lock().expect("backoff lock").remove(obj);
    }

    /// Consecutive failures recorded for `obj`.
    pub fn failures(&self, obj: &ObjectRef<LiveKitConfig>) -> u32 {
        self.failures
            .lock()
            .expect("backoff lock")
            .get(obj)
            .map_or(0, |e| e.0)
    }

    /// How many objects have failures recorded.
    pub fn tracked(&self) -> usize {
        self.failures.lock().expect("backoff lock").len()
    }
}

type Clock = dyn Fn() -> Timestamp + Send + Sync;
type Generator = dyn Fn() -> ApiCredentials + Send + Sync;

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub backoff: Backoff,
    pub metrics: Arc<Metrics>,
    clock: Box<Clock>,
    generator: Box<Generator>,
    /// Reconciles the controller runs at once (kube's default is unbounded: at start-up every
    /// config at once, each with its own connection to the API server).
    concurrency: u16,
}

/// Reconciles run at once unless `--max-concurrent-reconciles` says otherwise. Each reconcile is a
/// handful of API calls; a bound keeps the start-up burst (every config at once) from opening a
/// connection per config to the API server and holding them all in memory.
pub const DEFAULT_CONCURRENCY: u16 = 8;

impl Context {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            backoff: Backoff::default(),
            metrics: Arc::new(Metrics::new()),
            clock: Box::new(Timestamp::now),
            generator: Box::new(|| credentials::generate(&mut rand::rng())),
            concurrency: DEFAULT_CONCURRENCY,
        }
    }

    /// A context with a fixed or test-controlled clock and backoff.
    pub fn with_clock(
        client: Client,
        reporter: Reporter,
        backoff: Backoff,
        clock: impl Fn() -> Timestamp + Send + Sync + 'static,
    ) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            backoff,
            metrics: Arc::new(Metrics::new()),
            clock: Box::new(clock),
            generator: Box::new(|| credentials::generate(&mut rand::rng())),
            concurrency: DEFAULT_CONCURRENCY,
        }
    }

    /// The same context drawing generated credentials from `generator` (a seeded one in tests).
    pub fn with_generator(
        mut self,
        generator: impl Fn() -> ApiCredentials + Send + Sync + 'static,
    ) -> Self {
        self.generator = Box::new(generator);
        self
    }

    /// The same context running at most `concurrency` reconciles at once (at least one).
    pub fn with_concurrency(mut self, concurrency: u16) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    fn now(&self) -> Timestamp {
        (self.clock)()
    }
}

/// The default Event reporter.
pub fn reporter() -> Reporter {
    Reporter {
        controller: FIELD_MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    }
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

async fn get_opt_secret(api: &Api<Secret>, name: &str) -> Result<Option<Secret>> {
    Ok(api.get_opt(name).await?)
}

/// The field manager of the source-Secret label. It must not be [`FIELD_MANAGER`]: a label-only
/// apply under the owned objects' manager would remove every field that manager applied before.
pub const SOURCE_LABEL_MANAGER: &str = "livekit-operator-source-label";

/// Reads a source Secret and makes sure it carries the label the source watch selects on. The
/// label is a merge patch under its own field manager, so it never strips fields and never creates
/// a Secret that vanished in between (a merge patch of a missing object is a 404). A Secret this
/// operator writes is never labelled: it is refused as a source.
async fn read_source(api: &Api<Secret>, name: &str) -> Result<Option<Secret>> {
    let Some(secret) = get_opt_secret(api, name).await? else {
        return Ok(None);
    };
    let labelled = secret.labels().get(SOURCE_LABEL).map(String::as_str) == Some("true");
    if !labelled && !desired::operator_owned(&secret) {
        let patch = serde_json::json!({"metadata": {"labels": {SOURCE_LABEL: "true"}}});
        let params = PatchParams {
            field_manager: Some(SOURCE_LABEL_MANAGER.into()),
            ..PatchParams::default()
        };
        if let Err(e) = api.patch(name, &params, &Patch::Merge(&patch)).await {
            // Not fatal: the Secret is read on every reconcile; only the instant pick-up is lost.
            warn!(secret = name, error = %e, "could not label source Secret");
        }
    }
    Ok(Some(secret))
}

async fn publish(
    ctx: &Context,
    config: &LiveKitConfig,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &config.object_ref(&())).await {
        warn!(error = %e, reason, "could not publish Event");
    }
}

async fn patch_status(
    api: &Api<LiveKitConfig>,
    config: &LiveKitConfig,
    status: &crate::LiveKitConfigStatus,
) -> Result<()> {
    let body = serde_json::json!({
        "apiVersion": LiveKitConfig::api_version(&()),
        "kind": LiveKitConfig::kind(&()),
        "status": status,
    });
    api.patch_status(&config.name_any(), &apply_params(), &Patch::Apply(&body))
        .await?;
    Ok(())
}

/// The config with the status the API server holds now, and the status `decide` wants for it.
///
/// The controller hands a reconcile the config from its watch cache, which may not yet have seen
/// this operator's own last status write (the watch event is still on its way when the next
/// reconcile starts). Deciding on that stale status writes the status again, with a new
/// `lastTransitionTime`, which sets off yet another reconcile, and repeats the phase Events. So
/// when the cached status differs from the one to write, the status is read again from the API
/// server and the decision taken on that; when they agree (the steady state), nothing is read.
async fn current_status<'a>(
    api: &Api<LiveKitConfig>,
    config: &'a LiveKitConfig,
    decide: impl Fn(&LiveKitConfig) -> LiveKitConfigStatus,
) -> Result<(Cow<'a, LiveKitConfig>, LiveKitConfigStatus)> {
    let wanted = decide(config);
    if config.status.as_ref() == Some(&wanted) {
        return Ok((Cow::Borrowed(config), wanted));
    }
    let fresh = api.get_status(&config.name_any()).await?;
    if fresh.uid() != config.uid() {
        // Deleted and created again under the same name: the next reconcile is about that one.
        return Ok((Cow::Borrowed(config), wanted));
    }
    let mut current = config.clone();
    current.status = fresh.status;
    let wanted = decide(&current);
    Ok((Cow::Owned(current), wanted))
}

/// Reconciles one config and counts it in the metrics.
pub async fn reconcile(config: Arc<LiveKitConfig>, ctx: Arc<Context>) -> Result<Action> {
    let started = std::time::Instant::now();
    let in_flight = ctx.metrics.reconcile_started();
    let result = reconcile_config(config, ctx.clone()).await;
    drop(in_flight);
    ctx.metrics
        .observe_reconcile(result.is_ok(), started.elapsed());
    result
}

fn record_ready(ctx: &Context, config: &LiveKitConfig, new_status: &LiveKitConfigStatus) {
    let ready = status::ready(Some(new_status)).is_some_and(|c| c.status == "True");
    ctx.metrics.set_ready(
        &config.namespace().unwrap_or_default(),
        &config.name_any(),
        ready,
    );
}

/// The namespaced API handles of one reconcile, built once and passed as one.
struct Apis {
    configs: Api<LiveKitConfig>,
    secrets: Api<Secret>,
    config_maps: Api<ConfigMap>,
}

impl Apis {
    fn namespaced(client: &Client, ns: &str) -> Self {
        Self {
            configs: Api::namespaced(client.clone(), ns),
            secrets: Api::namespaced(client.clone(), ns),
            config_maps: Api::namespaced(client.clone(), ns),
        }
    }
}

async fn reconcile_config(config: Arc<LiveKitConfig>, ctx: Arc<Context>) -> Result<Action> {
    let name = config.name_any();
    let ns = config
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(name.clone()))?;
    let oref = ObjectRef::from_obj(config.as_ref());
    let apis = Apis::namespaced(&ctx.client, &ns);
    let object_name = owned_name(&name);
    let now = ctx.now();

    // Read.
    let spec = &config.spec;
    let credentials_source = match &spec.credentials.secret_ref {
        Some(r) => read_source(&apis.secrets, &r.name).await?,
        None => None,
    };
    let auth_source = match &spec.auth.secret_ref {
        Some(r) if Some(&r.name) == spec.credentials.secret_ref.as_ref().map(|c| &c.name) => {
            credentials_source.clone()
        }
        Some(r) => read_source(&apis.secrets, &r.name).await?,
        None => None,
    };
    let existing_secret = get_opt_secret(&apis.secrets, &object_name).await?;
    let existing_config_map = apis.config_maps.get_opt(&object_name).await?;
    // An object of that name this config does not control is never read as ours nor written.
    if let Err(problem) = owned::check(
        &config,
        existing_secret.as_ref(),
        existing_config_map.as_ref(),
    ) {
        return not_ready(&ctx, &config, &apis, problem).await;
    }
    let observed =
        rotation_io::observe(&ctx.client, &config, existing_secret.as_ref(), now).await?;
    let mut inputs = Inputs {
        credentials_source,
        auth_source,
        existing_secret,
        fresh_credentials: (ctx.generator)(),
        fresh_hash_key: HashKey::generate(&mut rand::rng()),
        observation: observed.observation.clone(),
        now,
    };

    // Decide.
    let desired = match rotation_io::decide(&config, &mut inputs).await {
        Ok(d) => d,
        Err(problem) => return not_ready(&ctx, &config, &apis, problem).await,
    };

    // Apply what differs.
    apply_owned(
        &ctx,
        &config,
        &apis,
        &desired,
        &inputs,
        existing_config_map.as_ref(),
    )
    .await?;
    // Only after the Secret holds the new keys.yaml: restarted pods must read it.
    if rotation_io::restart_if_needed(&ctx.client, &config, observed.workload.as_ref(), &desired)
        .await?
    {
        publish(
            &ctx,
            &config,
            EventType::Normal,
            event::RESTARTED,
            event::ROTATE,
            format!(
                "restarted livekit-server to load keys.yaml {}",
                desired.keys_hash
            ),
        )
        .await;
    }

    let (config, new_status) = current_status(&apis.configs, &config, |c| {
        status::desired_status(c, Outcome::Applied(&desired), now)
    })
    .await?;
    record_ready(&ctx, &config, &new_status);
    // Events follow the difference between the recorded status and the Secret, so a crash between
    // the Secret write and the status write still announces every phase on the next reconcile.
    rotation_events(&ctx, &config, &desired).await;
    if config.status.as_ref() != Some(&new_status) {
        patch_status(&apis.configs, &config, &new_status).await?;
    }
    ctx.backoff.reset(&oref);

    let requeue = desired
        .requeue_at()
        .map(|at| {
            let secs = (at.as_second() - now.as_second()).max(0) as u64 + 1;
            Duration::from_secs(secs).min(RESYNC)
        })
        .unwrap_or(RESYNC);
    Ok(Action::requeue(requeue))
}

/// Reports `problem` (Ready=False in status, a Warning Event when the reason or message is new) and
/// says when to look again: a spec the API server let through but the operator cannot use waits
/// for a change; anything else may be fixed outside the config and is retried with backoff.
async fn not_ready(
    ctx: &Context,
    config: &LiveKitConfig,
    apis: &Apis,
    problem: Problem,
) -> Result<Action> {
    let oref = ObjectRef::from_obj(config);
    let now = ctx.now();
    let (config, new_status) = current_status(&apis.configs, config, |c| {
        status::desired_status(c, Outcome::Failed(&problem), now)
    })
    .await?;
    let config = config.as_ref();
    let old_ready = status::ready(config.status.as_ref()).cloned();
    record_ready(ctx, config, &new_status);
    if config.status.as_ref() != Some(&new_status) {
        patch_status(&apis.configs, config, &new_status).await?;
    }
    let ready_changed = old_ready
        .as_ref()
        .is_none_or(|c| c.reason != problem.reason.as_str() || c.message != problem.message);
    if ready_changed {
        publish(
            ctx,
            config,
            EventType::Warning,
            problem.reason.as_str(),
            event::RECONCILE,
            problem.message.clone(),
        )
        .await;
    }
    info!(config = %oref, reason = %problem.reason, "not ready: {}", problem.message);
    Ok(match problem.reason {
        Reason::InvalidSpec => {
            ctx.backoff.reset(&oref);
            Action::await_change()
        }
        _ => Action::requeue(ctx.backoff.next(&oref)),
    })
}

/// Whether the API server refused a write because another writer got there first: a create of an
/// object that exists, or a resourceVersion precondition that no longer holds.
fn lost_race(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Creates the owned Secret empty but for its labels and type, and only if it does not exist (a
/// create is refused with 409 when it does): of two writers that both read "no Secret" (an old
/// leader and a new one), exactly one gets here, and the other re-reads and resumes. The labels
/// and type this create owns (as an `Update`) are never removed later, so they need not be the
/// apply's alone; everything else is written by the apply that follows, with a precondition.
async fn claim_secret(api: &Api<Secret>, desired: &Secret) -> kube::Result<Secret> {
    let claim = Secret {
        metadata: ObjectMeta {
            name: desired.metadata.name.clone(),
            namespace: desired.metadata.namespace.clone(),
            labels: desired.metadata.labels.clone(),
            ..ObjectMeta::default()
        },
        type_: desired.type_.clone(),
        ..Secret::default()
    };
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    api.create(&params, &claim).await
}

/// Applies the owned Secret with `metadata.resourceVersion` set to the version it was derived from
/// (the one read, or the claim): generated credentials and rotation records are decided from that
/// version, so if anyone wrote the Secret since, the API server answers 409 and nothing is
/// overwritten; the next reconcile decides again from what is there.
async fn apply_secret(
    api: &Api<Secret>,
    existing: Option<&Secret>,
    desired: &Secret,
) -> Result<()> {
    let base = match existing {
        Some(s) => s.resource_version(),
        None => claim_secret(api, desired)
            .await
            .map_err(|e| precondition_error(e, "creating"))?
            .resource_version(),
    };
    let mut secret = desired.clone();
    secret.metadata.resource_version = base;
    api.patch(&secret.name_any(), &apply_params(), &Patch::Apply(&secret))
        .await
        .map_err(|e| precondition_error(e, "applying"))?;
    Ok(())
}

/// A lost race is logged as such; every error is returned for the caller to report or retry.
fn precondition_error(e: kube::Error, what: &str) -> Error {
    if lost_race(&e) {
        info!(error = %e, "another writer changed the owned Secret first while {what} it; re-reading");
    }
    Error::Kube(e)
}

async fn apply_owned(
    ctx: &Context,
    config: &LiveKitConfig,
    apis: &Apis,
    desired: &Desired,
    inputs: &Inputs,
    existing_config_map: Option<&ConfigMap>,
) -> Result<()> {
    let object_name = owned_name(&config.name_any());
    let existing_secret = inputs.existing_secret.as_ref();
    let mut changes = Vec::new();
    if !owned::secret_up_to_date(existing_secret, &desired.secret) {
        match apply_secret(&apis.secrets, existing_secret, &desired.secret).await {
            Ok(()) => {}
            // Not a failure to report: the next reconcile starts from the other writer's result.
            Err(Error::Kube(e)) if lost_race(&e) => return Err(Error::Kube(e)),
            Err(Error::Kube(e)) => {
                return Err(apply_failed(ctx, config, &apis.configs, "Secret", e).await);
            }
            Err(e) => return Err(e),
        }
        changes.push(if existing_secret.is_some() {
            "Secret updated"
        } else {
            "Secret created"
        });
    }
    if !owned::config_map_up_to_date(existing_config_map, &desired.config_map) {
        let res = apis
            .config_maps
            .patch(
                &object_name,
                &apply_params(),
                &Patch::Apply(&desired.config_map),
            )
            .await;
        if let Err(e) = res {
            return Err(apply_failed(ctx, config, &apis.configs, "ConfigMap", e).await);
        }
        changes.push(if existing_config_map.is_some() {
            "ConfigMap updated"
        } else {
            "ConfigMap created"
        });
    }
    if !changes.is_empty() {
        let created = existing_secret.is_none() && existing_config_map.is_none();
        let reason = if created {
            event::CREATED
        } else {
            event::UPDATED
        };
        publish(
            ctx,
            config,
            EventType::Normal,
            reason,
            event::APPLY,
            format!(
                "{} {object_name} (config hash {})",
                changes.join(", "),
                desired.config_hash
            ),
        )
        .await;
        info!(config = %object_name, changes = ?changes, "applied");
    } else {
        debug!(config = %object_name, "owned objects up to date");
    }
    Ok(())
}

/// One Event per rotation phase entered since the status was last written, and a Warning when a
/// new key misses its acceptance deadline.
async fn rotation_events(ctx: &Context, config: &LiveKitConfig, desired: &Desired) {
    let old = config.status.clone().unwrap_or_default();
    let state = &desired.keys.state;
    let old_phase = old.rotation_phase.as_deref().and_then(Phase::parse);
    let pending = state.pending.as_ref().map(|p| p.creds.key.as_str());
    // A new rotation while the status still shows the previous one's Published: announce it again.
    let restarted = old_phase == Some(Phase::Published)
        && state.phase == Some(Phase::Published)
        && old.pending_api_key.as_deref() != pending;
    let mut entered = Phase::entered(old_phase, state.phase);
    if restarted {
        entered = vec![Phase::Published];
    }
    let signing = &desired.keys.signing().key;
    let policy = desired::policy(&config.spec);
    let chosen = state
        .pending
        .as_ref()
        .and_then(|p| rotation::chosen_note(&policy, p));
    for phase in entered {
        let note = match phase {
            Phase::Published => format!(
                "new API key {} is in keys.yaml; the sidecar keeps signing with {signing} until LiveKit accepts it{}",
                pending.unwrap_or(""),
                chosen.as_ref().map_or(String::new(), |n| format!("; {n}"))
            ),
            Phase::Accepted => format!("LiveKit accepts the new API key {}", pending.unwrap_or("")),
            Phase::Active => format!(
                "the sidecar signs with {signing}; earlier keys stay in keys.yaml for their grace period"
            ),
            Phase::Retired => format!("earlier keys left keys.yaml; only {signing} remains"),
        };
        publish(
            ctx,
            config,
            EventType::Normal,
            phase.as_str(),
            event::ROTATE,
            note,
        )
        .await;
    }
    let was_stuck = status::condition(Some(&old), status::ROTATING)
        .is_some_and(|c| c.reason == rotation::REASON_DEADLINE);
    let c = &desired.keys.condition;
    if c.reason == rotation::REASON_DEADLINE && !was_stuck {
        publish(
            ctx,
            config,
            EventType::Warning,
            rotation::REASON_DEADLINE,
            event::ROTATE,
            c.message.clone(),
        )
        .await;
    }
}

async fn apply_failed(
    ctx: &Context,
    config: &LiveKitConfig,
    configs: &Api<LiveKitConfig>,
    what: &str,
    e: kube::Error,
) -> Error {
    let problem = Problem::new(
        Reason::ApplyFailed,
        format!("applying the {what} failed: {e}"),
    );
    let new_status = status::desired_status(config, Outcome::Failed(&problem), ctx.now());
    record_ready(ctx, config, &new_status);
    if config.status.as_ref() != Some(&new_status) {
        if let Err(e) = patch_status(configs, config, &new_status).await {
            warn!(error = %e, "could not report ApplyFailed in status");
        }
        publish(
            ctx,
            config,
            EventType::Warning,
            Reason::ApplyFailed.as_str(),
            event::APPLY,
            problem.message,
        )
        .await;
    }
    Error::Kube(e)
}

/// Retries failed reconciles with per-object exponential backoff and jitter; permanent errors wait
/// for a change of the object.
pub fn error_policy(config: Arc<LiveKitConfig>, error: &Error, ctx: Arc<Context>) -> Action {
    match retry_delay(&config, error, &ctx) {
        Some(delay) => Action::requeue(delay),
        None => Action::await_change(),
    }
}

/// The delay before retrying `config` after `error`, or `None` when retrying cannot help.
pub fn retry_delay(config: &LiveKitConfig, error: &Error, ctx: &Context) -> Option<Duration> {
    let oref = ObjectRef::from_obj(config);
    if !error.is_transient() {
        if let Error::Kube(_) = error {
            // A refused call (RBAC, admission) may be fixed without a change to the config:
            // look again, slowly.
            let delay = Backoff::with_jitter(ctx.backoff.max, rand::rng().random());
            warn!(config = %oref, %error, retry_in = ?delay, "reconcile refused by the API server");
            return Some(delay);
        }
        warn!(config = %oref, %error, "reconcile failed permanently");
        return None;
    }
    let delay = ctx.backoff.next(&oref);
    warn!(config = %oref, %error, retry_in = ?delay, "reconcile failed");
    Some(delay)
}

/// Runs the controller until `shutdown` resolves; reconciles in flight finish first.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let configs: Api<LiveKitConfig> = scoped(&client, namespace.as_deref());
    let controller = Controller::new(configs, watcher::Config::default())
        .with_config(controller::Config::default().concurrency(ctx.concurrency));
    let store = controller.store();
    ctx.metrics.set_store(store.clone());
    controller
        // Label-selected watches only: never every Secret of the cluster. All three are
        // metadata-only (`.owns` is, and the Secret watches ask for `PartialObjectMetadata`): a
        // watch only says which config to reconcile, and Secret data must not stream through this
        // process nor sit in its watch caches. The reconciler GETs the Secrets it reads. The owned
        // Secret is mapped back by its config label, not its ownerReference: with
        // `deletionPolicy: Retain` it has none.
        .watches(
            scoped::<PartialObjectMeta<Secret>>(&client, namespace.as_deref()),
            watcher::Config::default().labels(OWNED_SELECTOR),
            |secret: PartialObjectMeta<Secret>| owned::config_of(&secret.metadata),
        )
        .owns(
            scoped::<ConfigMap>(&client, namespace.as_deref()),
            watcher::Config::default().labels(OWNED_SELECTOR),
        )
        .watches(
            scoped::<PartialObjectMeta<Secret>>(&client, namespace.as_deref()),
            watcher::Config::default().labels(SOURCE_SELECTOR),
            move |secret: PartialObjectMeta<Secret>| {
                let ns = secret.namespace().unwrap_or_default();
                let name = secret.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|c| desired::references_secret(c, &ns, &name))
                    .map(|c| ObjectRef::from_obj(c.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => debug!(config = %obj, "reconciled"),
                Err(e) => debug!(error = %e, "reconcile round failed"),
            }
        })
        .await;
    info!("controller stopped");
}

/// An API handle over one namespace, or all of them.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}
