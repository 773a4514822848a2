"""The Dockerfiles (hadolint, and the properties the issue asks for), the .dockerignore, the e2e suite
(compiles, lints, and is not collected without E2E_KUBECONFIG), its workflow and the CI workflow."""

from __future__ import annotations

import fnmatch
import os
import py_compile
import subprocess
import sys

import pytest
import tomllib
import yaml

from conftest import ROOT

DOCKERFILES = {"livekit-operator": ROOT / "operator" / "Dockerfile", "livekit-sidecar": ROOT / "sidecar" / "Dockerfile"}
BIN = os.path.dirname(sys.executable)


def tool(name: str) -> str:
    path = os.path.join(BIN, name)
    assert os.path.exists(path), f"{name} is not installed in the venv: run ./scripts/test-deps.sh"
    return path


@pytest.mark.parametrize("binary", sorted(DOCKERFILES))
def test_hadolint_accepts_the_dockerfile(binary):
    proc = subprocess.run([tool("hadolint"), "--failure-threshold", "info", str(DOCKERFILES[binary])],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_really_lints(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get install curl\nUSER root\n")
    proc = subprocess.run([tool("hadolint"), str(bad)], capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "DL3006" in proc.stdout, proc.stdout


@pytest.mark.parametrize("binary", sorted(DOCKERFILES))
def test_dockerfile_is_multi_stage_non_root_and_shell_free(binary):
    lines = [ln.strip() for ln in DOCKERFILES[binary].read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    froms = [ln for ln in lines if ln.startswith("FROM ")]
    assert len(froms) == 2 and froms[0].startswith("FROM rust:") and froms[0].endswith(" AS builder")
    runtime = froms[1].split()[1]
    assert runtime.startswith("gcr.io/distroless/") and runtime.endswith(":nonroot"), runtime
    final = lines[lines.index(froms[1]):]
    assert "USER 65532:65532" in final
    assert not any(ln.startswith("RUN ") for ln in final), "nothing may run in the shell-less runtime stage"
    (entry,) = [ln for ln in final if ln.startswith("ENTRYPOINT")]
    assert entry == f'ENTRYPOINT ["/usr/local/bin/{binary}"]', "exec form, no shell"
    assert f"cargo build --release --locked -p {binary} --bin {binary}" in DOCKERFILES[binary].read_text()


def test_dockerignore_keeps_the_context_small():
    entries = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", "**/target", "**/node_modules", "**/.venv"} <= entries
    for needed in ("Cargo.toml", "Cargo.lock", "contract", "operator", "sidecar", "tests"):
        assert needed not in entries and (ROOT / needed).exists()


def test_dockerignore_keeps_every_workspace_member():
    """cargo loads every workspace member, even to build one package: an ignored member breaks the image build."""
    entries = [e for e in (ROOT / ".dockerignore").read_text().split() if not e.startswith("#")]
    members = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["members"]
    assert "bench/bare" in members
    for member in members:
        assert (ROOT / member / "Cargo.toml").exists(), member
        parts = member.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        excluded = [e for e in entries if any(fnmatch.fnmatch(p, e) for p in prefixes)]
        assert not excluded or f"!{member}" in entries, (member, excluded)


# --- the e2e suite ----------------------------------------------------------------------------------

E2E = ROOT / "tests" / "e2e"


def test_e2e_suite_compiles(tmp_path):
    files = sorted(E2E.glob("*.py"))
    assert {f.name for f in files} >= {"conftest.py", "kube.py", "test_e2e.py", "test_injection.py"}
    for f in files:
        py_compile.compile(str(f), doraise=True, cfile=str(tmp_path / (f.name + "c")))


@pytest.mark.parametrize("directory", ["tests/chart", "tests/e2e"])
def test_ruff_is_clean(directory):
    proc = subprocess.run([tool("ruff"), "check", "--no-cache", directory], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_e2e_is_not_collected_without_a_cluster():
    env = {k: v for k, v in os.environ.items() if k != "E2E_KUBECONFIG"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", str(E2E)],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 5, proc.stdout + proc.stderr  # 5: no tests collected


def test_e2e_is_collected_with_a_cluster(tmp_path):
    env = {**os.environ, "E2E_KUBECONFIG": str(tmp_path / "kubeconfig")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", str(E2E)],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("test_operator_is_ready", "test_config_becomes_ready_with_owned_objects",
                 "test_app_with_sidecar_issues_verified_tokens", "test_rotation_reaches_the_running_sidecar_without_a_restart",
                 "test_deleting_the_config_keeps_its_secret_for_a_config_of_the_same_name",
                 "test_injected_pod_runs_the_native_sidecar", "test_the_webhook_refuses_a_bad_annotation"):
        assert name in proc.stdout, name


def test_e2e_workflow():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "e2e.yml").read_text())
    steps = wf["jobs"]["e2e"]["steps"]
    text = yaml.safe_dump(steps)
    for needle in ("operator/Dockerfile", "sidecar/Dockerfile", "kind load docker-image", "E2E_KUBECONFIG", "tests/e2e"):
        assert needle in text, needle



def test_ci_workflow_runs_the_test_command_and_the_advisories():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    runs = {name: [step.get("run", "") for step in job["steps"]] for name, job in wf["jobs"].items()}
    # The hosted runner runs exactly what a developer and the local CI run: .ci/run, nothing more.
    assert any(run.strip() == "bash .ci/run" for run in runs["test"]), runs["test"]
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("exec ./scripts/test.sh")
    # The one check scripts/test.sh cannot do offline (deny.toml says so).
    assert any("cargo-deny check advisories" in run for run in runs["advisories"]), runs["advisories"]
    assert "advisories" not in next(line for line in (ROOT / "scripts" / "test.sh").read_text().splitlines()
                                    if "cargo-deny --offline check" in line)


def test_markdown_links_stay_in_the_repository_and_resolve():
    """A clone has only the repository: every relative link of our Markdown must land inside it."""
    import re

    skip = {".git", "target", "node_modules", ".venv"}
    docs = [p for p in ROOT.rglob("*.md") if not skip.intersection(p.relative_to(ROOT).parts)]
    assert ROOT / "docs" / "api.md" in docs
    broken = []
    for doc in docs:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            if not path.is_relative_to(ROOT) or not path.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_architecture_names_only_paths_that_exist():
    """ARCHITECTURE.md names crates, modules and tests by path; a rename must update it."""
    import re

    text = (ROOT / "ARCHITECTURE.md").read_text()
    paths = set(re.findall(r"`((?:contract|sidecar|operator|tests|crds|scripts)/[^`\s]*)`", text))
    assert len(paths) > 40, paths
    missing = sorted(p for p in paths if not (ROOT / p.rstrip("/")).exists())
    assert not missing, missing
