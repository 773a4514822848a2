//! The claims of a caller token, read once (after the signature checked out) into [`CallerClaims`],
//! keeping only the claims the sidecar looks at: the registered ones it checks and the configured
//! identity, name and authorization claims. Every other claim is skipped without being built, and no
//! map of all claims is made. Which types a claim may have is left to the checks, so reading never
//! refuses a token a check would have refused with another reason.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::AuthFailure;
use super::compact::{Compact, decode_part};

/// The claim names a configuration reads besides the registered ones.
#[derive(Debug, Clone)]
pub(super) struct ClaimNames {
    pub identity: String,
    pub name: String,
    /// The authorization claim, when authorization reads the token (`claims` mode).
    pub permissions: Option<String>,
}

pub(super) fn read(compact: &Compact<'_>, names: &ClaimNames) -> Result<CallerClaims, AuthFailure> {
    let bytes = decode_part(compact.payload)?;
    let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
    let claims = names
        .deserialize(&mut deserializer)
        .map_err(|_| AuthFailure::Malformed)?;
    deserializer.end().map_err(|_| AuthFailure::Malformed)?;
    Ok(claims)
}

/// A claim's value as the checks read it. Reading never fails on a claim's type: which types a claim
/// may have is decided by the checks, in their order, as before.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) enum ClaimValue {
    /// Not in the token, or `null`.
    #[default]
    Absent,
    Str(String),
    /// A number: whole seconds when it is a non-negative one (fractions cut), `None` otherwise.
    Number(Option<u64>),
    /// An array: its string elements; others are dropped, as no check accepts them.
    Strings(Vec<String>),
    /// A boolean or an object.
    Other,
}

impl ClaimValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    fn into_string(self) -> Option<String> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The claims of a caller token the sidecar reads; every other claim is skipped.
#[derive(Debug, Default)]
pub(super) struct CallerClaims {
    pub exp: ClaimValue,
    pub nbf: ClaimValue,
    pub iss: ClaimValue,
    pub aud: ClaimValue,
    pub sub: ClaimValue,
    /// The configured identity claim (`sub` by default).
    pub identity: ClaimValue,
    /// The configured name claim.
    pub name: ClaimValue,
    /// The configured authorization claim.
    pub permissions: ClaimValue,
}

impl CallerClaims {
    pub fn issuer(&self) -> Option<String> {
        self.iss.as_str().map(str::to_owned)
    }

    pub fn take_name(&mut self) -> Option<String> {
        std::mem::take(&mut self.name).into_string()
    }

    pub fn take_permissions(&mut self) -> Option<Vec<String>> {
        match std::mem::take(&mut self.permissions) {
            ClaimValue::Strings(permissions) => Some(permissions),
            _ => None,
        }
    }
}

// The roles a claim name can play; one name can play several (the identity claim is `sub` by default).
const EXP: u8 = 1;
const NBF: u8 = 1 << 1;
const ISS: u8 = 1 << 2;
const AUD: u8 = 1 << 3;
const SUB: u8 = 1 << 4;
const IDENTITY: u8 = 1 << 5;
const NAME: u8 = 1 << 6;
const PERMISSIONS: u8 = 1 << 7;

impl ClaimNames {
    fn roles(&self, key: &str) -> u8 {
        let mut roles = match key {
            "exp" => EXP,
            "nbf" => NBF,
            "iss" => ISS,
            "aud" => AUD,
            "sub" => SUB,
            _ => 0,
        };
        if key == self.identity {
            roles |= IDENTITY;
        }
        if key == self.name {
            roles |= NAME;
        }
        if self.permissions.as_deref() == Some(key) {
            roles |= PERMISSIONS;
        }
        roles
    }
}

impl<'de> DeserializeSeed<'de> for &ClaimNames {
    type Value = CallerClaims;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<CallerClaims, D::Error> {
        deserializer.deserialize_map(ClaimsVisitor(self))
    }
}

struct ClaimsVisitor<'a>(&'a ClaimNames);

impl<'de> Visitor<'de> for ClaimsVisitor<'_> {
    type Value = CallerClaims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CallerClaims, A::Error> {
        let mut claims = CallerClaims::default();
        while let Some(roles) = map.next_key_seed(RolesOf(self.0))? {
            if roles == 0 {
                map.next_value::<Skip>()?;
                continue;
            }
            let value: ClaimValue = map.next_value()?;
            // A repeated claim: the last one wins, as with JSON.parse and a map.
            for (role, slot) in [
                (EXP, &mut claims.exp),
                (NBF, &mut claims.nbf),
                (ISS, &mut claims.iss),
                (AUD, &mut claims.aud),
                (SUB, &mut claims.sub),
                (IDENTITY, &mut claims.identity),
                (NAME, &mut claims.name),
                (PERMISSIONS, &mut claims.permissions),
            ] {
                if roles & role != 0 {
                    slot.clone_from(&value);
                }
            }
        }
        Ok(claims)
    }
}

/// Reads a claim name as the roles it plays, without allocating it.
struct RolesOf<'a>(&'a ClaimNames);

impl<'de> DeserializeSeed<'de> for RolesOf<'_> {
    type Value = u8;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<u8, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for RolesOf<'_> {
    type Value = u8;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a claim name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<u8, E> {
        Ok(self.0.roles(key))
    }
}

impl<'de> Deserialize<'de> for ClaimValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ClaimValueVisitor)
    }
}

struct ClaimValueVisitor;

impl<'de> Visitor<'de> for ClaimValueVisitor {
    type Value = ClaimValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<ClaimValue, E> {
        Ok(ClaimValue::Absent)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<ClaimValue, E> {
        Ok(ClaimValue::Other)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<ClaimValue, E> {
        Ok(ClaimValue::Number(Some(n)))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<ClaimValue, E> {
        Ok(ClaimValue::Number(u64::try_from(n).ok()))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<ClaimValue, E> {
        // `as` saturates: a date past u64 seconds is "never expires", as before.
        let seconds = (f >= 0.0 && f.is_finite()).then_some(f as u64);
        Ok(ClaimValue::Number(seconds))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<ClaimValue, E> {
        Ok(ClaimValue::Str(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<ClaimValue, E> {
        Ok(ClaimValue::Str(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ClaimValue, A::Error> {
        let mut strings = Vec::new();
        while let Some(element) = seq.next_element::<StringOrSkipped>()? {
            if let StringOrSkipped(Some(s)) = element {
                strings.push(s);
            }
        }
        Ok(ClaimValue::Strings(strings))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ClaimValue, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(ClaimValue::Other)
    }
}

/// A value the sidecar does not use, read without being built but still checked as a `Value` would
/// be: UTF-8 and escapes in its strings, nesting within serde_json's depth limit. serde's
/// `IgnoredAny` skips without those checks, which would let through a payload a full parse refuses.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

/// An array element: kept when it is a string, skipped (nested values too) otherwise.
struct StringOrSkipped(Option<String>);

impl<'de> Deserialize<'de> for StringOrSkipped {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match deserializer.deserialize_any(ClaimValueVisitor)? {
            ClaimValue::Str(s) => Ok(Self(Some(s))),
            _ => Ok(Self(None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn names(identity: &str, name: &str, permissions: Option<&str>) -> ClaimNames {
        ClaimNames {
            identity: identity.into(),
            name: name.into(),
            permissions: permissions.map(Into::into),
        }
    }

    fn read_json(names: &ClaimNames, json: &str) -> Result<CallerClaims, AuthFailure> {
        let payload = URL_SAFE_NO_PAD.encode(json);
        let token = format!("e30.{payload}.c2ln");
        read(&super::super::compact::split(&token).unwrap(), names)
    }

    #[test]
    fn values_keep_what_the_checks_need() {
        let claims = read_json(
            &names("sub", "name", Some("permissions")),
            r#"{"exp": 1.9e3, "nbf": -1, "iss": "a\u0062c", "aud": ["x", 1, null, "y", ["z"]],
                "sub": "s", "name": {"first": "n"}, "permissions": ["P", {"P": 1}, "Q"],
                "other": [1, {"deep": [null]}]}"#,
        )
        .unwrap();
        assert_eq!(claims.exp, ClaimValue::Number(Some(1900)));
        assert_eq!(claims.nbf, ClaimValue::Number(None));
        assert_eq!(claims.iss, ClaimValue::Str("abc".into()));
        assert_eq!(
            claims.aud,
            ClaimValue::Strings(vec!["x".into(), "y".into()])
        );
        assert_eq!(claims.sub, ClaimValue::Str("s".into()));
        assert_eq!(claims.identity, ClaimValue::Str("s".into()));
        assert_eq!(claims.name, ClaimValue::Other);
        assert_eq!(
            claims.permissions,
            ClaimValue::Strings(vec!["P".into(), "Q".into()])
        );
    }

    #[test]
    fn configured_names_escaped_keys_and_repeats() {
        let names = names("uid", "display", Some("roles"));
        let claims = read_json(
            &names,
            r#"{"\u0075id": "u", "display": "first", "display": "second", "roles": true,
                "exp": 5, "exp": null}"#,
        )
        .unwrap();
        assert_eq!(claims.identity.as_str(), Some("u"));
        assert_eq!(claims.name.as_str(), Some("second"));
        assert_eq!(claims.permissions, ClaimValue::Other);
        assert_eq!(claims.exp, ClaimValue::Absent);
        assert_eq!(claims.sub, ClaimValue::Absent);
        // The authorization claim is not kept unless authorization reads the token.
        let claims = read_json(
            &super::tests::names("sub", "name", None),
            r#"{"roles": ["A"]}"#,
        );
        assert_eq!(claims.unwrap().permissions, ClaimValue::Absent);
    }

    /// Claims the sidecar skips are still checked as a full parse would: a token whose unused claim
    /// holds a lone surrogate, invalid UTF-8 or nesting past serde_json's depth limit stays refused.
    #[test]
    fn skipped_claims_are_still_valid_json() {
        let names = names("sub", "name", None);
        let deep = format!(
            "{{\"sub\": \"a\", \"x\": {}{}}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        for json in [
            r#"{"sub": "a", "x": "\ud800"}"#,
            r#"{"sub": "a", "x": {"k": "\ud800"}}"#,
            &deep,
        ] {
            assert_eq!(
                read_json(&names, json).err(),
                Some(AuthFailure::Malformed),
                "{json}"
            );
        }
        let mut invalid_utf8 = br#"{"sub": "a", "x": ""}"#.to_vec();
        invalid_utf8.insert(19, 0xff);
        let token = format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(&invalid_utf8));
        let compact = super::super::compact::split(&token).unwrap();
        assert_eq!(read(&compact, &names).err(), Some(AuthFailure::Malformed));
        let shallow = format!(
            "{{\"sub\": \"a\", \"x\": {}{}}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(read_json(&names, &shallow).is_ok());
    }

    #[test]
    fn only_a_json_object_is_a_claims_set() {
        let names = names("sub", "name", None);
        for json in [
            "[]",
            "\"sub\"",
            "1",
            "null",
            "{\"sub\": \"a\"} x",
            "{\"sub\": }",
            "",
        ] {
            assert_eq!(
                read_json(&names, json).err(),
                Some(AuthFailure::Malformed),
                "{json}"
            );
        }
    }
}
