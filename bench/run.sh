#!/usr/bin/env bash
# Load benchmark of POST /api/livekit/token: livekit-sidecar against the NestJS peer (bench/peers/nest),
# same run, same machine, same LiveKit key/secret and caller-auth configuration, loopback only.
#
#   ./bench/run.sh                 # HS256 and RS256 caller tokens, 1/16/64 connections, 10 s each
#
# Knobs (environment): BENCH_DURATION (s, default 10), BENCH_WARMUP (s, default 2), BENCH_CONNECTIONS
# ("1 16 64"), BENCH_ALGS ("HS256 RS256"), BENCH_OUT (target/bench), BENCH_PORT_BASE (39300),
# BENCH_SKIP_BUILD=1 (use the existing release binary and peer build).
# Everything is bounded: each wrk run by -d and `timeout`, each wait by a fixed number of polls, and
# both servers are stopped on exit. Measured total is about
# algs x levels x 2 servers x (warm-up + duration) ≈ 2 x 3 x 2 x 12 s ≈ 2.5 min, plus builds.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
PEER_DIR="$BENCH/peers/nest"
VERIFY_DIR="$ROOT/tests/interop/node"
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-"1 16 64"}
ALGS=${BENCH_ALGS:-"HS256 RS256"}
OUT=${BENCH_OUT:-$ROOT/target/bench}
PORT_BASE=${BENCH_PORT_BASE:-39300}
SIDECAR_PORT=$((PORT_BASE + 1))
SIDECAR_METRICS_PORT=$((PORT_BASE + 2))
PEER_PORT=$((PORT_BASE + 11))
FIXTURES="$ROOT/sidecar/tests/fixtures"
SIDECAR_BIN="$ROOT/target/release/livekit-sidecar"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

mkdir -p "$OUT"
RESULTS="$OUT/results.tsv"
: >"$RESULTS"

# ---------------------------------------------------------------- tools
if ! command -v wrk >/dev/null; then
  log "installing wrk (Debian package)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  timeout 300 $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 300 $SUDO apt-get install -y -qq wrk >/dev/null
fi
command -v wrk >/dev/null || die "wrk is not installed"
command -v node >/dev/null || die "node is not installed (Node 20 expected)"
command -v curl >/dev/null || die "curl is not installed"

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  log "building the sidecar (release)"
  (cd "$ROOT" && timeout 1800 cargo build --release -p livekit-sidecar --bin livekit-sidecar)
  log "installing and building the NestJS peer (npm ci, tsc)"
  (cd "$PEER_DIR" && timeout 600 npm ci --no-audit --no-fund --loglevel=error && timeout 300 npx tsc -p tsconfig.json)
  if [ ! -d "$VERIFY_DIR/node_modules/livekit-server-sdk" ]; then
    log "installing the official Node verifier (tests/interop/node)"
    (cd "$VERIFY_DIR" && timeout 600 npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
[ -x "$SIDECAR_BIN" ] || die "$SIDECAR_BIN is missing"
[ -f "$PEER_DIR/dist/main.js" ] || die "the peer is not built"

# ---------------------------------------------------------------- shared configuration
export LIVEKIT_SERVER_URL=ws://127.0.0.1:7880
export LIVEKIT_API_KEY=APIbenchkey
export LIVEKIT_API_SECRET=bench-livekit-api-secret-0123456789abcdefghij
export LIVEKIT_DEFAULT_TOKEN_TTL=3600
export SIDECAR_AUTH_ISSUER=https://auth.bench.local
export SIDECAR_AUTH_AUDIENCES=kraken
export CALLER_ISSUER=$SIDECAR_AUTH_ISSUER CALLER_AUDIENCE=kraken CALLER_SUB=user-64f7b1234567890abcdef456
export VERIFY_MJS="$VERIFY_DIR/verify.mjs"
HS_SECRET=bench-caller-hs-secret-0123456789abcdefghij

SIDECAR_PID=""
PEER_PID=""
stop_servers() {
  for pid in $SIDECAR_PID $PEER_PID; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $SIDECAR_PID $PEER_PID; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  SIDECAR_PID=""
  PEER_PID=""
}
trap stop_servers EXIT

wait_http() { # url pid
  for _ in $(seq 1 150); do
    kill -0 "$2" 2>/dev/null || return 1
    curl -fs -o /dev/null --max-time 1 "$1" && return 0
    sleep 0.1
  done
  return 1
}

status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- per algorithm
for ALG in $ALGS; do
  case "$ALG" in
    HS256)
      unset SIDECAR_AUTH_PUBLIC_KEYS_FILE
      export SIDECAR_AUTH_HS_SECRET=$HS_SECRET
      SIGNING_KEY=$HS_SECRET
      ;;
    RS256)
      unset SIDECAR_AUTH_HS_SECRET
      export SIDECAR_AUTH_PUBLIC_KEYS_FILE="$FIXTURES/rsa-public.pem"
      SIGNING_KEY="$FIXTURES/rsa-private.pem"
      ;;
    *) die "unsupported algorithm $ALG" ;;
  esac
  export SIDECAR_AUTH_ALGORITHMS=$ALG
  CALLER_TOKEN=$(node "$BENCH/mint-caller.mjs" "$ALG" "$SIGNING_KEY" "$CALLER_SUB" JOIN_CHANNEL)
  NOPERM_TOKEN=$(node "$BENCH/mint-caller.mjs" "$ALG" "$SIGNING_KEY" "$CALLER_SUB" READ_MESSAGES)
  export CALLER_TOKEN NOPERM_TOKEN

  log "$ALG: starting the sidecar on 127.0.0.1:$SIDECAR_PORT and the peer on 127.0.0.1:$PEER_PORT"
  SIDECAR_LISTEN=127.0.0.1:$SIDECAR_PORT SIDECAR_METRICS_LISTEN=127.0.0.1:$SIDECAR_METRICS_PORT \
    SIDECAR_LIVEKIT_PROBE_INTERVAL_SECONDS=0 \
    "$SIDECAR_BIN" >"$OUT/sidecar-$ALG.log" 2>&1 &
  SIDECAR_PID=$!
  NODE_ENV=production PEER_HOST=127.0.0.1 PEER_PORT=$PEER_PORT \
    node "$PEER_DIR/dist/main.js" >"$OUT/peer-$ALG.log" 2>&1 &
  PEER_PID=$!
  wait_http "http://127.0.0.1:$SIDECAR_PORT/api/livekit/health" "$SIDECAR_PID" \
    || { tail -20 "$OUT/sidecar-$ALG.log" >&2; die "the sidecar did not come up"; }
  wait_http "http://127.0.0.1:$PEER_PORT/api/livekit/health" "$PEER_PID" \
    || { tail -20 "$OUT/peer-$ALG.log" >&2; die "the peer did not come up"; }
  START_RSS_SIDECAR=$(status_kib "$SIDECAR_PID" VmRSS)
  START_RSS_PEER=$(status_kib "$PEER_PID" VmRSS)

  timeout 60 node "$BENCH/check.mjs" "http://127.0.0.1:$SIDECAR_PORT" "sidecar $ALG" >&2
  timeout 60 node "$BENCH/check.mjs" "http://127.0.0.1:$PEER_PORT" "peer $ALG" >&2
  sleep 2
  IDLE_RSS_SIDECAR=$(status_kib "$SIDECAR_PID" VmRSS)
  IDLE_RSS_PEER=$(status_kib "$PEER_PID" VmRSS)
  printf 'rss\t%s\tsidecar\t%s\t%s\n' "$ALG" "$START_RSS_SIDECAR" "$IDLE_RSS_SIDECAR" >>"$RESULTS"
  printf 'rss\t%s\tpeer\t%s\t%s\n' "$ALG" "$START_RSS_PEER" "$IDLE_RSS_PEER" >>"$RESULTS"

  for C in $CONNECTIONS; do
    THREADS=$(( C < 2 ? C : 2 ))
    # Interleaved (sidecar, then peer, at each level) so that a noisy neighbour hurts both alike.
    for WHO in sidecar peer; do
      if [ "$WHO" = sidecar ]; then PORT=$SIDECAR_PORT PID=$SIDECAR_PID; else PORT=$PEER_PORT PID=$PEER_PID; fi
      URL="http://127.0.0.1:$PORT"
      timeout $((WARMUP + 20)) wrk -t"$THREADS" -c"$C" -d"${WARMUP}s" -s "$BENCH/post-token.lua" "$URL" >/dev/null
      T0=$(cpu_ticks "$PID")
      RAW=$(timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$C" -d"${DURATION}s" --timeout 5s \
        -s "$BENCH/post-token.lua" "$URL")
      T1=$(cpu_ticks "$PID")
      echo "$RAW" >"$OUT/wrk-$ALG-$WHO-c$C.txt"
      JSON=$(echo "$RAW" | sed -n 's/^RESULT //p')
      [ -n "$JSON" ] || die "no wrk result for $WHO $ALG c=$C"
      NON2XX=$(echo "$RAW" | awk '/Non-2xx/ { print $NF }')
      printf 'load\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ALG" "$WHO" "$C" "$JSON" "${NON2XX:-0}" \
        "$(( (T1 - T0) ))" >>"$RESULTS"
      log "$ALG $WHO c=$C: $JSON non2xx=${NON2XX:-0}"
    done
  done
  printf 'peak\t%s\tsidecar\t%s\n' "$ALG" "$(status_kib "$SIDECAR_PID" VmHWM)" >>"$RESULTS"
  printf 'peak\t%s\tpeer\t%s\n' "$ALG" "$(status_kib "$PEER_PID" VmHWM)" >>"$RESULTS"
  stop_servers
  # The sidecar logs a line per token; keep the beginning of the log only.
  for f in "$OUT/sidecar-$ALG.log" "$OUT/peer-$ALG.log"; do
    [ "$(stat -c %s "$f")" -le 1048576 ] || { head -c 1048576 "$f" >"$f.head" && mv "$f.head" "$f"; }
  done
done

# ---------------------------------------------------------------- report
python3 "$BENCH/report.py" "$RESULTS" "$CLK_TCK"
