#!/usr/bin/env bash
# Requests per second of the project's HttpServer against a bare Beast server answering
# the same bytes, measured in one run with wrk, alternating rounds so that noise from
# the shared machine lands on both. Prints each round and the framework/raw ratio.
#
#   bench/http_server.sh [seconds-per-round] [connections] [server-io-threads]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-64}
threads=${3:-1}
build=${NOTIFS_BENCH_BUILD:-build/bench}  # NOTIFS_BENCH_BUILD: another build directory

scripts/deps >/dev/null
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNOTIFS_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" --target http_server_bench >/dev/null

free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 30000))
    ss -Htln "sport = :$port" | grep -q . || { echo "$port"; return; }
  done
}

round() {  # mode -> requests/s
  local mode=$1 port pid rps
  port=$(free_port)
  "$build/bench/http_server_bench" "$mode" "$port" "$threads" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/ping" >/dev/null && break; sleep 0.1; done
  rps=$(wrk -t1 -c"$connections" -d"${duration}s" "http://127.0.0.1:$port/ping" |
        awk '/Requests\/sec/ {print $2}')
  kill -TERM "$pid"; wait "$pid" || true
  echo "$rps"
}

echo "wrk -t1 -c$connections -d${duration}s, server io threads: $threads, cores: $(nproc)"
best_raw=0; best_fw=0
for r in 1 2; do
  raw=$(round raw); fw=$(round framework)
  printf 'round %d: raw beast %10.0f req/s   HttpServer %10.0f req/s\n' "$r" "$raw" "$fw"
  best_raw=$(awk -v a="$best_raw" -v b="$raw" 'BEGIN{print (b>a)?b:a}')
  best_fw=$(awk -v a="$best_fw" -v b="$fw" 'BEGIN{print (b>a)?b:a}')
done
awk -v r="$best_raw" -v f="$best_fw" \
  'BEGIN{printf "best: raw %.0f req/s, HttpServer %.0f req/s, ratio %.2f\n", r, f, f/r}'
