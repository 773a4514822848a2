//! The `keys.yaml` file livekit-server reads: a flat YAML map of API key to API secret.

use std::collections::BTreeMap;

/// Why a keys file could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeysFileError {
    #[error("keys file is not a YAML map of key to secret: {0}")]
    Malformed(String),
    #[error("keys file has an empty key or secret")]
    Empty,
}

/// Renders `key: secret` lines in a stable order (keys sorted), so an unchanged set renders identically.
pub fn render_keys_file<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let map: BTreeMap<&str, &str> = pairs.into_iter().collect();
    if map.is_empty() {
        return String::new();
    }
    serde_yaml::to_string(&map).expect("a map of strings always serialises")
}

/// Parses a keys file back into its pairs.
pub fn parse_keys_file(text: &str) -> Result<BTreeMap<String, String>, KeysFileError> {
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let map: BTreeMap<String, String> =
        serde_yaml::from_str(text).map_err(|e| KeysFileError::Malformed(e.to_string()))?;
    if map.iter().any(|(k, v)| k.is_empty() || v.is_empty()) {
        return Err(KeysFileError::Empty);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_sorted_and_round_trips() {
        let text = render_keys_file([("APIzzz", "s2"), ("APIaaa", "s1")]);
        assert_eq!(text, "APIaaa: s1\nAPIzzz: s2\n");
        let parsed = parse_keys_file(&text).unwrap();
        assert_eq!(parsed.get("APIaaa").map(String::as_str), Some("s1"));
        assert_eq!(parsed.len(), 2);
    }

    #[test]
    fn quotes_values_that_yaml_would_misread() {
        let text = render_keys_file([("APIk", "yes"), ("APIn", "0123")]);
        let parsed = parse_keys_file(&text).unwrap();
        assert_eq!(parsed["APIk"], "yes");
        assert_eq!(parsed["APIn"], "0123");
    }

    #[test]
    fn rejects_malformed_and_empty_entries() {
        assert!(matches!(
            parse_keys_file("- a\n- b\n"),
            Err(KeysFileError::Malformed(_))
        ));
        assert_eq!(parse_keys_file("APIk: \"\"\n"), Err(KeysFileError::Empty));
        assert!(parse_keys_file("\n").unwrap().is_empty());
    }
}
