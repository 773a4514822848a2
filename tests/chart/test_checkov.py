"""Checkov (Kubernetes framework, offline) over the rendered chart in its main variants and over
examples/: no finding may fail. The findings we accept are skipped in the manifests themselves
(`checkov.io/skipN` annotations), each with its reason, so any new finding fails here. Also the two fixes
the scan asked for: the optional NetworkPolicy and pinning the image by digest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import yaml

from conftest import EXAMPLES, NAMESPACE, RELEASE, ROOT

CHECKOV = ROOT / "tests" / "scan" / ".venv" / "bin" / "checkov"
DIGEST = "sha256:" + "0123456789abcdef" * 4

# The chart's main variants: the defaults, the namespaced and HA modes, and the hardening values.
VARIANTS: dict[str, dict] = {
    "default": {},
    "namespaced": {"watchNamespace": "apps"},
    "ha-replicas-2": {"replicas": 2},
    "service-monitor": {"metrics": {"serviceMonitor": {"enabled": True}}},
    "webhook": {"webhook": {"enabled": True}},
    "hardened": {
        "image": {"digest": DIGEST, "pullPolicy": "Always"},
        "networkPolicy": {"enabled": True, "apiServer": {"cidrs": ["10.96.0.1/32", "172.18.0.2/32"]}},
    },
}


def manifests(files: dict[str, str]) -> str:
    return "\n---\n".join(text for path, text in sorted(files.items()) if path.endswith((".yaml", ".yml")))


def without_skips(text: str) -> str:
    """The same manifests with every checkov.io/skip annotation removed."""
    docs = [d for d in yaml.safe_load_all(text) if d]
    for doc in docs:
        annotations = doc.get("metadata", {}).get("annotations") or {}
        for key in [k for k in annotations if k.startswith("checkov.io/skip")]:
            del annotations[key]
    return yaml.safe_dump_all(docs)


@pytest.fixture(scope="module")
def scan(chart, tmp_path_factory):
    """One checkov run over every variant, the examples, and one unskipped copy of the default chart."""
    assert CHECKOV.exists(), "checkov is not installed: run ./scripts/test-deps.sh"
    root = tmp_path_factory.mktemp("checkov")
    for name, values in VARIANTS.items():
        # One release name per variant: checkov relates a NetworkPolicy to pods by labels across all
        # files, and the hardened variant's policy must not cover the other variants' pods.
        rendered = chart.render(values, name=f"lk-{name}", namespace=NAMESPACE)
        (root / f"chart-{name}.yaml").write_text(manifests(rendered))
    for example in EXAMPLES.glob("*.yaml"):
        shutil.copy(example, root / f"example-{example.name}")
    unskipped = root / "unskipped"
    unskipped.mkdir()
    (unskipped / "chart-default.yaml").write_text(without_skips((root / "chart-default.yaml").read_text()))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "CKV_", "PRISMA_"))}
    env["LOG_LEVEL"] = "WARNING"
    proc = subprocess.run(
        [str(CHECKOV), "--directory", str(root), "--framework", "kubernetes", "--skip-download",
         "--compact", "--output", "json"],
        capture_output=True, text=True, check=False, timeout=600, env=env, cwd=root,
    )
    assert proc.stdout.strip(), proc.stderr
    report = json.loads(proc.stdout)
    results = report["results"]
    failed = results.get("failed_checks", [])
    return {
        "summary": report["summary"],
        "skipped": results.get("skipped_checks", []),
        "failed": [f for f in failed if not f["file_path"].startswith("/unskipped/")],
        "unskipped": [f for f in failed if f["file_path"].startswith("/unskipped/")],
        "passed": results.get("passed_checks", []),
    }


def test_no_finding_fails(scan):
    assert scan["summary"]["parsing_errors"] == 0, scan["summary"]
    assert [(f["check_id"], f["file_path"], f["resource"]) for f in scan["failed"]] == []


def test_every_file_was_scanned(scan):
    scanned = {c["file_path"].lstrip("/") for c in scan["passed"]}
    want = {f"chart-{name}.yaml" for name in VARIANTS} | {"example-app-with-sidecar.yaml"}
    assert want <= scanned, want - scanned


def test_every_skip_gives_its_reason(scan):
    assert scan["skipped"], "no skip seen: are the checkov.io/skip annotations still read?"
    for skip in scan["skipped"]:
        reason = skip["check_result"].get("suppress_comment", "")
        assert len(reason.split()) >= 5, (skip["check_id"], skip["file_path"], reason)


def test_the_skips_hide_real_findings_and_only_those(scan):
    """Without its annotations the default chart fails exactly the checks the annotations skip: the scan
    is live, and no skip is left over after its finding went away."""
    skipped = {s["check_id"] for s in scan["skipped"] if s["file_path"] == "/chart-default.yaml"}
    found = {f["check_id"] for f in scan["unskipped"]}
    assert found == skipped
    assert {"CKV_K8S_43", "CKV2_K8S_6"} <= found


def test_digest_and_network_policy_fix_their_findings(scan):
    hardened = {s["check_id"] for s in scan["skipped"] if s["file_path"] == "/chart-hardened.yaml"}
    assert not hardened & {"CKV_K8S_43", "CKV_K8S_15", "CKV2_K8S_6"}, hardened


# --- the NetworkPolicy and the digest themselves ----------------------------------------------------------


def test_network_policy_is_off_by_default(render):
    assert render().all("NetworkPolicy") == []


def test_network_policy_allows_only_the_operator_traffic(render):
    policy = render(VARIANTS["hardened"]).one("NetworkPolicy")
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "livekit-operator", "app.kubernetes.io/instance": RELEASE}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = spec["ingress"]
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    dns, api, livekit = spec["egress"]
    assert {p["port"] for p in dns["ports"]} == {53} and "to" not in dns
    assert [p["port"] for p in api["ports"]] == [443, 6443]
    assert api["to"] == [{"ipBlock": {"cidr": "10.96.0.1/32"}}, {"ipBlock": {"cidr": "172.18.0.2/32"}}]
    assert [p["port"] for p in livekit["ports"]] == [443, 7880] and "to" not in livekit


def test_network_policy_lets_the_api_server_call_the_webhook(render):
    values = {"networkPolicy": {"enabled": True}, "webhook": {"enabled": True}}
    metrics, webhook = render(values).one("NetworkPolicy")["spec"]["ingress"]
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert webhook == {"ports": [{"port": "webhook", "protocol": "TCP"}]}


def test_network_policy_without_livekit_egress(render):
    values = {"networkPolicy": {"enabled": True, "livekit": {"ports": []},
                                "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]}}
    spec = render(values).one("NetworkPolicy")["spec"]
    assert len(spec["egress"]) == 2
    assert spec["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]


@pytest.mark.parametrize("values", [
    {"networkPolicy": {"enabled": True, "apiServer": {"cidrs": ["10.0.0.1"]}}},
    {"networkPolicy": {"enabled": True, "apiServer": {"ports": []}}},
    {"networkPolicy": {"enabled": True, "livekit": {"ports": [0]}}},
    {"networkPolicy": {"enabled": "yes"}},
    {"networkPolicy": {"enabled": True, "egress": []}},
])
def test_schema_rejects_bad_network_policy_values(helm, chart, values):
    with pytest.raises(helm.HelmValuesError):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


def test_image_is_pinned_by_digest(render):
    container = render({"image": {"digest": DIGEST}}).one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].endswith("@" + DIGEST), container["image"]
