//! The real `livekit-sidecar` binary, run as a process: its three configuration sources, the unconfigured
//! state, refused configurations, graceful shutdown, and a volume of tokens, every one of which the
//! official LiveKit SDKs (Node and Python) must accept with exactly the claims the API promised.
//!
//! Needs `cargo build -p livekit-sidecar` first (`./scripts/test.sh` does it) and the verifiers from
//! `./scripts/test-deps.sh`.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use livekit_contract::{Algorithm as CallerAlgorithm, SidecarSettings, keys};
use livekit_integration_tests::sidecar::{Http, Reply, SidecarProcess, Signal, run_to_exit};
use livekit_integration_tests::verifiers::{Verifier, VerifyRequest};
use livekit_integration_tests::webhook::Webhook;
use serde_json::{Value, json};

const TOKEN_PATH: &str = "/api/livekit/token";
const CONNECTION_INFO_PATH: &str = "/api/livekit/connection-info";
const HEALTH_PATH: &str = "/api/livekit/health";

const DEV_API_KEY: &str = "devkey";
const DEV_API_SECRET: &str = "secret";

const ENV_SERVER_URL: &str = "wss://livekit.env.test";
const ENV_API_KEY: &str = "APIenvKey7f3a";
const ENV_API_SECRET: &str = "env-api-secret-for-process-tests-0123456789";
const ENV_CALLER_SECRET: &str = "env-caller-hs-secret-at-least-32-bytes-long!";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// `YYYY-MM-DDTHH:MM:SS.000Z` for whole seconds since the epoch, computed here independently of the
/// sidecar (days to civil date in the proleptic Gregorian calendar).
fn iso_millis(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[test]
fn iso_millis_is_right() {
    assert_eq!(iso_millis(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(iso_millis(1_704_117_600), "2024-01-01T14:00:00.000Z");
    assert_eq!(iso_millis(951_782_400), "2000-02-29T00:00:00.000Z");
    assert_eq!(iso_millis(4_102_444_799), "2099-12-31T23:59:59.000Z");
}

fn mint_hs256(secret: &str, claims: &Value) -> String {
    // Err only means another test of this process installed it already.
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing works")
}

/// `livekit-sidecar dev-token <args>`: its stdout, a caller JWT.
#[track_caller]
fn dev_token(args: &[&str]) -> String {
    let mut all = vec!["dev-token"];
    all.extend_from_slice(args);
    let out = run_to_exit(&all, &[], Duration::from_secs(10));
    assert!(
        out.status.success(),
        "dev-token {args:?} failed ({}): {}",
        out.status,
        out.stderr
    );
    let token = out.stdout.trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {:?}", out.stdout);
    token
}

/// The body of a NestJS error.
fn nest(status: u16, message: Value, error: &str) -> Value {
    json!({"statusCode": status, "message": message, "error": error})
}

fn not_configured_body() -> Value {
    nest(
        500,
        json!("LiveKit service not configured properly"),
        "Internal Server Error",
    )
}

fn forbidden_body() -> Value {
    nest(
        403,
        json!("Insufficient permissions. Required: JOIN_CHANNEL"),
        "Forbidden",
    )
}

#[track_caller]
fn assert_reply(reply: &Reply, status: u16, body: &Value) {
    assert_eq!(
        (reply.status, &reply.json()),
        (status, body),
        "full reply: {reply:?}"
    );
}

fn post_token(sidecar: &SidecarProcess, bearer: Option<&str>, body: &Value) -> Reply {
    Http::new()
        .post_json(&sidecar.api_url(TOKEN_PATH), bearer, body)
        .expect("the sidecar answers")
}

/// What one issued token must say.
#[derive(Debug, Clone)]
struct Expected {
    identity: String,
    name: Option<String>,
    room: String,
    ttl: u64,
    grants: [bool; 3],
}

impl Expected {
    fn new(identity: &str, name: Option<&str>, room: &str, ttl: u64) -> Self {
        Self {
            identity: identity.into(),
            name: name.map(Into::into),
            room: room.into(),
            ttl,
            grants: [true; 3],
        }
    }

    fn video(&self) -> Value {
        let [can_publish, can_subscribe, can_publish_data] = self.grants;
        json!({
            "room": self.room,
            "roomJoin": true,
            "canPublish": can_publish,
            "canSubscribe": can_subscribe,
            "canPublishData": can_publish_data,
        })
    }
}

/// A 200 token reply, checked against `expected` and the time window it was issued in; returns the
/// token and its `exp` (read back from `expiresAt`).
#[track_caller]
fn check_token_reply(reply: &Reply, expected: &Expected, issued: (u64, u64)) -> (String, u64) {
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{reply:?}");
    assert!(
        reply
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json")),
        "{reply:?}"
    );
    let body = reply.json();
    let token = body["token"]
        .as_str()
        .expect("token is a string")
        .to_owned();
    let expires_at = body["expiresAt"]
        .as_str()
        .expect("expiresAt is a string")
        .to_owned();
    // Exactly these fields; `name` only when there is one.
    let mut want = json!({
        "token": token,
        "identity": expected.identity,
        "roomId": expected.room,
        "expiresAt": expires_at,
    });
    if let Some(name) = &expected.name {
        want["name"] = json!(name);
    }
    assert_eq!(body, want);
    // expiresAt is the token's exp, which is issue time + ttl.
    let exp = (issued.0..=issued.1)
        .map(|t| t + expected.ttl)
        .find(|exp| iso_millis(*exp) == expires_at)
        .unwrap_or_else(|| {
            panic!(
                "expiresAt {expires_at:?} is not issue time + {} s (issued between {} and {})",
                expected.ttl,
                iso_millis(issued.0),
                iso_millis(issued.1)
            )
        });
    (token, exp)
}

/// Verifies every token with both official SDKs (one batch each) and checks the claims exactly; also
/// checks that the same tokens are rejected under a wrong secret, so acceptance means something.
#[track_caller]
fn verify_with_both_sdks(api_key: &str, api_secret: &str, tokens: &[(String, u64, Expected)]) {
    let batch: Vec<VerifyRequest> = tokens
        .iter()
        .map(|(token, _, _)| VerifyRequest::new(api_key, api_secret, token.clone()))
        .collect();
    let wrong: Vec<VerifyRequest> = batch
        .iter()
        .take(3)
        .map(|r| VerifyRequest::new(api_key, "definitely-not-the-api-secret", r.token.clone()))
        .collect();
    for v in Verifier::ALL {
        let results = v.verify(&batch);
        assert_eq!(results.len(), tokens.len(), "{}", v.name());
        for ((_, exp, expected), r) in tokens.iter().zip(&results) {
            let claims = r.expect_ok();
            let what = format!("{}: token for {expected:?}: {claims}", v.name());
            assert_eq!(r.exp, Some(*exp as i64), "{what}");
            assert_eq!(r.identity(), Some(expected.identity.as_str()), "{what}");
            assert_eq!(claims["video"], expected.video(), "{what}");
            match v {
                Verifier::Node => {
                    // The whole payload, exactly.
                    let nbf = claims["nbf"].as_u64().expect("nbf is a number");
                    let mut want = json!({
                        "iss": api_key,
                        "sub": expected.identity,
                        "nbf": nbf,
                        "exp": exp,
                        "video": expected.video(),
                    });
                    if let Some(name) = &expected.name {
                        want["name"] = json!(name);
                    }
                    assert_eq!(claims, &want, "{what}");
                    assert_eq!(exp - nbf, expected.ttl, "{what}");
                }
                Verifier::Python => {
                    assert_eq!(claims["identity"], json!(expected.identity), "{what}");
                    match &expected.name {
                        Some(name) => assert_eq!(claims["name"], json!(name), "{what}"),
                        None => assert!(claims.get("name").is_none(), "{what}"),
                    }
                }
            }
        }
        for r in v.verify(&wrong) {
            assert!(!r.ok, "{}: accepted under a wrong secret: {r:?}", v.name());
        }
    }
}

/// LIVEKIT_* and HS256 caller auth, all valid.
fn env_base() -> Vec<(&'static str, &'static str)> {
    vec![
        ("LIVEKIT_SERVER_URL", ENV_SERVER_URL),
        ("LIVEKIT_API_KEY", ENV_API_KEY),
        ("LIVEKIT_API_SECRET", ENV_API_SECRET),
        ("SIDECAR_AUTH_ALGORITHMS", "HS256"),
        ("SIDECAR_AUTH_HS_SECRET", ENV_CALLER_SECRET),
    ]
}

fn with<'a>(
    base: Vec<(&'a str, &'a str)>,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut vars: Vec<_> = base
        .into_iter()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .collect();
    vars.extend_from_slice(extra);
    vars
}

fn caller_token(secret: &str, sub: &str, name: Option<&str>, permissions: &[&str]) -> String {
    let mut claims = json!({
        "sub": sub,
        "exp": now() + 300,
        "permissions": permissions,
    });
    if let Some(name) = name {
        claims["name"] = json!(name);
    }
    mint_hs256(secret, &claims)
}

/// Issues a token and checks the reply; returns what [`verify_with_both_sdks`] needs.
#[track_caller]
fn issue(
    sidecar: &SidecarProcess,
    bearer: &str,
    body: &Value,
    expected: &Expected,
) -> (String, u64, Expected) {
    let before = now();
    let reply = post_token(sidecar, Some(bearer), body);
    let after = now();
    let (token, exp) = check_token_reply(&reply, expected, (before, after));
    (token, exp, expected.clone())
}

/// The README's first try: `--dev`, a dev caller token, a LiveKit token with curl.
#[test]
fn readme_newcomer_flow_in_dev_mode() {
    let sidecar = SidecarProcess::start(&["--dev"], &[]);
    assert!(
        sidecar.log_events().iter().any(|e| e["level"] == "WARN"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("NEVER run --dev in production"))),
        "--dev must warn loudly; stderr:\n{}",
        sidecar.stderr()
    );

    let alice = dev_token(&["--identity", "alice", "--name", "Alice"]);
    let first = issue(
        &sidecar,
        &alice,
        &json!({"roomId": "r1"}),
        &Expected::new("alice", Some("Alice"), "r1", 3600),
    );

    // A token scoped to one room: refused elsewhere with the spec's body, granted there.
    let scoped = dev_token(&["--identity", "bob", "--permission", "JOIN_CHANNEL:other"]);
    assert_reply(
        &post_token(&sidecar, Some(&scoped), &json!({"roomId": "r1"})),
        403,
        &forbidden_body(),
    );
    let second = issue(
        &sidecar,
        &scoped,
        &json!({"roomId": "other"}),
        &Expected::new("bob", None, "other", 3600),
    );

    // Without a caller token there is nothing to see.
    let reply = post_token(&sidecar, None, &json!({"roomId": "r1"}));
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(reply.json()["statusCode"], 401);
    assert_eq!(reply.json()["error"], "Unauthorized");

    verify_with_both_sdks(DEV_API_KEY, DEV_API_SECRET, &[first, second]);
}

/// Configuration from the environment: LIVEKIT_* and SIDECAR_AUTH_*.
#[test]
fn environment_configuration_is_honoured() {
    let env = with(
        env_base(),
        &[
            ("LIVEKIT_DEFAULT_TOKEN_TTL", "600"),
            ("LIVEKIT_MAX_TOKEN_TTL", "7200"),
            ("LIVEKIT_REGION", "eu-west-1"),
            ("LIVEKIT_FEATURES", "audio,recording"),
        ],
    );
    let sidecar = SidecarProcess::start(&[], &env);
    let http = Http::new();
    let caller = caller_token(
        ENV_CALLER_SECRET,
        "u-123",
        Some("Zoë Ω"),
        &["READ_MESSAGES", "JOIN_CHANNEL"],
    );

    let mut issued = vec![issue(
        &sidecar,
        &caller,
        &json!({"roomId": "room-a"}),
        &Expected::new("u-123", Some("Zoë Ω"), "room-a", 600),
    )];
    issued.push(issue(
        &sidecar,
        &caller,
        &json!({"roomId": "room-b", "ttl": 120, "name": "Display"}),
        &Expected::new("u-123", Some("Display"), "room-b", 120),
    ));
    issued.push(issue(
        &sidecar,
        &caller,
        &json!({"roomId": "room-c", "ttl": 7200}),
        &Expected::new("u-123", Some("Zoë Ω"), "room-c", 7200),
    ));
    assert_reply(
        &post_token(
            &sidecar,
            Some(&caller),
            &json!({"roomId": "room-c", "ttl": 7201}),
        ),
        400,
        &nest(
            400,
            json!(["ttl must not be greater than 7200"]),
            "Bad Request",
        ),
    );
    // A caller token signed with another secret is no caller at all.
    let forged = caller_token(
        "some-other-secret-that-is-also-32-bytes-long",
        "u-123",
        None,
        &["JOIN_CHANNEL"],
    );
    assert_eq!(
        post_token(&sidecar, Some(&forged), &json!({"roomId": "room-a"})).status,
        401
    );

    let info = http
        .get(&sidecar.api_url(CONNECTION_INFO_PATH), Some(&caller))
        .expect("the sidecar answers");
    assert_reply(
        &info,
        200,
        &json!({
            "serverUrl": ENV_SERVER_URL,
            "region": "eu-west-1",
            "configured": true,
            "features": {"audio": true, "video": false, "screenShare": false, "recording": true},
        }),
    );
    let anonymous = http
        .get(&sidecar.api_url(CONNECTION_INFO_PATH), None)
        .expect("the sidecar answers");
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    assert_reply(
        &http
            .get(&sidecar.api_url(HEALTH_PATH), None)
            .expect("the sidecar answers"),
        200,
        &json!({"status": "healthy", "configured": true}),
    );
    let ready = http.get(&sidecar.metrics_url("/readyz"), None).unwrap();
    assert_eq!(ready.status, 200, "{ready:?}");

    verify_with_both_sdks(ENV_API_KEY, ENV_API_SECRET, &issued);
}

/// Configuration from a directory, as the operator's Secret and ConfigMap are mounted.
#[test]
fn config_dir_written_with_the_contract_is_honoured() {
    const DIR_KEY: &str = "APIdirKey42";
    const DIR_SECRET: &str = "dir-api-secret-written-by-the-operator-0123";
    const DIR_CALLER_SECRET: &str = "dir-caller-hs-secret-of-at-least-32-bytes";
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = SidecarSettings::new("https://livekit.dir.test");
    settings.region = Some("ap-south-1".into());
    settings.auth.algorithms = vec![CallerAlgorithm::HS256];
    settings.auth.issuer = Some("https://issuer.dir.test".into());
    settings.auth.audiences = vec!["kraken".into()];
    settings.token.default_ttl_seconds = 900;
    settings.token.grants.can_publish = false;
    settings.validate().expect("the test's settings are valid");
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).expect("write a config file")
    };
    write(keys::SETTINGS, &settings.to_yaml());
    // As the kubelet writes Secret values: a trailing newline is common.
    write(keys::API_KEY, &format!("{DIR_KEY}\n"));
    write(keys::API_SECRET, &format!("{DIR_SECRET}\n"));
    write(keys::CALLER_HS_SECRET, DIR_CALLER_SECRET);

    let dir_arg = dir.path().to_str().expect("a UTF-8 temp path");
    // The environment must not matter when a directory is given.
    let sidecar = SidecarProcess::start(&["--config-dir", dir_arg], &env_base());
    let caller_claims = |aud: &str| {
        json!({
            "sub": "carol",
            "iss": "https://issuer.dir.test",
            "aud": aud,
            "exp": now() + 300,
            "permissions": ["JOIN_CHANNEL:dir-room"],
        })
    };
    let caller = mint_hs256(DIR_CALLER_SECRET, &caller_claims("kraken"));

    let mut expected = Expected::new("carol", None, "dir-room", 900);
    expected.grants = [false, true, true];
    let issued = issue(&sidecar, &caller, &json!({"roomId": "dir-room"}), &expected);

    // The directory's audience is enforced; the environment's caller secret means nothing here.
    let wrong_audience = mint_hs256(DIR_CALLER_SECRET, &caller_claims("someone-else"));
    assert_eq!(
        post_token(
            &sidecar,
            Some(&wrong_audience),
            &json!({"roomId": "dir-room"})
        )
        .status,
        401
    );
    let env_signed = mint_hs256(ENV_CALLER_SECRET, &caller_claims("kraken"));
    assert_eq!(
        post_token(&sidecar, Some(&env_signed), &json!({"roomId": "dir-room"})).status,
        401
    );

    let info = Http::new()
        .get(&sidecar.api_url(CONNECTION_INFO_PATH), Some(&caller))
        .expect("the sidecar answers");
    assert_reply(
        &info,
        200,
        &json!({
            "serverUrl": "https://livekit.dir.test",
            "region": "ap-south-1",
            "configured": true,
            "features": {"audio": true, "video": true, "screenShare": true, "recording": false},
        }),
    );

    verify_with_both_sdks(DIR_KEY, DIR_SECRET, &[issued]);
}

/// No credentials at all (empty environment, or an empty mounted directory): the sidecar starts
/// and says it is not configured, exactly as the spec shows.
#[test]
fn without_credentials_it_starts_unconfigured() {
    let empty_dir = tempfile::tempdir().expect("a temporary directory");
    let dir_arg = empty_dir.path().to_str().expect("a UTF-8 temp path");
    let sources: [(&str, Vec<&str>); 2] = [
        ("empty environment", vec![]),
        ("empty config dir", vec!["--config-dir", dir_arg]),
    ];
    let http = Http::new();
    for (what, args) in sources {
        let sidecar = SidecarProcess::start(&args, &[]);
        let dev_caller = dev_token(&["--identity", "alice"]);
        assert_reply(
            &http.get(&sidecar.api_url(HEALTH_PATH), None).unwrap(),
            200,
            &json!({"status": "unhealthy", "configured": false}),
        );
        for bearer in [None, Some(dev_caller.as_str())] {
            assert_reply(
                &post_token(&sidecar, bearer, &json!({"roomId": "r1"})),
                500,
                &not_configured_body(),
            );
            assert_reply(
                &http
                    .get(&sidecar.api_url(CONNECTION_INFO_PATH), bearer)
                    .unwrap(),
                500,
                &not_configured_body(),
            );
        }
        assert_reply(
            &http.get(&sidecar.metrics_url("/readyz"), None).unwrap(),
            503,
            &nest(
                503,
                json!("LiveKit service not configured properly"),
                "Service Unavailable",
            ),
        );
        let live = http.get(&sidecar.metrics_url("/livez"), None).unwrap();
        assert_eq!(live.status, 200, "{what}: {live:?}");
        assert!(
            sidecar.log_events().iter().any(|e| e["level"] == "WARN"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("no LiveKit credentials configured"))),
            "{what}: the unconfigured state must be logged; stderr:\n{}",
            sidecar.stderr()
        );
    }
}

/// What is wrong, the environment, and what stderr must name.
type EnvCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [&'a str]);

#[track_caller]
fn assert_refused(what: &str, args: &[&str], env: &[(&str, &str)], names: &[&str]) {
    let out = run_to_exit(args, env, Duration::from_secs(10));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what}: exit status {}; stderr:\n{}",
        out.status,
        out.stderr
    );
    for name in names {
        assert!(
            out.stderr.contains(name),
            "{what}: stderr does not name {name:?}:\n{}",
            out.stderr
        );
    }
    assert!(
        !out.stderr.contains("panicked"),
        "{what}: panicked:\n{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{what}: stdout: {:?}", out.stdout);
}

/// Invalid configurations stop the process with exit code 2 and a message naming the field.
#[test]
fn invalid_configuration_exits_2_naming_the_field() {
    let serve = ["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"];
    let env_cases: Vec<EnvCase> = vec![
        (
            "default ttl not a number",
            with(env_base(), &[("LIVEKIT_DEFAULT_TOKEN_TTL", "abc")]),
            &["LIVEKIT_DEFAULT_TOKEN_TTL", "\"abc\""],
        ),
        (
            "algorithm none",
            with(env_base(), &[("SIDECAR_AUTH_ALGORITHMS", "none")]),
            &["SIDECAR_AUTH_ALGORITHMS"],
        ),
        (
            "api key without secret",
            vec![
                ("LIVEKIT_SERVER_URL", ENV_SERVER_URL),
                ("LIVEKIT_API_KEY", ENV_API_KEY),
            ],
            &["LIVEKIT_API_SECRET"],
        ),
        (
            "credentials without a server url",
            env_base()
                .into_iter()
                .filter(|(k, _)| *k != "LIVEKIT_SERVER_URL")
                .collect(),
            &["LIVEKIT_SERVER_URL"],
        ),
        (
            "default ttl above max ttl",
            with(
                env_base(),
                &[
                    ("LIVEKIT_DEFAULT_TOKEN_TTL", "7200"),
                    ("LIVEKIT_MAX_TOKEN_TTL", "3600"),
                ],
            ),
            &["LIVEKIT_DEFAULT_TOKEN_TTL"],
        ),
        (
            "webhook mode without a webhook url",
            with(env_base(), &[("SIDECAR_AUTHZ_MODE", "Webhook")]),
            &["authorization.webhook"],
        ),
        (
            "api secret shorter than livekit-server accepts",
            with(
                env_base(),
                &[("LIVEKIT_API_SECRET", "only-31-characters-long-secret!")],
            ),
            &["LIVEKIT_API_SECRET", "livekit-server refuses"],
        ),
    ];
    for (what, env, names) in &env_cases {
        assert_refused(what, &serve, env, names);
    }

    // A settings file that is not SidecarSettings (unknown field, wrong type), next to valid secrets.
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        dir.path().join(keys::SETTINGS),
        "serverUrl: [not, a, url]\nsurprise: true\n",
    )
    .unwrap();
    std::fs::write(dir.path().join(keys::API_KEY), "APIk").unwrap();
    std::fs::write(
        dir.path().join(keys::API_SECRET),
        "dir-api-secret-of-at-least-32-characters",
    )
    .unwrap();
    let dir_arg = dir.path().to_str().expect("a UTF-8 temp path");
    let mut args = vec!["--config-dir", dir_arg];
    args.extend_from_slice(&serve);
    assert_refused("bad sidecar.yaml", &args, &[], &[keys::SETTINGS]);

    // A settings file with a valid shape but an invalid value.
    let mut settings = SidecarSettings::new("ftp://livekit.dir.test");
    settings.auth.algorithms = vec![CallerAlgorithm::HS256];
    std::fs::write(dir.path().join(keys::SETTINGS), settings.to_yaml()).unwrap();
    std::fs::write(
        dir.path().join(keys::CALLER_HS_SECRET),
        "dir-caller-hs-secret-of-at-least-32-bytes",
    )
    .unwrap();
    assert_refused("ftp server url in sidecar.yaml", &args, &[], &["serverUrl"]);

    // A usage error from the command line itself.
    assert_refused(
        "--dev with --config-dir",
        &["--dev", "--config-dir", "x"],
        &[],
        &["--dev", "--config-dir"],
    );

    // The API address is taken: refused, naming the address.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    assert_refused(
        "API address in use",
        &[
            "--dev",
            "--listen",
            &taken_addr,
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &[],
        &[&taken_addr],
    );
}

/// Caller key material is configuration too: a refused HS secret must name the variable that
/// holds it, like every other field.
#[test]
fn invalid_caller_key_material_names_the_variable() {
    let serve = ["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"];
    assert_refused(
        "HS secret shorter than 32 bytes",
        &serve,
        &with(env_base(), &[("SIDECAR_AUTH_HS_SECRET", "too-short")]),
        &["SIDECAR_AUTH_HS_SECRET"],
    );
    assert_refused(
        "HS256 without an HS secret",
        &serve,
        &env_base()
            .into_iter()
            .filter(|(k, _)| *k != "SIDECAR_AUTH_HS_SECRET")
            .collect::<Vec<_>>(),
        &["SIDECAR_AUTH_HS_SECRET"],
    );
}

fn connect_refused(addr: SocketAddr) -> bool {
    matches!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// SIGTERM while a token request waits for the authorization webhook: the request completes with a
/// valid token, new connections are refused at once, and the process exits 0 within its grace period.
#[test]
fn sigterm_lets_the_request_in_flight_finish() {
    let webhook = Webhook::start(204, Duration::from_millis(1000));
    let webhook_url = webhook.url("/internal/authorize");
    let env = with(
        env_base(),
        &[
            ("SIDECAR_AUTHZ_MODE", "Webhook"),
            ("SIDECAR_AUTHZ_WEBHOOK_URL", &webhook_url),
            ("SIDECAR_AUTHZ_WEBHOOK_TIMEOUT_MS", "5000"),
            ("SIDECAR_SHUTDOWN_GRACE_SECONDS", "5"),
        ],
    );
    let mut sidecar = SidecarProcess::start(&[], &env);
    let api = sidecar.api;
    let metrics = sidecar.metrics;

    // No permissions claim at all: only the webhook can say yes.
    let caller = caller_token(ENV_CALLER_SECRET, "dave", Some("Dave"), &[]);
    let url = sidecar.api_url(TOKEN_PATH);
    let in_flight = std::thread::spawn(move || {
        let before = now();
        let reply = Http::new().post_json(&url, Some(&caller), &json!({"roomId": "shutdown-room"}));
        (before, reply, now())
    });

    let arrival = webhook
        .next_arrival(Duration::from_secs(10))
        .expect("the sidecar asks the webhook");
    assert_eq!(arrival.method, "POST");
    assert_eq!(arrival.path, "/internal/authorize");
    assert_eq!(
        arrival.body,
        json!({"subject": "dave", "identity": "dave", "roomId": "shutdown-room", "permission": "JOIN_CHANNEL"})
    );

    let signalled = Instant::now();
    sidecar.signal(Signal::TERM);
    // The listener closes at once, while the request in flight is still waiting for the webhook.
    let mut refused_while_draining = false;
    while signalled.elapsed() < Duration::from_millis(800) {
        if connect_refused(api) {
            refused_while_draining = !in_flight.is_finished();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        refused_while_draining,
        "new connections must be refused while draining; stderr:\n{}",
        sidecar.stderr()
    );

    let (before, reply, after) = in_flight.join().expect("the client thread");
    let reply = reply.expect("the request in flight gets its answer");
    let expected = Expected::new("dave", Some("Dave"), "shutdown-room", 3600);
    let (token, exp) = check_token_reply(&reply, &expected, (before, after));

    let status = sidecar
        .wait_exit(Duration::from_secs(7))
        .unwrap_or_else(|| {
            panic!(
                "no exit within the 5 s grace period; stderr:\n{}",
                sidecar.stderr()
            )
        });
    assert_eq!(status.code(), Some(0), "stderr:\n{}", sidecar.stderr());
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "exit took {:?}",
        signalled.elapsed()
    );
    assert!(connect_refused(api), "API still accepts after exit");
    assert!(connect_refused(metrics), "metrics still accepts after exit");
    let messages: BTreeSet<String> = sidecar
        .log_events()
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .collect();
    for m in ["shutdown signal received", "stopped"] {
        assert!(
            messages.contains(m),
            "no {m:?} log; stderr:\n{}",
            sidecar.stderr()
        );
    }
    assert!(
        !sidecar.stderr().contains("panicked"),
        "{}",
        sidecar.stderr()
    );
    assert_eq!(webhook.received().len(), 1);

    verify_with_both_sdks(ENV_API_KEY, ENV_API_SECRET, &[(token, exp, expected)]);
}

/// Volume: 200 tokens over concurrent connections, with varied rooms, identities (overrides),
/// unicode names and ttls; all verified in one batch per SDK with exact claims.
#[test]
fn two_hundred_varied_tokens_verify_in_both_sdks() {
    let env = with(
        env_base(),
        &[
            ("LIVEKIT_ALLOW_IDENTITY_OVERRIDE", "true"),
            ("LIVEKIT_DEFAULT_TOKEN_TTL", "900"),
            ("LIVEKIT_MAX_TOKEN_TTL", "86400"),
        ],
    );
    let sidecar = SidecarProcess::start(&[], &env);
    let names = [
        "Zoë",
        "李雷",
        "Ωmega 🚀",
        "Ñandú",
        "محمد",
        "Ærøskøbing",
        "Ελένη",
        "plain",
    ];
    let cases: Vec<(Value, Expected)> = (0..200u64)
        .map(|i| {
            let room = match i % 4 {
                0 => format!("room-{i}"),
                1 => format!("64f7b1234567890abcd{i:05}"),
                2 => format!("salle-é-{i}"),
                _ => format!("部屋-{i}"),
            };
            let identity = if i % 2 == 0 {
                format!("guest-{i}-ü")
            } else {
                "caller-main".to_owned()
            };
            let name = names[(i as usize) % names.len()];
            let ttl = match i % 5 {
                0 => None,
                1 => Some(120),
                2 => Some(60 + i),
                3 => Some(3600 * (1 + i % 24)),
                _ => Some(86_400),
            };
            let mut body = json!({"roomId": room, "name": name, "ignoredField": i});
            if i % 2 == 0 {
                body["identity"] = json!(identity);
            }
            if let Some(ttl) = ttl {
                body["ttl"] = json!(ttl);
            }
            let expected = Expected::new(&identity, Some(name), &room, ttl.unwrap_or(900));
            (body, expected)
        })
        .collect();

    let caller = caller_token(
        ENV_CALLER_SECRET,
        "caller-main",
        Some("Caller"),
        &["JOIN_CHANNEL"],
    );
    let url = sidecar.api_url(TOKEN_PATH);
    let started = Instant::now();
    let issued: Vec<(String, u64, Expected)> = std::thread::scope(|scope| {
        let workers: Vec<_> = cases
            .chunks(50)
            .map(|chunk| {
                let (caller, url) = (&caller, &url);
                scope.spawn(move || {
                    let http = Http::new();
                    chunk
                        .iter()
                        .map(|(body, expected)| {
                            let before = now();
                            let reply = http
                                .post_json(url, Some(caller), body)
                                .expect("the sidecar answers");
                            let after = now();
                            let (token, exp) = check_token_reply(&reply, expected, (before, after));
                            (token, exp, expected.clone())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a client thread"))
            .collect()
    });
    assert_eq!(issued.len(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "200 requests took {:?}",
        started.elapsed()
    );
    let distinct: BTreeSet<&str> = issued.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(distinct.len(), 200, "tokens must differ");

    verify_with_both_sdks(ENV_API_KEY, ENV_API_SECRET, &issued);
}

/// An idle sidecar holds little anonymous memory (heap and stacks). tracing-appender's default log
/// buffer (128,000 lines, every slot allocated and initialised up front: 4 MB) was more than a third
/// of an idle sidecar's RSS; the sidecar sizes it for the logging its refusal budget allows. A bound
/// on memory, not on time: a debug build measured about 1.5 MiB with the smaller buffer and 5.4 MiB
/// with the default one, so 3 MiB separates them with room on either side.
#[cfg(target_os = "linux")]
#[test]
fn an_idle_sidecar_holds_no_oversized_log_buffer() {
    let sidecar = SidecarProcess::start(&[], &env_base());
    let health = Http::new()
        .get(&sidecar.api_url(HEALTH_PATH), None)
        .expect("the sidecar answers");
    assert_eq!(health.status, 200, "{health:?}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", sidecar.pid()))
        .expect("the sidecar's /proc status");
    let anon_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon in /proc/<pid>/status");
    assert!(
        anon_kib < 3 * 1024,
        "an idle sidecar holds {anon_kib} KiB of anonymous memory"
    );
}
