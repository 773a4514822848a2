//! Authorization of `JOIN_CHANNEL` on a room: from a claim of the caller's token, or by asking the
//! application ([`webhook`]). Anything but a clear "yes" refuses the token.

mod webhook;

use std::time::Duration;

use livekit_contract::{AuthorizationMode, AuthorizationSettings};
use serde_json::Value;

use crate::auth::Caller;
use crate::metrics::Metrics;

pub use webhook::{
    CacheKey, DecisionCache, MAX_ANSWER_BYTES, MAX_CACHE_ENTRIES, WEBHOOK_OUTCOMES,
    WebhookAuthorizer, WebhookFailure, WebhookRequest, decision_from_answer,
};

/// The permission the token endpoint requires.
pub const JOIN_CHANNEL: &str = "JOIN_CHANNEL";

/// The application's answer about one caller and one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    ChannelNotFound,
}

/// Why a token is refused; the HTTP layer maps each to its status (403, 404, 503).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthzError {
    #[error("the caller lacks {JOIN_CHANNEL} for the room")]
    Denied,
    #[error("room {room_id} does not exist")]
    ChannelNotFound { room_id: String },
    /// The webhook gave no usable answer (timeout, error, unexpected status): fail closed.
    #[error("the authorization webhook is unavailable")]
    Unavailable,
}

impl Decision {
    pub fn into_result(self, room_id: &str) -> Result<(), AuthzError> {
        match self {
            Self::Allow => Ok(()),
            Self::Deny => Err(AuthzError::Denied),
            Self::ChannelNotFound => Err(AuthzError::ChannelNotFound {
                room_id: room_id.to_owned(),
            }),
        }
    }
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
    ) -> Result<(), AuthzError> {
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
    fn decisions_become_results() {
        assert!(Decision::Allow.into_result("r").is_ok());
        assert_eq!(Decision::Deny.into_result("r"), Err(AuthzError::Denied));
        assert_eq!(
            Decision::ChannelNotFound.into_result("abc"),
            Err(AuthzError::ChannelNotFound {
                room_id: "abc".into()
            })
        );
    }
}
