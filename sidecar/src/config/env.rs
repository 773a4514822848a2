//! The environment source: plain variables, so the sidecar runs anywhere.

use livekit_contract::{
    Algorithm, AuthorizationMode, InvalidSettings, Secret, SidecarSettings, WebhookAuthorization,
    fields, keys,
};

use super::{ConfigError, ConfigInput, Credentials, Source, field_error, trimmed};
use crate::auth::CallerKeyMaterial;

/// The environment variables the sidecar reads, with the settings field each one sets.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("LIVEKIT_SERVER_URL", fields::SERVER_URL),
    ("LIVEKIT_API_KEY", keys::API_KEY),
    ("LIVEKIT_API_SECRET", keys::API_SECRET),
    ("LIVEKIT_DEFAULT_TOKEN_TTL", fields::TOKEN_DEFAULT_TTL),
    ("LIVEKIT_MAX_TOKEN_TTL", fields::TOKEN_MAX_TTL),
    ("LIVEKIT_REGION", fields::REGION),
    ("LIVEKIT_FEATURES", fields::FEATURES),
    ("LIVEKIT_TOKEN_GRANTS", fields::TOKEN_GRANTS),
    (
        "LIVEKIT_ALLOW_IDENTITY_OVERRIDE",
        fields::TOKEN_ALLOW_IDENTITY_OVERRIDE,
    ),
    ("SIDECAR_AUTH_ALGORITHMS", fields::AUTH_ALGORITHMS),
    ("SIDECAR_AUTH_HS_SECRET", keys::CALLER_HS_SECRET),
    ("SIDECAR_AUTH_PUBLIC_KEYS", keys::CALLER_PUBLIC_KEYS),
    ("SIDECAR_AUTH_PUBLIC_KEYS_FILE", keys::CALLER_PUBLIC_KEYS),
    ("SIDECAR_AUTH_JWKS_URL", fields::AUTH_JWKS_URL),
    ("SIDECAR_AUTH_JWKS_ALLOW_HTTP", fields::AUTH_ALLOW_HTTP_JWKS),
    (
        "SIDECAR_AUTH_ALLOW_ANY_ISSUER_AUDIENCE",
        fields::AUTH_ALLOW_ANY_ISSUER_AUDIENCE,
    ),
    ("SIDECAR_AUTH_ISSUER", fields::AUTH_ISSUER),
    ("SIDECAR_AUTH_AUDIENCES", fields::AUTH_AUDIENCES),
    ("SIDECAR_AUTH_IDENTITY_CLAIM", fields::AUTH_IDENTITY_CLAIM),
    ("SIDECAR_AUTH_NAME_CLAIM", fields::AUTH_NAME_CLAIM),
    ("SIDECAR_AUTH_LEEWAY_SECONDS", fields::AUTH_LEEWAY),
    ("SIDECAR_AUTHZ_MODE", fields::AUTHZ_MODE),
    ("SIDECAR_AUTHZ_CLAIM", fields::AUTHZ_CLAIM),
    ("SIDECAR_AUTHZ_WEBHOOK_URL", fields::AUTHZ_WEBHOOK_URL),
    (
        "SIDECAR_AUTHZ_WEBHOOK_TIMEOUT_MS",
        fields::AUTHZ_WEBHOOK_TIMEOUT,
    ),
    (
        "SIDECAR_AUTHZ_WEBHOOK_CACHE_TTL_SECONDS",
        fields::AUTHZ_WEBHOOK_CACHE_TTL,
    ),
];

/// Builds the input from environment variables; `lookup` is `std::env::var` outside tests.
/// Empty values count as unset. Settings errors name the variable that sets the field.
pub fn load_env(lookup: impl Fn(&str) -> Option<String>) -> Result<ConfigInput, ConfigError> {
    let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    let caller_keys = CallerKeyMaterial {
        hmac_secret: get("SIDECAR_AUTH_HS_SECRET").map(|s| Secret::new(trimmed(s))),
        public_keys_pem: match (
            get("SIDECAR_AUTH_PUBLIC_KEYS"),
            get("SIDECAR_AUTH_PUBLIC_KEYS_FILE"),
        ) {
            (Some(_), Some(_)) => {
                return Err(field_error(
                    "SIDECAR_AUTH_PUBLIC_KEYS_FILE",
                    "set either SIDECAR_AUTH_PUBLIC_KEYS or SIDECAR_AUTH_PUBLIC_KEYS_FILE, not both",
                ));
            }
            (Some(pem), None) => Some(pem),
            (None, Some(path)) => {
                Some(
                    std::fs::read_to_string(&path).map_err(|e| ConfigError::Read {
                        path: path.into(),
                        message: e.to_string(),
                    })?,
                )
            }
            (None, None) => None,
        },
    };
    let source = Source::Env;

    // Every variable is parsed, even without credentials, so a typo is reported at once.
    let mut s = SidecarSettings::new(get("LIVEKIT_SERVER_URL").unwrap_or_default().trim());
    s.region = get("LIVEKIT_REGION").map(|r| r.trim().to_owned());
    if let Some(v) = get("LIVEKIT_DEFAULT_TOKEN_TTL") {
        s.token.default_ttl_seconds = parse_number("LIVEKIT_DEFAULT_TOKEN_TTL", &v)?;
    }
    if let Some(v) = get("LIVEKIT_MAX_TOKEN_TTL") {
        s.token.max_ttl_seconds = parse_number("LIVEKIT_MAX_TOKEN_TTL", &v)?;
    }
    if let Some(v) = get("LIVEKIT_FEATURES") {
        let enabled = parse_flags(
            "LIVEKIT_FEATURES",
            &v,
            &["audio", "video", "screenShare", "recording"],
        )?;
        s.features.audio = enabled.contains(&"audio");
        s.features.video = enabled.contains(&"video");
        s.features.screen_share = enabled.contains(&"screenShare");
        s.features.recording = enabled.contains(&"recording");
    }
    if let Some(v) = get("LIVEKIT_TOKEN_GRANTS") {
        let granted = parse_flags(
            "LIVEKIT_TOKEN_GRANTS",
            &v,
            &["canPublish", "canSubscribe", "canPublishData"],
        )?;
        s.token.grants.can_publish = granted.contains(&"canPublish");
        s.token.grants.can_subscribe = granted.contains(&"canSubscribe");
        s.token.grants.can_publish_data = granted.contains(&"canPublishData");
    }
    if let Some(v) = get("LIVEKIT_ALLOW_IDENTITY_OVERRIDE") {
        s.token.allow_identity_override = parse_bool("LIVEKIT_ALLOW_IDENTITY_OVERRIDE", &v)?;
    }

    if let Some(v) = get("SIDECAR_AUTH_ALGORITHMS") {
        s.auth.algorithms = split_list(&v)
            .map(|name| name.parse::<Algorithm>())
            .collect::<Result<_, _>>()
            .map_err(|e| field_error("SIDECAR_AUTH_ALGORITHMS", e))?;
    }
    s.auth.jwks_url = get("SIDECAR_AUTH_JWKS_URL").map(|v| v.trim().to_owned());
    if let Some(v) = get("SIDECAR_AUTH_JWKS_ALLOW_HTTP") {
        s.auth.allow_http_jwks = parse_bool("SIDECAR_AUTH_JWKS_ALLOW_HTTP", &v)?;
    }
    if let Some(v) = get("SIDECAR_AUTH_ALLOW_ANY_ISSUER_AUDIENCE") {
        s.auth.allow_any_issuer_and_audience =
            parse_bool("SIDECAR_AUTH_ALLOW_ANY_ISSUER_AUDIENCE", &v)?;
    }
    s.auth.issuer = get("SIDECAR_AUTH_ISSUER").map(|v| v.trim().to_owned());
    if let Some(v) = get("SIDECAR_AUTH_AUDIENCES") {
        s.auth.audiences = split_list(&v).map(str::to_owned).collect();
    }
    if let Some(v) = get("SIDECAR_AUTH_IDENTITY_CLAIM") {
        s.auth.identity_claim = v.trim().to_owned();
    }
    if let Some(v) = get("SIDECAR_AUTH_NAME_CLAIM") {
        s.auth.name_claim = v.trim().to_owned();
    }
    if let Some(v) = get("SIDECAR_AUTH_LEEWAY_SECONDS") {
        s.auth.leeway_seconds = parse_number("SIDECAR_AUTH_LEEWAY_SECONDS", &v)?;
    }

    if let Some(v) = get("SIDECAR_AUTHZ_MODE") {
        s.authorization.mode = match v.trim().to_ascii_lowercase().as_str() {
            "claims" => AuthorizationMode::Claims,
            "webhook" => AuthorizationMode::Webhook,
            _ => {
                return Err(field_error(
                    "SIDECAR_AUTHZ_MODE",
                    format!("must be Claims or Webhook, not {:?}", v.trim()),
                ));
            }
        };
    }
    if let Some(v) = get("SIDECAR_AUTHZ_CLAIM") {
        s.authorization.claims.claim = v.trim().to_owned();
    }
    if let Some(url) = get("SIDECAR_AUTHZ_WEBHOOK_URL") {
        let mut webhook = WebhookAuthorization::new(url.trim());
        if let Some(v) = get("SIDECAR_AUTHZ_WEBHOOK_TIMEOUT_MS") {
            webhook.timeout_ms = parse_number("SIDECAR_AUTHZ_WEBHOOK_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = get("SIDECAR_AUTHZ_WEBHOOK_CACHE_TTL_SECONDS") {
            webhook.cache_ttl_seconds =
                parse_number("SIDECAR_AUTHZ_WEBHOOK_CACHE_TTL_SECONDS", &v)?;
        }
        s.authorization.webhook = Some(webhook);
    }

    let (api_key, api_secret) = match (get("LIVEKIT_API_KEY"), get("LIVEKIT_API_SECRET")) {
        (None, None) => {
            return Ok(ConfigInput {
                source,
                configured: None,
                caller_keys,
                fingerprint: None,
            });
        }
        (Some(key), Some(secret)) => (trimmed(key), Secret::new(trimmed(secret))),
        (Some(_), None) => {
            return Err(field_error(
                "LIVEKIT_API_SECRET",
                "is not set but LIVEKIT_API_KEY is",
            ));
        }
        (None, Some(_)) => {
            return Err(field_error(
                "LIVEKIT_API_KEY",
                "is not set but LIVEKIT_API_SECRET is",
            ));
        }
    };
    if get("LIVEKIT_SERVER_URL").is_none() {
        return Err(field_error(
            "LIVEKIT_SERVER_URL",
            "is required when LiveKit credentials are set",
        ));
    }
    s.validate().map_err(name_env_vars)?;
    Ok(ConfigInput {
        source,
        configured: Some((
            s,
            Credentials {
                api_key,
                api_secret,
            },
        )),
        caller_keys,
        fingerprint: None,
    })
}

/// Rewrites settings field names into the environment variables that set them.
fn name_env_vars(mut invalid: InvalidSettings) -> InvalidSettings {
    for error in &mut invalid.0 {
        if let Some((var, _)) = ENV_VARS.iter().find(|(_, field)| *field == error.field) {
            error.field = format!("{var} ({})", error.field);
        }
    }
    invalid
}

fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn parse_number(var: &str, value: &str) -> Result<u32, ConfigError> {
    value.trim().parse().map_err(|_| {
        field_error(
            var,
            format!("must be a whole number, not {:?}", value.trim()),
        )
    })
}

fn parse_bool(var: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        other => Err(field_error(
            var,
            format!("must be true or false, not {other:?}"),
        )),
    }
}

/// A comma-separated list drawn from `allowed`; an empty-but-set value is not possible (unset).
fn parse_flags<'a>(
    var: &str,
    value: &str,
    allowed: &[&'a str],
) -> Result<Vec<&'a str>, ConfigError> {
    split_list(value)
        .map(|item| {
            allowed
                .iter()
                .find(|a| **a == item)
                .copied()
                .ok_or_else(|| {
                    field_error(
                        var,
                        format!(
                            "unknown entry {item:?}, expected some of {}",
                            allowed.join(",")
                        ),
                    )
                })
        })
        .collect()
}
