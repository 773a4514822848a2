//! The reconciler: reads inputs, applies the desired objects (server-side apply, one field manager),
//! patches status and records Events. All decisions are in [`crate::desired`] and [`crate::status`].

pub use crate::backoff::Backoff;
pub use crate::context::{Context, DEFAULT_CONCURRENCY, reporter};
use crate::crd::{LiveKitConfig, LiveKitConfigStatus};
use crate::desired::{
    self, Desired, FIELD_MANAGER, Inputs, OWNED_SELECTOR, Problem, Reason, SOURCE_LABEL,
    SOURCE_SELECTOR, owned_name,
};
use crate::error::{Error, Result};
pub use crate::events::event;
use crate::events::{publish, rotation_events};
use crate::owned;
use crate::rotation::workload::HashKey;
use crate::rotation_io;
use crate::status::{self, Outcome};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use rand::Rng;
use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

/// How often an unchanged, healthy config is looked at again (drift repair without an event).
pub const RESYNC: Duration = Duration::from_secs(3600);

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
