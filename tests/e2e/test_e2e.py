"""End to end on a real cluster: install the chart, apply an example LiveKitConfig, run the example app
with the sidecar, get a token through a port-forward and verify it with the official SDK, rotate the
key and see the running sidecar pick it up without a restart, delete the config and see its ConfigMap
garbage-collected and its Secret retained for a config of the same name. Collected only when
E2E_KUBECONFIG is set (conftest.py). The tests run in file order and build on each other."""

from __future__ import annotations

import copy
import secrets
import time

import pytest
import yaml

import kube
from kube import ROOT, SIDECAR_IMAGE, get_json, kubectl, wait_for

EXAMPLES = ROOT / "examples"
CONFIG = "chat-dev"  # examples/livekitconfig-generate.yaml
OWNED = f"{CONFIG}-livekit"
ROOM = "64f7b1234567890abcdef123"
ISSUER = "https://auth.example.com"


@pytest.fixture(scope="module")
def ns():
    with kube.namespace("lk-e2e") as name:
        yield name


@pytest.fixture(scope="module")
def release(ns):
    # The namespaced (Role) mode keeps the run isolated.
    with kube.chart_release("livekit-operator", ns, {"watchNamespace": ns, "leaderElection": {"enabled": True}}) as r:
        yield r


@pytest.fixture(scope="module")
def hs_secret(ns):
    value = secrets.token_urlsafe(48)
    kubectl("create", "secret", "generic", "app-jwt", "-n", ns, f"--from-literal=hs-secret={value}")
    return value


def config_doc() -> dict:
    (doc,) = [d for d in yaml.safe_load_all((EXAMPLES / "livekitconfig-generate.yaml").read_text()) if d]
    doc = copy.deepcopy(doc)
    # The example asks the app's webhook; there is no app here, so authorize from the caller's claims.
    doc["spec"]["authorization"] = {"mode": "Claims", "claims": {"claim": "permissions"}}
    # No LiveKit server runs in the test cluster either: prove a new key accepted by a short delay
    # instead of LiveKit's server API (docs/rotation.md).
    doc["spec"]["credentials"]["rotation"] = {"verification": {"mode": "Delay", "delay": {"seconds": 5}}}
    return doc


def app_doc() -> dict:
    (doc,) = [d for d in yaml.safe_load_all((EXAMPLES / "app-with-sidecar.yaml").read_text()) if d]
    doc = copy.deepcopy(doc)
    doc["spec"]["replicas"] = 1
    pod = doc["spec"]["template"]["spec"]
    (sidecar,) = pod["initContainers"]
    sidecar["image"] = SIDECAR_IMAGE
    # No LiveKit server runs in the test cluster: do not let its absence fail readiness.
    sidecar.setdefault("env", []).append({"name": "SIDECAR_UNREACHABLE_IS_UNHEALTHY", "value": "false"})
    for source in pod["volumes"][0]["projected"]["sources"]:
        next(iter(source.values()))["name"] = OWNED
    return doc


def caller_token(secret: str, sub: str = "alice") -> str:
    now = int(time.time())
    return kube.hs256_jwt(secret, {"iss": ISSUER, "sub": sub, "name": sub.title(), "iat": now, "exp": now + 600,
                                   "permissions": ["JOIN_CHANNEL"]})


def app_pod(ns: str) -> dict:
    running = kube.running_pods(ns, "chat-app")
    assert len(running) == 1, [p["metadata"]["name"] for p in running]
    return running[0]


def sidecar_restarts(pod: dict) -> int:
    (st,) = [s for s in pod["status"].get("initContainerStatuses", []) if s["name"] == "livekit-sidecar"]
    return st["restartCount"]


def ask_token(ns: str, pod: str, caller: str) -> tuple[int, dict]:
    with kube.port_forward(ns, f"pod/{pod}", 3001) as port:
        return kube.http_json("POST", f"http://127.0.0.1:{port}/api/livekit/token", {"roomId": ROOM},
                              {"Authorization": f"Bearer {caller}"})


def ready(ns: str):
    lkc = get_json("lkc", CONFIG, "-n", ns)
    conds = {c["type"]: c for c in (lkc or {}).get("status", {}).get("conditions", [])}
    return lkc if conds.get("Ready", {}).get("status") == "True" else None


def test_operator_is_ready(ns, release):
    dep = get_json("deployment", release, "-n", ns)
    assert dep["status"].get("readyReplicas") == 1
    kubectl("get", "crd", "livekitconfigs.livekit.kraken.dev")


def test_config_becomes_ready_with_owned_objects(ns, release, hs_secret):
    kube.apply(config_doc(), ns)
    lkc = wait_for("LiveKitConfig Ready", lambda: ready(ns), timeout=120)
    assert lkc["status"]["secretName"] == OWNED and lkc["status"]["configMapName"] == OWNED
    data = kube.secret_data(ns, OWNED)
    assert {"api-key", "api-secret", "keys.yaml", "caller-hs-secret"} <= set(data)
    assert data["api-key"] == lkc["status"]["apiKey"]
    cm = get_json("configmap", OWNED, "-n", ns)
    assert "sidecar.yaml" in cm["data"]
    secret = get_json("secret", OWNED, "-n", ns)
    # deletionPolicy Retain (the default): the Secret has no owner the garbage collector would follow.
    assert "ownerReferences" not in secret["metadata"], secret["metadata"]
    (ref,) = cm["metadata"]["ownerReferences"]
    assert ref["kind"] == "LiveKitConfig" and ref["uid"] == lkc["metadata"]["uid"] and ref["controller"] is True
    for obj in (secret, cm):
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "livekit-operator"
        assert obj["metadata"]["labels"]["livekit.kraken.dev/config"] == CONFIG


def test_app_with_sidecar_issues_verified_tokens(ns, hs_secret):
    kube.apply(app_doc(), ns)
    kubectl("rollout", "status", "deployment/chat-app", "-n", ns, "--timeout=180s", timeout=200)
    pod = app_pod(ns)
    status, body = ask_token(ns, pod["metadata"]["name"], caller_token(hs_secret))
    assert status == 200, body
    data = kube.secret_data(ns, OWNED)
    result = kube.verify_official(data["api-key"], data["api-secret"], body["token"])
    assert result["ok"], result
    assert result["claims"]["identity"] == "alice"
    assert result["claims"]["video"]["room"] == ROOM and result["claims"]["video"]["roomJoin"] is True
    # and the sidecar refuses what it should
    status, body = ask_token(ns, pod["metadata"]["name"], caller_token("x" * 48))
    assert status == 401, body


def test_rotation_reaches_the_running_sidecar_without_a_restart(ns, hs_secret):
    pod = app_pod(ns)
    uid, restarts = pod["metadata"]["uid"], sidecar_restarts(pod)
    old_key = get_json("lkc", CONFIG, "-n", ns)["status"]["apiKey"]
    kubectl("annotate", "lkc", CONFIG, "-n", ns, f"livekit.kraken.dev/rotate={int(time.time())}", "--overwrite")
    # Published first: the new key is in keys.yaml while the sidecar still signs with the old one.
    pending = wait_for("a published key in status",
                       lambda: get_json("lkc", CONFIG, "-n", ns)["status"].get("pendingApiKey"), timeout=60)
    assert pending != old_key
    new_key = wait_for("the new API key active in status",
                       lambda: (k := get_json("lkc", CONFIG, "-n", ns)["status"]["apiKey"]) != old_key and k, timeout=60)
    assert new_key == pending
    assert get_json("lkc", CONFIG, "-n", ns)["status"]["rotationPhase"] == "Active"
    data = kube.secret_data(ns, OWNED)
    assert data["api-key"] == new_key
    assert old_key in data["keys.yaml"] and new_key in data["keys.yaml"], "keys.yaml keeps the old key for the grace period"

    # The kubelet swaps the projected files (up to its sync period plus cache TTL, ~1-2 min), the
    # sidecar sees the change and signs with the new key.
    def signed_with_new_key():
        status, body = ask_token(ns, pod["metadata"]["name"], caller_token(hs_secret))
        assert status == 200, body
        return body["token"] if kube.jwt_claims_unverified(body["token"])["iss"] == new_key else None

    token = wait_for("a token signed with the new key", signed_with_new_key, timeout=180, interval=5)
    result = kube.verify_official(new_key, data["api-secret"], token)
    assert result["ok"], result
    after = app_pod(ns)
    assert after["metadata"]["uid"] == uid, "the pod was replaced"
    assert sidecar_restarts(after) == restarts, "the sidecar restarted"


def test_deleting_the_config_keeps_its_secret_for_a_config_of_the_same_name(ns):
    key = kube.secret_data(ns, OWNED)["api-key"]
    kubectl("delete", "lkc", CONFIG, "-n", ns, "--wait=true", "--timeout=60s", timeout=90)
    wait_for("owned ConfigMap to be garbage-collected", lambda: get_json("configmap", OWNED, "-n", ns) is None,
             timeout=90)
    assert kube.secret_data(ns, OWNED)["api-key"] == key, "the retained Secret keeps its key"
    kube.apply(config_doc(), ns)
    lkc = wait_for("re-created LiveKitConfig Ready", lambda: ready(ns), timeout=120)
    assert lkc["status"]["apiKey"] == key
    kubectl("delete", "lkc", CONFIG, "-n", ns, "--wait=true", "--timeout=60s", timeout=90)
    kubectl("delete", "secret", OWNED, "-n", ns)
