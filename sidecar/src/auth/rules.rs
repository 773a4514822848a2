//! The registered claims a configuration checks: `exp`, `nbf`, `iss`, `aud`.

use super::AuthFailure;
use super::claims::{CallerClaims, ClaimValue};

/// The registered claims a configuration asks for, prepared once per snapshot.
#[derive(Debug, Clone)]
pub(super) struct ClaimRules {
    pub issuer: Option<String>,
    pub audiences: Vec<String>,
    pub leeway: u64,
}

impl ClaimRules {
    /// `exp` required and not past, `nbf` not ahead (both within the leeway), `iss` the configured string
    /// and `aud` one of the configured audiences when configured. `now` is seconds since the epoch.
    pub fn check(&self, claims: &CallerClaims, now: u64) -> Result<(), AuthFailure> {
        let exp = numeric(&claims.exp)?.ok_or(AuthFailure::MissingClaim("exp"))?;
        if exp.saturating_add(self.leeway) < now {
            return Err(AuthFailure::Expired);
        }
        if numeric(&claims.nbf)?.is_some_and(|nbf| nbf > now.saturating_add(self.leeway)) {
            return Err(AuthFailure::NotYetValid);
        }
        match &claims.iss {
            ClaimValue::Absent if self.issuer.is_some() => {
                return Err(AuthFailure::MissingClaim("iss"));
            }
            ClaimValue::Absent => {}
            ClaimValue::Str(iss)
                if self.issuer.as_ref().is_some_and(|expected| expected != iss) =>
            {
                return Err(AuthFailure::WrongIssuer);
            }
            ClaimValue::Str(_) => {}
            // An array, object, number or boolean is not an issuer, whatever it holds.
            _ => return Err(AuthFailure::WrongIssuer),
        }
        if !self.audiences.is_empty() {
            let accepted = |aud: &str| self.audiences.iter().any(|a| a == aud);
            let ok = match &claims.aud {
                ClaimValue::Absent => return Err(AuthFailure::MissingClaim("aud")),
                ClaimValue::Str(aud) => accepted(aud),
                ClaimValue::Strings(auds) => auds.iter().any(|a| accepted(a)),
                _ => false,
            };
            if !ok {
                return Err(AuthFailure::WrongAudience);
            }
        }
        Ok(())
    }
}

/// A NumericDate claim as whole seconds; anything but a non-negative number is refused.
fn numeric(value: &ClaimValue) -> Result<Option<u64>, AuthFailure> {
    match value {
        ClaimValue::Absent => Ok(None),
        ClaimValue::Number(seconds) => seconds.map(Some).ok_or(AuthFailure::Malformed),
        _ => Err(AuthFailure::Malformed),
    }
}
