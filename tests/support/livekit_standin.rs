//! The LiveKit server stand-in (`tests/interop/python/livekit_standin.py`) as a child process: it loads
//! `keys.yaml` once at start, as livekit-server does, and checks every token with the official Python
//! SDK's verifier. [`StandIn::restart`] is a pod restart: a new process on the same port that reads
//! the key file again. Dropping a [`StandIn`] kills the child.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the stand-in may take to start (the Python SDK loads first).
const START_TIMEOUT: Duration = Duration::from_secs(15);

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// A running stand-in.
pub struct StandIn {
    child: Child,
    port: u16,
    key_file: PathBuf,
    restarts: usize,
}

/// A client of the stand-in's port; it keeps working across restarts (calls made while it restarts
/// fail with `Err`).
#[derive(Clone)]
pub struct StandInClient {
    url: String,
    http: reqwest::blocking::Client,
}

/// Why a start failed: livekit-server's refusal message (stderr), or a time-out.
#[derive(Debug)]
pub struct Refused(pub String);

fn spawn(key_file: &Path, port: u16) -> Result<(Child, u16), Refused> {
    let interop = interop_dir();
    let venv_python = interop.join(".venv/bin/python");
    assert!(
        venv_python.exists(),
        "{} is missing: run ./scripts/test-deps.sh",
        venv_python.display()
    );
    let mut child = Command::new(venv_python)
        .arg(interop.join("python/livekit_standin.py"))
        .arg("--key-file")
        .arg(key_file)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the stand-in starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
    match line.trim().rsplit_once(':') {
        Some((_, p)) if line.starts_with("listening on ") => Ok((child, p.parse().unwrap())),
        _ => {
            let _ = child.kill();
            let out = child.wait_with_output().expect("the stand-in exits");
            Err(Refused(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ))
        }
    }
}

impl StandIn {
    /// Starts on an ephemeral loopback port with the keys in `key_file` (a path that may be a
    /// symlink into a kubelet-style volume; it is read once).
    pub fn start(key_file: &Path) -> Result<StandIn, Refused> {
        let (child, port) = spawn(key_file, 0)?;
        Ok(StandIn {
            child,
            port,
            key_file: key_file.to_owned(),
            restarts: 0,
        })
    }

    /// A client for its port.
    pub fn client(&self) -> StandInClient {
        StandInClient {
            url: self.url(),
            http: reqwest::blocking::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("a client"),
        }
    }

    /// The base URL of its HTTP API (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the process and starts a new one on the same port, which reads the key file again.
    #[track_caller]
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + START_TIMEOUT;
        // The port is free once the old process is gone; retry briefly in case it lingers.
        loop {
            match spawn(&self.key_file, self.port) {
                Ok((child, _)) => {
                    self.child = child;
                    self.restarts += 1;
                    return;
                }
                Err(why) if Instant::now() > deadline => panic!("stand-in restart failed: {why:?}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// How many times it was restarted.
    pub fn restarts(&self) -> usize {
        self.restarts
    }
}

impl StandInClient {
    /// The key ids it loaded at its last start (`Err` while it restarts).
    pub fn loaded_keys(&self) -> Result<Vec<String>, String> {
        let reply: serde_json::Value = self
            .http
            .get(format!("{}/standin/keys", self.url))
            .send()
            .and_then(|r| r.json())
            .map_err(|e| e.to_string())?;
        Ok(reply["keys"]
            .as_array()
            .expect("a key list")
            .iter()
            .map(|k| k.as_str().expect("a key id").to_owned())
            .collect())
    }

    /// livekit-server's pre-join check of an access token: `Ok(true)` on 200, `Ok(false)` on 401,
    /// `Err` when it could not answer (restarting).
    pub fn validate_join(&self, token: &str) -> Result<bool, String> {
        let reply = self
            .http
            // A JWT is base64url segments and dots: safe in a query as it is.
            .get(format!("{}/rtc/validate?access_token={token}", self.url))
            .send()
            .map_err(|e| e.to_string())?;
        match reply.status().as_u16() {
            200 => Ok(true),
            401 => Ok(false),
            other => Err(format!("/rtc/validate answered {other}")),
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
