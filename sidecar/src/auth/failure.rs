//! Why a caller is refused: a small closed set, safe for a message and for a metrics label.

use std::fmt;

/// Why a caller was refused, as a small closed set: safe for a message and for a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    MissingToken,
    NotBearer,
    Malformed,
    BadSignature,
    AlgorithmNotAllowed,
    UnknownKey,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    MissingClaim(&'static str),
    CriticalHeader,
    NoIdentity,
    UnusableName,
}

impl AuthFailure {
    /// A bounded label for metrics and logs.
    pub fn reason(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::NotBearer => "not_bearer",
            Self::Malformed => "malformed",
            Self::BadSignature => "bad_signature",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::UnknownKey => "unknown_key",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim(_) => "missing_claim",
            Self::CriticalHeader => "critical_header",
            Self::NoIdentity => "no_identity",
            Self::UnusableName => "unusable_name",
        }
    }
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingToken => f.write_str("Missing bearer token"),
            Self::NotBearer => f.write_str("Authorization header must use the Bearer scheme"),
            Self::Malformed | Self::BadSignature => f.write_str("Invalid token"),
            Self::AlgorithmNotAllowed => f.write_str("Token algorithm is not allowed"),
            Self::UnknownKey => f.write_str("Token signing key is not known"),
            Self::Expired => f.write_str("Token has expired"),
            Self::NotYetValid => f.write_str("Token is not yet valid"),
            Self::WrongIssuer => f.write_str("Token issuer is not accepted"),
            Self::WrongAudience => f.write_str("Token audience is not accepted"),
            Self::MissingClaim(claim) => write!(f, "Token is missing the required claim {claim}"),
            Self::CriticalHeader => f.write_str("Token has critical header parameters"),
            Self::NoIdentity => f.write_str("Token has no usable identity claim"),
            Self::UnusableName => f.write_str("Token name claim is not usable"),
        }
    }
}

/// Every value of the `reason` label of `livekit_sidecar_caller_auth_failures_total`: each
/// [`AuthFailure::reason`], and `keys_unavailable`.
pub const AUTH_FAILURE_REASONS: &[&str] = &[
    "missing_token",
    "not_bearer",
    "malformed",
    "bad_signature",
    "algorithm_not_allowed",
    "unknown_key",
    "expired",
    "not_yet_valid",
    "wrong_issuer",
    "wrong_audience",
    "missing_claim",
    "critical_header",
    "no_identity",
    "unusable_name",
    "keys_unavailable",
];

/// The result of verifying a caller token.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Refused(AuthFailure),
    /// The keys could not be had (JWKS down): nobody can be verified, so nobody gets in.
    #[error("caller signing keys unavailable: {0}")]
    KeysUnavailable(String),
}

impl VerifyError {
    /// A bounded label for metrics: one of [`AUTH_FAILURE_REASONS`].
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Refused(failure) => failure.reason(),
            Self::KeysUnavailable(_) => "keys_unavailable",
        }
    }
}

impl From<AuthFailure> for VerifyError {
    fn from(failure: AuthFailure) -> Self {
        Self::Refused(failure)
    }
}
