#!/usr/bin/env bash
# Where a server's CPU goes under load: perf with the software cpu-clock event (this VM exposes no hardware
# counters) and DWARF call graphs, while wrk drives POST /api/livekit/token at 64 connections. Pinned like
# bench/run.sh: the server on BENCH_SERVER_CPU (0), wrk on BENCH_WRK_CPU (1).
#   ./bench/profile.sh [HS256|RS256|ES256] [sidecar|bare]    (after bench/run.sh has built the binaries)
# Prints the time per shared object, the top functions by self time, and the top by inclusive time; the
# full listings and perf.data stay in target/bench/profile-<server>-<alg>/.
# Bounded: wrk runs 14 s under `timeout`, perf records 8 s of it; the server is stopped on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ALG=${1:-HS256}
WHO=${2:-sidecar}
OUT=${BENCH_OUT:-$ROOT/target/bench}/profile-$WHO-$ALG
RELEASE="$ROOT/target/release"
PEER_DIR="$ROOT/bench/peers/nest"
SERVER_CPU=${BENCH_SERVER_CPU:-0}
WRK_CPU=${BENCH_WRK_CPU:-1}
PORT_BASE=${BENCH_PORT_BASE:-19300}
declare -A PORT=([sidecar]=$((PORT_BASE + 21)) [bare]=$((PORT_BASE + 25)) [peer]=$((PORT_BASE + 31)))
declare -A PID=()
mkdir -p "$OUT"
command -v perf >/dev/null || { echo "perf is not installed (Debian: linux-perf)" >&2; exit 1; }
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
trap stop_servers EXIT

bench_caller_alg "$ALG"
start_server "$WHO" "$ALG"
URL=http://127.0.0.1:${PORT[$WHO]}
wait_http "$URL/api/livekit/health" "${PID[$WHO]}" || { echo "$WHO did not start" >&2; exit 1; }

wrk_pinned 64 14 "$URL" >"$OUT/wrk.txt" &
WRK=$!
sleep 3
timeout 60 perf record -q -e cpu-clock -F 999 --call-graph dwarf,16384 -p "${PID[$WHO]}" -o "$OUT/perf.data" -- sleep 8
wait "$WRK" || true
stop_servers
sed -n 's/^RESULT //p' "$OUT/wrk.txt"

report() { perf report -i "$OUT/perf.data" --stdio "$@" 2>/dev/null | grep '%' | cut -c1-200; }
report --no-children -g none --sort dso >"$OUT/by-dso.txt"
report --no-children -g none --sort sym >"$OUT/self.txt"
report --children -g none --sort sym >"$OUT/inclusive.txt"
echo "-- by shared object (self time, % of the samples in the $WHO process)"
head -12 "$OUT/by-dso.txt"
echo "-- top 30 functions by self time"
head -30 "$OUT/self.txt"
echo "-- top 40 functions by inclusive time (children included)"
head -40 "$OUT/inclusive.txt"
echo "-- the server's own functions by inclusive time (top 25)"
grep -E 'livekit_sidecar::|livekit_bench_bare::|jsonwebtoken::' "$OUT/inclusive.txt" | head -25
echo "samples: $(perf report -i "$OUT/perf.data" --stdio 2>/dev/null | sed -n 's/^# Samples: //p' | head -1)"
echo "(full listings: $OUT/)"
