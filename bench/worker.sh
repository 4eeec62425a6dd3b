#!/usr/bin/env bash
# notification_worker end to end (Release build) against the issue's bar, in one run on
# this machine: a throwaway RabbitMQ node and PostgreSQL 15 cluster, user_service,
# template_service, api_gateway, an smtp-sink (Debian's postfix) writing one file per
# message to a tmpfs folder, and ONE `notification_worker --channel email`. N seeded users
# are cached by the gateway (one POST each, delivered by the worker too, so its render
# cache, SMTP connections and ledger are warm; those files are then removed). Then:
#   worker_e2e_bench POSTs --count notifications (email, welcome_email, html + text) over
#   --connections keep-alive connections as fast as the gateway answers, records each
#   one's send time and the notification_id of its 202, and waits (at most --wait seconds
#   after the last answer) until every one is in the sink, matched by its Message-ID
#   <notification_id@domain>; a message's receipt time is its file's mtime.
# It prints emails/s delivered (count / (last receipt - first POST)) and over the middle
# 80% of receipts, p50/p90/p99/max from POST to receipt, the POST rate, the CPU of each
# process (cores, and CPU ms per 1,000 emails), the worker's RSS, its
# notifs_worker_messages_total by result and what is left in the queues.
# Then, for information (not the bar): the worker alone. It is stopped, as many
# notifications are queued, and a fresh worker is started on the full queue: its rate
# from its start to the last receipt, without the gateway's intake competing for the
# cores (--perf profiles this part).
# The last line is the summary against the bar: every notification delivered once, and
# >= 2,000 emails/s end to end.
#
#   bench/worker.sh [--count N] [--connections C] [--users N] [--wait S]
#                   [--queue-type quorum|classic] [--perf FILE]
#
# --perf FILE: records the worker alone with `perf record -g` and writes the top of
# `perf report` to FILE (perf.data next to it).
# NOTIFS_BENCH_BUILD: the build directory (default build/bench-worker). The worker and the
# gateway inherit the environment, so their settings can be tried:
# WORKER_CONCURRENCY=512 SMTP_MAX_CONNECTIONS=16 bench/worker.sh
# NOTIFS_BENCH_KEEP=1 keeps the logs (services, worker, /metrics) in /tmp.
# Exit status: 0 when the bar is met, 1 otherwise, 2 on bad usage.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

count=10000
connections=64
users=1000
wait_s=120
queue_type=${RABBITMQ_QUEUE_TYPE:-quorum}
perf_out=
usage() {
  sed -n '/^#   bench\/worker.sh/,/^# --perf/p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
while (($#)); do
  case $1 in
    --count) count=${2:?}; shift 2 ;;
    --connections) connections=${2:?}; shift 2 ;;
    --users) users=${2:?}; shift 2 ;;
    --wait) wait_s=${2:?}; shift 2 ;;
    --queue-type) queue_type=${2:?}; shift 2 ;;
    --perf) perf_out=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    *) echo "bench/worker.sh: unknown argument $1" >&2; usage ;;
  esac
done
for n in count connections users wait_s; do
  [[ ${!n} =~ ^[1-9][0-9]*$ ]] || { echo "bench/worker.sh: --${n%_s} must be a whole number > 0" >&2; exit 2; }
done
[[ $queue_type == quorum || $queue_type == classic ]] ||
  { echo "bench/worker.sh: --queue-type is quorum or classic" >&2; exit 2; }

build=${NOTIFS_BENCH_BUILD:-build/bench-worker}
token=bench-service-token-0123456789
api_key=bench-gateway-key-0123456789abcdef
nonce=$(date +%s)-$$
smtp_sink=/usr/sbin/smtp-sink

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
bench_require curl epmd "$rabbit_bin/rabbitmq-server" "$pg_bin/initdb" "$pg_bin/pg_ctl" \
  "$pg_bin/psql" "$smtp_sink"
[[ -z $perf_out ]] || command -v perf >/dev/null ||
  { echo "bench/worker.sh: --perf needs perf" >&2; exit 2; }

sink_root=
perf_pid=
bench_before_teardown() {
  [[ -n $perf_pid ]] && kill -INT "$perf_pid" 2>/dev/null && wait "$perf_pid" 2>/dev/null
  [[ -n $sink_root ]] && rm -rf "$sink_root"
}

bench_build "$build" api_gateway user_service template_service notification_worker \
  http_rate_bench worker_e2e_bench
user_bin=$build/services/user_service/user_service
template_bin=$build/services/template_service/template_service
gateway_bin=$build/services/api_gateway/api_gateway
worker_bin=$build/services/notification_worker/notification_worker
rate_bench=$build/bench/http_rate_bench
e2e_bench=$build/bench/worker_e2e_bench

# RabbitMQ boots while PostgreSQL starts; commits stay durable, as in production.
bench_run_dir worker
start_rabbitmq
start_postgres on users templates gateway worker
wait_rabbitmq

# --- services ----------------------------------------------------------------------------

user_port=$(free_port)
template_port=$(free_port)
gateway_port=$(free_port)
worker_port=$(free_port)
sink_port=$(free_port)
user_url=http://127.0.0.1:$user_port
template_url=http://127.0.0.1:$template_port
gateway_url=http://127.0.0.1:$gateway_port
worker_url=http://127.0.0.1:$worker_port
user_service_pid='' template_service_pid='' api_gateway_pid='' notification_worker_pid=''

say "starting user_service :$user_port, template_service :$template_port"
start_service user_service "$user_bin" "$user_port" users
start_service template_service "$template_bin" "$template_port" templates
wait_ready user_service "$user_url"
wait_ready template_service "$template_url"
seed_users "$user_url" "$template_url" "$users"

# The sink writes one file per message: on tmpfs when there is one, so that its disk is
# not what is measured. One file name per second and random number (the sink refuses a
# name that exists, so the finer the prefix the rarer a clash).
if [[ -d /dev/shm && -w /dev/shm ]]; then
  sink_root=$(mktemp -d /dev/shm/notifs-bench-sink.XXXXXX)
else
  sink_root=$(mktemp -d "$run_dir/sink.XXXXXX")
fi
sink_dir=$sink_root/mail
mkdir -p "$sink_dir"
sink_user=()
((EUID == 0)) && sink_user=(-u root)
say "starting smtp-sink on 127.0.0.1:$sink_port, writing to $sink_dir"
"$smtp_sink" "${sink_user[@]}" -d "$sink_dir/%H%M%S." "127.0.0.1:$sink_port" 1024 \
  >"$run_dir/log/smtp-sink.log" 2>&1 &
sink_pid=$!
service_pids+=("$sink_pid")
for ((i = 0; i < 100; i++)); do
  [[ -n $(ss -Htln "sport = :$sink_port" 2>/dev/null) ]] && break
  kill -0 "$sink_pid" 2>/dev/null || { cat "$run_dir/log/smtp-sink.log" >&2; die "smtp-sink exited"; }
  sleep 0.05
done
((i < 100)) || die "smtp-sink is not listening on $sink_port"

say "starting api_gateway :$gateway_port (RABBITMQ_QUEUE_TYPE=$queue_type)"
start_service api_gateway "$gateway_bin" "$gateway_port" gateway \
  GATEWAY_API_KEYS="$api_key" RABBITMQ_URL="$rabbitmq_url" RABBITMQ_QUEUE_TYPE="$queue_type" \
  USER_SERVICE_URL="$user_url" TEMPLATE_SERVICE_URL="$template_url" LOG_LEVEL=info
wait_ready api_gateway "$gateway_url"

say "starting notification_worker --channel email :$worker_port"
start_service notification_worker "$worker_bin" "$worker_port" worker \
  CHANNEL=email RABBITMQ_URL="$rabbitmq_url" RABBITMQ_QUEUE_TYPE="$queue_type" \
  TEMPLATE_SERVICE_URL="$template_url" SMTP_URL="smtp://127.0.0.1:$sink_port" \
  SMTP_FROM="Notifs Bench <bench@notifs.example.com>" LOG_LEVEL=info -- --channel email
wait_ready notification_worker "$worker_url"
gateway_config=$(grep -m1 -o 'starting config: .*' "$run_dir/log/api_gateway.log" || true)
worker_config=$(grep -m1 -o 'starting config: .*' "$run_dir/log/notification_worker.log" || true)

body='{"notification_type":"email","user_id":"{user_id}","template_code":"welcome_email","variables":{"name":"Ada","link":"https://example.com/start"},"request_id":"{request_id}","priority":5,"metadata":{"campaign":"bench"}}'
post_args=(--url "$gateway_url/api/v1/notifications" --header "Authorization: Bearer $api_key"
  --body "$body" --users "$run_dir/users.txt")

sink_files() { find "$sink_dir" -maxdepth 1 -type f | wc -l; }
queue_counts() {  # "name=messages ..." of the queues that hold any
  "$run_dir/rabbitmqctl" -q list_queues name messages 2>/dev/null |
    awk '$2 ~ /^[0-9]+$/ && $2 > 0 { printf "%s%s=%s", sep, $1, $2; sep = " " } END { if (!sep) print "none" }'
}
worker_results() {  # notifs_worker_messages_total by result, from the worker's /metrics
  curl -fsS "$worker_url/metrics" 2>/dev/null | awk '
    /^notifs_worker_messages_total\{/ {
      match($0, /result="[a-z_]*"/); r = substr($0, RSTART + 8, RLENGTH - 9)
      n[r] += $NF
    }
    /^notifs_worker_unrecorded_sends_total/ { unrecorded += $NF }
    END {
      split("delivered duplicate retried failed invalid", order, " ")
      for (i = 1; i <= 5; i++) printf "%s=%d ", order[i], n[order[i]]
      printf "unrecorded_sends=%d", unrecorded
    }'
}

# --- warm-up: one POST per user, delivered too ---------------------------------------------

say "warming up: one POST per user (the gateway's cache), delivered by the worker"
"$rate_bench" "${post_args[@]}" --method POST --rate 500 \
  --duration "$(awk -v n="$users" 'BEGIN { printf "%.3f", n / 500 }')" \
  --connections 8 --request-prefix "warm-$nonce" >"$run_dir/log/warm.txt"
warm_202=$(grep -o 'status_202=[0-9]*' "$run_dir/log/warm.txt" | head -n1 | cut -d= -f2)
[[ ${warm_202:-0} -eq $users ]] || { cat "$run_dir/log/warm.txt" >&2; die "warm-up: ${warm_202:-0} of $users answered 202"; }
for ((i = 0; i < 600; i++)); do
  (($(sink_files) >= users)) && break
  sleep 0.1
done
warm_files=$(sink_files)
((warm_files >= users)) ||
  die "warm-up: $warm_files of $users emails arrived in 60 s (worker: $(worker_results); queues: $(queue_counts))"
find "$sink_dir" -maxdepth 1 -type f -delete
results_before=$(worker_results)


# --- 1. end to end: the bar ----------------------------------------------------------------

# Clock ticks of: gateway worker rabbitmq postgres user+template smtp-sink.
cpu_snapshot() {
  echo "$(cpu_ticks "$api_gateway_pid") $(cpu_ticks "$notification_worker_pid")" \
    "$(cpu_ticks "$beam_pid") $(postgres_ticks)" \
    "$(cpu_ticks "$user_service_pid" "$template_service_pid") $(cpu_ticks "$sink_pid")"
}
cpu_report() {  # before after seconds emails
  awk -v b="$1" -v a="$2" -v s="$3" -v n="$4" -v hz="$(getconf CLK_TCK)" 'BEGIN {
    split(b, x, " "); split(a, y, " ")
    split("gateway worker rabbitmq postgres user+template smtp-sink", name, " ")
    total = 0
    for (i = 1; i <= 6; i++) {
      sec = (y[i] - x[i]) / hz; total += sec
      printf("    %-14s %.2f cores  %4.0f ms/1k emails\n", name[i], sec / s, (n > 0) ? sec * 1e6 / n : 0)
    }
    printf("    %-14s %.2f cores  %4.0f ms/1k emails", "total", total / s, (n > 0) ? total * 1e6 / n : 0)
  }'
}
# Commits and rows written (inserted + updated + deleted) so far in the gateway's and the
# worker's databases: what each email costs PostgreSQL, in counts that the neighbours' load
# does not move.
db_writes() {
  "${psql[@]}" -d postgres -F ' ' -c "
    SELECT d.datname, d.xact_commit, d.tup_inserted + d.tup_updated + d.tup_deleted
    FROM pg_stat_database d WHERE d.datname IN ('gateway', 'worker') ORDER BY d.datname" |
    tr '\n' ' '
}
db_report() {  # before after emails
  awk -v b="$1" -v a="$2" -v n="$3" 'BEGIN {
    split(b, x, " "); split(a, y, " ")
    for (i = 1; i <= length(y); i += 3) {
      printf("%s%s %.2f commits, %.2f rows written", (i > 1) ? "; " : "", y[i],
             (y[i + 1] - x[i + 1]) / n, (y[i + 2] - x[i + 2]) / n)
    }
  }'
}
seconds_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
worker_memory() {  # the worker's VmHWM, VmRSS and threads, one line
  awk '$1 == "VmHWM:" { h = $2 } $1 == "VmRSS:" { r = $2 } $1 == "Threads:" { t = $2 }
    END { printf "VmHWM %.1f MiB, VmRSS %.1f MiB, %d threads", h / 1024, r / 1024, t }' \
    "/proc/$notification_worker_pid/status"
}
worker_timing() {  # from the worker's /metrics
  curl -fsS "$worker_url/metrics" 2>/dev/null | awk '
    /^notifs_worker_send_seconds_sum/ { s += $NF } /^notifs_worker_send_seconds_count/ { c += $NF }
    /^notifs_worker_processing_seconds_sum/ { ps += $NF } /^notifs_worker_processing_seconds_count/ { pc += $NF }
    END { printf "mean SMTP send %.1f ms over %d sends, mean processing %.1f ms (since it started)",
          c ? 1000 * s / c : 0, c, pc ? 1000 * ps / pc : 0 }'
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "1. end to end: $count notifications over $connections connections, then waiting for the sink"
cpu_before=$(cpu_snapshot)
db_before=$(db_writes)
started=$(date +%s.%N)
e2e_rc=0
"$e2e_bench" "${post_args[@]}" --count "$count" --connections "$connections" \
  --request-prefix "e2e-$nonce" --sink "$sink_dir" --wait "$wait_s" \
  >"$run_dir/log/e2e.txt" 2>&1 || e2e_rc=$?
ended=$(date +%s.%N)
cpu_after=$(cpu_snapshot)
result=$(grep '^RESULT' "$run_dir/log/e2e.txt" || true)
[[ -n $result ]] || { cat "$run_dir/log/e2e.txt" >&2; die "worker_e2e_bench printed no result (exit $e2e_rc)"; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" ${result#RESULT }"; }
accepted=$(field accepted)
received=$(field received)
double_sends=$(field double_sends)
rate=$(field rate)
middle_rate=$(field middle_rate)
post_rate=$(field post_rate)
p50=$(field p50_ms)
p99=$(field p99_ms)
e2e_cpu=$(cpu_report "$cpu_before" "$cpu_after" "$(seconds_between "$started" "$ended")" "${received:-0}")
e2e_window=$(seconds_between "$started" "$ended")
sleep 1  # the last acks and status events
e2e_results=$(worker_results)
e2e_db=$(db_report "$db_before" "$(db_writes)" "${received:-1}")
e2e_memory=$(worker_memory)
e2e_timing=$(worker_timing)
e2e_queues=$(queue_counts)
curl -fsS "$worker_url/metrics" >"$run_dir/log/worker-metrics-1.txt" 2>/dev/null || true
curl -fsS "$gateway_url/metrics" >"$run_dir/log/gateway-metrics-1.txt" 2>/dev/null || true

# --- 2. the worker alone: started on a full queue --------------------------------------------

# The same number queued while no worker runs, then a fresh worker started: its delivery
# rate without the gateway's intake competing (the gateway still applies the status
# events), and where its time goes (--perf).
say "2. the worker alone: stopping it, queueing $count more, starting a fresh one on the full queue"
kill -TERM "$notification_worker_pid"
wait "$notification_worker_pid" || say "the worker exited with status $? on SIGTERM"
mv "$run_dir/log/notification_worker.log" "$run_dir/log/notification_worker-1.log"
find "$sink_dir" -maxdepth 1 -type f -delete
alone_rc=0
"$e2e_bench" "${post_args[@]}" --count "$count" --connections "$connections" \
  --request-prefix "alone-$nonce" --post-only --ids-out "$run_dir/alone-ids.txt" \
  >"$run_dir/log/alone-post.txt" 2>&1 || alone_rc=$?
((alone_rc == 0)) || { cat "$run_dir/log/alone-post.txt" >&2; die "queueing for the worker-alone run failed"; }
# Nothing to wait for: the gateway answers 202 once the broker has confirmed the message.
since=$(date +%s%N)
started=$(date +%s.%N)
start_service notification_worker "$worker_bin" "$worker_port" worker \
  CHANNEL=email RABBITMQ_URL="$rabbitmq_url" RABBITMQ_QUEUE_TYPE="$queue_type" \
  TEMPLATE_SERVICE_URL="$template_url" SMTP_URL="smtp://127.0.0.1:$sink_port" \
  SMTP_FROM="Notifs Bench <bench@notifs.example.com>" LOG_LEVEL=info -- --channel email
cpu_before=$(cpu_snapshot)  # the new worker counts from 0
if [[ -n $perf_out ]]; then
  # perf follows the threads that exist when it attaches: once the worker is up.
  wait_ready notification_worker "$worker_url"
  perf record -g -F 499 -p "$notification_worker_pid" -o "${perf_out%.*}.perf.data" \
    >"$run_dir/log/perf.log" 2>&1 &
  perf_pid=$!
fi
"$e2e_bench" --ids-in "$run_dir/alone-ids.txt" --sink "$sink_dir" --since "$since" \
  --wait "$wait_s" >"$run_dir/log/alone.txt" 2>&1 || alone_rc=$?
ended=$(date +%s.%N)
cpu_after=$(cpu_snapshot)
if [[ -n $perf_pid ]]; then
  kill -INT "$perf_pid" 2>/dev/null
  wait "$perf_pid" || true
  perf_pid=
  perf report -i "${perf_out%.*}.perf.data" --no-children --percent-limit 0.7 --stdio \
    --sort dso,symbol -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | sed -E 's/ {2,}/  /g' |
    cut -c1-200 | head -n 60 >"$perf_out" || true
  say "perf: top of the profile in $perf_out"
fi
alone_result=$(grep '^RESULT' "$run_dir/log/alone.txt" || true)
alone_field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" ${alone_result#RESULT }"; }
alone_received=$(alone_field received)
alone_rate=$(alone_field rate)
alone_middle=$(alone_field middle_rate)
alone_window=$(seconds_between "$started" "$ended")
alone_cpu=$(cpu_report "$cpu_before" "$cpu_after" "$alone_window" "${alone_received:-0}")
sleep 1
alone_results=$(worker_results)
alone_memory=$(worker_memory)
alone_timing=$(worker_timing)
alone_queues=$(queue_counts)
curl -fsS "$worker_url/metrics" >"$run_dir/log/worker-metrics-2.txt" 2>/dev/null || true

# --- report --------------------------------------------------------------------------------

verdict() { awk "BEGIN { print ($1) ? \"PASS\" : \"FAIL\" }"; }
all_ok=$(verdict "${accepted:-0} == $count && ${received:-0} == $count && ${double_sends:-1} == 0")
v_rate=$(verdict "${rate:-0} >= 2000")
overall=FAIL
[[ $all_ok == PASS && $v_rate == PASS && $e2e_rc == 0 ]] && overall=PASS

echo
echo "worker benchmark: $(nproc) cores (load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg))," \
  "RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null) ($queue_type queues)," \
  "PostgreSQL 15, smtp-sink on $(df --output=fstype "$sink_dir" | tail -n1), $users users cached," \
  "$count notifications over $connections connections, one email worker"
[[ -n $worker_config ]] && echo "worker: ${worker_config:0:500}"
[[ -n $gateway_config ]] && echo "gateway: ${gateway_config:0:300}"
echo "worker messages_total after the warm-up: $results_before"
echo
echo "1. end to end (the bar):"
sed 's/^/  /' "$run_dir/log/e2e.txt"
echo "  CPU from the first POST to the last receipt (${e2e_window} s, $received emails):"
echo "$e2e_cpu"
echo "  PostgreSQL per email (incl. the status events of the last second): $e2e_db"
echo "  worker: $e2e_memory; $e2e_timing"
echo "  worker messages_total: $e2e_results"
echo "  queues holding messages after it: $e2e_queues"
echo
echo "2. the worker alone, started on a queue of $count (POSTed at $(sed -n 's/.* post_rate=\([0-9]*\).*/\1/p' "$run_dir/log/alone-post.txt")/s while it was stopped):"
sed 's/^/  /' "$run_dir/log/alone.txt"
echo "  CPU from the worker's start to the last receipt (${alone_window} s, ${alone_received:-0} emails):"
echo "$alone_cpu"
echo "  worker: $alone_memory; $alone_timing"
echo "  worker messages_total: $alone_results"
echo "  queues holding messages after it: $alone_queues"
echo
echo "SUMMARY emails/s $rate ($v_rate, bar 2000) | middle 80% $middle_rate/s |" \
  "POST->receipt p50 $p50 ms, p99 $p99 ms | POST $post_rate/s |" \
  "delivered $received of $count, double sends $double_sends ($all_ok) |" \
  "worker alone ${alone_rate:-n/a}/s (middle 80% ${alone_middle:-n/a}/s) | $overall"
[[ $overall == PASS ]]
