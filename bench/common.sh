# Sourced by bench/run.sh and bench/profile.sh: the one configuration every server of a run gets (they all
# read the sidecar's variables), the caller tokens for an algorithm, and how a server and wrk are started
# on their cores. Throw-away values, loopback only. The caller sets OUT, RELEASE, PEER_DIR, SERVER_CPU,
# WRK_CPU and the associative arrays PORT and PID before starting anything.
BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export LIVEKIT_SERVER_URL=ws://127.0.0.1:7880
export LIVEKIT_API_KEY=APIbenchkey
export LIVEKIT_API_SECRET=bench-livekit-api-secret-0123456789abcdefghij
export LIVEKIT_DEFAULT_TOKEN_TTL=3600
export SIDECAR_AUTH_ISSUER=https://auth.bench.local
export SIDECAR_AUTH_AUDIENCES=kraken
export CALLER_ISSUER=$SIDECAR_AUTH_ISSUER CALLER_AUDIENCE=kraken CALLER_SUB=user-64f7b1234567890abcdef456
export VERIFY_MJS="$BENCH_ROOT/tests/interop/node/verify.mjs"

# Caller keys from sidecar/tests/fixtures (RSA 2048, EC P-256), exported as the servers read them, and
# CALLER_TOKEN (with JOIN_CHANNEL) / NOPERM_TOKEN (without) minted for them.
bench_caller_alg() { # HS256 | RS256 | ES256
  local fixtures="$BENCH_ROOT/sidecar/tests/fixtures" signing_key
  unset SIDECAR_AUTH_HS_SECRET SIDECAR_AUTH_PUBLIC_KEYS_FILE
  case "$1" in
    HS256)
      export SIDECAR_AUTH_HS_SECRET=bench-caller-hs-secret-0123456789abcdefghij
      signing_key=$SIDECAR_AUTH_HS_SECRET
      ;;
    RS256) export SIDECAR_AUTH_PUBLIC_KEYS_FILE="$fixtures/rsa-public.pem"; signing_key="$fixtures/rsa-private.pem" ;;
    ES256) export SIDECAR_AUTH_PUBLIC_KEYS_FILE="$fixtures/ec-public.pem"; signing_key="$fixtures/ec-private.pem" ;;
    *) echo "unsupported caller algorithm $1" >&2; return 1 ;;
  esac
  export SIDECAR_AUTH_ALGORITHMS=$1
  CALLER_TOKEN=$(node "$BENCH_ROOT/bench/mint-caller.mjs" "$1" "$signing_key" "$CALLER_SUB" JOIN_CHANNEL)
  NOPERM_TOKEN=$(node "$BENCH_ROOT/bench/mint-caller.mjs" "$1" "$signing_key" "$CALLER_SUB" READ_MESSAGES)
  export CALLER_TOKEN NOPERM_TOKEN
}

start_server() { # who alg
  local who=$1 alg=$2 port=${PORT[$1]}
  case "$who" in
    sidecar)
      SIDECAR_LISTEN=127.0.0.1:$port SIDECAR_METRICS_LISTEN=127.0.0.1:$((port + 1)) \
        SIDECAR_LIVEKIT_PROBE_INTERVAL_SECONDS=0 \
        taskset -c "$SERVER_CPU" "$RELEASE/livekit-sidecar" >"$OUT/$who-$alg.log" 2>&1 &
      ;;
    bare)
      BARE_LISTEN=127.0.0.1:$port taskset -c "$SERVER_CPU" "$RELEASE/livekit-bench-bare" >"$OUT/$who-$alg.log" 2>&1 &
      ;;
    peer)
      NODE_ENV=production PEER_HOST=127.0.0.1 PEER_PORT=$port \
        taskset -c "$SERVER_CPU" node "$PEER_DIR/dist/main.js" >"$OUT/$who-$alg.log" 2>&1 &
      ;;
    *) echo "unknown server $who" >&2; return 1 ;;
  esac
  PID[$who]=$!
}

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
wrk_pinned() { # connections duration-seconds url [wrk options]
  local c=$1 d=$2 url=$3
  shift 3
  timeout $((d + 30)) taskset -c "$WRK_CPU" wrk -t1 -c"$c" -d"${d}s" "$@" -s "$BENCH_ROOT/bench/post-token.lua" "$url"
}

stop_servers() {
  local who
  for who in "${!PID[@]}"; do kill "${PID[$who]}" 2>/dev/null || true; done
  for who in "${!PID[@]}"; do
    for _ in $(seq 1 50); do kill -0 "${PID[$who]}" 2>/dev/null || break; sleep 0.1; done
    kill -9 "${PID[$who]}" 2>/dev/null || true
  done
  PID=()
}
