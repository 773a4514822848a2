//! Property tests (proptest): request validation on arbitrary JSON objects, and the token endpoint,
//! in-process over loopback HTTP, on arbitrary `Authorization` values, mutated caller JWTs and arbitrary
//! bodies. Whatever comes in, nothing panics, and every answer is either a 200 with a LiveKit token that
//! verifies with the API secret for exactly the requested room, or a well-formed NestJS error body.
//!
//! Case counts are modest so the suite stays fast; a failure prints the minimal input proptest found.

mod common;

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use livekit_sidecar::validation::validate_token_request;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Number, Value, json};

/// LiveKit's limit on room names, identities and participant names, in characters.
const MAX_TEXT_CHARS: usize = 256;
/// The fields the token endpoint knows.
const FIELDS: [&str; 4] = ["identity", "roomId", "name", "ttl"];

fn config(cases: u32) -> Config {
    Config {
        cases,
        // Never write regression files into the source tree; a failure prints its minimal input.
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------------

/// Strings that probe the documented bounds: blank, control characters, unicode, around 256 characters.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9_-]{1,24}",
        2 => "\\PC{0,24}",
        1 => any::<String>(),
        1 => "[ \t\n\r\u{a0}\u{2003}\u{3000}]{0,4}",
        1 => "[a-z]{0,8}[\u{0}-\u{1f}\u{7f}\u{85}\u{9f}][a-z]{0,8}",
        1 => (250usize..=260, prop_oneof![Just('x'), Just('é'), Just('😀')])
            .prop_map(|(n, c)| std::iter::repeat_n(c, n).collect::<String>()),
        1 => Just(String::new()),
    ]
}

/// Numbers around the TTL bounds, plus anything.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => prop_oneof![
            Just(json!(0)), Just(json!(1)), Just(json!(-1)), Just(json!(0.5)), Just(json!(1.0)),
            Just(json!(-0.0)), Just(json!(3600)), Just(json!(86_400)), Just(json!(86_401)),
            Just(json!(86_400.5)), Just(json!(1e300)), Just(json!(-1e300)), Just(json!(u64::MAX)),
            Just(json!(i64::MIN)), Just(json!(u32::MAX)), Just(json!(f64::MIN_POSITIVE)),
            Just(json!(4_294_967_296u64)),
        ],
        2 => (-10i64..100_000).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(FIELDS.to_vec()).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["RoomId", "roomid", "room_id", "TTL", "__proto__", "constructor", ""])
            .prop_map(str::to_owned),
        1 => "\\PC{0,8}",
    ]
}

/// A value for one of the known fields: mostly of the right type, sometimes not.
fn field_value(field: &'static str) -> BoxedStrategy<Value> {
    if field == "ttl" {
        prop_oneof![4 => number(), 1 => json_value()].boxed()
    } else {
        prop_oneof![4 => text().prop_map(Value::String), 1 => json_value()].boxed()
    }
}

/// Objects that exercise the known fields, with unknown ones on the side.
fn request_object() -> impl Strategy<Value = Map<String, Value>> {
    let optional = |field: &'static str| prop::option::weighted(0.7, field_value(field));
    (
        optional("identity"),
        prop::option::weighted(0.9, field_value("roomId")),
        optional("name"),
        optional("ttl"),
        prop::collection::btree_map(key(), json_value(), 0..3),
    )
        .prop_map(|(identity, room, name, ttl, extra)| {
            let mut map: Map<String, Value> = extra.into_iter().collect();
            for (field, value) in [
                ("identity", identity),
                ("roomId", room),
                ("name", name),
                ("ttl", ttl),
            ] {
                if let Some(value) = value {
                    map.insert(field.to_owned(), value);
                }
            }
            map
        })
}

// ---------------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------------

/// The documented rule for a text field: not blank, at most 256 characters, no control characters.
fn text_ok(s: &str) -> bool {
    !s.trim().is_empty() && s.chars().count() <= MAX_TEXT_CHARS && !s.chars().any(char::is_control)
}

/// Whether `field` of `body` breaks a documented rule (`None`: the field is fine).
fn field_invalid(body: &Map<String, Value>, field: &str, max_ttl: u32) -> bool {
    match (field, body.get(field)) {
        ("roomId", None | Some(Value::Null)) => true,
        (_, None | Some(Value::Null)) => false,
        ("ttl", Some(Value::Number(n))) => {
            if let Some(i) = n.as_i64() {
                !(1..=i64::from(max_ttl)).contains(&i)
            } else if let Some(u) = n.as_u64() {
                u > u64::from(max_ttl)
            } else {
                let f = n.as_f64().expect("a JSON number");
                !(f.fract() == 0.0 && (1.0..=f64::from(max_ttl)).contains(&f))
            }
        }
        ("ttl", Some(_)) => true,
        (_, Some(Value::String(s))) => !text_ok(s),
        (_, Some(_)) => true,
    }
}

/// class-validator's words for the problems of one field.
fn message_is_well_formed(message: &str, max_ttl: u32) -> bool {
    let text_field = ["identity", "roomId", "name"].iter().any(|field| {
        message == format!("{field} should not be empty")
            || message == format!("{field} must be a string")
            || message == format!("{field} must not contain control characters")
            || (message.starts_with(&format!(
                "{field} must be shorter than or equal to {MAX_TEXT_CHARS} characters"
            )))
    });
    text_field
        || message == "ttl must be an integer number"
        || message == "ttl must not be less than 1"
        || message == format!("ttl must not be greater than {max_ttl}")
}

fn field_of(message: &str) -> &str {
    message.split(' ').next().unwrap_or_default()
}

fn check_validation(body: &Map<String, Value>, max_ttl: u32) -> Result<(), TestCaseError> {
    let invalid: BTreeSet<&str> = FIELDS
        .into_iter()
        .filter(|f| field_invalid(body, f, max_ttl))
        .collect();
    match validate_token_request(body, max_ttl) {
        Ok(request) => {
            prop_assert!(
                invalid.is_empty(),
                "accepted although {invalid:?} break the documented rules: {request:?}"
            );
            prop_assert_eq!(
                Some(&Value::String(request.room_id.clone())),
                body.get("roomId")
            );
            prop_assert!(text_ok(&request.room_id));
            for (field, value) in [("identity", &request.identity), ("name", &request.name)] {
                match (value, body.get(field)) {
                    (None, None | Some(Value::Null)) => {}
                    (Some(v), Some(Value::String(s))) => {
                        prop_assert_eq!(v, s);
                        prop_assert!(text_ok(v));
                    }
                    (v, b) => prop_assert!(false, "{field}: validated {v:?} from {b:?}"),
                }
            }
            match (request.ttl, body.get("ttl")) {
                (None, None | Some(Value::Null)) => {}
                (Some(ttl), Some(Value::Number(n))) => {
                    prop_assert!((1..=max_ttl).contains(&ttl));
                    prop_assert_eq!(f64::from(ttl), n.as_f64().unwrap());
                }
                (v, b) => prop_assert!(false, "ttl: validated {v:?} from {b:?}"),
            }
        }
        Err(messages) => {
            prop_assert!(!messages.is_empty(), "an error without messages");
            let mut seen = BTreeSet::new();
            for message in &messages {
                prop_assert!(
                    message_is_well_formed(message, max_ttl),
                    "not a class-validator style message: {message:?}"
                );
                prop_assert!(seen.insert(message), "repeated message {message:?}");
            }
            let named: BTreeSet<&str> = messages.iter().map(|m| field_of(m)).collect();
            prop_assert_eq!(
                named,
                invalid,
                "the messages {:?} must name exactly the invalid fields",
                messages
            );
        }
    }
    Ok(())
}

#[test]
fn validation_accepts_exactly_the_documented_requests_and_explains_every_refusal() {
    let mut runner = TestRunner::new(config(512));
    runner
        .run(
            &(
                request_object(),
                prop_oneof![Just(86_400u32), 1u32..200_000],
            ),
            |(body, max_ttl)| check_validation(&body, max_ttl),
        )
        .unwrap();
}

#[test]
fn validation_never_panics_on_arbitrary_objects() {
    let mut runner = TestRunner::new(config(256));
    runner
        .run(
            &(
                prop::collection::btree_map(key(), json_value(), 0..6),
                any::<u32>(),
            ),
            |(body, max_ttl)| {
                let body: Map<String, Value> = body.into_iter().collect();
                // Any max_ttl, even 0: no panic, and Ok results within the ceiling.
                if let Ok(request) = validate_token_request(&body, max_ttl) {
                    prop_assert!(request.ttl.is_none_or(|t| (1..=max_ttl).contains(&t)));
                    prop_assert!(text_ok(&request.room_id));
                } else if max_ttl > 0 {
                    check_validation(&body, max_ttl)?;
                }
                Ok(())
            },
        )
        .unwrap();
}

// ---------------------------------------------------------------------------------------------------
// The token endpoint over HTTP
// ---------------------------------------------------------------------------------------------------

/// How a case authenticates.
#[derive(Debug, Clone)]
enum Auth {
    None,
    /// Arbitrary header bytes (visible ASCII, tab, obs-text).
    Raw(Vec<u8>),
    /// `<scheme><token>` where the token is a JWT string built by the strategy.
    Jwt {
        scheme: &'static str,
        token: String,
        /// Signed with the caller secret, as HS256, and not altered afterwards.
        genuine: bool,
    },
}

#[derive(Debug, Clone)]
enum Body {
    Json(Value),
    Raw(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Case {
    auth: Auth,
    content_type: Option<String>,
    body: Body,
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// Caller claims: mostly valid, with every claim sometimes odd.
fn claims() -> impl Strategy<Value = Value> {
    let sub = prop_oneof![
        4 => prop_oneof![Just("alice".to_owned()), "[a-z0-9-]{1,12}"].prop_map(Value::String),
        2 => text().prop_map(Value::String),
        1 => json_value(),
    ];
    let exp = prop_oneof![
        6 => Just(json!(now() + 3600)),
        1 => Just(json!(now() - 3600)),
        1 => Just(json!(now() + 20)),
        1 => number(),
        1 => json_value(),
    ];
    let permissions = prop_oneof![
        4 => Just(json!(["JOIN_CHANNEL"])),
        1 => text().prop_map(|room| json!([format!("JOIN_CHANNEL:{room}")])),
        1 => prop::collection::vec(
            prop_oneof![
                Just("JOIN_CHANNEL".to_owned()),
                Just("JOIN_CHANNEL:".to_owned()),
                Just("join_channel".to_owned()),
                text()
            ],
            0..3
        )
        .prop_map(|v| json!(v)),
        1 => json_value(),
    ];
    (
        prop::option::weighted(0.95, sub),
        prop::option::weighted(0.95, exp),
        prop::option::weighted(0.9, permissions),
        prop::option::weighted(0.3, json_value()),
        prop::option::weighted(0.2, number()),
        prop::collection::btree_map("[a-z]{1,6}", json_value(), 0..2),
    )
        .prop_map(|(sub, exp, permissions, name, nbf, extra)| {
            let mut claims: Map<String, Value> = extra.into_iter().collect();
            for (k, v) in [
                ("sub", sub),
                ("exp", exp),
                ("permissions", permissions),
                ("name", name),
                ("nbf", nbf),
            ] {
                if let Some(v) = v {
                    claims.insert(k.into(), v);
                }
            }
            Value::Object(claims)
        })
}

/// Alterations of a genuine token.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, char),
    Delete(usize, usize),
    Insert(usize, String),
    Truncate(usize),
    /// Another header over the same payload and signature.
    Header(Value),
    /// Another payload under the same header and signature.
    Payload(Value),
    /// `alg: none` and no signature.
    Unsigned,
    SwapSegments,
    Segments(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let header = prop_oneof![
        Just(json!({"alg": "none", "typ": "JWT"})),
        Just(json!({"alg": "HS512", "typ": "JWT"})),
        Just(json!({"alg": "RS256", "typ": "JWT"})),
        Just(json!({"alg": "HS256", "crit": ["exp"]})),
        Just(json!({"alg": "HS256", "kid": "../../etc/passwd"})),
        json_value(),
    ];
    prop_oneof![
        3 => (any::<usize>(), prop_oneof![Just('A'), Just('.'), Just('-'), Just('_'), any::<char>()])
            .prop_map(|(i, c)| Mutation::Replace(i, c)),
        1 => (any::<usize>(), 1usize..8).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => (any::<usize>(), "\\PC{1,4}|[ =+/.]").prop_map(|(i, s)| Mutation::Insert(i, s)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        2 => header.prop_map(Mutation::Header),
        1 => claims().prop_map(Mutation::Payload),
        1 => Just(Mutation::Unsigned),
        1 => Just(Mutation::SwapSegments),
        1 => (0usize..6).prop_map(Mutation::Segments),
    ]
}

fn char_boundary_at(s: &str, i: usize) -> usize {
    let mut i = i % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutate(token: &str, mutation: &Mutation) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    match mutation {
        Mutation::Replace(i, c) => {
            let chars: Vec<char> = token.chars().collect();
            let i = i % chars.len();
            let mut chars = chars;
            chars[i] = *c;
            chars.into_iter().collect()
        }
        Mutation::Delete(i, n) => {
            let start = char_boundary_at(token, *i);
            let end = char_boundary_at(token, (start + n).min(token.len()));
            format!("{}{}", &token[..start], &token[end.max(start)..])
        }
        Mutation::Insert(i, s) => {
            let at = char_boundary_at(token, *i);
            format!("{}{s}{}", &token[..at], &token[at..])
        }
        Mutation::Truncate(i) => token[..char_boundary_at(token, *i)].to_owned(),
        Mutation::Header(header) => format!("{}.{}.{}", b64(header), parts[1], parts[2]),
        Mutation::Payload(payload) => format!("{}.{}.{}", parts[0], b64(payload), parts[2]),
        Mutation::Unsigned => format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            parts[1]
        ),
        Mutation::SwapSegments => format!("{}.{}.{}", parts[1], parts[0], parts[2]),
        Mutation::Segments(n) => vec![parts[0]; *n].join("."),
    }
}

fn scheme() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        8 => Just("Bearer "),
        1 => Just("bearer "),
        1 => Just("BEARER "),
        1 => Just("Bearer  "),
        1 => Just("Bearer"),
        1 => Just("Basic "),
        1 => Just(""),
    ]
}

fn auth() -> impl Strategy<Value = Auth> {
    let genuine = (claims(), scheme()).prop_map(|(claims, scheme)| Auth::Jwt {
        scheme,
        token: hs_token(&claims),
        genuine: true,
    });
    let wrong_key = (
        claims(),
        prop_oneof![
            Just((Algorithm::HS256, "another-secret-0123456789abcdef0123")),
            Just((Algorithm::HS384, HS_SECRET)),
            Just((Algorithm::HS512, HS_SECRET)),
        ],
    )
        .prop_map(|(claims, (alg, secret))| Auth::Jwt {
            scheme: "Bearer ",
            token: sign(
                alg,
                &EncodingKey::from_secret(secret.as_bytes()),
                None,
                &claims,
            ),
            genuine: false,
        });
    let mutated = (claims(), mutation(), scheme()).prop_map(|(claims, mutation, scheme)| {
        let original = hs_token(&claims);
        let token = mutate(&original, &mutation);
        Auth::Jwt {
            scheme,
            genuine: token == original,
            token,
        }
    });
    let header_byte = prop_oneof![
        8 => 0x20u8..=0x7e,
        1 => Just(b'\t'),
        1 => 0x80u8..=0xff,
    ];
    // A well-formed caller allowed into every room, or into one room only.
    let good = (
        "[a-z0-9-]{1,12}",
        prop_oneof![
            3 => Just("JOIN_CHANNEL".to_owned()),
            1 => text().prop_map(|room| format!("JOIN_CHANNEL:{room}")),
        ],
    )
        .prop_map(|(sub, permission)| Auth::Jwt {
            scheme: "Bearer ",
            token: hs_token(&caller_claims(&sub, &[permission.as_str()])),
            genuine: true,
        });
    // A well-formed caller without the permission.
    let unpermitted = prop_oneof![
        Just(vec![]),
        Just(vec!["READ_CHANNEL"]),
        Just(vec!["JOIN_CHANNEL:some-other-room"])
    ]
    .prop_map(|permissions| Auth::Jwt {
        scheme: "Bearer ",
        token: hs_token(&caller_claims("mallory", &permissions)),
        genuine: true,
    });
    // A well-formed, permitted caller whose token is not valid now: expired beyond the leeway, or
    // not valid yet. Only the oracle's time checks tell these from `good`.
    let untimely = prop_oneof![
        Just(json!({"exp": now() - 120})),
        Just(json!({"exp": now() - 86_400})),
        Just(json!({"exp": now() + 3600, "nbf": now() + 600})),
    ]
    .prop_map(|times| {
        let mut claims = caller_claims("trudy", &["JOIN_CHANNEL"]);
        for (k, v) in times.as_object().unwrap() {
            claims[k] = v.clone();
        }
        Auth::Jwt {
            scheme: "Bearer ",
            token: hs_token(&claims),
            genuine: true,
        }
    });
    // Key material in the header (jku, x5u, jwk, x5c) is never used: a token signed with the key it
    // names is not genuine, and one signed with the configured secret stays genuine (the header is
    // ignored, not a reason to refuse). Unlike a header swapped over a kept signature, these are
    // correctly signed, so only ignoring the header keeps the attacker's tokens out.
    const ATTACKER: &str = "attacker-secret-0123456789abcdef0123";
    let injected = (
        prop_oneof![Just("jku"), Just("x5u"), Just("jwk"), Just("x5c")],
        any::<bool>(),
    )
        .prop_map(|(field, by_attacker)| {
            let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
            let url = "http://127.0.0.1:1/keys".to_owned();
            match field {
                "jku" => header.jku = Some(url),
                "x5u" => header.x5u = Some(url),
                "jwk" => {
                    header.jwk = Some(
                        serde_json::from_value(json!({
                            "kty": "oct", "alg": "HS256", "k": URL_SAFE_NO_PAD.encode(ATTACKER)
                        }))
                        .unwrap(),
                    )
                }
                _ => header.x5c = Some(vec![URL_SAFE_NO_PAD.encode(ATTACKER)]),
            }
            let secret = if by_attacker { ATTACKER } else { HS_SECRET };
            let claims = caller_claims("eve", &["JOIN_CHANNEL"]);
            let token = jsonwebtoken::encode(
                &header,
                &claims,
                &EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap();
            Auth::Jwt {
                scheme: "Bearer ",
                token,
                genuine: !by_attacker,
            }
        });
    prop_oneof![
        6 => good,
        2 => unpermitted,
        2 => untimely,
        2 => injected,
        1 => Just(Auth::None),
        2 => prop::collection::vec(header_byte, 0..120).prop_map(Auth::Raw),
        1 => "[A-Za-z0-9_.-]{0,200}".prop_map(|token| Auth::Jwt { scheme: "Bearer ", token, genuine: false }),
        6 => genuine,
        2 => wrong_key,
        5 => mutated,
    ]
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        5 => text().prop_map(|room| Body::Json(json!({"roomId": room}))),
        4 => request_object().prop_map(|m| Body::Json(Value::Object(m))),
        1 => json_value().prop_map(Body::Json),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Body::Raw),
        1 => prop::sample::select(vec![
            "", " ", "{", "{}", "[]", "null", "\"roomId\"", "{\"roomId\":\"\\ud800\"}",
            "{\"roomId\":\"a\",\"roomId\":\"b\"}", "{\"roomId\":\"r\"} trailing", "\u{feff}{\"roomId\":\"r\"}",
            "{\"roomId\":\"r\",\"ttl\":1e400}",
        ])
        .prop_map(|s| Body::Raw(s.as_bytes().to_vec())),
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        8 => Just(Some("application/json".to_owned())),
        1 => Just(None),
        1 => prop::sample::select(vec![
            "application/json; charset=utf-8", "text/plain", "application/merge-patch+json",
            "application/json; charset=latin1", "APPLICATION/JSON", "multipart/form-data",
        ])
        .prop_map(|s| Some(s.to_owned())),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (auth(), content_type(), body()).prop_map(|(auth, content_type, body)| Case {
        auth,
        content_type,
        body,
    })
}

fn header_value(auth: &Auth) -> Option<reqwest::header::HeaderValue> {
    let bytes = match auth {
        Auth::None => return None,
        Auth::Raw(bytes) => bytes.clone(),
        Auth::Jwt { scheme, token, .. } => format!("{scheme}{token}").into_bytes(),
    };
    // Values a client cannot send at all (CR, LF, NUL, ...) are out of scope.
    reqwest::header::HeaderValue::from_bytes(&bytes).ok()
}

/// The `roomId` the body asks for. A raw body is read the way `JSON.parse` reads it (the last of
/// duplicate keys wins), as the original backend did.
fn requested_room(case: &Case) -> Option<String> {
    let parsed;
    let value = match &case.body {
        Body::Json(value) => value,
        Body::Raw(bytes) => {
            parsed = serde_json::from_slice::<Value>(bytes).ok()?;
            &parsed
        }
    };
    value.get("roomId")?.as_str().map(str::to_owned)
}

/// The claims of a caller token (its payload; the signature is the sidecar's to check).
fn caller_claims_of(token: &str) -> Value {
    token
        .split('.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}

/// The test's own account of whether a genuinely signed caller is due a token for `room` at `now`
/// (Unix seconds): a usable `sub`, an `exp` not past and an `nbf` not ahead (both within the default
/// 30 s leeway, plus 2 s for the test's clock reading), and `JOIN_CHANNEL` on the room.
fn caller_is_due(claims: &Value, room: &str, now: u64) -> Result<(), String> {
    const LEEWAY: f64 = 30.0;
    const CLOCK_SLACK: f64 = 2.0;
    let now = now as f64;
    claims["sub"]
        .as_str()
        .filter(|s| !s.trim().is_empty() && s.chars().count() <= 256)
        .ok_or("no usable sub")?;
    let exp = claims["exp"].as_f64().ok_or("exp is not a number")?;
    if exp < now - LEEWAY - CLOCK_SLACK {
        return Err(format!("expired: exp {exp}"));
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_f64().ok_or("nbf is not a number")?;
        if nbf > now + LEEWAY + CLOCK_SLACK {
            return Err(format!("not yet valid: nbf {nbf}"));
        }
    }
    let permitted = claims["permissions"].as_array().is_some_and(|permissions| {
        permissions
            .iter()
            .filter_map(Value::as_str)
            .any(|p| p == "JOIN_CHANNEL" || p.strip_prefix("JOIN_CHANNEL:") == Some(room))
    });
    if !permitted {
        return Err("no JOIN_CHANNEL for the room".into());
    }
    Ok(())
}

#[test]
fn the_due_oracle_refuses_what_it_should() {
    let now = 2_000_000_000;
    let ok = json!({"sub": "a", "exp": now + 60, "permissions": ["JOIN_CHANNEL:r"]});
    assert_eq!(caller_is_due(&ok, "r", now), Ok(()));
    for (claims, room) in [
        (
            json!({"sub": "a", "exp": now - 3600, "permissions": ["JOIN_CHANNEL"]}),
            "r",
        ),
        (
            json!({"sub": "a", "exp": (now + 60).to_string(), "permissions": ["JOIN_CHANNEL"]}),
            "r",
        ),
        (json!({"sub": "a", "permissions": ["JOIN_CHANNEL"]}), "r"),
        (
            json!({"sub": "a", "exp": now + 60, "nbf": now + 3600, "permissions": ["JOIN_CHANNEL"]}),
            "r",
        ),
        (
            json!({"sub": " ", "exp": now + 60, "permissions": ["JOIN_CHANNEL"]}),
            "r",
        ),
        (
            json!({"sub": 7, "exp": now + 60, "permissions": ["JOIN_CHANNEL"]}),
            "r",
        ),
        (ok.clone(), "other"),
        (
            json!({"sub": "a", "exp": now + 60, "permissions": "JOIN_CHANNEL"}),
            "r",
        ),
        (
            json!({"sub": "a", "exp": now + 60, "permissions": ["JOIN_CHANNEL:"]}),
            "r",
        ),
    ] {
        assert!(
            caller_is_due(&claims, room, now).is_err(),
            "{claims} {room}"
        );
    }
}

async fn check_answer(sidecar: &TestSidecar, case: &Case) -> Result<(), TestCaseError> {
    let mut request = sidecar
        .client
        .post(format!("{}/api/livekit/token", sidecar.base));
    if let Some(value) = header_value(&case.auth) {
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    if let Some(content_type) = &case.content_type {
        request = request.header(reqwest::header::CONTENT_TYPE, content_type.as_str());
    }
    request = match &case.body {
        Body::Json(value) => request.body(serde_json::to_vec(value).unwrap()),
        Body::Raw(bytes) => request.body(bytes.clone()),
    };
    let response = request
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
    let status = response.status().as_u16();
    let www_authenticate = response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .cloned();
    let text = response
        .text()
        .await
        .map_err(|e| TestCaseError::fail(format!("body not read: {e}")))?;
    let body: Value = serde_json::from_str(&text)
        .map_err(|e| TestCaseError::fail(format!("{status}: body is not JSON ({e}): {text:?}")))?;

    // No dependency can fail in this configuration (claims authorizer, HS caller secret): no 5xx at all.
    prop_assert!(status < 500, "a server error: {status} {body}");

    if status == 200 {
        let genuine = matches!(case.auth, Auth::Jwt { genuine: true, .. });
        prop_assert!(genuine, "200 without a genuine caller token: {body}");
        let room = requested_room(case);
        prop_assert!(room.is_some(), "200 without a roomId string: {body}");
        let room = room.unwrap();
        // A genuine signature is not enough: the token must also be due a LiveKit token for this room.
        let Auth::Jwt { token: caller, .. } = &case.auth else {
            unreachable!("genuine is a JWT")
        };
        if let Err(why) = caller_is_due(&caller_claims_of(caller), &room, now()) {
            prop_assert!(
                false,
                "200 for a caller that is not due a token ({why}): {body}"
            );
        }
        let token = body["token"].as_str();
        prop_assert!(token.is_some(), "200 without a token: {body}");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[API_KEY]);
        validation.set_required_spec_claims(&["exp", "nbf", "sub", "iss"]);
        let claims = jsonwebtoken::decode::<Value>(
            token.unwrap(),
            &DecodingKey::from_secret(API_SECRET.as_bytes()),
            &validation,
        )
        .map_err(|e| TestCaseError::fail(format!("the token does not verify: {e}")))?
        .claims;
        prop_assert_eq!(&claims["video"]["room"], &json!(room), "token room");
        prop_assert_eq!(&body["roomId"], &json!(room), "response roomId");
        prop_assert_eq!(&claims["sub"], &body["identity"]);
        prop_assert_eq!(&claims["video"]["roomJoin"], &json!(true));
        return Ok(());
    }

    let object = body.as_object();
    prop_assert!(object.is_some(), "{status}: not an object: {body}");
    let keys: BTreeSet<&str> = object.unwrap().keys().map(String::as_str).collect();
    prop_assert_eq!(
        keys,
        BTreeSet::from(["statusCode", "message", "error"]),
        "{} body: {}",
        status,
        body
    );
    prop_assert_eq!(&body["statusCode"], &json!(status));
    let reason = reqwest::StatusCode::from_u16(status)
        .unwrap()
        .canonical_reason();
    prop_assert_eq!(body["error"].as_str(), reason, "error of {}", status);
    let message_ok = match &body["message"] {
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => {
            !items.is_empty()
                && items
                    .iter()
                    .all(|m| m.as_str().is_some_and(|s| !s.is_empty()))
        }
        _ => false,
    };
    prop_assert!(message_ok, "message of {status}: {body}");
    if status == 401 {
        prop_assert_eq!(
            www_authenticate.as_ref().and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
    }
    prop_assert!(
        [400, 401, 403, 413, 415].contains(&status),
        "unexpected status {status}: {body}"
    );
    Ok(())
}

#[test]
fn the_token_endpoint_answers_a_valid_token_or_a_nestjs_body() {
    // Generating and shrinking these nested strategies needs more stack than a test thread has in
    // debug builds.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(token_endpoint_cases)
        .unwrap()
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

fn token_endpoint_cases() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sidecar = runtime.block_on(TestSidecar::start(input(hs_settings(), hs_keys())));
    let mut runner = TestRunner::new(config(256));
    runner
        .run(&case(), |case| {
            runtime.block_on(check_answer(&sidecar, &case))
        })
        .unwrap();
    // The sidecar is still up and serving after every case.
    let (status, body) = runtime.block_on(sidecar.post_token(
        Some(&hs_token(&caller_claims("alice", &["JOIN_CHANNEL"]))),
        json!({"roomId": "after"}),
    ));
    assert_eq!(status, 200, "{body}");
    // The cases reached every branch of the endpoint: issued tokens and each kind of refusal.
    let metrics = runtime.block_on(sidecar.metrics_text());
    let outcome = |outcome: &str| -> f64 {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("livekit_sidecar_tokens_total")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    for wanted in ["issued", "invalid_request", "unauthenticated", "forbidden"] {
        assert!(
            outcome(wanted) >= 3.0,
            "too few {wanted} cases ({}): the strategies miss a branch\n{metrics}",
            outcome(wanted)
        );
    }
    for never in ["error", "unavailable", "not_configured"] {
        assert_eq!(outcome(never), 0.0, "{never}:\n{metrics}");
    }
}
