//! The rotation state as the owned Secret records it, so that every step can be derived from what is
//! stored: `api-key`/`api-secret` (the signing pair), `keys.yaml` (every key LiveKit must accept, the
//! secrets of pending and retiring keys included) and these annotations.

use super::workload::HashKey;
use super::{Chosen, KeyState, Mode, Pending, Phase, Retiring};
use crate::credentials::ApiCredentials;
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;

/// Phase of the latest rotation.
pub const PHASE: &str = "livekit.kraken.dev/rotation-phase";
/// Key id of the key that is Published or Accepted (its secret is in `keys.yaml`).
pub const PENDING_KEY: &str = "livekit.kraken.dev/pending-key";
/// When the pending key was published (RFC 3339).
pub const PUBLISHED_AT: &str = "livekit.kraken.dev/pending-key-published-at";
/// Consecutive successful and failed server API checks of the pending key, and when the last check
/// ran: `<successes>/<failures>@<RFC 3339>`.
pub const CHECKS: &str = "livekit.kraken.dev/pending-key-checks";
/// Why the last server API check of the pending key failed (absent after a success).
pub const LAST_CHECK_ERROR: &str = "livekit.kraken.dev/pending-key-last-check-error";
/// Under an unset `verification.mode`, the mode chosen for the pending key at Publish.
pub const VERIFICATION: &str = "livekit.kraken.dev/pending-key-verification";
/// Why that mode was chosen.
pub const VERIFICATION_REASON: &str = "livekit.kraken.dev/pending-key-verification-reason";
/// JSON map of earlier key id to when it leaves `keys.yaml`.
pub const RETIRING: &str = "livekit.kraken.dev/retiring-keys";
/// The value of the config's rotate annotation last honoured.
pub const ROTATION_HANDLED: &str = "livekit.kraken.dev/rotation-handled";
/// The key of the workload restart hash ([`super::workload::keys_hash`]): random, made once per
/// config, so the hash in a pod template cannot be recomputed without this Secret.
pub const KEYS_HASH_KEY: &str = "livekit.kraken.dev/keys-hash-key";
/// Written by earlier versions (one previous key); read so an upgrade keeps its grace period.
pub const LEGACY_PREVIOUS_EXPIRES: &str = "livekit.kraken.dev/previous-key-expires-at";

/// Every annotation this module manages (one that is no longer wanted must be removed).
pub const ANNOTATIONS: [&str; 11] = [
    PHASE,
    PENDING_KEY,
    PUBLISHED_AT,
    CHECKS,
    LAST_CHECK_ERROR,
    VERIFICATION,
    VERIFICATION_REASON,
    RETIRING,
    ROTATION_HANDLED,
    KEYS_HASH_KEY,
    LEGACY_PREVIOUS_EXPIRES,
];

/// Reads the state from the owned Secret's string data and annotations. Anything unreadable reads as
/// absent, which is always safe: a lost pending key is published again (or, for a generated one
/// whose request was recorded, not rotated), and nothing is ever promoted without being recorded.
pub fn read(
    api_key: Option<String>,
    api_secret: Option<String>,
    keys_file: Option<&str>,
    annotations: &BTreeMap<String, String>,
) -> KeyState {
    let keys = keys_file
        .and_then(|t| livekit_contract::parse_keys_file(t).ok())
        .unwrap_or_default();
    // The signing secret must be one LiveKit accepts, and keys.yaml is what LiveKit loads: an
    // `api-secret` edited by hand is drift to repair, not a key to keep signing with. The one
    // legitimate difference is a new secret pending under the same key id.
    let same_id_pending = api_key.is_some() && annotations.get(PENDING_KEY) == api_key.as_ref();
    let signing = match (api_key, api_secret) {
        (Some(k), Some(s)) => {
            let s = match keys.get(&k) {
                Some(accepted) if !same_id_pending => accepted.clone(),
                _ => s,
            };
            Some(ApiCredentials::new(k, s))
        }
        _ => None,
    };
    let time = |name: &str| {
        annotations
            .get(name)
            .and_then(|v| v.parse::<Timestamp>().ok())
    };
    let phase = annotations.get(PHASE).and_then(|p| Phase::parse(p));

    let pending = annotations.get(PENDING_KEY).and_then(|key| {
        let secret = keys.get(key)?;
        let (checks, failures, last_check) = annotations
            .get(CHECKS)
            .and_then(|v| {
                let (counts, at) = v.split_once('@')?;
                let (ok, failed) = counts.split_once('/')?;
                Some((ok.parse().ok()?, failed.parse().ok()?, at.parse().ok()))
            })
            .unwrap_or((0, 0, None));
        Some(Pending {
            creds: ApiCredentials::new(key.clone(), secret.clone()),
            published_at: time(PUBLISHED_AT)?,
            accepted: phase == Some(Phase::Accepted),
            checks,
            failures,
            last_check,
            last_error: annotations.get(LAST_CHECK_ERROR).cloned(),
            chosen: annotations
                .get(VERIFICATION)
                .and_then(|m| Mode::parse(m))
                .map(|mode| Chosen {
                    mode,
                    why: annotations
                        .get(VERIFICATION_REASON)
                        .cloned()
                        .unwrap_or_default(),
                }),
        })
    });

    let mut expiries: BTreeMap<String, Timestamp> = annotations
        .get(RETIRING)
        .and_then(|v| serde_json::from_str::<BTreeMap<String, String>>(v).ok())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, at)| Some((k, at.parse().ok()?)))
        .collect();
    if let Some(at) = time(LEGACY_PREVIOUS_EXPIRES) {
        let signing_key = signing.as_ref().map(|c| c.key.as_str());
        for key in keys.keys().filter(|k| Some(k.as_str()) != signing_key) {
            expiries.entry(key.clone()).or_insert(at);
        }
    }
    let retiring = expiries
        .into_iter()
        .filter_map(|(key, expires_at)| {
            let secret = keys.get(&key)?.clone();
            Some(Retiring {
                creds: ApiCredentials::new(key, secret),
                expires_at,
            })
        })
        .collect();

    KeyState {
        signing,
        pending,
        retiring,
        phase,
        rotation_handled: annotations.get(ROTATION_HANDLED).cloned(),
        hash_key: annotations
            .get(KEYS_HASH_KEY)
            .filter(|k| !k.is_empty())
            .map(|k| HashKey(k.clone())),
    }
}

/// The annotations that record `state` (the data keys are rendered by the caller).
pub fn annotations(state: &KeyState) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    if let Some(phase) = state.phase {
        a.insert(PHASE.to_owned(), phase.as_str().to_owned());
    }
    if let Some(p) = &state.pending {
        a.insert(PENDING_KEY.to_owned(), p.creds.key.clone());
        a.insert(PUBLISHED_AT.to_owned(), p.published_at.to_string());
        if let Some(why) = &p.last_error {
            a.insert(LAST_CHECK_ERROR.to_owned(), why.clone());
        }
        if let Some(c) = &p.chosen {
            a.insert(VERIFICATION.to_owned(), c.mode.as_str().to_owned());
            a.insert(VERIFICATION_REASON.to_owned(), c.why.clone());
        }
        if let Some(at) = p.last_check {
            a.insert(
                CHECKS.to_owned(),
                format!("{}/{}@{at}", p.checks, p.failures),
            );
        }
    }
    if !state.retiring.is_empty() {
        let map: BTreeMap<&str, String> = state
            .retiring
            .iter()
            .map(|r| (r.creds.key.as_str(), r.expires_at.to_string()))
            .collect();
        a.insert(
            RETIRING.to_owned(),
            serde_json::to_string(&map).expect("a map of strings serialises"),
        );
    }
    if let Some(h) = &state.rotation_handled {
        a.insert(ROTATION_HANDLED.to_owned(), h.clone());
    }
    if let Some(k) = &state.hash_key {
        a.insert(KEYS_HASH_KEY.to_owned(), k.0.clone());
    }
    a
}
