//! `JOIN_CHANNEL` decided by the application's authorization webhook.
//!
//! The contract (also in the README): the sidecar POSTs [`WebhookRequest`] as JSON and reads the status.
//! Only two answers allow: `204`, or `200` whose body is a JSON object with `"allow": true`. A `200`
//! with `"allow": false` denies (403), as do `401` and `403`; `404` means the channel does not exist.
//! Everything else — another 2xx, a redirect (never followed), a `200` whose body is not that object
//! (an HTML page from a catch-all route), a body larger than [`MAX_ANSWER_BYTES`], a body or status
//! that does not arrive within the time-out, a connection error, a 5xx — fails closed with 503.
//! A wrong URL must never grant anything.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::cache::{CacheKey, DecisionCache, MAX_CACHE_ENTRIES};
use super::{AuthzError, Decision, JOIN_CHANNEL};
use crate::auth::Caller;
use crate::metrics::Metrics;

/// Largest answer body read; the contract's answer is a few bytes, so more is a misconfiguration.
pub const MAX_ANSWER_BYTES: usize = 1024;

/// Every value of the `outcome` label of `livekit_sidecar_authz_webhook_requests_total`.
pub const WEBHOOK_OUTCOMES: &[&str] = &[
    "allow",
    "deny",
    "not_found",
    "invalid_answer",
    "error",
    "timeout",
];

/// Why the webhook gave no usable answer; either way the request is refused with 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFailure {
    /// No complete answer within the time-out.
    Timeout,
    /// The call failed (connection refused, reset) or the application answered 5xx.
    Error,
    /// An answer outside the contract: another status, a redirect, a body that is not
    /// `{"allow": <bool>}`, or a body over [`MAX_ANSWER_BYTES`].
    InvalidAnswer,
}

impl WebhookFailure {
    fn outcome(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Error => "error",
            Self::InvalidAnswer => "invalid_answer",
        }
    }
}

/// The body the sidecar POSTs to the application.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookRequest<'a> {
    pub subject: &'a str,
    pub identity: &'a str,
    pub room_id: &'a str,
    pub permission: &'a str,
}

/// The only body a `200` may carry; other fields are allowed and ignored.
#[derive(Deserialize)]
struct Answer {
    allow: bool,
}

/// The decision an answer carries. `body` is only looked at for a `200`: a `204` has none, and the
/// body of a denial or not-found answer changes nothing.
pub fn decision_from_answer(status: u16, body: &[u8]) -> Result<Decision, WebhookFailure> {
    match status {
        204 => Ok(Decision::Allow),
        200 => match serde_json::from_slice::<Answer>(body) {
            Ok(Answer { allow: true }) => Ok(Decision::Allow),
            Ok(Answer { allow: false }) => Ok(Decision::Deny),
            Err(_) => Err(WebhookFailure::InvalidAnswer),
        },
        401 | 403 => Ok(Decision::Deny),
        404 => Ok(Decision::ChannelNotFound),
        500..=599 => Err(WebhookFailure::Error),
        _ => Err(WebhookFailure::InvalidAnswer),
    }
}

pub struct WebhookAuthorizer {
    pub(super) url: url::Url,
    client: reqwest::Client,
    timeout: Duration,
    cache: DecisionCache,
}

impl WebhookAuthorizer {
    pub fn new(url: url::Url, timeout: Duration, cache_ttl: Duration) -> Self {
        let client = crate::outbound::client(timeout);
        let capacity = NonZeroUsize::new(MAX_CACHE_ENTRIES).expect("a positive constant");
        Self {
            url,
            client,
            timeout,
            cache: DecisionCache::new(cache_ttl, capacity),
        }
    }

    pub async fn decide(
        &self,
        caller: &Caller,
        room_id: &str,
        metrics: &Metrics,
    ) -> Result<Decision, AuthzError> {
        let key = CacheKey::new(caller, room_id);
        if let Some(decision) = self.cache.get(&key, Instant::now()) {
            return Ok(decision);
        }
        let started = Instant::now();
        let result = self.ask(caller, room_id).await;
        metrics
            .webhook_duration
            .observe(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(Decision::Allow) => "allow",
            Ok(Decision::Deny) => "deny",
            Ok(Decision::ChannelNotFound) => "not_found",
            Err(failure) => failure.outcome(),
        };
        metrics.webhook_requests.inc(outcome);
        let decision = result.map_err(|_| AuthzError::Unavailable)?;
        self.cache.put(key, decision, Instant::now());
        Ok(decision)
    }

    /// One call, status and body, within one time-out.
    async fn ask(&self, caller: &Caller, room_id: &str) -> Result<Decision, WebhookFailure> {
        match tokio::time::timeout(self.timeout, self.exchange(caller, room_id)).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(
                    timeout_ms = self.timeout.as_millis() as u64,
                    "authorization webhook timed out"
                );
                Err(WebhookFailure::Timeout)
            }
        }
    }

    async fn exchange(&self, caller: &Caller, room_id: &str) -> Result<Decision, WebhookFailure> {
        let request = WebhookRequest {
            subject: &caller.subject,
            identity: &caller.identity,
            room_id,
            permission: JOIN_CHANNEL,
        };
        let failed = |error: reqwest::Error| {
            let failure = if error.is_timeout() {
                WebhookFailure::Timeout
            } else {
                WebhookFailure::Error
            };
            tracing::warn!(error = %error.without_url(), "authorization webhook failed");
            failure
        };
        let mut response = self
            .client
            .post(self.url.clone())
            .json(&request)
            .send()
            .await
            .map_err(failed)?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        // Only a 200 carries a decision in its body; other bodies are not read at all.
        if status == 200 {
            if response
                .content_length()
                .is_some_and(|length| length > MAX_ANSWER_BYTES as u64)
            {
                return Err(invalid(status, "body too large"));
            }
            while let Some(chunk) = response.chunk().await.map_err(failed)? {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(invalid(status, "body too large"));
                }
                body.extend_from_slice(&chunk);
            }
        }
        decision_from_answer(status, &body).inspect_err(|failure| {
            if *failure == WebhookFailure::InvalidAnswer {
                invalid(status, "not 204, 200 {\"allow\": bool}, 401, 403 or 404");
            } else {
                tracing::warn!(status, "authorization webhook answered with an error");
            }
        })
    }
}

fn invalid(status: u16, why: &str) -> WebhookFailure {
    tracing::warn!(
        status,
        why,
        "authorization webhook answer is outside the contract; refusing"
    );
    WebhookFailure::InvalidAnswer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_204_and_200_allow_true_allow() {
        let table: &[(u16, &[u8], Result<Decision, WebhookFailure>)] = &[
            (204, b"", Ok(Decision::Allow)),
            (200, br#"{"allow": true}"#, Ok(Decision::Allow)),
            (
                200,
                br#"{"allow": true, "reason": "member"}"#,
                Ok(Decision::Allow),
            ),
            (200, br#"{"allow": false}"#, Ok(Decision::Deny)),
            (200, b"", Err(WebhookFailure::InvalidAnswer)),
            (200, b"<html>ok</html>", Err(WebhookFailure::InvalidAnswer)),
            (200, b"true", Err(WebhookFailure::InvalidAnswer)),
            (
                200,
                br#"{"allow": "true"}"#,
                Err(WebhookFailure::InvalidAnswer),
            ),
            (
                200,
                br#"{"allowed": true}"#,
                Err(WebhookFailure::InvalidAnswer),
            ),
            (
                200,
                br#"[{"allow": true}]"#,
                Err(WebhookFailure::InvalidAnswer),
            ),
            (
                201,
                br#"{"allow": true}"#,
                Err(WebhookFailure::InvalidAnswer),
            ),
            (202, b"", Err(WebhookFailure::InvalidAnswer)),
            (301, b"", Err(WebhookFailure::InvalidAnswer)),
            (307, b"", Err(WebhookFailure::InvalidAnswer)),
            (400, b"", Err(WebhookFailure::InvalidAnswer)),
            (401, b"", Ok(Decision::Deny)),
            (403, br#"{"allow": true}"#, Ok(Decision::Deny)),
            (404, b"", Ok(Decision::ChannelNotFound)),
            (429, b"", Err(WebhookFailure::InvalidAnswer)),
            (500, b"", Err(WebhookFailure::Error)),
            (503, br#"{"allow": true}"#, Err(WebhookFailure::Error)),
        ];
        for (status, body, expected) in table {
            assert_eq!(
                decision_from_answer(*status, body),
                *expected,
                "{status} {}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
