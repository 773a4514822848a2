//! A light check of caller public keys, mirroring what the sidecar accepts at start: PEM blocks that
//! are public keys (never private), each RSA, EC or Ed25519, at least one of a family that the
//! configured algorithms use. It reads the key type from the DER's algorithm OID without parsing the
//! key itself; the sidecar does the full parse.

use base64::Engine as _;
use livekit_contract::Algorithm;

/// A public key family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Rsa,
    Ec,
    Ed25519,
}

impl Family {
    fn of(algorithm: Algorithm) -> Option<Self> {
        use Algorithm::*;
        match algorithm {
            HS256 | HS384 | HS512 => None,
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Some(Self::Rsa),
            ES256 | ES384 => Some(Self::Ec),
            EdDSA => Some(Self::Ed25519),
        }
    }
}

const OID_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
const OID_EC: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The families of the PEM blocks in `text`, or why the sidecar would refuse them.
pub fn families(text: &str) -> Result<Vec<Family>, String> {
    let mut out = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(tag) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|r| r.strip_suffix("-----"))
        else {
            continue;
        };
        let index = out.len() + 1;
        let end = format!("-----END {tag}-----");
        let mut body = String::new();
        let mut closed = false;
        for l in lines.by_ref() {
            if l == end {
                closed = true;
                break;
            }
            body.push_str(l);
        }
        if !closed {
            return Err(format!("PEM block {index} ({tag}) has no END line"));
        }
        if tag.contains("PRIVATE") {
            return Err(format!(
                "PEM block {index} is a private key; give public keys only"
            ));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|e| format!("PEM block {index} ({tag}) is not valid base64: {e}"))?;
        let family = match tag {
            "RSA PUBLIC KEY" => Family::Rsa,
            "PUBLIC KEY" if contains(&der, OID_RSA) => Family::Rsa,
            "PUBLIC KEY" if contains(&der, OID_EC) => Family::Ec,
            "PUBLIC KEY" if contains(&der, OID_ED25519) => Family::Ed25519,
            _ => {
                return Err(format!(
                    "PEM block {index} ({tag}) is not an RSA, EC or Ed25519 public key"
                ));
            }
        };
        out.push(family);
    }
    if out.is_empty() {
        return Err("no PEM block found".into());
    }
    Ok(out)
}

/// Checks that `pem` holds public keys the sidecar can use for `algorithms`.
pub fn check_public_keys(pem: &str, algorithms: &[Algorithm]) -> Result<(), String> {
    let found = families(pem)?;
    let usable = algorithms
        .iter()
        .filter_map(|a| Family::of(*a))
        .any(|f| found.contains(&f));
    if usable {
        Ok(())
    } else {
        Err(format!(
            "none of its keys ({found:?}) fits the configured algorithms"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEPPMk2hWYkitITnIhXiZhJ+Oe2ll\n/gSprLQU5B2xBl3EyNvPh+5lm+HyXKECHfxdOg0kLm2kc3p8s7eZFh3fCA==\n-----END PUBLIC KEY-----\n";
    const ED: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAXj3YXPiS6PsbygFjCpdRPAC+MeSbLL6ISe9ospV2/ro=\n-----END PUBLIC KEY-----\n";
    const RSA: &str = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAxHAyKFCs+ccGQ89mwFgS\nOn8KRU7u8IMvOR6R1wIh+mmJpVQILAuyA9NPSI0Y0Bj/7fJPb5BxFltuf1hOjhxd\nGF1ruPHRQ6PQ4ItAX1DIyATxnoeVGaKcxYFCBJ6ZU9mxnlrzfp6XISdgWBMotMV8\nHq0L+btCuk9rJ9r5J31B3JIZ4rOn7BvhEUOnP6S4Md/vDDo1NEI92soRs0L/BC53\nFu9rvkphNlWpvxt6UWab2PzNGgfKnt9zlVy839iBgjEV8slbkr0WayJ5ArSoaMkh\n6ca9YkBUmQ15C78xo9IDNzM5saSuJZOXW6dPH85FXflUXvFBgf4ZvMl7WocQlIVH\nwQIDAQAB\n-----END PUBLIC KEY-----\n";

    #[test]
    fn families_table() {
        assert_eq!(families(EC).unwrap(), [Family::Ec]);
        assert_eq!(families(ED).unwrap(), [Family::Ed25519]);
        assert_eq!(families(RSA).unwrap(), [Family::Rsa]);
        let all = format!("{RSA}{EC}{ED}");
        assert_eq!(
            families(&all).unwrap(),
            [Family::Rsa, Family::Ec, Family::Ed25519]
        );
        let cases = [
            ("", "no PEM block"),
            ("hello", "no PEM block"),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "private key",
            ),
            ("-----BEGIN PUBLIC KEY-----\nMCow\n", "no END line"),
            (
                "-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----\n",
                "base64",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "not an RSA, EC or Ed25519",
            ),
        ];
        for (text, want) in cases {
            let err = families(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_key_must_fit_an_algorithm() {
        use Algorithm::*;
        assert!(check_public_keys(EC, &[ES256]).is_ok());
        assert!(check_public_keys(RSA, &[RS256, PS512]).is_ok());
        assert!(check_public_keys(ED, &[EdDSA]).is_ok());
        assert!(check_public_keys(&format!("{EC}{RSA}"), &[RS256]).is_ok());
        assert!(
            check_public_keys(EC, &[RS256])
                .unwrap_err()
                .contains("fits")
        );
        assert!(check_public_keys(RSA, &[EdDSA]).is_err());
    }
}
