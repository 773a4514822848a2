"""Small helpers of the e2e suite: kubectl, waiting, throw-away namespaces, the chart installed with Helm,
running pods, port-forwards, caller tokens, the official verifier."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any, Callable

ROOT = pathlib.Path(__file__).resolve().parents[2]
KUBECONFIG = os.environ.get("E2E_KUBECONFIG", "")
VERIFY_PY = ROOT / "tests" / "interop" / "python" / "verify.py"
CHART = ROOT / "charts" / "livekit-operator"
OPERATOR_IMAGE = os.environ.get("E2E_OPERATOR_IMAGE", "livekit-operator:e2e")
SIDECAR_IMAGE = os.environ.get("E2E_SIDECAR_IMAGE", "livekit-sidecar:e2e")
KEEP = bool(os.environ.get("E2E_KEEP"))


def kubectl(*args: str, stdin: str | None = None, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = ["kubectl", "--kubeconfig", KUBECONFIG, *args]
    proc = subprocess.run(cmd, check=False, input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def get_json(*args: str) -> dict[str, Any] | None:
    proc = kubectl("get", *args, "-o", "json", check=False)
    if proc.returncode != 0:
        if "NotFound" in proc.stderr or "not found" in proc.stderr:
            return None
        raise AssertionError(proc.stderr)
    return json.loads(proc.stdout)


def apply(doc: dict[str, Any], namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(doc))


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 120, interval: float = 2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except AssertionError as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def split_image(ref: str) -> tuple[str, str]:
    repo, _, tag = ref.rpartition(":")
    return (repo, tag) if repo and "/" not in tag else (ref, "latest")


@contextlib.contextmanager
def namespace(prefix: str) -> Iterator[str]:
    """A fresh namespace `<prefix>-<random>`, deleted afterwards unless E2E_KEEP is set."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        if not KEEP:
            kubectl("delete", "namespace", name, "--wait=false", check=False)


@contextlib.contextmanager
def chart_release(release: str, namespace: str, values: dict[str, Any]) -> Iterator[str]:
    """The chart installed with Helm (helm-python-sdk) as `release` with the operator image under test
    and `values` on top, waited for; uninstalled afterwards unless E2E_KEEP is set."""
    import helm_python as helm

    repo, tag = split_image(OPERATOR_IMAGE)
    merged = {
        "image": {"repository": repo, "tag": tag, "pullPolicy": "IfNotPresent"},
        "logFormat": "text",
        "logLevel": "livekit_operator=debug,info",
        **values,
    }
    with helm.Config(kubeconfig_path=KUBECONFIG, namespace=namespace) as cfg, helm.Chart.load(str(CHART)) as chart:
        cfg.install(chart, release, merged, namespace=namespace, wait="watcher", timeout=240)
        try:
            yield release
        finally:
            if not KEEP:
                cfg.uninstall(release, wait="watcher", timeout=120, ignore_not_found=True)


def running_pods(namespace: str, app: str) -> list[dict[str, Any]]:
    """Running, not terminating pods labelled app.kubernetes.io/name=<app>."""
    pods = get_json("pods", "-n", namespace, "-l", f"app.kubernetes.io/name={app}")
    return [p for p in (pods or {}).get("items", [])
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]


def secret_data(namespace: str, name: str) -> dict[str, str]:
    s = get_json("secret", name, "-n", namespace)
    assert s is not None, f"Secret {name} not found"
    return {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}


@contextlib.contextmanager
def port_forward(namespace: str, target: str, remote_port: int) -> Iterator[int]:
    """kubectl port-forward to a local port on 127.0.0.1; yields the local port."""
    cmd = ["kubectl", "--kubeconfig", KUBECONFIG, "-n", namespace, "port-forward", "--address", "127.0.0.1",
           target, f":{remote_port}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"127\.0\.0\.1:(\d+)", line)
        if not m:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"port-forward did not start: {line!r} {err}")
        yield int(m.group(1))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def http_json(method: str, url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256_jwt(secret: str, claims: dict[str, Any]) -> str:
    """A caller (application user) JWT signed with HS256, as the app's identity provider would."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(sig)}"


def jwt_claims_unverified(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def verify_official(api_key: str, api_secret: str, token: str) -> dict[str, Any]:
    """Verifies a LiveKit token with the official Python SDK (tests/interop/python/verify.py)."""
    line = json.dumps({"apiKey": api_key, "apiSecret": api_secret, "token": token}) + "\n"
    proc = subprocess.run([sys.executable, str(VERIFY_PY)], check=False, input=line, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"verify.py exited {proc.returncode}: {proc.stderr}"
    return json.loads(proc.stdout.splitlines()[0])
