#!/usr/bin/env bash
# user_service and template_service under wrk (Release build), against a PostgreSQL 15
# cluster of their own, with two ceilings measured in the same run on the same machine:
#   - HTTP: the service's own GET /health (same server, no handler work, no database);
#   - database: pgbench running the service's own SELECT of one user by id (prepared,
#     same client count, same duration).
# Prints req/s and p50/p99 latency of each, the ratios to the ceilings, and PASS/FAIL
# against the issue's bar:
#   GET  /api/v1/users/{id}              >= 5,000 req/s and p99 < 20 ms
#   POST /api/v1/templates/{code}/render >= 10,000 req/s (a cached template)
#
#   bench/services.sh                 wrk -t2 -c32 -d20s per measurement
#   DURATION=5 bench/services.sh      shorter runs (seconds)
#
# NOTIFS_BENCH_BUILD: the build directory (default build/bench-services). The cluster
# lives in a temporary folder, listens on a free loopback port and is removed on exit.
# Exit status: 0 when every bar is met, 1 otherwise.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

duration=${DURATION:-20}
threads=2
connections=32
[[ $duration =~ ^[1-9][0-9]*$ ]] || { echo "bench/services.sh: DURATION must be whole seconds" >&2; exit 2; }
build=${NOTIFS_BENCH_BUILD:-build/bench-services}
token=bench-service-token

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
bench_require wrk curl "$pg_bin/pgbench" "$pg_bin/initdb" "$pg_bin/pg_ctl" "$pg_bin/psql"

bench_build "$build" user_service template_service
user_bin=$build/services/user_service/user_service
template_bin=$build/services/template_service/template_service

# Durability settings only matter to the setup's few writes; the measured paths are reads.
bench_run_dir services
start_postgres off users templates

# --- services ----------------------------------------------------------------------------

# The services size their pool (and worker threads) at two per core by default; printed
# here so the figures say what they were measured with. DATABASE_POOL_SIZE (and
# HTTP_WORKER_THREADS) in the environment override it.
export DATABASE_POOL_SIZE=${DATABASE_POOL_SIZE:-$((2 * $(nproc)))}
user_port=$(free_port)
template_port=$(free_port)
say "starting user_service on :$user_port and template_service on :$template_port"
start_service user_service "$user_bin" "$user_port" users
start_service template_service "$template_bin" "$template_port" templates
wait_ready user_service "http://127.0.0.1:$user_port"
wait_ready template_service "http://127.0.0.1:$template_port"

api() {  # method url [body] -> body on stdout; fails on non-2xx
  local out status data=()
  [[ -n ${3-} ]] && data=(--data-binary "$3")
  out=$(curl -sS -X "$1" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    "${data[@]}" -w '\n%{http_code}' "$2")
  status=${out##*$'\n'}
  out=${out%$'\n'*}
  [[ $status == 2?? ]] || { echo "bench/services.sh: $1 $2 answered $status: $out" >&2; exit 1; }
  printf '%s\n' "$out"
}

user_json=$(api POST "http://127.0.0.1:$user_port/api/v1/users" \
  '{"name":"Ada Lovelace","email":"ada@example.com","push_tokens":["bench-token"],"preferences":{"email":true,"push":true},"locale":"en"}')
user_id=$(grep -o '"id":"[0-9a-f-]*"' <<<"$user_json" | head -n1 | cut -d'"' -f4)
[[ -n $user_id ]] || { echo "bench/services.sh: no user id in $user_json" >&2; exit 1; }
api POST "http://127.0.0.1:$template_port/api/v1/templates" \
  '{"code":"bench_welcome","channel":"email","locale":"en","subject":"Welcome, {{name}}!","body":"Hi {{name}},\n\nStart here: {{link}}\n{{#items}}- {{.}}\n{{/items}}","html_body":"<p>Hi {{name}},</p><p><a href=\"{{link}}\">Start here</a></p><ul>{{#items}}<li>{{.}}</li>{{/items}}</ul>"}' \
  >/dev/null
render_body='{"locale":"en","variables":{"name":"Ada <Lovelace>","link":"https://example.com/start?a=1&b=2","items":["one","two","three"]}}'
# One render before measuring: the bar is for a cached template.
api POST "http://127.0.0.1:$template_port/api/v1/templates/bench_welcome/render" "$render_body" \
  >/dev/null

# --- measurements ------------------------------------------------------------------------

# The requests go through wrk's Lua hooks so every one carries the token (and the body).
cat >"$run_dir/get.lua" <<EOF
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer $token"
EOF
cat >"$run_dir/render.lua" <<EOF
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $token"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[$render_body]]
EOF

# Milliseconds from wrk's "1.23ms" / "850.00us" / "1.01s".
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else printf "nan" }'
}

# run_wrk NAME SCRIPT URL -> sets rps_NAME, p50_NAME, p99_NAME, bad_NAME
run_wrk() {
  local name=$1 script=$2 url=$3 out rps p50 p99 non2xx errors
  say "wrk -t$threads -c$connections -d${duration}s $url"
  out=$(wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s "$script" "$url")
  printf '%s\n' "$out" >"$run_dir/log/wrk-$name.txt"
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  non2xx=$(awk '/Non-2xx or 3xx responses/ {print $NF}' <<<"$out")
  errors=$(awk '/Socket errors/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' <<<"$out")
  printf -v "rps_$name" '%s' "${rps:-0}"
  printf -v "p50_$name" '%s' "$p50"
  printf -v "p99_$name" '%s' "$p99"
  printf -v "bad_$name" '%s' "$((${non2xx:-0} + ${errors:-0}))"
}

# pgbench with the service's own statement, prepared, same clients and duration. Latency
# percentiles come from its per-transaction log (microseconds in the third column).
run_pgbench() {
  local out
  # The statement user_service prepares (services/user_service/src/user_repository.cpp),
  # except that the colons of the time format are quoted ("":"" gives the same text):
  # pgbench would read :MI and :SS as its own variables.
  cat >"$run_dir/select_user.sql" <<'EOF'
SELECT id::text, name, email, locale, array_to_json(push_tokens)::text, email_enabled,
       push_enabled,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24":"MI":"SS.MS"Z"'),
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24":"MI":"SS.MS"Z"')
  FROM users WHERE id = :user_id::uuid;
EOF
  say "pgbench -c$connections -j$threads -M prepared -T$duration (the service's SELECT by id)"
  out=$("$pg_bin/pgbench" -h 127.0.0.1 -p "$pg_port" -U postgres -n -M prepared \
    -c "$connections" -j "$threads" -T "$duration" -D "user_id=$user_id" \
    -f "$run_dir/select_user.sql" -l --log-prefix="$run_dir/pgbench" users 2>&1) || {
    printf '%s\n' "$out" | tail -n 20 >&2
    echo "bench/services.sh: pgbench failed" >&2
    exit 1
  }
  printf '%s\n' "$out" >"$run_dir/log/pgbench.txt"
  rps_pg=$(awk '/^tps = / {print $3; exit}' <<<"$out")
  read -r p50_pg p99_pg < <(cat "$run_dir"/pgbench.* | awk '{print $3}' | sort -n | awk '
    { v[NR] = $1 }
    END {
      if (NR == 0) { print "nan nan"; exit }
      i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
      i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
      printf "%.3f %.3f\n", v[i50] / 1000, v[i99] / 1000
    }')
  bad_pg=$(awk '/number of failed transactions/ {print $5; exit}' <<<"$out")
  bad_pg=${bad_pg:-0}
}

# Filled by run_wrk through printf -v.
rps_health='' p50_health='' p99_health='' bad_health=''
rps_users='' p50_users='' p99_users='' bad_users=''
rps_render='' p50_render='' p99_render='' bad_render=''
user_base=http://127.0.0.1:$user_port
template_base=http://127.0.0.1:$template_port
run_wrk health "$run_dir/get.lua" "$user_base/health"
run_pgbench
run_wrk users "$run_dir/get.lua" "$user_base/api/v1/users/$user_id"
run_wrk render "$run_dir/render.lua" "$template_base/api/v1/templates/bench_welcome/render"

# --- report ------------------------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
meets() {  # rps min [p99 max-p99] [bad]
  awk -v r="$1" -v min="$2" -v p="${3:-0}" -v max="${4:-0}" -v bad="${5:-0}" \
    'BEGIN { ok = (r >= min) && (max == 0 || p < max) && bad == 0; print ok ? "PASS" : "FAIL" }'
}

echo
echo "services benchmark: wrk -t$threads -c$connections -d${duration}s, $(nproc) cores," \
  "PostgreSQL 15 on loopback, DATABASE_POOL_SIZE=$DATABASE_POOL_SIZE" \
  "HTTP_WORKER_THREADS=${HTTP_WORKER_THREADS:-$DATABASE_POOL_SIZE}, SERVICE_TOKEN on"
printf '%-44s %12s %10s %10s %8s\n' measurement req/s p50_ms p99_ms errors
printf '%-44s %12.0f %10s %10s %8s\n' "GET /health (HTTP ceiling)" "$rps_health" "$p50_health" \
  "$p99_health" "$bad_health"
printf '%-44s %12.0f %10s %10s %8s\n' "pgbench SELECT user by id (database ceiling)" "$rps_pg" \
  "$p50_pg" "$p99_pg" "$bad_pg"
printf '%-44s %12.0f %10s %10s %8s\n' "GET /api/v1/users/{id}" "$rps_users" "$p50_users" \
  "$p99_users" "$bad_users"
printf '%-44s %12.0f %10s %10s %8s\n' "POST /api/v1/templates/{code}/render" "$rps_render" \
  "$p50_render" "$p99_render" "$bad_render"
echo
echo "users:  $(ratio "$rps_users" "$rps_pg") of the database ceiling," \
  "$(ratio "$rps_users" "$rps_health") of the HTTP ceiling"
echo "render: $(ratio "$rps_render" "$rps_health") of the HTTP ceiling"
echo
users_verdict=$(meets "$rps_users" 5000 "$p99_users" 20 "$bad_users")
render_verdict=$(meets "$rps_render" 10000 0 0 "$bad_render")
echo "bar: GET user >= 5000 req/s, p99 < 20 ms, no errors: $users_verdict"
echo "bar: render   >= 10000 req/s, no errors:            $render_verdict"
[[ $users_verdict == PASS && $render_verdict == PASS ]]
