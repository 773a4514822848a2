#!/usr/bin/env bash
# The operator at scale (BENCHMARKS.md, "Operator at scale"): LiveKitConfigs with their source Secrets
# among unrelated Secrets, served by the testkit's fake API server over loopback HTTP, driven by the
# real controller in a process of its own (operator/benches/scale.rs says how and what it measures).
#
#   ./bench/operator-scale.sh            # loads 0x10000, 1000x10000, 1000x20000; 10 s quiet window
#
# Knobs (environment): SCALE_LOADS ("CONFIGSxUNRELATED,..."), SCALE_QUIET_SECS (10),
# SCALE_TIMEOUT_SECS (600, per load and phase), SCALE_PROFILE (bench: optimised; `dev` for a quick
# debug-build run whose times are not comparable), SCALE_OUT (target/bench/operator-scale.md),
# SCALE_CLIENT_REQUESTS (a diagnostic: at most N requests in flight from the controller's client).
# Exits non-zero when a load does not get Ready in time or writes anything in the quiet window.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${SCALE_OUT:-$ROOT/target/bench/operator-scale.md}
mkdir -p "$(dirname "$OUT")"
export CARGO_INCREMENTAL=0
cd "$ROOT"

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "loads: ${SCALE_LOADS:-0x10000,1000x10000,1000x20000}, quiet window ${SCALE_QUIET_SECS:-10} s, profile ${SCALE_PROFILE:-bench}${SCALE_CLIENT_REQUESTS:+, client limited to $SCALE_CLIENT_REQUESTS requests in flight (diagnostic)}"
  echo
} | tee "$OUT"

if [ "${SCALE_PROFILE:-bench}" = dev ]; then
  # `cargo test` runs a harness = false bench's main once, built with the dev profile.
  timeout 3600 cargo test -q -p livekit-operator --bench scale | tee -a "$OUT"
else
  timeout 3600 cargo bench -q -p livekit-operator --bench scale | tee -a "$OUT"
fi
echo "written to $OUT"
