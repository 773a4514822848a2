//! What every reconcile shares: the client, the Event recorder, backoff, metrics, and the clock and
//! generator that tests replace.

use crate::backoff::Backoff;
use crate::credentials::{self, ApiCredentials};
use crate::desired::FIELD_MANAGER;
use crate::metrics::Metrics;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use std::sync::Arc;

type Clock = dyn Fn() -> Timestamp + Send + Sync;
type Generator = dyn Fn() -> ApiCredentials + Send + Sync;

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub backoff: Backoff,
    pub metrics: Arc<Metrics>,
    clock: Box<Clock>,
    pub(crate) generator: Box<Generator>,
    /// Reconciles the controller runs at once (kube's default is unbounded: at start-up every
    /// config at once, each with its own connection to the API server).
    pub(crate) concurrency: u16,
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

    pub(crate) fn now(&self) -> Timestamp {
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
