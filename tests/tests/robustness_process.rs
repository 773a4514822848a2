//! Robustness of the real `livekit-sidecar` process under load, on loopback only, every test bounded in
//! time and count:
//! - SIGTERM under a steady stream of requests held in flight by a slow authorization webhook: every
//!   request in flight completes with 200, new connections are refused at once (refused, not hung), and
//!   the process exits 0 within `--shutdown-grace-seconds`, also when requests outlive the grace period;
//! - slow and abusive clients (slowloris headers, trickled bodies, idle and idle keep-alive connections,
//!   oversized headers): each is cut off by `--header-timeout-ms` / `--body-timeout-ms` / the header size
//!   limit, resident memory stays bounded, no connection leaks, and a well-behaved client is served
//!   promptly throughout;
//! - the `--max-connections` cap: clients beyond it wait (the process and its probes stay up) and are
//!   served as soon as others close.
//!
//! Needs `cargo build -p livekit-sidecar` first (`./scripts/test.sh` does it).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use livekit_integration_tests::sidecar::{Http, Reply, SidecarProcess, Signal};
use livekit_integration_tests::webhook::Webhook;
use serde_json::{Value, json};

const TOKEN_PATH: &str = "/api/livekit/token";
const API_KEY: &str = "APIrobustness01";
const API_SECRET: &str = "robustness-api-secret-0123456789abcdef";
const CALLER_SECRET: &str = "robustness-caller-hs-secret-0123456789abcdef";

fn env_base() -> Vec<(&'static str, String)> {
    vec![
        ("LIVEKIT_SERVER_URL", "wss://livekit.robustness.test".into()),
        ("LIVEKIT_API_KEY", API_KEY.into()),
        ("LIVEKIT_API_SECRET", API_SECRET.into()),
        ("SIDECAR_AUTH_ALGORITHMS", "HS256".into()),
        ("SIDECAR_AUTH_HS_SECRET", CALLER_SECRET.into()),
    ]
}

fn start(args: &[&str], extra_env: &[(&'static str, String)]) -> SidecarProcess {
    let mut env = env_base();
    env.extend(extra_env.iter().cloned());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    SidecarProcess::start(args, &env)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn caller(sub: &str, permissions: &[&str]) -> String {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "exp": now() + 600, "permissions": permissions}),
        &EncodingKey::from_secret(CALLER_SECRET.as_bytes()),
    )
    .unwrap()
}

/// A 200 whose token verifies with the API secret for exactly `room`.
#[track_caller]
fn assert_token_for(reply: &Reply, room: &str) {
    assert_eq!(reply.status, 200, "{}", reply.text);
    let token = reply.json()["token"].as_str().unwrap().to_owned();
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[API_KEY]);
    let claims = jsonwebtoken::decode::<Value>(
        &token,
        &DecodingKey::from_secret(API_SECRET.as_bytes()),
        &validation,
    )
    .expect("the token verifies with the API secret")
    .claims;
    assert_eq!(claims["video"]["room"], room);
}

/// Whether an error of the HTTP client was a refused TCP connection.
fn is_refused(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// One TCP connect attempt, bounded: `Some(true)` refused, `Some(false)` accepted, `None` hung.
fn connect_outcome(addr: SocketAddr) -> Option<bool> {
    match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
        Ok(_) => Some(false),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Some(true),
        Err(e) if e.kind() == ErrorKind::TimedOut => None,
        Err(e) => panic!("connect to {addr}: {e}"),
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS:")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

// ---------------------------------------------------------------------------------------------------
// SIGTERM
// ---------------------------------------------------------------------------------------------------

struct Sent {
    room: String,
    started: Instant,
    finished: Instant,
    reply: Result<Reply, reqwest::Error>,
}

/// Clients that each send one request after another, with a fresh room every time, until a request
/// fails or `stop` is set.
fn request_stream(
    clients: usize,
    url: String,
    bearer: String,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<Sent>>> {
    (0..clients)
        .map(|client| {
            let (url, bearer, stop) = (url.clone(), bearer.clone(), stop.clone());
            std::thread::spawn(move || {
                let http = Http::new();
                let mut sent = Vec::new();
                for seq in 0..50 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let room = format!("c{client}-r{seq}");
                    let started = Instant::now();
                    let reply = http.post_json(&url, Some(&bearer), &json!({"roomId": room}));
                    let failed = reply.is_err();
                    sent.push(Sent {
                        room,
                        started,
                        finished: Instant::now(),
                        reply,
                    });
                    if failed {
                        break;
                    }
                }
                sent
            })
        })
        .collect()
}

/// SIGTERM while six clients keep requests in flight (each held 1 s by the authorization webhook).
#[test]
fn sigterm_under_load_completes_requests_in_flight_and_refuses_new_connections() {
    const CLIENTS: usize = 6;
    let webhook = Webhook::start(204, Duration::from_millis(1000));
    let mut sidecar = start(
        &[],
        &[
            ("SIDECAR_AUTHZ_MODE", "Webhook".into()),
            ("SIDECAR_AUTHZ_WEBHOOK_URL", webhook.url("/authorize")),
            ("SIDECAR_AUTHZ_WEBHOOK_TIMEOUT_MS", "5000".into()),
            ("SIDECAR_AUTHZ_WEBHOOK_CACHE_TTL_SECONDS", "0".into()),
            ("SIDECAR_SHUTDOWN_GRACE_SECONDS", "5".into()),
        ],
    );
    let api = sidecar.api;
    let stop = Arc::new(AtomicBool::new(false));
    // No permissions claim: only the webhook can say yes, so every request waits for it.
    let clients = request_stream(
        CLIENTS,
        sidecar.api_url(TOKEN_PATH),
        caller("erin", &[]),
        stop.clone(),
    );

    // Let a first wave complete, then signal once the second wave is at the webhook.
    let deadline = Instant::now() + Duration::from_secs(8);
    while webhook.received().len() < 2 * CLIENTS {
        assert!(
            Instant::now() < deadline,
            "the load never built up: {} webhook calls; stderr:\n{}",
            webhook.received().len(),
            sidecar.stderr()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let at_webhook: BTreeSet<String> = webhook
        .received()
        .iter()
        .map(|r| r.body["roomId"].as_str().unwrap().to_owned())
        .collect();
    let signalled = Instant::now();
    sidecar.signal(Signal::TERM);

    // New connections are refused promptly, and keep being refused; an attempt never hangs.
    let mut first_refusal = None;
    while signalled.elapsed() < Duration::from_secs(10) {
        match connect_outcome(api) {
            Some(true) => {
                first_refusal = Some(signalled.elapsed());
                break;
            }
            Some(false) => std::thread::sleep(Duration::from_millis(10)),
            None => panic!("a connect attempt hung after SIGTERM"),
        }
    }
    let first_refusal = first_refusal.expect("new connections are refused after SIGTERM");
    assert!(
        // During the drain (grace 5 s), not at exit: generous for a loaded machine.
        first_refusal < Duration::from_secs(4),
        "new connections refused only after {first_refusal:?}"
    );
    for _ in 0..5 {
        assert_eq!(
            connect_outcome(api),
            Some(true),
            "a new connection was accepted while draining"
        );
    }

    let status = sidecar.wait_exit(Duration::from_secs(30));
    let exited_after = signalled.elapsed();
    stop.store(true, Ordering::SeqCst);
    let sent: Vec<Sent> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("a client thread"))
        .collect();
    let status = status.unwrap_or_else(|| panic!("no exit; stderr:\n{}", sidecar.stderr()));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", sidecar.stderr());
    assert!(
        // The 5 s grace period plus slack for a loaded machine.
        exited_after < Duration::from_secs(5) + Duration::from_secs(5),
        "exit took {exited_after:?}, well beyond the 5 s grace period"
    );

    let mut in_flight_at_signal = 0;
    let mut refused_after_signal = 0;
    for s in &sent {
        if at_webhook.contains(&s.room) {
            // The sidecar had this request when the signal came: it must complete with a token.
            let reply = s.reply.as_ref().unwrap_or_else(|e| {
                panic!(
                    "request {} in flight at SIGTERM failed: {e}; stderr:\n{}",
                    s.room,
                    sidecar.stderr()
                )
            });
            assert_token_for(reply, &s.room);
            if s.finished > signalled {
                in_flight_at_signal += 1;
            }
            continue;
        }
        match &s.reply {
            // Sent around the signal on a connection the sidecar already had: served.
            Ok(reply) => assert_token_for(reply, &s.room),
            Err(error) => {
                assert!(
                    s.started >= signalled,
                    "request {} sent before SIGTERM failed: {error}",
                    s.room
                );
                assert!(
                    is_refused(error),
                    "request {} after SIGTERM failed otherwise than a refused connection: {error:?}",
                    s.room
                );
                assert!(
                    s.finished - s.started < Duration::from_secs(1),
                    "a refusal took {:?}",
                    s.finished - s.started
                );
                refused_after_signal += 1;
            }
        }
    }
    assert!(
        in_flight_at_signal >= CLIENTS / 2,
        "only {in_flight_at_signal} requests were in flight at SIGTERM: the test proved little"
    );
    assert_eq!(
        refused_after_signal, CLIENTS,
        "every client's next request is refused"
    );
    assert!(
        !sidecar.stderr().contains("panicked"),
        "{}",
        sidecar.stderr()
    );
}

/// Requests that outlive the grace period do not keep the process alive: it exits 0 once the grace
/// period is over, and those clients see their connection close rather than hang.
#[test]
fn sigterm_exits_within_the_grace_period_even_with_requests_stuck() {
    let webhook = Webhook::start(204, Duration::from_secs(6));
    let mut sidecar = start(
        &["--shutdown-grace-seconds", "1"],
        &[
            ("SIDECAR_AUTHZ_MODE", "Webhook".into()),
            ("SIDECAR_AUTHZ_WEBHOOK_URL", webhook.url("/authorize")),
            ("SIDECAR_AUTHZ_WEBHOOK_TIMEOUT_MS", "8000".into()),
        ],
    );
    let stuck: Vec<_> = (0..3)
        .map(|i| {
            let url = sidecar.api_url(TOKEN_PATH);
            let bearer = caller("frank", &[]);
            std::thread::spawn(move || {
                let started = Instant::now();
                let reply = Http::new().post_json(
                    &url,
                    Some(&bearer),
                    &json!({"roomId": format!("stuck-{i}")}),
                );
                (reply.map(|r| r.status), started.elapsed())
            })
        })
        .collect();
    for _ in 0..3 {
        webhook
            .next_arrival(Duration::from_secs(5))
            .expect("the requests reach the webhook");
    }
    let signalled = Instant::now();
    sidecar.signal(Signal::TERM);
    let status = sidecar
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no exit within 30 s; stderr:\n{}", sidecar.stderr()));
    let exited_after = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", sidecar.stderr());
    assert!(
        // At least the 1 s grace period; at most that plus slack for a loaded machine.
        exited_after >= Duration::from_millis(900) && exited_after < Duration::from_secs(1 + 5),
        "exited {exited_after:?} after SIGTERM with a 1 s grace period"
    );
    for client in stuck {
        let (outcome, took) = client.join().unwrap();
        assert!(
            outcome.is_err() || outcome.as_ref().is_ok_and(|s| *s >= 500),
            "a request stuck past the grace period got {outcome:?}"
        );
        assert!(
            took < Duration::from_secs(30),
            "a stuck client hung {took:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------
// Slow and abusive clients
// ---------------------------------------------------------------------------------------------------

const HEADER_TIMEOUT: Duration = Duration::from_millis(1000);
const BODY_TIMEOUT: Duration = Duration::from_millis(1500);
/// Slack on top of a timeout for a busy 2-core machine.
const SLACK: Duration = Duration::from_millis(1500);

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    stream.set_nodelay(true).unwrap();
    stream
}

/// What a poll of a connection found.
enum Poll {
    Open,
    Closed,
}

/// Reads whatever is available without blocking, appending to `into`.
fn poll(stream: &mut TcpStream, into: &mut Vec<u8>) -> Poll {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Poll::Closed,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Poll::Open,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Poll::Closed,
        }
    }
}

/// One connection under watch: when it was opened, what arrived, when the server closed it.
struct Watched {
    stream: TcpStream,
    since: Instant,
    received: Vec<u8>,
    closed_after: Option<Duration>,
}

impl Watched {
    fn new(stream: TcpStream, since: Instant) -> Self {
        Self {
            stream,
            since,
            received: Vec::new(),
            closed_after: None,
        }
    }

    fn status(&self) -> Option<u16> {
        let text = String::from_utf8_lossy(&self.received);
        text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
    }

    fn body(&self) -> Option<Value> {
        let text = String::from_utf8_lossy(&self.received);
        let (_, body) = text.split_once("\r\n\r\n")?;
        serde_json::from_str(body).ok()
    }
}

/// Polls every connection until the server has closed all of them or `limit` passes; every `every`,
/// `trickle` may write to the connections still open.
fn watch_until_closed(
    conns: &mut [Watched],
    limit: Duration,
    every: Duration,
    mut trickle: impl FnMut(&mut TcpStream),
) {
    let started = Instant::now();
    let mut last_trickle = Instant::now();
    while started.elapsed() < limit {
        let trickle_now = last_trickle.elapsed() >= every;
        for c in conns.iter_mut().filter(|c| c.closed_after.is_none()) {
            if trickle_now {
                c.stream.set_nonblocking(false).unwrap();
                trickle(&mut c.stream);
            }
            if let Poll::Closed = poll(&mut c.stream, &mut c.received) {
                c.closed_after = Some(c.since.elapsed());
            }
        }
        if trickle_now {
            last_trickle = Instant::now();
        }
        if conns.iter().all(|c| c.closed_after.is_some()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[track_caller]
fn assert_cut_off(what: &str, conns: &[Watched], bound: Duration) {
    let open = conns.iter().filter(|c| c.closed_after.is_none()).count();
    assert_eq!(
        open,
        0,
        "{open} of {} {what} connections still open after {bound:?}",
        conns.len()
    );
    let slowest = conns.iter().filter_map(|c| c.closed_after).max().unwrap();
    assert!(
        slowest <= bound,
        "{what}: the slowest was cut off after {slowest:?}"
    );
}

/// A request head for the token endpoint.
fn head(bearer: &str, content_length: usize, extra: &str) -> String {
    format!(
        "POST {TOKEN_PATH} HTTP/1.1\r\nhost: sidecar\r\nauthorization: Bearer {bearer}\r\n\
         content-type: application/json\r\ncontent-length: {content_length}\r\n{extra}\r\n"
    )
}

/// Slowloris headers, trickled bodies, idle and idle keep-alive connections and header floods at once,
/// while one well-behaved client keeps asking for tokens.
#[test]
fn slow_and_abusive_clients_are_cut_off_with_bounded_memory_while_others_are_served() {
    let sidecar = start(
        &[
            "--header-timeout-ms",
            &HEADER_TIMEOUT.as_millis().to_string(),
            "--body-timeout-ms",
            &BODY_TIMEOUT.as_millis().to_string(),
        ],
        &[],
    );
    let (api, pid) = (sidecar.api, sidecar.pid());
    let bearer = caller("grace", &["JOIN_CHANNEL"]);
    let http = Http::new();
    let url = sidecar.api_url(TOKEN_PATH);
    for i in 0..20 {
        let room = format!("warm-{i}");
        assert_token_for(
            &http
                .post_json(&url, Some(&bearer), &json!({"roomId": room}))
                .unwrap(),
            &room,
        );
    }
    drop(http);
    std::thread::sleep(Duration::from_millis(200));
    let rss_before = rss_kib(pid);
    let fds_before = open_fds(pid);

    let stop = Arc::new(AtomicBool::new(false));
    // Resident memory, sampled throughout.
    let peak = Arc::new(Mutex::new(rss_before));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let rss = rss_kib(pid);
                let mut p = peak.lock().unwrap();
                *p = (*p).max(rss);
                drop(p);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // The well-behaved client: a request every 100 ms, each must be answered within 2 s.
    let good = {
        let (stop, url, bearer) = (stop.clone(), url.clone(), bearer.clone());
        std::thread::spawn(move || {
            let http = Http::new();
            let mut latencies = Vec::new();
            let mut seq = 0;
            while !stop.load(Ordering::SeqCst) && seq < 200 {
                let room = format!("good-{seq}");
                let started = Instant::now();
                let reply = http.post_json(&url, Some(&bearer), &json!({"roomId": room}));
                let took = started.elapsed();
                let reply = reply.unwrap_or_else(|e| panic!("the good client failed: {e}"));
                assert_token_for(&reply, &room);
                latencies.push(took);
                seq += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            latencies
        })
    };
    std::thread::sleep(Duration::from_millis(300));

    // Slowloris: a request line, then one header byte a second; never a complete head.
    let slowloris = std::thread::spawn(move || {
        let mut conns: Vec<Watched> = (0..60)
            .map(|_| {
                let mut s = connect(api);
                s.write_all(format!("POST {TOKEN_PATH} HTTP/1.1\r\nx-slow: ").as_bytes())
                    .unwrap();
                Watched::new(s, Instant::now())
            })
            .collect();
        watch_until_closed(
            &mut conns,
            HEADER_TIMEOUT + SLACK + Duration::from_secs(1),
            Duration::from_secs(1),
            |s| {
                let _ = s.write_all(b"a");
            },
        );
        conns
    });
    // Idle connections that never send a byte.
    let idle = std::thread::spawn(move || {
        let mut conns: Vec<Watched> = (0..150)
            .map(|_| Watched::new(connect(api), Instant::now()))
            .collect();
        watch_until_closed(
            &mut conns,
            HEADER_TIMEOUT + SLACK + Duration::from_secs(1),
            Duration::from_secs(60),
            |_| {},
        );
        conns
    });
    // Idle keep-alive connections: one complete request each, then silence.
    let keep_alive = {
        let bearer = bearer.clone();
        std::thread::spawn(move || {
            let body = br#"{"roomId":"keep-alive"}"#;
            let mut conns: Vec<Watched> = (0..40)
                .map(|_| {
                    let mut s = connect(api);
                    s.write_all(head(&bearer, body.len(), "").as_bytes())
                        .unwrap();
                    s.write_all(body).unwrap();
                    Watched::new(s, Instant::now())
                })
                .collect();
            // The answers arrive first; the idle time counts from each answer.
            let deadline = Instant::now() + Duration::from_secs(3);
            for c in conns.iter_mut() {
                while !String::from_utf8_lossy(&c.received).contains("\"token\"")
                    && Instant::now() < deadline
                {
                    if let Poll::Closed = poll(&mut c.stream, &mut c.received) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                assert_eq!(c.status(), Some(200), "keep-alive request not served");
                c.since = Instant::now();
            }
            watch_until_closed(
                &mut conns,
                HEADER_TIMEOUT + SLACK + Duration::from_secs(1),
                Duration::from_secs(60),
                |_| {},
            );
            conns
        })
    };
    // Trickled bodies: a complete head, then one body byte every 300 ms.
    let trickled = {
        let bearer = bearer.clone();
        std::thread::spawn(move || {
            let mut conns: Vec<Watched> = (0..16)
                .map(|_| {
                    let mut s = connect(api);
                    s.write_all(head(&bearer, 200, "").as_bytes()).unwrap();
                    s.write_all(b"{").unwrap();
                    Watched::new(s, Instant::now())
                })
                .collect();
            watch_until_closed(
                &mut conns,
                BODY_TIMEOUT + SLACK + Duration::from_secs(1),
                Duration::from_millis(300),
                |s| {
                    let _ = s.write_all(b" ");
                },
            );
            conns
        })
    };
    // Header floods: 4 MiB of header each, far beyond the 32 KiB limit.
    let floods: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                for _ in 0..2 {
                    let mut s = connect(api);
                    s.set_write_timeout(Some(HEADER_TIMEOUT + SLACK)).unwrap();
                    let started = Instant::now();
                    let mut written = 0usize;
                    let mut failed = false;
                    let chunk = vec![b'a'; 64 * 1024];
                    if s.write_all(format!("POST {TOKEN_PATH} HTTP/1.1\r\nx-flood: ").as_bytes())
                        .is_err()
                    {
                        failed = true;
                    }
                    while !failed && written < 4 << 20 {
                        match s.write(&chunk) {
                            Ok(n) => written += n,
                            Err(_) => failed = true,
                        }
                    }
                    let mut received = Vec::new();
                    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let _ = s.read_to_end(&mut received);
                    outcomes.push((failed, written, started.elapsed(), received));
                }
                outcomes
            })
        })
        .collect();

    let slowloris = slowloris.join().expect("slowloris thread");
    let idle = idle.join().expect("idle thread");
    let keep_alive = keep_alive.join().expect("keep-alive thread");
    let trickled = trickled.join().expect("trickle thread");
    let floods: Vec<_> = floods
        .into_iter()
        .flat_map(|f| f.join().expect("flood thread"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let latencies = good.join().expect("the good client's assertions");
    sampler.join().unwrap();
    let peak = *peak.lock().unwrap();

    assert_cut_off("slowloris", &slowloris, HEADER_TIMEOUT + SLACK);
    assert_cut_off("idle", &idle, HEADER_TIMEOUT + SLACK);
    assert_cut_off("idle keep-alive", &keep_alive, HEADER_TIMEOUT + SLACK);
    assert_cut_off("trickled-body", &trickled, BODY_TIMEOUT + SLACK);
    for c in &trickled {
        assert!(
            c.closed_after.unwrap() >= BODY_TIMEOUT - Duration::from_millis(100),
            "a trickled body was cut off early"
        );
        assert_eq!(
            c.status(),
            Some(408),
            "{}",
            String::from_utf8_lossy(&c.received)
        );
        assert_eq!(
            c.body(),
            Some(
                json!({"statusCode": 408, "message": "Request body was not received in time", "error": "Request Timeout"})
            )
        );
    }
    for (failed, written, took, received) in &floods {
        let text = String::from_utf8_lossy(received);
        assert!(
            *failed || text.starts_with("HTTP/1.1 431"),
            "a 4 MiB header was taken in full ({written} bytes written), answered {text:?}"
        );
        assert!(
            *took <= HEADER_TIMEOUT + SLACK + Duration::from_secs(2),
            "a header flood lasted {took:?}"
        );
    }

    assert!(
        latencies.len() >= 20,
        "the good client made only {} requests",
        latencies.len()
    );
    let slowest = latencies.iter().max().unwrap();
    assert!(
        *slowest < Duration::from_secs(2),
        "the good client waited {slowest:?}"
    );

    let grown_mib = peak.saturating_sub(rss_before) / 1024;
    eprintln!(
        "RSS {} KiB before, {peak} KiB at peak; good client: {} requests, slowest {slowest:?}",
        rss_before,
        latencies.len()
    );
    assert!(
        grown_mib < 32,
        "resident memory grew by {grown_mib} MiB under slow clients (from {rss_before} KiB to {peak} KiB)"
    );

    // Nothing leaks: once the clients are gone, the sidecar's descriptors are back to where they were.
    drop((slowloris, idle, keep_alive, trickled));
    let deadline = Instant::now() + Duration::from_secs(3);
    while open_fds(pid) > fds_before + 4 {
        assert!(
            Instant::now() < deadline,
            "{} descriptors open, {fds_before} before the slow clients",
            open_fds(pid)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A large but allowed header (16 KiB) is still served, and the process is healthy.
    let mut s = connect(api);
    let body = br#"{"roomId":"big-header"}"#;
    let pad = format!("x-pad: {}\r\nconnection: close\r\n", "p".repeat(16 * 1024));
    s.write_all(head(&bearer, body.len(), &pad).as_bytes())
        .unwrap();
    s.write_all(body).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !sidecar.stderr().contains("panicked"),
        "{}",
        sidecar.stderr()
    );
}

/// With `--max-connections 4` and four connections held open, further clients wait instead of failing
/// or crashing the process, the probes on the metrics port still answer, and the waiting clients are
/// served as soon as the held connections close.
#[test]
fn beyond_max_connections_clients_wait_and_are_served_once_others_close() {
    let mut sidecar = start(
        &["--max-connections", "4", "--header-timeout-ms", "10000"],
        &[],
    );
    let api = sidecar.api;
    let held: Vec<TcpStream> = (0..4).map(|_| connect(api)).collect();
    std::thread::sleep(Duration::from_millis(300));

    let bearer = caller("heidi", &["JOIN_CHANNEL"]);
    let waiting: Vec<_> = (0..6)
        .map(|i| {
            let (url, bearer) = (sidecar.api_url(TOKEN_PATH), bearer.clone());
            std::thread::spawn(move || {
                let room = format!("waiting-{i}");
                let reply = Http::new().post_json(&url, Some(&bearer), &json!({"roomId": room}));
                (room, reply, Instant::now())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        waiting.iter().all(|w| !w.is_finished()),
        "a client beyond the cap was answered (or failed) while the cap was reached"
    );
    let live = Http::new()
        .get(&sidecar.metrics_url("/livez"), None)
        .expect("the metrics port answers while the API is at its cap");
    assert_eq!(live.status, 200);
    assert!(
        sidecar.wait_exit(Duration::from_millis(10)).is_none(),
        "the process exited at its connection cap; stderr:\n{}",
        sidecar.stderr()
    );

    let released = Instant::now();
    drop(held);
    let mut served = BTreeMap::new();
    for w in waiting {
        let (room, reply, at) = w.join().unwrap();
        let reply = reply.unwrap_or_else(|e| panic!("{room}: {e}"));
        assert_token_for(&reply, &room);
        served.insert(room, at.saturating_duration_since(released));
    }
    let slowest = served.values().max().unwrap();
    assert!(
        *slowest < Duration::from_secs(2),
        "waiting clients served {slowest:?} after the cap was released: {served:?}"
    );
    assert!(
        !sidecar.stderr().contains("panicked"),
        "{}",
        sidecar.stderr()
    );
}
