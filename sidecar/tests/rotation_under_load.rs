//! Hot reload under steady load: concurrent clients ask for tokens without pause while the operator's
//! directory is rotated several times in a row (with one broken update in the middle). No request may
//! fail, no token may be signed with a key that was already replaced when its request started (one
//! second of grace for the reload to land), and no client may ever go back to an older key once it saw a
//! newer one. Every token verifies with the secret of the key it names; a sample per key is verified by
//! the official LiveKit SDKs (Node and Python).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use livekit_integration_tests::verifiers::{Verifier, VerifyRequest};
use serde_json::{Value, json};

const CLIENTS: usize = 6;
const ROTATIONS: usize = 4;
/// Time between two published updates.
const PERIOD: Duration = Duration::from_millis(1200);
/// How long after a rotation is published a request may still be signed with the replaced key.
const GRACE: Duration = Duration::from_secs(1);
/// Bound on requests per client, whatever the speed of the machine.
const MAX_REQUESTS_PER_CLIENT: usize = 3_000;

fn key(n: usize) -> (String, String) {
    (
        format!("APIrotation{n}"),
        format!("rotation-secret-{n}-0123456789abcdef"),
    )
}

struct Record {
    client: usize,
    started: Instant,
    finished: Instant,
    /// The token, or why there is none.
    outcome: Result<String, String>,
}

fn issuer(token: &str) -> String {
    let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(token).unwrap();
    claims["iss"].as_str().unwrap_or_default().to_owned()
}

fn verifies(token: &str, api_key: &str, api_secret: &str, room: &str) -> bool {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[api_key]);
    jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(api_secret.as_bytes()),
        &validation,
    )
    .is_ok_and(|data| data.claims["video"]["room"] == room)
}

async fn client(id: usize, base: String, bearer: String, stop: Arc<AtomicBool>) -> Vec<Record> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("{base}/api/livekit/token");
    let mut records = Vec::new();
    while !stop.load(Ordering::SeqCst) && records.len() < MAX_REQUESTS_PER_CLIENT {
        let started = Instant::now();
        let reply = http
            .post(&url)
            .bearer_auth(&bearer)
            .json(&json!({"roomId": format!("room-{id}")}))
            .send()
            .await;
        let outcome = match reply {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                match (status, serde_json::from_str::<Value>(&text)) {
                    (200, Ok(body)) if body["token"].is_string() => {
                        Ok(body["token"].as_str().unwrap().to_owned())
                    }
                    _ => Err(format!("{status} {text}")),
                }
            }
            Err(error) => Err(error.to_string()),
        };
        records.push(Record {
            client: id,
            started,
            finished: Instant::now(),
            outcome,
        });
        // Steady but modest: a short pause between requests.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_under_steady_load_fail_nothing_and_never_sign_with_a_replaced_key() {
    let dir = tempfile::tempdir().unwrap();
    let settings = hs_settings();
    let files = |n: usize| {
        let (api_key, api_secret) = key(n);
        dir_files(&settings, &api_key, &api_secret)
    };
    kubelet_write(dir.path(), &files(0));
    let sidecar = TestSidecar::start_dir(dir.path(), &[]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let bearer = hs_token(&caller_claims("alice", &["JOIN_CHANNEL"]));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            tokio::spawn(client(
                id,
                sidecar.base.clone(),
                bearer.clone(),
                stop.clone(),
            ))
        })
        .collect();

    // published[n]: when key n was on disk for sure (key 0 before any request).
    // writing[n]: when the write of key n began (the sidecar cannot know key n before).
    let mut published = vec![Instant::now()];
    let mut writing = published.clone();
    for n in 1..=ROTATIONS {
        tokio::time::sleep(PERIOD).await;
        if n == 3 {
            // A broken update between two rotations: it must change nothing for the clients.
            let mut broken = files(99);
            broken[0].1 = "serverUrl: ftp://nowhere\nauth:\n  algorithms: [HS256]\n".into();
            let dir = dir.path().to_owned();
            tokio::task::spawn_blocking(move || kubelet_write(&dir, &broken))
                .await
                .unwrap();
            tokio::time::sleep(PERIOD / 2).await;
        }
        let update = files(n);
        let path = dir.path().to_owned();
        writing.push(Instant::now());
        tokio::task::spawn_blocking(move || kubelet_write(&path, &update))
            .await
            .unwrap();
        published.push(Instant::now());
    }
    tokio::time::sleep(PERIOD + GRACE).await;
    stop.store(true, Ordering::SeqCst);
    let mut records = Vec::new();
    for handle in clients {
        records.extend(handle.await.unwrap());
    }

    // Zero failed requests.
    let failures: Vec<String> = records
        .iter()
        .filter_map(|r| r.outcome.as_ref().err().cloned())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed, e.g. {:?}",
        failures.len(),
        records.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(
        records.len() >= 200,
        "too little load to mean anything: {} requests",
        records.len()
    );

    // Which key signed each token; every token verifies with exactly that key's secret.
    let key_index = |token: &str| -> usize {
        let iss = issuer(token);
        (0..=ROTATIONS)
            .find(|&n| key(n).0 == iss)
            .unwrap_or_else(|| panic!("a token from an unknown key {iss:?}"))
    };
    let mut signed: Vec<(&Record, usize)> = Vec::new();
    for record in &records {
        let token = record.outcome.as_ref().unwrap();
        let n = key_index(token);
        let (api_key, api_secret) = key(n);
        assert!(
            verifies(
                token,
                &api_key,
                &api_secret,
                &format!("room-{}", record.client)
            ),
            "a token naming {api_key} does not verify with its secret"
        );
        signed.push((record, n));
    }

    // Never a key that had been replaced (plus grace) before the request started, nor a key that was
    // not yet published when the request finished.
    let mut stale = Vec::new();
    for (record, n) in &signed {
        if let Some(next) = published.get(n + 1)
            && record.started > *next + GRACE
        {
            stale.push(format!(
                "client {} got key {n} from a request started {:?} after key {} was published",
                record.client,
                record.started - *next,
                n + 1
            ));
        }
        assert!(
            record.finished >= writing[*n],
            "key {n} used before it was published"
        );
    }
    // For the log: the latest start, after a rotation, of a request still signed with the replaced key.
    let lag = |n: usize| -> Duration {
        signed
            .iter()
            .filter(|(r, k)| *k + 1 == n && r.started > published[n])
            .map(|(r, _)| r.started - published[n])
            .max()
            .unwrap_or_default()
    };
    eprintln!(
        "{} requests by {CLIENTS} clients; old key still used up to {:?} after each rotation",
        records.len(),
        (1..=ROTATIONS).map(lag).collect::<Vec<_>>()
    );
    assert!(
        stale.is_empty(),
        "{} tokens signed with a replaced key: {:?}",
        stale.len(),
        &stale[..stale.len().min(5)]
    );

    // Per client, in request order: the key index never goes down.
    for id in 0..CLIENTS {
        let keys: Vec<usize> = signed
            .iter()
            .filter(|(r, _)| r.client == id)
            .map(|(_, n)| *n)
            .collect();
        assert!(!keys.is_empty(), "client {id} made no request");
        if let Some(w) = keys.windows(2).find(|w| w[1] < w[0]) {
            panic!("client {id} went back from key {} to key {}", w[0], w[1]);
        }
    }

    // Every rotation reached the clients, and the broken update never did.
    for n in 0..=ROTATIONS {
        assert!(
            signed.iter().any(|(_, k)| *k == n),
            "no token was ever signed with key {n}"
        );
    }
    let metrics = sidecar.metrics_text().await;
    assert!(
        metrics.contains(&format!(
            "livekit_sidecar_config_reloads_total{{result=\"success\"}} {}",
            ROTATIONS + 1
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("livekit_sidecar_config_reloads_total{result=\"failure\"} 1"),
        "{metrics}"
    );

    // The official SDKs agree: the first and last tokens of each key, verified with that key.
    let mut batch = Vec::new();
    for n in 0..=ROTATIONS {
        let (api_key, api_secret) = key(n);
        let of_key: Vec<&str> = signed
            .iter()
            .filter(|(_, k)| *k == n)
            .map(|(r, _)| r.outcome.as_deref().unwrap())
            .collect();
        for token in of_key.iter().take(2).chain(of_key.iter().rev().take(2)) {
            batch.push(VerifyRequest::new(&api_key, &api_secret, *token));
        }
    }
    for verifier in Verifier::ALL {
        for result in verifier.verify(&batch) {
            result.expect_ok();
            assert_eq!(result.identity(), Some("alice"), "{}", verifier.name());
        }
    }
}
