//! The official LiveKit token verifiers, run as child processes.
//!
//! Two small programs verify LiveKit access tokens with the official server SDKs:
//! `tests/interop/node/verify.mjs` (npm `livekit-server-sdk`, `TokenVerifier`) and
//! `tests/interop/python/verify.py` (PyPI `livekit-api`, `livekit.api.TokenVerifier`).
//! `./scripts/test-deps.sh` installs both SDKs; `./scripts/test.sh` runs it and exports
//! `LIVEKIT_INTEROP_NODE` / `LIVEKIT_INTEROP_PYTHON` with the two scripts' paths.
//!
//! Protocol, the same for both: one JSON line per token on stdin,
//! `{"apiKey": "...", "apiSecret": "...", "token": "..."}`, and one JSON line per token on stdout, in order:
//! `{"ok": true, "claims": {...}, "exp": <exp>}` or `{"ok": false, "error": "<kind>: <message>"}`.
//! A rejected token is a result, never a non-zero exit; one process verifies a whole batch.
//!
//! The claims are each SDK's own view of the token, so their shapes differ:
//! - Node: the JWT payload as `TokenVerifier.verify()` returns it (`sub`, `iss`, `nbf`, `exp`, `name`,
//!   `video: {room, roomJoin, canPublish, canSubscribe, canPublishData}`, ...).
//! - Python: `Claims.asdict()` (`identity`, `name`, `video: {...}` in the same camelCase names, plus
//!   `sip`, `inference`, `observability`, `attributes`); it has no `iss`/`nbf`/`exp`, and its
//!   `VideoGrants` read a missing `canPublish`/`canSubscribe`/`canPublishData` as `true`.
//!
//! [`VerifyResult::exp`] carries `exp` from both, and [`VerifyResult::identity`] reads `sub` or
//! `identity`, so a test can check those the same way for both SDKs.
//!
//! When a verifier is not installed every call panics (tests fail; they never skip) with a message
//! that says to run `./scripts/test-deps.sh`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// Env var naming the Node verifier script (run with `node`).
pub const NODE_ENV: &str = "LIVEKIT_INTEROP_NODE";
/// Env var naming the Python verifier script (run with `tests/interop/.venv/bin/python`).
pub const PYTHON_ENV: &str = "LIVEKIT_INTEROP_PYTHON";

const INSTALL_HINT: &str = "run ./scripts/test-deps.sh";

/// One token to verify, with the API key and secret the verifier should expect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyRequest {
    pub api_key: String,
    pub api_secret: String,
    pub token: String,
}

impl VerifyRequest {
    pub fn new(
        api_key: impl Into<String>,
        api_secret: impl Into<String>,
        token: impl Into<String>,
    ) -> Self {
        Self {
            api_key: api_key.into(),
            api_secret: api_secret.into(),
            token: token.into(),
        }
    }
}

/// A verifier's answer for one token.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VerifyResult {
    /// The SDK accepted the token.
    pub ok: bool,
    /// The verified claims as the SDK returns them (`Null` when rejected); see the module docs.
    #[serde(default)]
    pub claims: serde_json::Value,
    /// Why the SDK rejected the token: `"<error kind>: <message>"`.
    #[serde(default)]
    pub error: Option<String>,
    /// The token's `exp` (seconds since the epoch) when accepted.
    #[serde(default)]
    pub exp: Option<i64>,
}

impl VerifyResult {
    /// The claims of an accepted token; panics with the SDK's error when it was rejected.
    #[track_caller]
    pub fn expect_ok(&self) -> &serde_json::Value {
        assert!(
            self.ok,
            "the SDK rejected the token: {}",
            self.error.as_deref().unwrap_or("(no error message)")
        );
        &self.claims
    }

    /// The participant identity: `sub` in the Node SDK's payload, `identity` in the Python SDK's claims.
    pub fn identity(&self) -> Option<&str> {
        self.claims
            .get("sub")
            .or_else(|| self.claims.get("identity"))
            .and_then(serde_json::Value::as_str)
    }
}

/// One of the official SDK verifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verifier {
    /// npm `livekit-server-sdk`, `TokenVerifier`.
    Node,
    /// PyPI `livekit-api`, `livekit.api.TokenVerifier`.
    Python,
}

impl Verifier {
    pub const ALL: [Verifier; 2] = [Verifier::Node, Verifier::Python];

    pub fn name(self) -> &'static str {
        match self {
            Verifier::Node => "node livekit-server-sdk",
            Verifier::Python => "python livekit-api",
        }
    }

    /// Verifies a batch of tokens in one child process; one result per request, in order.
    #[track_caller]
    pub fn verify(self, items: &[VerifyRequest]) -> Vec<VerifyResult> {
        require_verifiers();
        if items.is_empty() {
            return Vec::new();
        }
        run_batch(self.name(), self.command(), items)
    }

    fn command(self) -> Command {
        let interop = interop_dir();
        match self {
            Verifier::Node => {
                let script = env_path(NODE_ENV).unwrap_or_else(|| interop.join("node/verify.mjs"));
                let mut cmd = Command::new("node");
                cmd.arg(script);
                cmd
            }
            Verifier::Python => {
                let script =
                    env_path(PYTHON_ENV).unwrap_or_else(|| interop.join("python/verify.py"));
                // verify.py also re-executes itself under its own tests/interop/.venv when started
                // by another interpreter, so `python3` is only the fallback's fallback.
                let venv_python = interop.join(".venv/bin/python");
                let mut cmd = if venv_python.exists() {
                    Command::new(venv_python)
                } else {
                    Command::new("python3")
                };
                cmd.arg(script);
                cmd
            }
        }
    }

    /// Starts the verifier with `--version`, which loads its SDK; `Err` says what is wrong.
    fn check(self) -> Result<String, String> {
        let mut cmd = self.command();
        check_command(self.name(), &mut cmd)
    }
}

/// Verifies a batch with the Node SDK (`livekit-server-sdk`).
#[track_caller]
pub fn verify_with_node(items: &[VerifyRequest]) -> Vec<VerifyResult> {
    Verifier::Node.verify(items)
}

/// Verifies a batch with the Python SDK (`livekit-api`).
#[track_caller]
pub fn verify_with_python(items: &[VerifyRequest]) -> Vec<VerifyResult> {
    Verifier::Python.verify(items)
}

/// Panics, so the test fails, unless both verifiers start and load their SDK. Checked once per process.
#[track_caller]
pub fn require_verifiers() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        let problems: Vec<String> = Verifier::ALL
            .iter()
            .filter_map(|v| v.check().err())
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    });
    if let Err(problems) = checked {
        panic!(
            "the official LiveKit token verifiers are not installed ({INSTALL_HINT}):\n{problems}"
        );
    }
}

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn check_command(name: &str, cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{name}: cannot start {shown}: {e}; {INSTALL_HINT}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{name}: {shown} --version failed ({}): {}; {INSTALL_HINT}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[track_caller]
fn run_batch(name: &str, mut cmd: Command, items: &[VerifyRequest]) -> Vec<VerifyResult> {
    let input: String = items
        .iter()
        .map(|item| serde_json::to_string(item).expect("a VerifyRequest serialises") + "\n")
        .collect();
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: cannot start {shown}: {e}; {INSTALL_HINT}"));
    // Write from another thread so a large batch cannot deadlock against a full stdout pipe.
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{name}: waiting for {shown}: {e}"));
    let written = writer
        .join()
        .expect("the stdin writer thread does not panic");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name}: {shown} failed ({}): {}",
        out.status,
        stderr.trim()
    );
    if let Err(e) = written {
        panic!("{name}: writing to {shown}: {e}; stderr: {}", stderr.trim());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: Vec<VerifyResult> = stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{name}: unexpected output line {line:?}: {e}"))
        })
        .collect();
    assert_eq!(
        results.len(),
        items.len(),
        "{name}: {} results for {} tokens; stderr: {}",
        results.len(),
        items.len(),
        stderr.trim()
    );
    results
}

/// The API key a LiveKit token claims to be signed with (`iss`), read without verifying it: which
/// key signed a token the tests then check for real.
pub fn issuer(token: &str) -> String {
    let claims: serde_json::Value =
        jsonwebtoken::dangerous::insecure_decode_claims(token).expect("a JWT with a JSON payload");
    claims["iss"].as_str().expect("an iss claim").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_verifier_is_an_error_that_says_how_to_install_it() {
        let mut cmd = Command::new("node");
        cmd.arg(interop_dir().join("node/does-not-exist.mjs"));
        let err = check_command("node", &mut cmd).unwrap_err();
        assert!(err.contains(INSTALL_HINT), "{err}");

        let mut cmd = Command::new(interop_dir().join("no-such-venv/bin/python"));
        let err = check_command("python", &mut cmd).unwrap_err();
        assert!(
            err.contains("cannot start") && err.contains(INSTALL_HINT),
            "{err}"
        );
    }

    #[test]
    fn both_verifiers_are_installed() {
        require_verifiers();
        for v in Verifier::ALL {
            let version = v.check().unwrap();
            assert!(version.starts_with("livekit-"), "{}: {version}", v.name());
        }
    }
}
