//! Authorization of `JOIN_CHANNEL` on a room: from a claim of the caller's token, or by asking the
//! application. Anything but a clear "yes" refuses the token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use livekit_contract::{AuthorizationMode, AuthorizationSettings};
use serde::Serialize;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::{ApiError, JOIN_CHANNEL};
use crate::metrics::Metrics;

/// Most answers the webhook cache keeps; when full, expired entries go first, then everything.
pub const MAX_CACHE_ENTRIES: usize = 10_000;

/// The application's answer about one caller and one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    ChannelNotFound,
}

impl Decision {
    pub fn into_result(self, room_id: &str) -> Result<(), ApiError> {
        match self {
            Self::Allow => Ok(()),
            Self::Deny => Err(ApiError::insufficient_permissions()),
            Self::ChannelNotFound => Err(ApiError::ChannelNotFound(room_id.to_owned())),
        }
    }
}

/// Why the webhook gave no answer; either way the request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFailure {
    Timeout,
    Error,
}

pub enum Authorizer {
    Claims { claim: String },
    Webhook(WebhookAuthorizer),
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Claims { claim } => write!(f, "Claims({claim})"),
            Self::Webhook(w) => write!(f, "Webhook({})", w.url),
        }
    }
}

impl Authorizer {
    pub fn new(settings: &AuthorizationSettings) -> Result<Self, url::ParseError> {
        Ok(match (&settings.mode, &settings.webhook) {
            (AuthorizationMode::Webhook, Some(webhook)) => Self::Webhook(WebhookAuthorizer::new(
                url::Url::parse(&webhook.url)?,
                Duration::from_millis(u64::from(webhook.timeout_ms)),
                Duration::from_secs(u64::from(webhook.cache_ttl_seconds)),
            )),
            _ => Self::Claims {
                claim: settings.claims.claim.clone(),
            },
        })
    }

    pub async fn authorize(
        &self,
        caller: &Caller,
        room_id: &str,
        metrics: &Metrics,
    ) -> Result<(), ApiError> {
        match self {
            Self::Claims { claim } => claims_decision(caller, claim, room_id).into_result(room_id),
            Self::Webhook(webhook) => webhook
                .decide(caller, room_id, metrics)
                .await?
                .into_result(room_id),
        }
    }
}

/// `JOIN_CHANNEL` grants every room; `JOIN_CHANNEL:<roomId>` grants that room only.
pub fn claims_decision(caller: &Caller, claim: &str, room_id: &str) -> Decision {
    let Some(Value::Array(permissions)) = caller.claims.get(claim) else {
        return Decision::Deny;
    };
    let granted = permissions.iter().filter_map(Value::as_str).any(|p| {
        p == JOIN_CHANNEL
            || p.strip_prefix(JOIN_CHANNEL)
                .and_then(|rest| rest.strip_prefix(':'))
                == Some(room_id)
    });
    if granted {
        Decision::Allow
    } else {
        Decision::Deny
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

pub struct WebhookAuthorizer {
    url: url::Url,
    client: reqwest::Client,
    timeout: Duration,
    cache_ttl: Duration,
    cache: Mutex<HashMap<(String, String), (Decision, Instant)>>,
}

impl WebhookAuthorizer {
    pub fn new(url: url::Url, timeout: Duration, cache_ttl: Duration) -> Self {
        let client = crate::outbound::client(timeout);
        Self {
            url,
            client,
            timeout,
            cache_ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub async fn decide(
        &self,
        caller: &Caller,
        room_id: &str,
        metrics: &Metrics,
    ) -> Result<Decision, ApiError> {
        let key = (caller.subject.clone(), room_id.to_owned());
        if let Some(decision) = self.cached(&key) {
            return Ok(decision);
        }
        let started = std::time::Instant::now();
        let result = self.ask(caller, room_id).await;
        metrics
            .webhook_duration
            .observe(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(Decision::Allow) => "allow",
            Ok(Decision::Deny) => "deny",
            Ok(Decision::ChannelNotFound) => "not_found",
            Err(WebhookFailure::Timeout) => "timeout",
            Err(WebhookFailure::Error) => "error",
        };
        metrics.webhook_requests.with_label_values(&[outcome]).inc();
        let decision = result.map_err(|_| {
            ApiError::Unavailable("Authorization service unavailable, please retry later".into())
        })?;
        self.remember(key, decision);
        Ok(decision)
    }

    fn cached(&self, key: &(String, String)) -> Option<Decision> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.cache_ttl)
            .map(|(decision, _)| *decision)
    }

    fn remember(&self, key: (String, String), decision: Decision) {
        if self.cache_ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHE_ENTRIES {
            let ttl = self.cache_ttl;
            cache.retain(|_, (_, at)| at.elapsed() < ttl);
            if cache.len() >= MAX_CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(key, (decision, Instant::now()));
    }

    async fn ask(&self, caller: &Caller, room_id: &str) -> Result<Decision, WebhookFailure> {
        let body = WebhookRequest {
            subject: &caller.subject,
            identity: &caller.identity,
            room_id,
            permission: JOIN_CHANNEL,
        };
        let sent = tokio::time::timeout(
            self.timeout,
            self.client.post(self.url.clone()).json(&body).send(),
        )
        .await;
        let response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                let failure = if error.is_timeout() {
                    WebhookFailure::Timeout
                } else {
                    WebhookFailure::Error
                };
                tracing::warn!(error = %error.without_url(), "authorization webhook failed");
                return Err(failure);
            }
            Err(_) => {
                tracing::warn!(
                    timeout_ms = self.timeout.as_millis() as u64,
                    "authorization webhook timed out"
                );
                return Err(WebhookFailure::Timeout);
            }
        };
        match response.status().as_u16() {
            200 | 204 => Ok(Decision::Allow),
            401 | 403 => Ok(Decision::Deny),
            404 => Ok(Decision::ChannelNotFound),
            status => {
                tracing::warn!(status, "authorization webhook answered unexpectedly");
                Err(WebhookFailure::Error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caller_with(claims: Value) -> Caller {
        Caller {
            subject: "u1".into(),
            identity: "u1".into(),
            name: None,
            claims: claims.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn claim_grants() {
        let all = caller_with(json!({"permissions": ["READ", "JOIN_CHANNEL"]}));
        assert_eq!(claims_decision(&all, "permissions", "r1"), Decision::Allow);
        let one = caller_with(json!({"permissions": ["JOIN_CHANNEL:r1"]}));
        assert_eq!(claims_decision(&one, "permissions", "r1"), Decision::Allow);
        assert_eq!(claims_decision(&one, "permissions", "r2"), Decision::Deny);
        assert_eq!(claims_decision(&one, "roles", "r1"), Decision::Deny);
    }

    #[test]
    fn near_misses_are_denied() {
        for claims in [
            json!({}),
            json!({"permissions": "JOIN_CHANNEL"}),
            json!({"permissions": ["join_channel"]}),
            json!({"permissions": ["JOIN_CHANNEL:"]}),
            json!({"permissions": ["JOIN_CHANNELS"]}),
            json!({"permissions": ["JOIN_CHANNEL:r1x"]}),
            json!({"permissions": ["JOIN_CHANNELr1"]}),
            json!({"permissions": [["JOIN_CHANNEL"]]}),
        ] {
            let caller = caller_with(claims.clone());
            assert_eq!(
                claims_decision(&caller, "permissions", "r1"),
                Decision::Deny,
                "{claims}"
            );
        }
    }

    #[test]
    fn decisions_map_to_the_spec_errors() {
        assert!(Decision::Allow.into_result("r").is_ok());
        assert_eq!(Decision::Deny.into_result("r").unwrap_err().status(), 403);
        let err = Decision::ChannelNotFound.into_result("abc").unwrap_err();
        assert_eq!(err.status(), 404);
        assert_eq!(err.to_string(), "Channel with ID abc not found");
    }
}
