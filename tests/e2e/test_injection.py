"""Sidecar injection end to end (docs/injection.md): install the chart cluster-wide with the webhook on
(self-managed certificate), wait for the operator to set the caBundle, then in an application
namespace apply a LiveKitConfig and a Deployment that only carries the `livekit.kraken.dev/inject`
annotation, and check that its pod runs the sidecar as a native sidecar that answers its health and
readiness endpoints. Collected only when E2E_KUBECONFIG is set (conftest.py); runs after test_e2e.py,
whose namespaced release is gone by then (the CRD stays, Helm does not delete CRDs)."""

from __future__ import annotations

import json
import secrets
import urllib.request

import pytest

import kube
from kube import SIDECAR_IMAGE, get_json, kubectl, wait_for
from test_e2e import CONFIG, config_doc

RELEASE = "lk-inject"
APP = "injected-app"


@pytest.fixture(scope="module")
def system_ns():
    with kube.namespace("lk-e2e-sys") as name:
        yield name


@pytest.fixture(scope="module")
def app_ns():
    with kube.namespace("lk-e2e-app") as name:
        # The example config reads its callers' HS256 secret from this Secret.
        kubectl("create", "secret", "generic", "app-jwt", "-n", name, f"--from-literal=hs-secret={secrets.token_urlsafe(48)}")
        yield name


@pytest.fixture(scope="module")
def webhook_release(system_ns):
    # Cluster-wide (no watchNamespace): the webhook serves every namespace but system ones and its own.
    values = {
        "webhook": {
            "enabled": True,
            "sidecarImage": SIDECAR_IMAGE,
            # Fail, not the default Ignore: a pod created before the webhook is up must wait for it
            # rather than come up without the sidecar, which would make this test flaky.
            "failurePolicy": "Fail",
        },
    }
    with kube.chart_release(RELEASE, system_ns, values) as r:
        yield r


def webhook_configuration(release: str) -> dict | None:
    found = get_json("mutatingwebhookconfigurations", "-l", f"app.kubernetes.io/instance={release}")
    items = (found or {}).get("items", [])
    return items[0] if len(items) == 1 else None


def ca_bundle_set(release: str) -> bool:
    config = webhook_configuration(release)
    webhooks = (config or {}).get("webhooks", [])
    return bool(webhooks) and all(w["clientConfig"].get("caBundle") for w in webhooks)


def annotated_app(config: str) -> dict:
    """A Deployment with no sidecar of its own: only the annotation asks for it."""
    labels = {"app.kubernetes.io/name": APP}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": APP},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": {"livekit.kraken.dev/inject": config}},
                "spec": {
                    # Any long-running container will do: the pause image is small and usually cached.
                    "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}],
                },
            },
        },
    }


def injected_pod(ns: str) -> dict | None:
    running = kube.running_pods(ns, APP)
    return running[0] if len(running) == 1 else None


def test_injected_pod_runs_the_native_sidecar(webhook_release, app_ns):
    wait_for("the operator to set the caBundle", lambda: ca_bundle_set(webhook_release), timeout=120)
    config = config_doc()
    config["metadata"].pop("namespace", None)
    kube.apply(config, app_ns)
    owned = f"{CONFIG}-livekit"
    wait_for("the LiveKitConfig's Secret", lambda: get_json("secret", owned, "-n", app_ns), timeout=120)
    kube.apply(annotated_app(CONFIG), app_ns)
    kubectl("rollout", "status", f"deployment/{APP}", "-n", app_ns, "--timeout=180s", timeout=200)
    pod = wait_for("the injected pod running", lambda: injected_pod(app_ns), timeout=60)

    spec = pod["spec"]
    (sidecar,) = [c for c in spec.get("initContainers", []) if c["name"] == "livekit-sidecar"]
    assert sidecar["restartPolicy"] == "Always", "a native sidecar"
    assert sidecar["image"] == SIDECAR_IMAGE
    assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(sidecar)
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert sidecar["securityContext"]["allowPrivilegeEscalation"] is False
    mounted = {m["name"] for m in sidecar["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"] if v["name"] in mounted}
    sources = [s for v in volumes.values() for s in v.get("projected", {}).get("sources", [])]
    assert {"secret", "configMap"} <= {k for s in sources for k in s}
    assert all(next(iter(s.values()))["name"] == owned for s in sources if "secret" in s or "configMap" in s)
    assert all("subPath" not in m for m in sidecar["volumeMounts"]), "no subPath: rotations reach the files"

    (status,) = [s for s in pod["status"].get("initContainerStatuses", []) if s["name"] == "livekit-sidecar"]
    assert status.get("started") is True and status.get("ready") is True, status

    # The sidecar answers its own health and readiness endpoints (the ones its probes use).
    (metrics_port,) = [p["containerPort"] for p in sidecar["ports"] if p.get("name") == "sidecar-metrics"]
    with kube.port_forward(app_ns, f"pod/{pod['metadata']['name']}", metrics_port) as port:
        for path in ("/livez", "/readyz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
                assert resp.status == 200, path


def test_the_webhook_refuses_a_bad_annotation(webhook_release, app_ns):
    template = annotated_app(CONFIG)["spec"]["template"]
    template["metadata"]["annotations"]["livekit.kraken.dev/sidecar-port"] = "http"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad-annotation", **template["metadata"]},
           "spec": template["spec"]}
    proc = kubectl("apply", "-n", app_ns, "-f", "-", stdin=json.dumps(pod), check=False)
    assert proc.returncode != 0, "a pod with a bad annotation was admitted"
    assert "livekit.kraken.dev/sidecar-port" in proc.stderr, proc.stderr
