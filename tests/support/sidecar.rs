//! The real `livekit-sidecar` binary as a child process, for process-level tests.
//!
//! [`binary`] finds the binary next to the test executable (`target/<profile>/livekit-sidecar`); build it
//! first with `cargo build -p livekit-sidecar` (`./scripts/test.sh` does). [`SidecarProcess::start`]
//! runs it on ephemeral loopback ports with JSON logs and waits (bounded) for its `listening` event, which
//! names both addresses. The child's environment is cleared: only `PATH` and what the test sets reach it,
//! so a developer's `LIVEKIT_*` variables cannot change a test's outcome. Its stderr is drained by a thread
//! for its whole life, so the pipe never fills, and kept for assertions and failure messages. Dropping a
//! [`SidecarProcess`] kills the child.
//!
//! [`run_to_exit`] runs the binary to completion (the `dev-token` subcommand, refused configurations).
//! [`Http`] is a small blocking client for loopback requests that never goes through a proxy.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use rustix::process::Signal;
use rustix::process::{Pid, kill_process};
use serde_json::Value;

/// How long a sidecar may take to say it is listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The `livekit-sidecar` binary of the same build profile as the running test.
#[track_caller]
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    // target/<profile>/deps/<test-binary> -> target/<profile>/livekit-sidecar
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps");
    let binary = profile_dir.join(format!("livekit-sidecar{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "{} does not exist; build it: cargo build -p livekit-sidecar",
        binary.display()
    );
    binary
}

/// A command for the binary with a cleared environment (only `PATH` is kept). The LiveKit probe is
/// off unless `env` turns it on: tests reach loopback only, and configured server URLs are not there.
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(args).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("SIDECAR_LIVEKIT_PROBE_INTERVAL_SECONDS", "0");
    cmd.envs(env.iter().copied());
    cmd
}

/// What a process that ran to completion left behind.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the binary with `args` and only `env` (plus `PATH`) to completion, killing it after `timeout`.
#[track_caller]
pub fn run_to_exit(args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Exited {
    let mut child = command(args, env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("livekit-sidecar starts");
    let stdout = read_all_in_thread(child.stdout.take().expect("piped"));
    let stderr = read_all_in_thread(child.stderr.take().expect("piped"));
    let status = wait_timeout(&mut child, timeout);
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "livekit-sidecar {args:?} did not exit within {timeout:?}; stderr:\n{}",
            stderr.join().unwrap_or_default()
        );
    };
    Exited {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn read_all_in_thread(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Polls until the child exits or `timeout` passes.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait on our own child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running sidecar, killed when dropped.
pub struct SidecarProcess {
    child: Child,
    pub api: SocketAddr,
    pub metrics: SocketAddr,
    stderr: Arc<Mutex<String>>,
    drain: Option<JoinHandle<()>>,
}

impl SidecarProcess {
    /// Starts `livekit-sidecar <extra_args> --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0
    /// --log-format json` with only `env` (plus `PATH`), and waits for its `listening` event.
    #[track_caller]
    pub fn start(extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut args: Vec<OsString> = extra_args.iter().map(OsString::from).collect();
        for arg in [
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ] {
            args.push(arg.into());
        }
        let mut child = command(&[], env)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("livekit-sidecar starts");

        let stderr = Arc::new(Mutex::new(String::new()));
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        let pipe = child.stderr.take().expect("piped");
        let captured = Arc::clone(&stderr);
        let drain = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                {
                    let mut all = captured.lock().unwrap_or_else(|p| p.into_inner());
                    all.push_str(&line);
                    all.push('\n');
                }
                // The receiver is gone once the sidecar is up; keep draining regardless.
                let _ = lines_tx.send(line);
            }
        });

        let deadline = Instant::now() + START_TIMEOUT;
        let addresses = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addresses) = listening_event(&line) {
                        break addresses;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "livekit-sidecar did not log \"listening\" within {START_TIMEOUT:?}; stderr:\n{}",
                        stderr.lock().unwrap_or_else(|p| p.into_inner())
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = wait_timeout(&mut child, Duration::from_secs(5));
                    if status.is_none() {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    let _ = drain.join();
                    panic!(
                        "livekit-sidecar closed stderr before listening (exit {status:?}); stderr:\n{}",
                        stderr.lock().unwrap_or_else(|p| p.into_inner())
                    );
                }
            }
        };
        Self {
            child,
            api: addresses.0,
            metrics: addresses.1,
            stderr,
            drain: Some(drain),
        }
    }

    /// `http://<api address><path>`.
    pub fn api_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api)
    }

    /// `http://<metrics address><path>`.
    pub fn metrics_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.metrics)
    }

    /// Everything the sidecar wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The stderr lines that are JSON log events.
    pub fn log_events(&self) -> Vec<Value> {
        self.stderr()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. [`Signal::TERM`]) to the child, which we have not yet reaped.
    #[track_caller]
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_child(&self.child);
        if let Err(e) = kill_process(pid, signal) {
            panic!("kill({pid:?}, {signal:?}) failed: {e}");
        }
    }

    /// Waits up to `timeout` for the child to exit; then the stderr drain is joined, so
    /// [`Self::stderr`] holds everything the process wrote.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = wait_timeout(&mut self.child, timeout)?;
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
        Some(status)
    }
}

impl Drop for SidecarProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
    }
}

/// The `api` and `metrics` addresses of a `{"message":"listening",...}` JSON log line.
fn listening_event(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let event: Value = serde_json::from_str(line).ok()?;
    if event.get("message")?.as_str()? != "listening" {
        return None;
    }
    let addr = |field: &str| -> Option<SocketAddr> { event.get(field)?.as_str()?.parse().ok() };
    Some((addr("api")?, addr("metrics")?))
}

/// A response, read completely.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    /// The body as JSON; panics with the text when it is not JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A blocking HTTP client for loopback: no proxy, bounded time.
#[derive(Clone)]
pub struct Http {
    client: reqwest::blocking::Client,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    pub fn new() -> Self {
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("a blocking client builds");
        Self { client }
    }

    /// GET with an optional bearer token.
    pub fn get(&self, url: &str, bearer: Option<&str>) -> Result<Reply, reqwest::Error> {
        let mut request = self.client.get(url);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        read(request.send()?)
    }

    /// POST of a JSON body with an optional bearer token.
    pub fn post_json(
        &self,
        url: &str,
        bearer: Option<&str>,
        body: &Value,
    ) -> Result<Reply, reqwest::Error> {
        let mut request = self.client.post(url).json(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        read(request.send()?)
    }
}

fn read(response: reqwest::blocking::Response) -> Result<Reply, reqwest::Error> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text()?;
    Ok(Reply {
        status,
        headers,
        text,
    })
}
