#!/usr/bin/env bash
# api_gateway end to end (Release build) against the issue's bar, in one run on this
# machine: a throwaway RabbitMQ node and PostgreSQL 15 cluster, user_service,
# template_service and api_gateway, N seeded users whose lookups are cached by one POST
# each before anything is measured. Then, in this order:
#   1. the raw broker's confirmed-publish ceiling: amqp_publish_bench (raw rabbitmq-c,
#      pipelined confirms, persistent 512-byte messages) on a queue of the same type;
#   2. wrk -t2 -c256 at full speed for --duration seconds, POSTing unique request_ids
#      (bench/gateway.lua); accepted/s counts 202s only, other statuses are listed; then
#      the queue's growth and the ledger's queued rows are checked against the 202s;
#   3. http_rate_bench: a fixed 2,000 requests/s offered open loop (latency from each
#      request's due time, so a stall is not hidden), p50/p90/p99/max; then a tenth of
#      that rate for 5 s (the path's latency floor, for information);
#   4. the gateway's VmHWM and VmRSS.
# During 2 and 3 it also prints the CPU the gateway, RabbitMQ, PostgreSQL and the two
# services used (cores, and CPU ms per 1,000 answered requests): on a shared machine the
# throughput moves with the neighbours' load, the CPU per request much less.
# The last line is the summary against the bar: >= 10,000 accepted/s for the whole run,
# p99 < 25 ms at 2,000 req/s offered, RSS < 64 MiB.
#
#   bench/gateway.sh [--duration S] [--queue-type quorum|classic] [--users N]
#                    [--connections C] [--rate R] [--rate-duration S] [--perf FILE]
#                    [--synchronous-commit on|off]
#
# --perf FILE: also records the gateway with `perf record -g` during the middle 10 s of
# the wrk run and writes the top of `perf report` to FILE (perf.data next to it).
# --synchronous-commit off: PostgreSQL's commits stop waiting for the WAL flush (a
# diagnostic: it shows what the ledger's commit latency costs; not the bar's setting).
# NOTIFS_BENCH_BUILD: the build directory (default build/bench-gateway). The gateway
# inherits the environment, so its own settings can be tried: LEDGER_WRITERS=4 bench/...
# NOTIFS_BENCH_KEEP=1 keeps the logs (wrk, rate, /metrics, services) in /tmp.
# Exit status: 0 when the bar is met, 1 otherwise, 2 on bad usage.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

duration=30
queue_type=${RABBITMQ_QUEUE_TYPE:-quorum}
users=1000
connections=256
threads=2
rate=2000
rate_duration=20
rate_connections=32
perf_out=
synchronous_commit=on
usage() {
  sed -n '/^#   bench\/gateway.sh/,/^# --perf/p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
while (($#)); do
  case $1 in
    --duration) duration=${2:?}; shift 2 ;;
    --queue-type) queue_type=${2:?}; shift 2 ;;
    --users) users=${2:?}; shift 2 ;;
    --connections) connections=${2:?}; shift 2 ;;
    --rate) rate=${2:?}; shift 2 ;;
    --rate-duration) rate_duration=${2:?}; shift 2 ;;
    --perf) perf_out=${2:?}; shift 2 ;;
    --synchronous-commit) synchronous_commit=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    *) echo "bench/gateway.sh: unknown argument $1" >&2; usage ;;
  esac
done
for n in duration users connections rate rate_duration; do
  [[ ${!n} =~ ^[1-9][0-9]*$ ]] || { echo "bench/gateway.sh: --${n/_/-} must be a whole number > 0" >&2; exit 2; }
done
[[ $synchronous_commit == on || $synchronous_commit == off ]] ||
  { echo "bench/gateway.sh: --synchronous-commit is on or off" >&2; exit 2; }
[[ $queue_type == quorum || $queue_type == classic ]] ||
  { echo "bench/gateway.sh: --queue-type is quorum or classic" >&2; exit 2; }

build=${NOTIFS_BENCH_BUILD:-build/bench-gateway}
token=bench-service-token-0123456789
api_key=bench-gateway-key-0123456789abcdef
nonce=$(date +%s)-$$

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
bench_require wrk curl epmd "$rabbit_bin/rabbitmq-server" "$pg_bin/initdb" "$pg_bin/pg_ctl" \
  "$pg_bin/psql"
[[ -z $perf_out ]] || command -v perf >/dev/null ||
  { echo "bench/gateway.sh: --perf needs perf" >&2; exit 2; }

perf_pid=
bench_before_teardown() {
  [[ -n $perf_pid ]] && kill -INT "$perf_pid" 2>/dev/null && wait "$perf_pid" 2>/dev/null
}

bench_build "$build" api_gateway user_service template_service amqp_publish_bench http_rate_bench
user_bin=$build/services/user_service/user_service
template_bin=$build/services/template_service/template_service
gateway_bin=$build/services/api_gateway/api_gateway
publish_bench=$build/bench/amqp_publish_bench
rate_bench=$build/bench/http_rate_bench

# RabbitMQ boots while PostgreSQL starts. The ledger's commits are part of what is
# measured, so they stay durable (fsync and synchronous_commit on, as in production)
# unless asked.
bench_run_dir gateway
start_rabbitmq
start_postgres "$synchronous_commit" users templates gateway
wait_rabbitmq

# --- services ----------------------------------------------------------------------------

user_port=$(free_port)
template_port=$(free_port)
gateway_port=$(free_port)
user_url=http://127.0.0.1:$user_port
template_url=http://127.0.0.1:$template_port
gateway_url=http://127.0.0.1:$gateway_port
say "starting user_service :$user_port, template_service :$template_port"
api_gateway_pid=''
user_service_pid='' template_service_pid=''
start_service user_service "$user_bin" "$user_port" users
start_service template_service "$template_bin" "$template_port" templates
wait_ready user_service "$user_url"
wait_ready template_service "$template_url"

seed_users "$user_url" "$template_url" "$users"

say "starting api_gateway :$gateway_port (RABBITMQ_QUEUE_TYPE=$queue_type)"
start_service api_gateway "$gateway_bin" "$gateway_port" gateway \
  GATEWAY_API_KEYS="$api_key" RABBITMQ_URL="$rabbitmq_url" RABBITMQ_QUEUE_TYPE="$queue_type" \
  USER_SERVICE_URL="$user_url" TEMPLATE_SERVICE_URL="$template_url" LOG_LEVEL=info
wait_ready api_gateway "$gateway_url"
# Its effective settings (logged at info; nothing per request is).
gateway_config=$(grep -m1 -o 'starting config: .*' "$run_dir/log/api_gateway.log" || true)

body='{"notification_type":"email","user_id":"{user_id}","template_code":"welcome_email","variables":{"name":"Ada","link":"https://example.com/start"},"request_id":"{request_id}","priority":5,"metadata":{"campaign":"bench"}}'
post_args=(--url "$gateway_url/api/v1/notifications" --method POST
  --header "Authorization: Bearer $api_key" --body "$body" --users "$run_dir/users.txt")

# --- state readers -----------------------------------------------------------------------

queue_depth() {  # the messages in email.queue
  "$run_dir/rabbitmqctl" -q list_queues name messages 2>/dev/null |
    awk '$1 == "email.queue" { print $2; found = 1 } END { if (!found) print 0 }'
}
queue_bytes() {
  "$run_dir/rabbitmqctl" -q list_queues name message_bytes message_bytes_ready 2>/dev/null |
    awk '$1 == "email.queue" { print ($2 > $3 ? $2 : $3); found = 1 } END { if (!found) print 0 }'
}
# The queue's figures are statistics the node publishes every few seconds: wait until
# they reach the expected count or stop moving.
settled_depth() {  # expected
  local depth last=-1 i
  for ((i = 0; i < 30; i++)); do
    depth=$(queue_depth)
    ((depth >= $1)) && break
    ((depth == last)) && ((i >= 6)) && break
    last=$depth
    sleep 1
  done
  echo "$depth"
}
ledger_count() {  # request_id prefix, status
  "${psql[@]}" -d gateway -c \
    "SELECT count(*) FROM notifications WHERE request_id LIKE '$1%' AND status = '$2'"
}

# Where the machine's two cores went per request.
cpu_snapshot() {  # -> "gateway rabbitmq postgres services" in clock ticks
  echo "$(cpu_ticks "$api_gateway_pid") $(cpu_ticks "$beam_pid") $(postgres_ticks)" \
    "$(cpu_ticks "$user_service_pid" "$template_service_pid")"
}
# cpu_report BEFORE AFTER SECONDS REQUESTS -> one line of cores used and CPU ms per 1000
cpu_report() {
  awk -v b="$1" -v a="$2" -v s="$3" -v n="$4" -v hz="$(getconf CLK_TCK)" 'BEGIN {
    split(b, x, " "); split(a, y, " "); split("gateway rabbitmq postgres user+template", name, " ")
    line = ""; total = 0
    for (i = 1; i <= 4; i++) {
      sec = (y[i] - x[i]) / hz; total += sec
      line = line sprintf("%s %.2f cores (%.0f ms/1k req)  ", name[i], sec / s, (n > 0) ? sec * 1e6 / n : 0)
    }
    printf("%stotal %.2f cores (%.0f ms/1k req)", line, total / s, (n > 0) ? total * 1e6 / n : 0)
  }'
}

# --- warm-up: one POST per user, so every lookup is cached ---------------------------------

say "warming the gateway's cache: one POST per user"
"$rate_bench" "${post_args[@]}" --rate 500 --duration "$(awk -v n="$users" 'BEGIN { printf "%.3f", n / 500 }')" \
  --connections 8 --request-prefix "warm-$nonce" >"$run_dir/log/warm.txt"
warm_202=$(grep -o 'status_202=[0-9]*' "$run_dir/log/warm.txt" | head -n1 | cut -d= -f2)
[[ ${warm_202:-0} -eq $users ]] || { cat "$run_dir/log/warm.txt" >&2; die "warm-up: ${warm_202:-0} of $users answered 202"; }

# --- 1. broker ceiling ---------------------------------------------------------------------

say "broker ceiling: amqp_publish_bench --queue-type $queue_type"
"$publish_bench" --url "$rabbitmq_url" --queue-type "$queue_type" --messages 50000 --rounds 2 \
  --sync-messages 500 >"$run_dir/log/publish_bench.txt" 2>&1 || {
  cat "$run_dir/log/publish_bench.txt" >&2
  die "amqp_publish_bench failed"
}
broker_ceiling=$(awk '/^best:/ { for (i = 1; i <= NF; i++) if ($i == "(a)") { print $(i + 1); exit } }' \
  "$run_dir/log/publish_bench.txt")
[[ -n $broker_ceiling ]] || { cat "$run_dir/log/publish_bench.txt" >&2; die "no ceiling in the output"; }

# --- 2. wrk at full speed ------------------------------------------------------------------

depth_before=$(settled_depth "$users")
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "wrk -t$threads -c$connections -d${duration}s POST /api/v1/notifications (queue holds $depth_before)"
if [[ -n $perf_out ]]; then
  (
    sleep "$(((duration - 10) / 2 > 0 ? (duration - 10) / 2 : 0))"
    exec perf record -g -F 499 -p "$api_gateway_pid" -o "${perf_out%.*}.perf.data" -- sleep 10
  ) >"$run_dir/log/perf.log" 2>&1 &
  perf_pid=$!
fi
pg_commits() { "${psql[@]}" -d postgres -c "SELECT xact_commit FROM pg_stat_database WHERE datname = 'gateway'"; }
commits_before=$(pg_commits)
cpu_before=$(cpu_snapshot)
wrk -t"$threads" -c"$connections" -d"${duration}s" --timeout 10s -s bench/gateway.lua \
  "$gateway_url" -- "$run_dir/users.txt" "$api_key" "wrk-$nonce" >"$run_dir/log/wrk.txt" 2>&1 || {
  cat "$run_dir/log/wrk.txt" >&2
  die "wrk failed"
}
cpu_after=$(cpu_snapshot)
sleep 1  # the statistics collector reports on its own clock
commits_wrk=$(($(pg_commits) - commits_before))
if [[ -n $perf_pid ]]; then
  wait "$perf_pid" || true
  perf_pid=
  perf report -i "${perf_out%.*}.perf.data" --no-children --percent-limit 0.7 --stdio \
    --sort dso,symbol -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | sed -E 's/ {2,}/  /g' |
    cut -c1-200 | head -n 60 >"$perf_out" || true
  say "perf: top of the profile in $perf_out"
fi
# What the gateway saw: mean publish-confirm wait and cache use, from its own /metrics.
curl -fsS "$gateway_url/metrics" >"$run_dir/log/metrics-after-wrk.txt" 2>/dev/null || true
gateway_view=$(awk '
  /^notifs_gateway_publish_confirm_seconds_sum/ { sum += $NF }
  /^notifs_gateway_publish_confirm_seconds_count/ { count += $NF }
  /^notifs_gateway_cache_lookups_total/ { match($0, /result="[a-z_]*"/); r = substr($0, RSTART + 8, RLENGTH - 9); cache[r] += $NF }
  END {
    printf "mean publish-confirm wait %.2f ms over %d publishes; cache lookups:", count ? 1000 * sum / count : 0, count
    for (r in cache) printf " %s=%d", r, cache[r]
  }' "$run_dir/log/metrics-after-wrk.txt")
wrk_duration_s=$(awk '/^DURATION_US/ { printf "%.3f", $2 / 1e6 }' "$run_dir/log/wrk.txt")
wrk_202=$(awk '$1 == "STATUS" && $2 == 202 { print $3; f = 1 } END { if (!f) print 0 }' "$run_dir/log/wrk.txt")
wrk_other=$(awk '$1 == "STATUS" && $2 != 202 { printf "%s%s=%s", sep, $2, $3; sep = " " }' "$run_dir/log/wrk.txt")
wrk_errors=$(awk '/^ERRORS/ { sub(/^ERRORS /, ""); print }' "$run_dir/log/wrk.txt")
wrk_latency=$(awk '/^LATENCY_MS/ { sub(/^LATENCY_MS /, ""); print }' "$run_dir/log/wrk.txt")
accepted=$(awk -v n="$wrk_202" -v s="$wrk_duration_s" 'BEGIN { printf "%.0f", n / s }')
wrk_cpu=$(cpu_report "$cpu_before" "$cpu_after" "$wrk_duration_s" "$wrk_202")

depth_after=$(settled_depth $((depth_before + wrk_202)))
queue_growth=$((depth_after - depth_before))
ledger_queued=$(ledger_count "wrk-$nonce-" queued)
ledger_pending=$(ledger_count "wrk-$nonce-" pending)
avg_message=$(awk -v b="$(queue_bytes)" -v n="$depth_after" 'BEGIN { if (n > 0 && b > 0) printf "%.0f B", b / n; else print "n/a" }')
# wrk stops with up to one request per connection still in flight: those are answered (and
# queued) after it stopped counting.
counts_ok=PASS
((ledger_queued == queue_growth && queue_growth >= wrk_202 &&
  queue_growth <= wrk_202 + connections)) || counts_ok=FAIL

# --- 3. fixed offered rate -----------------------------------------------------------------

# In a running suite the workers drain the queue and autovacuum keeps up with the ledger;
# here nothing consumes, and wrk just left a backlog of messages and dead tuples whose
# clean-up (quorum queue segments, autovacuum) would run during the latency measurement.
# Settle both first, so the figure is the steady state's.
say "settling before the latency run: purging email.queue, VACUUM ANALYZE, CHECKPOINT"
"$run_dir/rabbitmqctl" -q purge_queue email.queue >/dev/null 2>&1 || say "purge_queue failed (ignored)"
"${psql[@]}" -d gateway -c 'VACUUM ANALYZE notifications' -c 'CHECKPOINT' >/dev/null

say "http_rate_bench: $rate req/s offered for ${rate_duration}s over $rate_connections connections"
cpu_before=$(cpu_snapshot)
"$rate_bench" "${post_args[@]}" --rate "$rate" --duration "$rate_duration" \
  --connections "$rate_connections" --request-prefix "rate-$nonce" >"$run_dir/log/rate.txt" 2>&1 || {
  cat "$run_dir/log/rate.txt" >&2
  die "http_rate_bench failed"
}
cpu_after=$(cpu_snapshot)
rate_result=$(grep '^RESULT' "$run_dir/log/rate.txt")
rate_elapsed=$(sed -n 's/.* answered in \([0-9.]*\) s.*/\1/p' "$run_dir/log/rate.txt")
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" ${rate_result#RESULT }"; }
rate_p50=$(field p50_ms)
rate_p90=$(field p90_ms)
rate_p99=$(field p99_ms)
rate_max=$(field max_ms)
rate_errors=$(field errors)
rate_unanswered=$(field unanswered)
rate_statuses=$(grep -o 'status_[0-9]*=[0-9]*' <<<"$rate_result" | tr '\n' ' ')

# The same at a tenth of the rate for 5 s: the latency floor of the path (ledger commits,
# broker confirm) when nothing queues; printed for information, not part of the bar.
floor_rate=$((rate / 10 > 0 ? rate / 10 : 1))
"$rate_bench" "${post_args[@]}" --rate "$floor_rate" --duration 5 --connections "$rate_connections" \
  --request-prefix "floor-$nonce" >"$run_dir/log/floor.txt" 2>&1 || true
floor_line=$(grep '^latency from due' "$run_dir/log/floor.txt" | sed 's/^latency from due time (ms): *//')

# --- 4. memory -----------------------------------------------------------------------------

hwm_kib=$(process_kib "$api_gateway_pid" VmHWM)
rss_kib=$(process_kib "$api_gateway_pid" VmRSS)
hwm_mib=$(awk -v k="$hwm_kib" 'BEGIN { printf "%.1f", k / 1024 }')
rss_mib=$(awk -v k="$rss_kib" 'BEGIN { printf "%.1f", k / 1024 }')

# --- report --------------------------------------------------------------------------------

ratio=$(awk -v a="$accepted" -v b="$broker_ceiling" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
verdict() { awk "BEGIN { print ($1) ? \"PASS\" : \"FAIL\" }"; }
v_rate=$(verdict "$accepted >= 10000")
v_p99=$(verdict "${rate_p99:-1e9} < 25 && ${rate_errors:-1} == 0 && ${rate_unanswered:-1} == 0")
v_rss=$(verdict "$hwm_kib < 64 * 1024")
overall=FAIL
[[ $v_rate == PASS && $v_p99 == PASS && $v_rss == PASS && $counts_ok == PASS ]] && overall=PASS

echo
echo "gateway benchmark: $(nproc) cores (load average before wrk: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)), RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null)" \
  "($queue_type queues), PostgreSQL 15 (synchronous_commit=$synchronous_commit), $users users cached," \
  "wrk -t$threads -c$connections -d${duration}s"
[[ -n $gateway_config ]] && echo "gateway: ${gateway_config:0:400}"
echo "broker ceiling (amqp_publish_bench, raw pipelined confirms, 512-byte persistent):" \
  "$broker_ceiling msg/s"
grep -E '^(round|best)' "$run_dir/log/publish_bench.txt" | sed 's/^/  /'
echo "wrk: $wrk_202 x 202 in ${wrk_duration_s}s = $accepted accepted/s;" \
  "other statuses: ${wrk_other:-none}; socket errors: $wrk_errors"
echo "wrk latency (closed loop, ms): $wrk_latency"
echo "  CPU during wrk: $wrk_cpu"
echo "  gateway /metrics (warm-up included): $gateway_view"
echo "  ledger: $commits_wrk commits in the gateway database during wrk," \
  "$(awk -v c="$commits_wrk" -v n="$wrk_202" 'BEGIN { if (c > 0) printf "%.1f", n / c; else print "n/a" }') accepted per commit"
echo "check: email.queue grew by $queue_growth (average message ${avg_message})," \
  "ledger has $ledger_queued queued + $ledger_pending pending rows for $wrk_202 x 202: $counts_ok"
echo "open loop at $rate req/s for ${rate_duration}s ($rate_connections connections):" \
  "p50 $rate_p50 ms, p90 $rate_p90 ms, p99 $rate_p99 ms, max $rate_max ms;" \
  "${rate_statuses}errors $rate_errors, unanswered $rate_unanswered"
echo "  CPU during it: $(cpu_report "$cpu_before" "$cpu_after" "${rate_elapsed:-$rate_duration}" "$(field completed)")"
echo "open loop at $floor_rate req/s for 5s (latency floor, ms): ${floor_line:-n/a}"
echo "gateway memory after the runs: VmHWM $hwm_mib MiB, VmRSS $rss_mib MiB"
echo
echo "SUMMARY accepted/s $accepted ($v_rate, bar 10000) | broker ceiling/s $broker_ceiling |" \
  "ratio $ratio | p99 at ${rate}/s $rate_p99 ms ($v_p99, bar 25) |" \
  "RSS $hwm_mib MiB peak, $rss_mib MiB now ($v_rss, bar 64) | counts $counts_ok | $overall"
[[ $overall == PASS ]]
