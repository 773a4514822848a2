//! Configuration: three sources (the operator's mounted directory [`dir`], environment variables [`env`],
//! `--dev` [`dev`]) give one [`ConfigInput`]; [`Snapshot::build`] validates it completely into an
//! immutable snapshot that requests read through an atomic pointer. Loading is a pure function of its
//! source so that hot reload can call it again and keep the last good snapshot when it fails.

use std::fmt;
use std::path::PathBuf;

use livekit_contract::{InvalidSettings, Secret, SidecarSettings};

use crate::auth::{CallerKeyMaterial, KeyMaterialError};

pub mod dev;
mod dir;
mod env;
mod snapshot;

pub use dir::{MAX_FILE_BYTES, fingerprint, load_dir, resolve_data_dir};
pub use env::{ENV_VARS, load_env};
pub use snapshot::{Service, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    /// A problem with one named field or variable.
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    #[error(transparent)]
    Settings(#[from] InvalidSettings),
    /// Caller key material, named by the file or variable it came from.
    #[error("{field}: {error}")]
    KeyMaterial {
        field: String,
        error: KeyMaterialError,
    },
}

pub(crate) fn field_error(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: field.into(),
        message: message.into(),
    }
}

/// Where a configuration came from; shown in logs, never secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Dir(PathBuf),
    Env,
    Dev,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dir(path) => write!(f, "directory {}", path.display()),
            Self::Env => f.write_str("environment"),
            Self::Dev => f.write_str("dev mode"),
        }
    }
}

/// LiveKit API credentials.
#[derive(Debug)]
pub struct Credentials {
    pub api_key: String,
    pub api_secret: Secret,
}

/// What a source says, before it is validated and prepared.
#[derive(Debug)]
pub struct ConfigInput {
    pub source: Source,
    /// `None` when the source holds no LiveKit credentials at all: the sidecar runs unconfigured.
    pub configured: Option<(SidecarSettings, Credentials)>,
    pub caller_keys: CallerKeyMaterial,
    /// For a directory source: the [`fingerprint`] taken before the files were read, so a change
    /// made during the read is seen as a change afterwards.
    pub fingerprint: Option<u64>,
}

/// Values read from files and variables lose surrounding whitespace (a trailing newline above all).
fn trimmed(text: String) -> String {
    text.trim().to_owned()
}

/// Reads the source the sidecar was started with (again, on a reload).
pub fn load(source: &Source) -> Result<ConfigInput, ConfigError> {
    match source {
        Source::Dev => Ok(dev::input()),
        Source::Dir(dir) => load_dir(dir),
        Source::Env => load_env(|name| std::env::var(name).ok()),
    }
}

#[cfg(test)]
mod tests;
