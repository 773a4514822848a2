#!/usr/bin/env bash
# Runs schemathesis (tests/openapi/.venv, installed by scripts/test-deps.sh) against a live `--dev` sidecar
# on loopback, with the committed sidecar/openapi.json (kept equal to the code by sidecar/tests/openapi.rs).
#   ./scripts/schemathesis.sh [path/to/livekit-sidecar]     (default: target/debug/livekit-sidecar)
# Bounded: at most MAX_EXAMPLES test cases per operation and phase, and RUN_TIMEOUT seconds in all.
# Fails on any failed check; always stops the sidecar.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:-$ROOT/target/debug/livekit-sidecar}"
ST="$ROOT/tests/openapi/.venv/bin/schemathesis"
PY="$ROOT/tests/openapi/.venv/bin/python"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-50}"
RUN_TIMEOUT=300
# Every check that applies to this stateless API, but positive_data_acceptance: the schema cannot say
# what the server refuses by configuration (ttl above the configured maximum) or by rules JSON Schema
# does not express here (blank strings, control characters), and those answers are documented 400s.
CHECKS="not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
CHECKS+=",response_headers_conformance,negative_data_rejection,missing_required_header"
CHECKS+=",unsupported_method,allow_header_conformance,ignored_auth"

say() { printf 'schemathesis: %s\n' "$*"; }
die() { printf 'schemathesis: ERROR: %s\n' "$*" >&2; exit 1; }

[[ -x "$BIN" ]] || die "$BIN not found: build it first (cargo build -p livekit-sidecar --bins)"
[[ -x "$ST" ]] || die "$ST not found: run scripts/test-deps.sh"

WORK="$(mktemp -d)"
LOG="$WORK/sidecar.log"
SIDECAR_PID=""
stop() {
  if [[ -n "$SIDECAR_PID" ]] && kill -0 "$SIDECAR_PID" 2>/dev/null; then
    kill -TERM "$SIDECAR_PID" 2>/dev/null || true
    wait "$SIDECAR_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap stop EXIT

# Ephemeral loopback ports, read back from the "listening" log line: no port can be taken already.
# Probing is off: nothing but this script's own requests leaves the sidecar.
RUST_LOG=info "$BIN" --dev --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
  --livekit-probe-interval-seconds 0 --log-format json >"$LOG" 2>&1 &
SIDECAR_PID=$!

API=""
for _ in $(seq 1 100); do
  kill -0 "$SIDECAR_PID" 2>/dev/null || { cat "$LOG" >&2; die "the sidecar exited at start"; }
  API="$(grep -o '"api":"127\.0\.0\.1:[0-9]*"' "$LOG" | head -n1 | cut -d'"' -f4 || true)"
  [[ -n "$API" ]] && break
  sleep 0.1
done
[[ -n "$API" ]] || { cat "$LOG" >&2; die "the sidecar did not start listening within 10 s"; }
BASE="http://$API"
"$PY" - "$BASE/api/livekit/health" <<'EOF' || die "the sidecar's health endpoint does not answer"
import json, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(sys.argv[1], timeout=5) as response:
    assert json.load(response)["configured"] is True
EOF

TOKEN="$("$BIN" dev-token --identity alice)"
say "sidecar $BASE (pid $SIDECAR_PID); at most $MAX_EXAMPLES examples per operation"

# Requests go to loopback only, never through a proxy. No example database is written.
status=0
(cd "$WORK" && env -u HTTP_PROXY -u http_proxy -u HTTPS_PROXY -u https_proxy -u ALL_PROXY -u all_proxy \
  NO_PROXY='*' timeout "$RUN_TIMEOUT" "$ST" run "$ROOT/sidecar/openapi.json" \
  --url "$BASE" \
  -H "Authorization: Bearer $TOKEN" \
  --max-examples "$MAX_EXAMPLES" \
  --checks "$CHECKS" \
  --workers 1 \
  --request-timeout 10 \
  --generation-database none \
  --no-color) || status=$?

if ((status != 0)); then
  ((status == 124)) && say "timed out after ${RUN_TIMEOUT}s"
  say "the sidecar's last log lines:"
  tail -n 20 "$LOG" >&2
  die "schemathesis failed (exit $status); rerun with ./scripts/schemathesis.sh"
fi
kill -0 "$SIDECAR_PID" 2>/dev/null || die "the sidecar died during the run"
say "ok"
