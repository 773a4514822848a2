"""Shared helpers of the chart tests: load the chart once, render it with values, split the YAML."""

from __future__ import annotations

import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "livekit-operator"
EXAMPLES = ROOT / "examples"
RELEASE = "livekit-operator"
NAMESPACE = "livekit-system"


@pytest.fixture(scope="session")
def helm():
    import helm_python

    return helm_python


@pytest.fixture(scope="session")
def chart(helm):
    c = helm.Chart.load(str(CHART))
    yield c
    c.close()


def parse_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


class Rendered:
    """One rendering of the chart: the manifests by kind and name, and NOTES.txt."""

    def __init__(self, files: dict[str, str]):
        self.notes = ""
        self.docs: list[dict] = []
        for path, text in sorted(files.items()):
            if path.endswith("NOTES.txt"):
                self.notes = text
            elif path.endswith((".yaml", ".yml")):
                self.docs.extend(parse_docs(text))

    def kinds(self) -> list[str]:
        return sorted(d["kind"] for d in self.docs)

    def all(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str) -> dict:
        found = self.all(kind)
        assert len(found) == 1, f"expected one {kind}, got {len(found)}: {self.kinds()}"
        return found[0]


@pytest.fixture(scope="session")
def render(chart):
    def _render(values: dict | None = None, namespace: str = NAMESPACE) -> Rendered:
        return Rendered(chart.render(values or {}, name=RELEASE, namespace=namespace))

    return _render
