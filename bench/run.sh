#!/usr/bin/env bash
# Load benchmark of POST /api/livekit/token, three servers in one run, same machine, same LiveKit key and
# secret, same caller-auth configuration, loopback only:
#   sidecar  livekit-sidecar, every feature on (metrics, limits, validation, authorization)
#   bare     bench/bare: axum + jsonwebtoken verifying the caller JWT and signing the token, nothing else;
#            the ceiling the sidecar is stated as a fraction of
#   peer     bench/peers/nest: the NestJS service the sidecar replaces
#
#   ./bench/run.sh        # HS256, RS256 and ES256 callers, 1/16/64 connections, 10 s each, then the tables
#
# Each server runs pinned to one core (BENCH_SERVER_CPU, default 0) and wrk to the other (BENCH_WRK_CPU,
# default 1), so the load generator does not take the server's CPU. CPU per request is the server's
# utime+stime delta from /proc/PID/stat over the measured wrk run divided by the requests wrk completed.
#
# Knobs (environment): BENCH_DURATION (s, default 10), BENCH_WARMUP (s, default 2), BENCH_CONNECTIONS
# ("1 16 64"), BENCH_ALGS ("HS256 RS256 ES256"), BENCH_SERVERS ("sidecar bare peer"), BENCH_OUT
# (target/bench), BENCH_PORT_BASE (19300; below Linux's ephemeral range 32768-60999, where any process's
# outgoing connection can hold a port), BENCH_SKIP_BUILD=1 (use the existing builds).
# Everything is bounded: each wrk run by -d and `timeout`, each wait by a fixed number of polls, and the
# servers are stopped on exit. Measured time is algs x levels x servers x (warm-up + duration)
# = 3 x 3 x 3 x 12 s ≈ 5.5 min, plus builds and checks.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
PEER_DIR="$BENCH/peers/nest"
VERIFY_DIR="$ROOT/tests/interop/node"
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-"1 16 64"}
ALGS=${BENCH_ALGS:-"HS256 RS256 ES256"}
SERVERS=${BENCH_SERVERS:-"sidecar bare peer"}
OUT=${BENCH_OUT:-$ROOT/target/bench}
PORT_BASE=${BENCH_PORT_BASE:-19300}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
WRK_CPU=${BENCH_WRK_CPU:-1}
RELEASE="$ROOT/target/release"

declare -A PORT=([sidecar]=$((PORT_BASE + 1)) [bare]=$((PORT_BASE + 5)) [peer]=$((PORT_BASE + 11)))
declare -A PID=()

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

mkdir -p "$OUT"
RESULTS="$OUT/results.tsv"
: >"$RESULTS"
record() { local IFS=$'\t'; printf '%s\n' "$*" >>"$RESULTS"; }

# ---------------------------------------------------------------- tools
if ! command -v wrk >/dev/null; then
  log "installing wrk (Debian package)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  timeout 300 $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 300 $SUDO apt-get install -y -qq wrk >/dev/null
fi
for tool in wrk node curl taskset python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
[ "$(nproc)" -ge 2 ] || log "WARNING: fewer than 2 cores: the server and wrk will share one"

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  log "building the sidecar and the bare-stack baseline (release)"
  (cd "$ROOT" && timeout 1800 cargo build --release -p livekit-sidecar -p livekit-bench-bare --bins)
  log "installing and building the NestJS peer (npm ci, tsc)"
  (cd "$PEER_DIR" && timeout 600 npm ci --no-audit --no-fund --loglevel=error && timeout 300 npx tsc -p tsconfig.json)
  if [ ! -d "$VERIFY_DIR/node_modules/livekit-server-sdk" ]; then
    log "installing the official Node verifier (tests/interop/node)"
    (cd "$VERIFY_DIR" && timeout 600 npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
[ -x "$RELEASE/livekit-sidecar" ] || die "$RELEASE/livekit-sidecar is missing"
[ -x "$RELEASE/livekit-bench-bare" ] || die "$RELEASE/livekit-bench-bare is missing"
[ -f "$PEER_DIR/dist/main.js" ] || die "the peer is not built"

# ---------------------------------------------------------------- what was measured, on what
record meta date "$(date -u +'%Y-%m-%d %H:%M UTC')"
record meta commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
record meta cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores"
record meta kernel "$(uname -sr)"
record meta rustc "$(rustc --version 2>/dev/null || echo unknown)"
record meta node "$(node --version)"
record meta wrk "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
record meta pinning "server on CPU $SERVER_CPU, wrk on CPU $WRK_CPU (taskset), wrk -t1; ${WARMUP} s warm-up + ${DURATION} s measured per level"
CLK_TCK=$(getconf CLK_TCK)
record meta clk_tck "$CLK_TCK"

# ---------------------------------------------------------------- shared configuration
# shellcheck source=bench/common.sh
source "$BENCH/common.sh"

trap stop_servers EXIT

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# ---------------------------------------------------------------- per algorithm
for ALG in $ALGS; do
  bench_caller_alg "$ALG" || die "unsupported algorithm $ALG"
  record loadavg "$ALG" start "$(loadavg)"

  declare -A START_RSS=()
  for WHO in $SERVERS; do
    log "$ALG: starting $WHO on 127.0.0.1:${PORT[$WHO]} (CPU $SERVER_CPU)"
    start_server "$WHO" "$ALG"
    wait_http "http://127.0.0.1:${PORT[$WHO]}/api/livekit/health" "${PID[$WHO]}" \
      || { tail -20 "$OUT/$WHO-$ALG.log" >&2; die "$WHO did not come up"; }
    START_RSS[$WHO]=$(status_kib "${PID[$WHO]}" VmRSS)
  done
  for WHO in $SERVERS; do
    KIND=""
    [ "$WHO" != bare ] || KIND=bare
    timeout 60 node "$BENCH/check.mjs" "http://127.0.0.1:${PORT[$WHO]}" "$WHO $ALG" $KIND >&2
  done
  sleep 2
  for WHO in $SERVERS; do
    record rss "$ALG" "$WHO" "${START_RSS[$WHO]}" "$(status_kib "${PID[$WHO]}" VmRSS)"
  done

  for C in $CONNECTIONS; do
    # Interleaved (every server at one level, then the next level) so that a noisy neighbour hurts all alike.
    for WHO in $SERVERS; do
      URL="http://127.0.0.1:${PORT[$WHO]}"
      wrk_pinned "$C" "$WARMUP" "$URL" >/dev/null
      T0=$(cpu_ticks "${PID[$WHO]}")
      RAW=$(wrk_pinned "$C" "$DURATION" "$URL" --timeout 5s)
      T1=$(cpu_ticks "${PID[$WHO]}")
      echo "$RAW" >"$OUT/wrk-$ALG-$WHO-c$C.txt"
      JSON=$(echo "$RAW" | sed -n 's/^RESULT //p')
      [ -n "$JSON" ] || die "no wrk result for $WHO $ALG c=$C"
      NON2XX=$(echo "$RAW" | awk '/Non-2xx/ { print $NF }')
      record load "$ALG" "$WHO" "$C" "$JSON" "${NON2XX:-0}" "$((T1 - T0))"
      log "$ALG $WHO c=$C: $JSON non2xx=${NON2XX:-0}"
    done
  done
  for WHO in $SERVERS; do
    record peak "$ALG" "$WHO" "$(status_kib "${PID[$WHO]}" VmHWM)"
  done
  record loadavg "$ALG" end "$(loadavg)"
  stop_servers
  for f in "$OUT"/*-"$ALG".log; do # keep the beginning of a log only
    [ "$(stat -c %s "$f")" -le 1048576 ] || { head -c 1048576 "$f" >"$f.head" && mv "$f.head" "$f"; }
  done
done

# ---------------------------------------------------------------- report
python3 "$BENCH/report.py" "$RESULTS"
