//! The webhook's answers, kept for their TTL per caller and room.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

use super::Decision;
use crate::auth::Caller;

/// Most answers the cache keeps; past that the least recently used one is evicted.
pub const MAX_CACHE_ENTRIES: usize = 10_000;

/// Whose question an answer is: the application may decide on any of these, so an answer about one
/// caller of one identity provider is never reused for another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub issuer: Option<String>,
    pub subject: String,
    pub identity: String,
    pub room_id: String,
}

impl CacheKey {
    pub fn new(caller: &Caller, room_id: &str) -> Self {
        Self {
            issuer: caller.issuer.clone(),
            subject: caller.subject.clone(),
            identity: caller.identity.clone(),
            room_id: room_id.to_owned(),
        }
    }
}

/// Answers kept for `ttl`, at most `capacity` of them, least recently used evicted first. Time is
/// passed in so expiry is tested without waiting.
pub struct DecisionCache {
    ttl: Duration,
    entries: Mutex<LruCache<CacheKey, (Decision, Instant)>>,
}

impl DecisionCache {
    pub fn new(ttl: Duration, capacity: NonZeroUsize) -> Self {
        Self {
            ttl,
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    pub fn get(&self, key: &CacheKey, now: Instant) -> Option<Decision> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(key) {
            Some(&(decision, at)) if now.saturating_duration_since(at) < self.ttl => Some(decision),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, key: CacheKey, decision: Decision, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.put(key, (decision, now));
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(iss: Option<&str>, sub: &str, identity: &str) -> Caller {
        Caller {
            subject: sub.into(),
            identity: identity.into(),
            issuer: iss.map(Into::into),
            ..Caller::default()
        }
    }

    #[test]
    fn cache_keys_separate_issuer_subject_identity_and_room() {
        let base = CacheKey::new(&caller(Some("https://a"), "u1", "u1"), "r1");
        for other in [
            CacheKey::new(&caller(Some("https://b"), "u1", "u1"), "r1"),
            CacheKey::new(&caller(None, "u1", "u1"), "r1"),
            CacheKey::new(&caller(Some("https://a"), "u2", "u1"), "r1"),
            CacheKey::new(&caller(Some("https://a"), "u1", "other"), "r1"),
            CacheKey::new(&caller(Some("https://a"), "u1", "u1"), "r2"),
        ] {
            assert_ne!(base, other);
        }
        assert_eq!(
            base,
            CacheKey::new(&caller(Some("https://a"), "u1", "u1"), "r1")
        );
    }

    fn key(room: &str) -> CacheKey {
        CacheKey::new(&caller(Some("https://a"), "u1", "u1"), room)
    }

    #[test]
    fn cached_answers_expire_after_the_ttl() {
        let cache = DecisionCache::new(Duration::from_secs(30), NonZeroUsize::new(8).unwrap());
        let t0 = Instant::now();
        cache.put(key("r"), Decision::ChannelNotFound, t0);
        assert_eq!(
            cache.get(&key("r"), t0 + Duration::from_secs(29)),
            Some(Decision::ChannelNotFound)
        );
        assert_eq!(cache.get(&key("r"), t0 + Duration::from_secs(30)), None);
        assert!(cache.is_empty(), "an expired entry is dropped when found");
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let cache = DecisionCache::new(Duration::ZERO, NonZeroUsize::new(8).unwrap());
        let t0 = Instant::now();
        cache.put(key("r"), Decision::Allow, t0);
        assert_eq!(cache.get(&key("r"), t0), None);
    }

    #[test]
    fn a_full_cache_evicts_the_least_recently_used_answer_only() {
        let cache = DecisionCache::new(Duration::from_secs(30), NonZeroUsize::new(3).unwrap());
        let t0 = Instant::now();
        for room in ["a", "b", "c"] {
            cache.put(key(room), Decision::Allow, t0);
        }
        // "a" is used, so "b" is now the least recently used.
        assert!(cache.get(&key("a"), t0).is_some());
        cache.put(key("d"), Decision::Deny, t0);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&key("b"), t0), None);
        for room in ["a", "c"] {
            assert_eq!(cache.get(&key(room), t0), Some(Decision::Allow), "{room}");
        }
        assert_eq!(cache.get(&key("d"), t0), Some(Decision::Deny));
    }
}
