//! Authorization of `JOIN_CHANNEL` on a room: from a claim of the caller's token, or by asking the
//! application ([`webhook`]). Anything but a clear "yes" refuses the token.

mod cache;
mod webhook;

use std::time::Duration;

use livekit_contract::{AuthorizationMode, AuthorizationSettings};

use crate::auth::Caller;
use crate::metrics::Metrics;

pub use cache::{CacheKey, DecisionCache, MAX_CACHE_ENTRIES};
pub use webhook::{
    MAX_ANSWER_BYTES, WEBHOOK_OUTCOMES, WebhookAuthorizer, WebhookFailure, WebhookRequest,
    decision_from_answer,
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

    /// The claim the caller verifier must read into [`Caller::permissions`]: the authorization claim
    /// when decisions come from the token, none when the webhook decides.
    pub fn permissions_claim(&self) -> Option<String> {
        match self {
            Self::Claims { claim } => Some(claim.clone()),
            Self::Webhook(_) => None,
        }
    }

    pub async fn authorize(
        &self,
        caller: &Caller,
        room_id: &str,
        metrics: &Metrics,
    ) -> Result<(), AuthzError> {
        match self {
            Self::Claims { .. } => claims_decision(caller, room_id).into_result(room_id),
            Self::Webhook(webhook) => webhook
                .decide(caller, room_id, metrics)
                .await?
                .into_result(room_id),
        }
    }
}

/// `JOIN_CHANNEL` grants every room; `JOIN_CHANNEL:<roomId>` grants that room only. Only an array
/// claim grants anything; its non-string entries never do.
pub fn claims_decision(caller: &Caller, room_id: &str) -> Decision {
    let Some(permissions) = &caller.permissions else {
        return Decision::Deny;
    };
    let granted = permissions.iter().any(|p| {
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

    fn caller_with(permissions: Option<&[&str]>) -> Caller {
        Caller {
            subject: "u1".into(),
            identity: "u1".into(),
            permissions: permissions.map(|p| p.iter().map(|s| (*s).to_owned()).collect()),
            ..Caller::default()
        }
    }

    #[test]
    fn claim_grants() {
        let all = caller_with(Some(&["READ", "JOIN_CHANNEL"]));
        assert_eq!(claims_decision(&all, "r1"), Decision::Allow);
        let one = caller_with(Some(&["JOIN_CHANNEL:r1"]));
        assert_eq!(claims_decision(&one, "r1"), Decision::Allow);
        assert_eq!(claims_decision(&one, "r2"), Decision::Deny);
    }

    /// The JSON shapes (a string instead of an array, nested arrays, objects) are read by the
    /// verifier: `auth::claims` tests and `tests/authorization.rs` cover them end to end.
    #[test]
    fn near_misses_are_denied() {
        for permissions in [
            None,
            Some(&[][..]),
            Some(&["join_channel"][..]),
            Some(&["JOIN_CHANNEL:"][..]),
            Some(&["JOIN_CHANNELS"][..]),
            Some(&["JOIN_CHANNEL:r1x"][..]),
            Some(&["JOIN_CHANNELr1"][..]),
        ] {
            let caller = caller_with(permissions);
            assert_eq!(
                claims_decision(&caller, "r1"),
                Decision::Deny,
                "{permissions:?}"
            );
        }
    }

    #[test]
    fn only_claims_mode_reads_the_claim() {
        let mut settings = AuthorizationSettings::default();
        settings.claims.claim = "roles".into();
        let claims = Authorizer::new(&settings).unwrap();
        assert_eq!(claims.permissions_claim().as_deref(), Some("roles"));
        settings.mode = AuthorizationMode::Webhook;
        settings.webhook = Some(
            serde_json::from_value(serde_json::json!({"url": "http://127.0.0.1:9/authz"})).unwrap(),
        );
        assert_eq!(
            Authorizer::new(&settings).unwrap().permissions_claim(),
            None
        );
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
