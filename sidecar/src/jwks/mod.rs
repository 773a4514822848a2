//! A JWKS cache for caller keys: fetched only from the configured URL (redirects refused), bounded in
//! size and time, and never in the way of a request that names a key it already holds.
//!
//! - Known keys are served at once. Once the set is older than [`MAX_AGE`], the lookup that notices
//!   starts one refresh in the background and still answers from the cache (stale-while-revalidate):
//!   no caller waits on the identity provider for a key it already has.
//! - An unknown `kid` (or an empty cache) refreshes inline, at most once per [`MIN_REFRESH_INTERVAL`];
//!   concurrent misses share that one fetch.
//! - A failed refresh keeps the keys already fetched, however long the outage lasts: a down identity
//!   provider cannot lock out callers whose keys are known, and it cannot add keys either.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use tokio::sync::{Mutex, RwLock};
use url::Url;

use crate::auth::PublicKey;
use set::select;
pub use set::{JwkKey, parse_jwks};

mod set;

/// Keys older than this are refreshed in the background on the next lookup.
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// Fetches (after an unknown `kid` or a failed refresh) are spaced at least this far apart.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_BODY_BYTES: usize = 256 * 1024;
pub const MAX_KEYS: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwksError {
    #[error("no key in the JWKS matches the token")]
    UnknownKey,
    #[error("JWKS fetch failed: {0}")]
    Fetch(String),
}

struct Cached {
    keys: Vec<JwkKey>,
    fetched_at: Instant,
}

pub struct JwksSource {
    url: Url,
    client: reqwest::Client,
    cache: RwLock<Option<Cached>>,
    /// Held while fetching, so concurrent misses cause one fetch; when the last attempt began and, if
    /// it failed, why.
    last_attempt: Mutex<Option<(Instant, Option<String>)>>,
    /// Set while a background refresh runs, so a burst of stale lookups starts only one.
    refreshing: AtomicBool,
    max_age: Duration,
    min_refresh_interval: Duration,
}

impl JwksSource {
    pub fn new(url: Url) -> Self {
        let client = crate::outbound::client(FETCH_TIMEOUT);
        Self {
            url,
            client,
            cache: RwLock::new(None),
            last_attempt: Mutex::new(None),
            refreshing: AtomicBool::new(false),
            max_age: MAX_AGE,
            min_refresh_interval: MIN_REFRESH_INTERVAL,
        }
    }

    /// A shorter refresh spacing, for tests that cannot wait [`MIN_REFRESH_INTERVAL`].
    pub fn with_min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }

    /// A shorter cache age, for tests that cannot wait [`MAX_AGE`].
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The key for a token's `kid` and `alg`. A cached key is returned at once (a stale set is
    /// refreshed behind it); only a key the cache does not hold waits for a fetch.
    pub async fn key_for(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<PublicKey>, JwksError> {
        {
            let cache = self.cache.read().await;
            if let Some(cached) = cache.as_ref()
                && let Some(key) = select(&cached.keys, kid, alg)
            {
                if cached.fetched_at.elapsed() >= self.max_age {
                    self.refresh_in_background();
                }
                return Ok(key);
            }
        }
        let last_error = self.refresh().await;
        let cache = self.cache.read().await;
        match cache.as_ref() {
            Some(cached) => select(&cached.keys, kid, alg).ok_or(JwksError::UnknownKey),
            None => {
                Err(JwksError::Fetch(last_error.unwrap_or_else(|| {
                    "the key set has not been fetched yet".into()
                })))
            }
        }
    }

    fn refresh_in_background(self: &Arc<Self>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            this.refresh().await;
            this.refreshing.store(false, Ordering::Release);
        });
    }

    /// Fetches the set unless another task just did or an attempt was made too recently; returns why
    /// the latest attempt failed, if it did.
    async fn refresh(&self) -> Option<String> {
        let mut last_attempt = self.last_attempt.lock().await;
        if let Some((at, error)) = last_attempt.as_ref()
            && at.elapsed() < self.min_refresh_interval
        {
            return error.clone();
        }
        let started = Instant::now();
        let error = match self.fetch().await {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "caller JWKS fetched");
                *self.cache.write().await = Some(Cached {
                    keys,
                    fetched_at: Instant::now(),
                });
                None
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "caller JWKS fetch failed; keeping the keys already fetched");
                Some(error.to_string())
            }
        };
        *last_attempt = Some((started, error.clone()));
        error
    }

    async fn fetch(&self) -> Result<Vec<JwkKey>, JwksError> {
        let fail = |e: String| JwksError::Fetch(e);
        let mut response = self
            .client
            .get(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?;
        if response.status().is_redirection() {
            return Err(fail(format!(
                "status {}: redirects are not followed",
                response.status()
            )));
        }
        if !response.status().is_success() {
            return Err(fail(format!("status {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(fail(format!("body larger than {MAX_BODY_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body)
    }
}

#[cfg(test)]
mod tests;
