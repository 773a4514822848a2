//! The operator's source: the projected volume of its Secret and ConfigMap, one file per key.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use livekit_contract::{Secret, SidecarSettings, keys};

use super::{ConfigError, ConfigInput, Credentials, Source, field_error, trimmed};
use crate::auth::CallerKeyMaterial;

/// Largest file read from the config directory.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Reads the directory the operator's Secret and ConfigMap are mounted at (one file per key).
pub fn load_dir(dir: &Path) -> Result<ConfigInput, ConfigError> {
    let source_dir = dir;
    let fingerprint = fingerprint(dir);
    if let Some(message) = not_a_config_dir(dir) {
        return Err(ConfigError::Read {
            path: dir.to_owned(),
            message,
        });
    }
    // Read every file from one resolved `..data` target, so a kubelet swap in the middle of the reads
    // cannot pair an old API key with a new secret.
    let dir = &resolve_data_dir(dir);
    let settings_text = read_optional(dir, keys::SETTINGS)?;
    let api_key = read_optional(dir, keys::API_KEY)?.map(trimmed);
    let api_secret = read_optional(dir, keys::API_SECRET)?.map(trimmed);
    let caller_keys = CallerKeyMaterial {
        hmac_secret: read_optional(dir, keys::CALLER_HS_SECRET)?.map(|s| Secret::new(trimmed(s))),
        public_keys_pem: read_optional(dir, keys::CALLER_PUBLIC_KEYS)?,
    };

    let credentials = match (api_key, api_secret) {
        (None, None) => None,
        (Some(api_key), Some(api_secret)) => Some(Credentials {
            api_key,
            api_secret: Secret::new(api_secret),
        }),
        (Some(_), None) => return Err(field_error(keys::API_SECRET, "file is missing")),
        (None, Some(_)) => return Err(field_error(keys::API_KEY, "file is missing")),
    };
    let settings = settings_text
        .map(|text| SidecarSettings::from_yaml(&text))
        .transpose()?;
    let configured = match (settings, credentials) {
        (Some(settings), Some(credentials)) => Some((settings, credentials)),
        (None, Some(_)) => return Err(field_error(keys::SETTINGS, "file is missing")),
        (_, None) => None,
    };
    Ok(ConfigInput {
        source: Source::Dir(source_dir.to_owned()),
        configured,
        caller_keys,
        fingerprint: Some(fingerprint),
    })
}

/// A hash of everything a directory source would load, so unchanged files cost no rebuild.
pub fn fingerprint(dir: &Path) -> u64 {
    let base = resolve_data_dir(dir);
    let mut hasher = DefaultHasher::new();
    base.hash(&mut hasher);
    for name in [
        keys::SETTINGS,
        keys::API_KEY,
        keys::API_SECRET,
        keys::CALLER_HS_SECRET,
        keys::CALLER_PUBLIC_KEYS,
    ] {
        name.hash(&mut hasher);
        std::fs::read(base.join(name)).ok().hash(&mut hasher);
    }
    hasher.finish()
}

/// The directory the kubelet's `..data` symlink points at, or `dir` itself when there is none.
pub fn resolve_data_dir(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir.join("..data")).unwrap_or_else(|_| dir.to_owned())
}

fn read_optional(dir: &Path, name: &str) -> Result<Option<String>, ConfigError> {
    let path = dir.join(name);
    let read_error = |message: String| ConfigError::Read {
        path: path.clone(),
        message,
    };
    let metadata = match std::fs::metadata(&path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(e.to_string())),
    };
    if metadata.len() > MAX_FILE_BYTES {
        return Err(read_error(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    std::fs::read_to_string(&path)
        .map(Some)
        .map_err(|e| read_error(e.to_string()))
}

/// Why `dir` cannot be the config directory, in words that tell a missing path from a file.
fn not_a_config_dir(dir: &Path) -> Option<String> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => None,
        Ok(_) => {
            Some("not a directory (it is a file; --config-dir names the mounted directory)".into())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Some("the directory does not exist (is the volume mounted there?)".into())
        }
        Err(e) => Some(e.to_string()),
    }
}

#[cfg(test)]
mod dir_tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_called_missing_and_a_file_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope");
        let err = load_dir(&missing).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        assert!(!err.contains("not a directory"), "{err}");
        assert!(err.contains("nope"), "{err}");

        let file = tmp.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = load_dir(&file).unwrap_err().to_string();
        assert!(err.contains("not a directory (it is a file"), "{err}");

        assert_eq!(not_a_config_dir(tmp.path()), None);
    }
}
