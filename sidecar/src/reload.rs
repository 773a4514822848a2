//! Hot reload. The kubelet updates a projected volume by writing a new timestamped directory and
//! swapping the `..data` symlink atomically, so the sidecar watches the directory (not single files),
//! debounces bursts of events, re-checks on a slow timer in case an event was missed, and reloads on
//! SIGHUP. A reload builds a complete snapshot and swaps it in, or keeps the last good one.

use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;
use crate::config::{self, Snapshot, fingerprint};
use crate::state::AppState;

/// Events closer together than this are handled as one change.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// Why a reload was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A file event or the timer: reload only if the files changed.
    Check,
    /// SIGHUP: reload whatever the files say.
    Force,
}

/// Loads the configured source again and swaps the result in; returns whether a new snapshot is live.
pub fn reload(state: &AppState, args: &ServeArgs) -> bool {
    let current = state.snapshot();
    let result = config::load(&args.config_source())
        .and_then(|input| Snapshot::build(input, Some(current.as_ref())));
    match result {
        Ok(snapshot) => {
            let api_key = snapshot
                .service
                .as_ref()
                .map(|s| s.signer.api_key().to_owned());
            state.replace(snapshot);
            state.metrics().record_reload(true);
            tracing::info!(api_key = ?api_key, "configuration reloaded");
            true
        }
        Err(error) => {
            state.metrics().record_reload(false);
            tracing::warn!(%error, "configuration reload failed; keeping the last good configuration");
            false
        }
    }
}

/// Starts the watcher, the timer and the SIGHUP handler; they stop with `shutdown`.
pub fn spawn(
    state: AppState,
    args: ServeArgs,
    check_interval: Duration,
    shutdown: CancellationToken,
) {
    let (tx, mut rx) = mpsc::channel::<Trigger>(16);

    // Keep the watcher alive as long as the task runs.
    let watched = args.config_dir.as_ref().filter(|_| args.watch_config_dir);
    let watcher = watched.and_then(|dir| {
        let tx = tx.clone();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                let _ = tx.try_send(Trigger::Check);
            }
        })
        .map_err(|error| tracing::warn!(%error, "cannot watch the config directory; relying on the timer"))
        .ok()?;
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|error| tracing::warn!(%error, "cannot watch the config directory; relying on the timer"))
            .ok()?;
        Some(watcher)
    });

    #[cfg(unix)]
    {
        let tx = tx.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                tracing::warn!("cannot install a SIGHUP handler");
                return;
            };
            loop {
                tokio::select! {
                    _ = hup.recv() => { let _ = tx.send(Trigger::Force).await; }
                    _ = shutdown.cancelled() => return,
                }
            }
        });
    }

    tokio::spawn(async move {
        let _watcher = watcher;
        // What the live snapshot was loaded from; a failed load is remembered so it is reported once.
        let mut last_failed = None;
        let mut timer = tokio::time::interval(check_interval.max(Duration::from_secs(1)));
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        timer.tick().await;
        loop {
            let mut trigger = tokio::select! {
                Some(trigger) = rx.recv() => trigger,
                _ = timer.tick() => Trigger::Check,
                _ = shutdown.cancelled() => return,
            };
            // Debounce: a kubelet update is several events; take them as one.
            tokio::time::sleep(DEBOUNCE).await;
            while let Ok(more) = rx.try_recv() {
                if more == Trigger::Force {
                    trigger = Trigger::Force;
                }
            }
            let now = args.config_dir.as_deref().map(fingerprint);
            let live = state.snapshot().fingerprint;
            if trigger == Trigger::Check && (now == live || now == last_failed) {
                continue;
            }
            last_failed = if reload(&state, &args) { None } else { now };
        }
    });
}
