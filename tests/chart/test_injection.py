"""The pods the sidecar injector produces, against the Kubernetes schemas (strict, offline): the
webhook's patched pods and the output of `livekit-operator inject` are golden fixtures that
operator/tests/inject.rs keeps in step with the code; here they are checked as the API server would
check them (native sidecars need 1.29)."""

from __future__ import annotations

import copy

import jsonschema
import pytest

from conftest import ROOT, parse_docs
from test_manifests import KUBE_VERSIONS, validate_k8s

FIXTURES = ROOT / "operator" / "tests" / "fixtures"
INJECTED = sorted((FIXTURES / "injected").glob("*.yaml")) + [FIXTURES / "inject" / "workloads.injected.yaml"]


def documents(path) -> list[dict]:
    """The documents of a file, with `List`s (which have no schema of their own) unpacked."""
    out = []
    for doc in parse_docs(path.read_text()):
        out.extend(doc["items"] if doc["kind"] == "List" else [doc])
    return out


def sidecars(doc: dict) -> list[dict]:
    """The injected sidecar containers of a document, whatever its kind."""
    templates = {
        "Pod": doc,
        "CronJob": doc.get("spec", {}).get("jobTemplate", {}).get("spec", {}).get("template"),
    }
    template = templates.get(doc["kind"], doc.get("spec", {}).get("template"))
    if not template:
        return []
    return [c for c in template["spec"].get("initContainers", []) if c["name"] == "livekit-sidecar"]


def test_there_are_injected_fixtures():
    assert len(INJECTED) >= 5
    assert sum(len(sidecars(d)) for p in INJECTED for d in documents(p)) >= 10


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("path", INJECTED, ids=lambda p: p.name)
def test_injected_manifests_match_the_kubernetes_schemas(path, version):
    for doc in documents(path):
        validate_k8s(doc, version)


@pytest.mark.parametrize("path", INJECTED, ids=lambda p: p.name)
def test_injected_sidecar_is_native_hardened_and_reads_its_projected_volume(path):
    for doc in documents(path):
        for sidecar in sidecars(doc):
            assert sidecar["restartPolicy"] == "Always"
            sc = sidecar["securityContext"]
            assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
            assert sc["capabilities"] == {"drop": ["ALL"]}
            (mount,) = sidecar["volumeMounts"]
            assert "subPath" not in mount and mount["readOnly"]


def test_a_broken_injection_would_fail_the_schema_check():
    """The check above can fail: the same pod with a misspelt field or a wrong type is refused."""
    (doc,) = parse_docs((FIXTURES / "injected" / "minimal.yaml").read_text())
    for mutate in (
        lambda d: d["spec"]["initContainers"][0].__setitem__("restartPolicyy", "Always"),
        lambda d: d["spec"]["volumes"][0]["projected"].__setitem__("defaultMode", "0440"),
    ):
        bad = copy.deepcopy(doc)
        mutate(bad)
        with pytest.raises(jsonschema.ValidationError):
            validate_k8s(bad, KUBE_VERSIONS[0])
