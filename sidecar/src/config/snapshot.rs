//! The immutable configuration snapshot: validated settings with every key prepared.

use std::sync::Arc;

use livekit_contract::{SidecarSettings, fields, keys};

use super::{ConfigError, ConfigInput, ENV_VARS, Source, field_error};
use crate::auth::CallerVerifier;
use crate::authz::Authorizer;
use crate::jwks::JwksSource;
use crate::token::LiveKitSigner;

/// Everything a request needs, validated and immutable.
pub struct Snapshot {
    pub source: Source,
    /// Shared, so a request holds the configured part it works with without an `Option` to check.
    pub service: Option<Arc<Service>>,
    pub fingerprint: Option<u64>,
}

/// The parts of a configured snapshot.
pub struct Service {
    pub settings: SidecarSettings,
    pub signer: LiveKitSigner,
    pub verifier: CallerVerifier,
    pub authorizer: Authorizer,
}

impl Snapshot {
    /// Validates an input and prepares keys. `previous` lends its JWKS cache when the URL is unchanged.
    pub fn build(input: ConfigInput, previous: Option<&Snapshot>) -> Result<Self, ConfigError> {
        let Some((settings, credentials)) = input.configured else {
            return Ok(Self {
                source: input.source,
                service: None,
                fingerprint: input.fingerprint,
            });
        };
        settings.validate()?;
        check_api_key(&credentials.api_key)?;
        if credentials.api_secret.expose().is_empty() {
            return Err(field_error(keys::API_SECRET, "must not be empty"));
        }
        check_api_secret_length(&input.source, credentials.api_secret.expose())?;

        let jwks = match &settings.auth.jwks_url {
            Some(url) => Some(reuse_or_new_jwks(url, previous)?),
            None => None,
        };
        let verifier =
            CallerVerifier::new(&settings.auth, &input.caller_keys, jwks).map_err(|error| {
                let field = source_field(&input.source, error.field());
                ConfigError::KeyMaterial { field, error }
            })?;
        let authorizer = Authorizer::new(&settings.authorization)
            .map_err(|e| field_error(fields::AUTHZ_WEBHOOK_URL, e.to_string()))?;
        let verifier = verifier.with_permissions_claim(authorizer.permissions_claim());
        let signer = LiveKitSigner::new(credentials.api_key, &credentials.api_secret);
        Ok(Self {
            source: input.source,
            fingerprint: input.fingerprint,
            service: Some(Arc::new(Service {
                settings,
                signer,
                verifier,
                authorizer,
            })),
        })
    }

    pub fn is_configured(&self) -> bool {
        self.service.is_some()
    }
}

/// The name a source gives a Secret key: its environment variable, or the file name.
fn source_field(source: &Source, file: &str) -> String {
    match source {
        Source::Env => ENV_VARS
            .iter()
            .find(|(_, f)| *f == file)
            .map_or(file.to_owned(), |(var, _)| (*var).to_owned()),
        _ => file.to_owned(),
    }
}

/// livekit-server refuses API secrets shorter than 32 characters outside its dev mode, so outside the
/// sidecar's `--dev` (which signs with livekit-server's dev credentials) a shorter one is a mistake
/// that would only show when every client fails to connect.
fn check_api_secret_length(source: &Source, secret: &str) -> Result<(), ConfigError> {
    use livekit_contract::limits::MIN_LIVEKIT_SECRET_CHARS;
    let chars = secret.chars().count();
    if *source == Source::Dev || chars >= MIN_LIVEKIT_SECRET_CHARS {
        return Ok(());
    }
    Err(field_error(
        source_field(source, keys::API_SECRET),
        format!(
            "has {chars} characters; livekit-server refuses API secrets shorter than \
             {MIN_LIVEKIT_SECRET_CHARS} outside its dev mode (only --dev accepts a short secret)"
        ),
    ))
}

fn reuse_or_new_jwks(
    url: &str,
    previous: Option<&Snapshot>,
) -> Result<Arc<JwksSource>, ConfigError> {
    let parsed =
        url::Url::parse(url).map_err(|e| field_error(fields::AUTH_JWKS_URL, e.to_string()))?;
    let reusable = previous
        .and_then(|p| p.service.as_ref())
        .and_then(|s| s.verifier.jwks())
        .filter(|j| j.url() == &parsed);
    Ok(reusable.unwrap_or_else(|| Arc::new(JwksSource::new(parsed))))
}

fn check_api_key(key: &str) -> Result<(), ConfigError> {
    if key.is_empty() {
        return Err(field_error(keys::API_KEY, "must not be empty"));
    }
    if key.len() > 256 || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(field_error(
            keys::API_KEY,
            "must be at most 256 characters without spaces or control characters",
        ));
    }
    Ok(())
}
