//! Connection details and health.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::extract::Authenticated;
use super::openapi::{ConnectionInfoErrors, HealthErrors};
use super::{CONNECTION_INFO_PATH, HEALTH_PATH};
use crate::state::AppState;

/// Where and how clients connect.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ConnectionInfo<'a> {
    /// The LiveKit server URL clients connect to.
    server_url: &'a str,
    /// The deployment's region, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'a str>,
    /// Always true in a 200 answer.
    configured: bool,
    #[schema(value_type = FeaturesDoc)]
    features: &'a livekit_contract::Features,
}

// `livekit_contract::Features`, documented here because that crate does not depend on utoipa; a test
// checks the field names against its JSON.
/// What the deployment offers to clients.
#[derive(utoipa::ToSchema)]
#[schema(as = Features)]
#[allow(dead_code)]
pub(crate) struct FeaturesDoc {
    audio: bool,
    video: bool,
    #[schema(rename = "screenShare")]
    screen_share: bool,
    recording: bool,
}

#[utoipa::path(
    get,
    path = CONNECTION_INFO_PATH,
    tag = "livekit",
    operation_id = "connectionInfo",
    summary = "Where and how clients connect",
    responses(
        (status = 200, description = "The connection details.", body = ConnectionInfo),
        ConnectionInfoErrors,
    ),
    security(("bearerAuth" = [])),
)]
pub(crate) async fn connection_info(Authenticated { config, .. }: Authenticated) -> Response {
    let settings = &config.settings;
    Json(ConnectionInfo {
        server_url: &settings.server_url,
        region: settings.region.as_deref(),
        configured: true,
        features: &settings.features,
    })
    .into_response()
}

/// Whether the sidecar can issue tokens.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// `healthy` when configured and, if probing is on and required, the LiveKit server answers.
    #[schema(value_type = HealthStatus)]
    status: &'static str,
    /// Whether LiveKit credentials are configured.
    configured: bool,
}

/// `healthy` when the sidecar can issue tokens.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum HealthStatus {
    Healthy,
    Unhealthy,
}

#[utoipa::path(
    get,
    path = HEALTH_PATH,
    tag = "livekit",
    operation_id = "health",
    summary = "Health, without authentication",
    description = "Always 200 while the sidecar runs; `status` says whether it can issue tokens.",
    responses(
        (status = 200, description = "The health.", body = Health),
        HealthErrors,
    ),
)]
pub(crate) async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: if state.is_healthy() {
            "healthy"
        } else {
            "unhealthy"
        },
        configured: state.snapshot().is_configured(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn documented_features_are_the_served_ones() {
        let served = serde_json::to_value(livekit_contract::Features::default()).unwrap();
        let documented =
            serde_json::to_value(<FeaturesDoc as utoipa::PartialSchema>::schema()).unwrap();
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&served), keys(&documented["properties"]));
        assert_eq!(keys(&served), {
            let mut required: Vec<String> =
                serde_json::from_value(documented["required"].clone()).unwrap();
            required.sort();
            required
        });
    }
}
