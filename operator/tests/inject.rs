//! Injection through both doors: the admission webhook's decision (AdmissionReview in, JSON patch
//! out) as a table over pod shapes, and `livekit-operator inject` on multi-document manifests; the
//! two give the same pod, and that pod is `examples/app-with-sidecar.yaml`.
//!
//! The injected pods are golden fixtures (`fixtures/injected/`, `fixtures/inject/*.injected.yaml`);
//! `UPDATE_GOLDEN=1` rewrites them, and `tests/chart/test_injection.py` checks every one against
//! the Kubernetes schemas.

use livekit_operator::inject::manifest::inject_manifests;
use livekit_operator::inject::{Defaults, Outcome, Skip};
use livekit_operator::webhook::admission::{ConfigLookup, review};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

/// Compares with a golden file, or writes it under `UPDATE_GOLDEN=1`.
fn golden(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(
        actual,
        want,
        "{} differs (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

/// LiveKitConfigs that exist, by namespace/name; `None`: the API server cannot be reached.
struct Configs(Option<&'static [(&'static str, &'static str)]>);

impl ConfigLookup for Configs {
    async fn exists(&self, namespace: &str, name: &str) -> Result<bool, String> {
        match self.0 {
            Some(known) => Ok(known.contains(&(namespace, name))),
            None => Err("connection refused".into()),
        }
    }
}

const CHAT: Configs = Configs(Some(&[("apps", "chat")]));

/// An AdmissionReview v1 as the API server sends it for a pod a ReplicaSet creates (no name and
/// no namespace in the object; the namespace in the request).
fn admission_review(pod: &Value, operation: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "apps",
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

/// What the API server does with the answer: checks the uid, applies the patch.
#[derive(Debug)]
enum Answer {
    Unchanged,
    Patched(Value),
    Denied { code: u64, message: String },
}

async fn admit(pod: &Value, operation: &str, configs: &Configs) -> Answer {
    let body = admission_review(pod, operation);
    let out = serde_json::to_value(review(body, &Defaults::default(), configs).await).unwrap();
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(out["kind"], "AdmissionReview");
    let resp = &out["response"];
    assert_eq!(resp["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    if resp["allowed"] != json!(true) {
        assert!(resp.get("patch").is_none());
        return Answer::Denied {
            code: resp["status"]["code"].as_u64().unwrap(),
            message: resp["status"]["message"].as_str().unwrap().to_owned(),
        };
    }
    let Some(patch) = resp.get("patch") else {
        return Answer::Unchanged;
    };
    assert_eq!(resp["patchType"], "JSONPatch");
    // The API server's Go decoder takes a []byte as a base64 string or as an array of numbers
    // (what kube's AdmissionResponse writes).
    let bytes: Vec<u8> = match patch {
        Value::String(s) => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(s).unwrap()
        }
        other => serde_json::from_value(other.clone()).unwrap(),
    };
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut patched = pod.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    Answer::Patched(patched)
}

fn pod(annotations: Value, labels: Value, spec: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "chat-app-5d8f7c9b4-", "labels": labels, "annotations": annotations},
        "spec": spec
    })
}

fn app_spec() -> Value {
    json!({"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]})
}

fn chat() -> Value {
    json!({"livekit.kraken.dev/inject": "chat"})
}

/// Pod shapes the webhook injects: each patched pod is a golden fixture.
fn injected_cases() -> Vec<(&'static str, Value)> {
    vec![
        ("minimal", pod(chat(), json!({}), app_spec())),
        (
            "existing-init-containers-and-volumes",
            pod(
                chat(),
                json!({"app": "chat"}),
                json!({
                    "initContainers": [{"name": "migrate", "image": "registry.k8s.io/pause:3.10"}],
                    "containers": [
                        {"name": "app", "image": "registry.k8s.io/pause:3.10", "ports": [{"containerPort": 8080}]},
                        {"name": "worker", "image": "registry.k8s.io/pause:3.10"}
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {}}]
                }),
            ),
        ),
        (
            "own-security-context-and-env",
            pod(
                chat(),
                json!({}),
                json!({
                    "securityContext": {"fsGroup": 2000, "runAsNonRoot": true},
                    "containers": [{
                        "name": "app", "image": "registry.k8s.io/pause:3.10",
                        "env": [{"name": "LIVEKIT_SIDECAR_URL", "value": "http://localhost:3001"}]
                    }]
                }),
            ),
        ),
        (
            "annotation-overrides",
            pod(
                json!({
                    "livekit.kraken.dev/inject": "chat",
                    "livekit.kraken.dev/sidecar-image": "registry.local/livekit-sidecar@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                    "livekit.kraken.dev/sidecar-port": "4001",
                    "livekit.kraken.dev/sidecar-metrics-port": "9000",
                    "livekit.kraken.dev/sidecar-log-format": "text",
                    "livekit.kraken.dev/sidecar-cpu-request": "50m",
                    "livekit.kraken.dev/sidecar-cpu-limit": "500m",
                    "livekit.kraken.dev/sidecar-memory-request": "32Mi",
                    "livekit.kraken.dev/sidecar-memory-limit": "128Mi"
                }),
                json!({}),
                app_spec(),
            ),
        ),
    ]
}

#[tokio::test]
async fn webhook_injects_each_pod_shape_as_the_golden_fixture() {
    for (name, input) in injected_cases() {
        let Answer::Patched(patched) = admit(&input, "CREATE", &CHAT).await else {
            panic!("{name}: not patched");
        };
        let spec = &patched["spec"];
        let init = spec["initContainers"].as_array().unwrap();
        assert_eq!(
            init[0]["name"], "livekit-sidecar",
            "{name}: the sidecar comes first"
        );
        assert_eq!(
            init[0]["restartPolicy"], "Always",
            "{name}: a native sidecar"
        );
        assert!(
            init[0].get("volumeMounts").unwrap()[0]
                .get("subPath")
                .is_none()
        );
        let volume = spec["volumes"].as_array().unwrap().last().unwrap().clone();
        let mode = volume["projected"]["defaultMode"].as_i64().unwrap();
        assert_eq!(mode & 0o007, 0, "{name}: no 'other' permission bit");
        assert_eq!(
            volume["projected"]["sources"][0]["secret"]["name"],
            "chat-livekit"
        );
        assert_eq!(
            volume["projected"]["sources"][1]["configMap"]["name"],
            "chat-livekit"
        );
        // Everything the pod had is still there, in place.
        for key in ["containers", "initContainers", "volumes"] {
            for (i, c) in input["spec"][key]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let offset = usize::from(key == "initContainers");
                let out = &spec[key][i + offset];
                assert_eq!(out["name"], c["name"], "{name}: {key}[{i}]");
                assert_eq!(out["image"], c["image"], "{name}: {key}[{i}]");
            }
        }
        // Injecting the injected pod changes nothing.
        assert!(
            matches!(admit(&patched, "CREATE", &CHAT).await, Answer::Unchanged),
            "{name}: not idempotent"
        );
        let path = fixtures().join("injected").join(format!("{name}.yaml"));
        golden(&path, &serde_yaml::to_string(&patched).unwrap());
    }
}

#[tokio::test]
async fn annotation_overrides_reach_the_sidecar() {
    let (_, input) = injected_cases().pop().unwrap();
    let Answer::Patched(p) = admit(&input, "CREATE", &CHAT).await else {
        panic!()
    };
    let c = &p["spec"]["initContainers"][0];
    assert!(c["image"].as_str().unwrap().starts_with("registry.local/"));
    assert_eq!(
        c["args"],
        json!([
            "--config-dir",
            "/etc/livekit",
            "--listen",
            "127.0.0.1:4001",
            "--metrics-listen",
            "0.0.0.0:9000"
        ])
    );
    assert_eq!(c["ports"][0]["containerPort"], 9000);
    assert_eq!(
        c["env"],
        json!([{"name": "SIDECAR_LOG_FORMAT", "value": "text"}])
    );
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}})
    );
    assert_eq!(
        p["spec"]["containers"][0]["env"],
        json!([{"name": "LIVEKIT_SIDECAR_URL", "value": "http://127.0.0.1:4001"}])
    );
}

#[tokio::test]
async fn pods_left_alone() {
    let cases = [
        (
            "no annotation",
            pod(json!({}), json!({}), app_spec()),
            "CREATE",
        ),
        (
            "opted out",
            pod(
                chat(),
                json!({"livekit.kraken.dev/inject": "disabled"}),
                app_spec(),
            ),
            "CREATE",
        ),
        (
            "the operator's own pod",
            pod(
                chat(),
                json!({"app.kubernetes.io/part-of": "livekit-operator"}),
                app_spec(),
            ),
            "CREATE",
        ),
        (
            "an update, not a create",
            pod(chat(), json!({}), app_spec()),
            "UPDATE",
        ),
    ];
    for (name, input, op) in cases {
        // Unknown config and an unreachable API server too: none of these pods needs a lookup.
        let answer = admit(&input, op, &Configs(None)).await;
        assert!(matches!(answer, Answer::Unchanged), "{name}: {answer:?}");
    }
}

#[tokio::test]
async fn pods_refused_with_a_message_naming_the_cause() {
    let with = |k: &str, v: &str| {
        let mut a = chat();
        a[k] = json!(v);
        pod(a, json!({}), app_spec())
    };
    let cases: Vec<(&str, Value, &Configs, u64, &str)> = vec![
        (
            "unknown config",
            pod(
                json!({"livekit.kraken.dev/inject": "video"}),
                json!({}),
                app_spec(),
            ),
            &CHAT,
            400,
            "LiveKitConfig \"video\" not found in namespace \"apps\"",
        ),
        (
            "API server unreachable",
            pod(chat(), json!({}), app_spec()),
            &Configs(None),
            503,
            "connection refused",
        ),
        (
            "bad config name",
            with("livekit.kraken.dev/inject", "Chat!"),
            &CHAT,
            400,
            "annotation livekit.kraken.dev/inject:",
        ),
        (
            "bad image",
            with("livekit.kraken.dev/sidecar-image", "a b"),
            &CHAT,
            400,
            "annotation livekit.kraken.dev/sidecar-image:",
        ),
        (
            "bad port",
            with("livekit.kraken.dev/sidecar-port", "99999"),
            &CHAT,
            400,
            "annotation livekit.kraken.dev/sidecar-port:",
        ),
        (
            "bad log format",
            with("livekit.kraken.dev/sidecar-log-format", "xml"),
            &CHAT,
            400,
            "annotation livekit.kraken.dev/sidecar-log-format:",
        ),
        (
            "bad memory",
            with("livekit.kraken.dev/sidecar-memory-limit", "lots"),
            &CHAT,
            400,
            "annotation livekit.kraken.dev/sidecar-memory-limit:",
        ),
        (
            "request over limit",
            with("livekit.kraken.dev/sidecar-memory-request", "1Gi"),
            &CHAT,
            400,
            "annotation livekit.kraken.dev/sidecar-memory-request: memory request 1Gi is above its limit 64Mi",
        ),
        (
            "port taken by the app",
            pod(
                chat(),
                json!({}),
                json!({"containers": [{"name": "app", "image": "x", "ports": [{"containerPort": 9464}]}]}),
            ),
            &CHAT,
            400,
            "port 9464 is already declared by container \"app\"; choose another with the annotation livekit.kraken.dev/sidecar-metrics-port",
        ),
        (
            "volume name taken",
            pod(
                chat(),
                json!({}),
                json!({"containers": [{"name": "app", "image": "x"}], "volumes": [{"name": "livekit", "emptyDir": {}}]}),
            ),
            &CHAT,
            400,
            "already has a volume named \"livekit\"",
        ),
    ];
    for (name, input, configs, code, want) in cases {
        match admit(&input, "CREATE", configs).await {
            Answer::Denied { code: c, message } => {
                assert_eq!(c, code, "{name}: {message}");
                assert!(message.contains(want), "{name}: {message}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn malformed_reviews_are_answered_not_dropped() {
    for body in [
        json!({}),
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
        json!([1]),
    ] {
        let out = serde_json::to_value(review(body, &Defaults::default(), &CHAT).await).unwrap();
        assert_eq!(out["response"]["allowed"], false);
    }
}

// --- the example, and the webhook equal to `inject` ------------------------------------------------

/// `examples/app-with-sidecar.yaml` without what the injector adds.
fn example_app_alone() -> (Value, Value) {
    let example =
        yaml(&std::fs::read_to_string(root().join("examples/app-with-sidecar.yaml")).unwrap());
    let mut app = example.clone();
    let spec = app
        .pointer_mut("/spec/template/spec")
        .unwrap()
        .as_object_mut()
        .unwrap();
    spec.remove("initContainers");
    spec.remove("volumes");
    spec["securityContext"]
        .as_object_mut()
        .unwrap()
        .remove("fsGroup");
    spec["containers"][0].as_object_mut().unwrap().remove("env");
    (example, app)
}

fn octal_mode(mut v: Value) -> Value {
    // The example writes the mode as YAML 1.1 octal (0440), which serde_yaml reads as a string.
    if let Some(m) = v.pointer_mut("/spec/template/spec/volumes/0/projected/defaultMode") {
        *m = json!(0o440);
    }
    v
}

#[tokio::test]
async fn inject_reproduces_the_example_and_the_webhook_agrees() {
    let (example, app) = example_app_alone();
    let (out, reports) = inject_manifests(
        &serde_yaml::to_string(&app).unwrap(),
        Some("chat"),
        &Defaults::default(),
    )
    .unwrap();
    assert_eq!(
        reports[0].outcome,
        Outcome::Injected {
            config: "chat".into()
        }
    );
    let injected = yaml(&out);
    let mut want = octal_mode(example);
    want["spec"]["template"]["metadata"]["annotations"]["livekit.kraken.dev/inject"] =
        json!("chat");
    assert_eq!(
        injected, want,
        "inject output differs from examples/app-with-sidecar.yaml"
    );

    // The pod the ReplicaSet would create from the annotated template, through the webhook.
    let mut template = app["spec"]["template"].clone();
    template["metadata"]["annotations"]["livekit.kraken.dev/inject"] = json!("chat");
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": template["metadata"], "spec": template["spec"]});
    let Answer::Patched(patched) = admit(&pod, "CREATE", &CHAT).await else {
        panic!("not patched")
    };
    assert_eq!(patched["spec"], injected["spec"]["template"]["spec"]);
}

// --- the `inject` subcommand ------------------------------------------------------------------------

fn run(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_livekit-operator"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn inject_subcommand_on_every_workload_kind() {
    let input_path = fixtures().join("inject/workloads.yaml");
    let input = std::fs::read_to_string(&input_path).unwrap();
    let (code, out, err) = run(&["inject", "--config", "chat"], &input);
    assert_eq!(code, 0, "{err}");
    golden(&fixtures().join("inject/workloads.injected.yaml"), &out);
    for line in [
        "Pod web: injected (LiveKitConfig chat)",
        "Deployment api: injected",
        "StatefulSet store: injected",
        "DaemonSet agent: injected",
        "Job once: injected",
        "CronJob nightly: injected",
        "Deployment legacy: skipped: labelled livekit.kraken.dev/inject=disabled",
        "Pod listed: injected",
    ] {
        assert!(err.contains(line), "missing {line:?} in:\n{err}");
    }
    let docs: Vec<Value> = out.split("---\n").map(yaml).collect();
    assert_eq!(docs.len(), 9, "every document comes out, in order");
    assert_eq!(docs[7]["kind"], "Service");
    assert_eq!(
        docs[7],
        yaml(input.split("---\n").nth(7).unwrap()),
        "other kinds pass through"
    );
    assert!(
        docs[6]["spec"]["template"]["spec"]
            .get("initContainers")
            .is_none()
    );
    assert!(
        docs[6]["spec"]["template"]["metadata"]
            .get("annotations")
            .is_none()
    );
    let store = &docs[2]["spec"]["template"]["spec"];
    assert_eq!(
        store["securityContext"]["fsGroup"], 2000,
        "the pod's own fsGroup is kept"
    );
    assert_eq!(store["initContainers"][0]["env"][0]["value"], "text");
    let cron = &docs[5]["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(cron["initContainers"][0]["restartPolicy"], "Always");

    // From a file, and again over its own output: nothing changes.
    let (code, again, err) = run(
        &[
            "inject",
            "--config",
            "chat",
            "-f",
            input_path.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!((code, again.as_str()), (0, out.as_str()), "{err}");
    let (code, twice, err) = run(&["inject", "--config", "chat", "-f", "-"], &out);
    assert_eq!((code, twice.as_str()), (0, out.as_str()), "{err}");
    assert!(
        err.contains("Deployment api: skipped: the sidecar is already there"),
        "{err}"
    );
}

#[test]
fn inject_without_config_uses_the_annotations() {
    let input = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  annotations:\n    livekit.kraken.dev/inject: chat\nspec:\n  containers: [{name: a, image: x}]\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: b\nspec:\n  containers: [{name: b, image: x}]\n";
    let (code, out, err) = run(&["inject"], input);
    assert_eq!(code, 0, "{err}");
    let docs: Vec<Value> = out.split("---\n").map(yaml).collect();
    assert_eq!(
        docs[0]["spec"]["initContainers"][0]["name"],
        "livekit-sidecar"
    );
    assert!(docs[1]["spec"].get("initContainers").is_none());
    assert!(
        err.contains("Pod b: skipped: no livekit.kraken.dev/inject annotation"),
        "{err}"
    );
}

#[test]
fn inject_refuses_bad_input_and_prints_nothing() {
    let bad_annotation = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  annotations:\n    livekit.kraken.dev/sidecar-port: http\nspec:\n  containers: [{name: a, image: x}]\n";
    let cases = [
        (
            vec!["inject", "--config", "chat"],
            bad_annotation,
            "Pod a: annotation livekit.kraken.dev/sidecar-port: \"http\" is not a port number",
        ),
        (
            vec!["inject", "--config", "Not_A_Name"],
            bad_annotation,
            "annotation livekit.kraken.dev/inject",
        ),
        (
            vec!["inject", "--config", "chat"],
            "kind: Pod\nspec: [",
            "document 0: not YAML",
        ),
        (
            vec!["inject", "--config", "chat", "-f", "/nonexistent.yaml"],
            "",
            "/nonexistent.yaml",
        ),
        (
            vec!["inject", "--sidecar-memory-request", "1Gi"],
            "",
            "sidecar defaults: annotation livekit.kraken.dev/sidecar-memory-request",
        ),
    ];
    for (args, input, want) in cases {
        let (code, out, err) = run(&args, input);
        assert_eq!(code, 1, "{args:?}");
        assert_eq!(out, "", "{args:?}: never half an output");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn opted_out_and_own_pods_are_skipped_by_the_pure_function_too() {
    for (labels, skip) in [
        (
            json!({"livekit.kraken.dev/inject": "disabled"}),
            Skip::OptedOut,
        ),
        (
            json!({"app.kubernetes.io/part-of": "livekit-operator"}),
            Skip::OperatorPod,
        ),
    ] {
        let mut p = pod(chat(), labels, app_spec());
        let before = p.clone();
        let got = livekit_operator::inject::inject_template(&mut p, &Defaults::default()).unwrap();
        assert_eq!(got, Outcome::Skipped(skip));
        assert_eq!(p, before);
    }
}
