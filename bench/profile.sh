#!/usr/bin/env bash
# Where the sidecar's CPU goes under load: perf (software cpu-clock event; this VM exposes no hardware
# counters) with DWARF call graphs while wrk drives POST /api/livekit/token at 64 connections, plus the
# same load with RUST_LOG=info (the default) and RUST_LOG=warn to price per-request logging.
#   ./bench/profile.sh [HS256|RS256]     (after ./bench/run.sh has built the release binary)
# Bounded: wrk runs for fixed durations under `timeout`, perf records 5 s; the sidecar is stopped on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ALG=${1:-HS256}
OUT=${BENCH_OUT:-$ROOT/target/bench}/profile-$ALG
mkdir -p "$OUT"
BIN="$ROOT/target/release/livekit-sidecar"
PORT=${BENCH_PORT_BASE:-39300}
PORT=$((PORT + 21))
export LIVEKIT_SERVER_URL=ws://127.0.0.1:7880 LIVEKIT_API_KEY=APIbenchkey
export LIVEKIT_API_SECRET=bench-livekit-api-secret-0123456789abcdefghij
export SIDECAR_AUTH_ISSUER=https://auth.bench.local SIDECAR_AUTH_AUDIENCES=kraken SIDECAR_AUTH_ALGORITHMS=$ALG
export CALLER_ISSUER=https://auth.bench.local CALLER_AUDIENCE=kraken
export SIDECAR_LIVEKIT_PROBE_INTERVAL_SECONDS=0 SIDECAR_LISTEN=127.0.0.1:$PORT SIDECAR_METRICS_LISTEN=127.0.0.1:$((PORT + 1))
if [ "$ALG" = HS256 ]; then
  export SIDECAR_AUTH_HS_SECRET=bench-caller-hs-secret-0123456789abcdefghij
  CALLER_TOKEN=$(node "$ROOT/bench/mint-caller.mjs" HS256 "$SIDECAR_AUTH_HS_SECRET" user-1 JOIN_CHANNEL)
else
  export SIDECAR_AUTH_PUBLIC_KEYS_FILE="$ROOT/sidecar/tests/fixtures/rsa-public.pem"
  CALLER_TOKEN=$(node "$ROOT/bench/mint-caller.mjs" RS256 "$ROOT/sidecar/tests/fixtures/rsa-private.pem" user-1 JOIN_CHANNEL)
fi
export CALLER_TOKEN
URL=http://127.0.0.1:$PORT
SPID=""
trap '[ -z "$SPID" ] || kill "$SPID" 2>/dev/null || true' EXIT

start() { # RUST_LOG level
  RUST_LOG=$1 "$BIN" >"$OUT/sidecar-$1.log" 2>&1 &
  SPID=$!
  for _ in $(seq 1 100); do curl -fs -o /dev/null "$URL/api/livekit/health" && return 0; sleep 0.1; done
  echo "sidecar did not start" >&2; exit 1
}
stop() { kill "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=""; }
ticks() { awk '{ print $14 + $15 }' "/proc/$SPID/stat"; }

echo "== logging cost: RUST_LOG=info (default) vs warn, 64 connections, 8 s each, alternated"
for level in info warn info warn; do
  start "$level"
  timeout 20 wrk -t2 -c64 -d2s -s "$ROOT/bench/post-token.lua" "$URL" >/dev/null
  t0=$(ticks)
  result=$(timeout 30 wrk -t2 -c64 -d8s -s "$ROOT/bench/post-token.lua" "$URL" | sed -n 's/^RESULT //p')
  t1=$(ticks)
  echo "$result" | python3 -c "
import json, sys
r = json.load(sys.stdin)
print(f'RUST_LOG=$level: {r[\"rps\"]:.0f} req/s, p50 {r[\"p50_us\"]/1000:.2f} ms, p99 {r[\"p99_us\"]/1000:.2f} ms, '
      f'sidecar CPU {($t1 - $t0) / $(getconf CLK_TCK) * 1e6 / r[\"requests\"]:.0f} us/req')"
  stop
done

echo "== perf: 5 s of cpu-clock samples with DWARF call graphs at 64 connections"
start info
(timeout 30 wrk -t2 -c64 -d12s -s "$ROOT/bench/post-token.lua" "$URL" >"$OUT/wrk-perf.txt") &
WRK=$!
sleep 3
timeout 60 perf record -q -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$SPID" -o "$OUT/perf.data" -- sleep 5
wait "$WRK" || true
stop
perf report -i "$OUT/perf.data" --no-children -g none --sort dso --stdio 2>/dev/null | grep '%' >"$OUT/by-dso.txt"
perf report -i "$OUT/perf.data" --children -g none --sort sym --stdio 2>/dev/null | grep '%' | cut -c1-220 >"$OUT/inclusive.txt"
echo "-- by shared object (self time)"; cat "$OUT/by-dso.txt"
echo "-- inclusive time of the parts of a request (of all samples in the sidecar process)"
grep -E 'poll_flush|__GI___writev|routes::authenticate|jsonwebtoken::decoding::decode$|decode_header|LiveKitSigner::sign|tracing_subscriber::fmt::Subscriber.*::event|new_span|make_span|SetRequestId.*::call|Stderr as std::io::Write|poll_read_head|observe_request|Json<T> as axum_core|validate_token_request|read_json_object|claims_for|iso8601' \
  "$OUT/inclusive.txt" | head -40
echo "(full listing: $OUT/inclusive.txt)"
