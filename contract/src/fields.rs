//! The path of every setting in the settings file (`token.maxTtlSeconds`), spelled once: validation
//! names its errors with them and the sidecar's environment-variable table maps its variables onto them,
//! so a renamed field cannot leave a message or a variable pointing at a name that no longer exists.

pub const SERVER_URL: &str = "serverUrl";
pub const REGION: &str = "region";
pub const FEATURES: &str = "features";
pub const TOKEN_DEFAULT_TTL: &str = "token.defaultTtlSeconds";
pub const TOKEN_MAX_TTL: &str = "token.maxTtlSeconds";
pub const TOKEN_GRANTS: &str = "token.grants";
pub const TOKEN_ALLOW_IDENTITY_OVERRIDE: &str = "token.allowIdentityOverride";
pub const AUTH_ALGORITHMS: &str = "auth.algorithms";
pub const AUTH_JWKS_URL: &str = "auth.jwksUrl";
pub const AUTH_ALLOW_HTTP_JWKS: &str = "auth.allowHttpJwks";
pub const AUTH_ALLOW_ANY_ISSUER_AUDIENCE: &str = "auth.allowAnyIssuerAndAudience";
pub const AUTH_ISSUER: &str = "auth.issuer";
pub const AUTH_AUDIENCES: &str = "auth.audiences";
pub const AUTH_IDENTITY_CLAIM: &str = "auth.identityClaim";
pub const AUTH_NAME_CLAIM: &str = "auth.nameClaim";
pub const AUTH_LEEWAY: &str = "auth.leewaySeconds";
pub const AUTHZ_MODE: &str = "authorization.mode";
pub const AUTHZ_CLAIM: &str = "authorization.claims.claim";
pub const AUTHZ_WEBHOOK: &str = "authorization.webhook";
pub const AUTHZ_WEBHOOK_URL: &str = "authorization.webhook.url";
pub const AUTHZ_WEBHOOK_TIMEOUT: &str = "authorization.webhook.timeoutMs";
pub const AUTHZ_WEBHOOK_CACHE_TTL: &str = "authorization.webhook.cacheTtlSeconds";
