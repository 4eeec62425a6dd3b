#!/usr/bin/env bash
# Smoke test of scripts/run (ctest smoke.run), as a new user would try it:
#   scripts/run --detach, then the curl it printed (exactly: .run/curl.sh) answers 202, the
#   email shows up in the catcher's folder, GET /api/v1/notifications/{id} says delivered,
#   the management API lists failed.queue; then scripts/run stop leaves no process behind.
#
#   tests/smoke/run_smoke.sh BUILD_DIR
#
# It reuses BUILD_DIR's binaries (no Release build of its own), keeps its run dir in
# BUILD_DIR/smoke-run and takes 12 free ports in a row, so it runs beside scripts/test's
# servers and beside a developer's own scripts/run. Whatever happens, what it started is
# stopped; a failing run keeps its logs in BUILD_DIR/smoke-run/logs.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=SCRIPTDIR/../run_stack.sh
. "$repo/tests/run_stack.sh"
build_dir=$(cd "${1:?usage: run_smoke.sh BUILD_DIR}" && pwd)
run_dir=$build_dir/smoke-run
run=$repo/scripts/run

say() { printf '[smoke] %s\n' "$*"; }
fail() { say "FAIL: $*"; exit 1; }

export NOTIFS_RUN_DIR=$run_dir NOTIFS_RUN_BUILD_DIR=$build_dir

run_stack_reset "$run_dir"

# Twelve consecutive free ports below the ephemeral range (NOTIFS_RUN_PORT_BASE).
base=$(run_stack_port_base) || fail "no 12 free ports in a row"
export NOTIFS_RUN_PORT_BASE=$base
ports=$(seq "$base" $((base + 11)))

started=0
stopped=0
procs=()
declare -A proc_cmdline=()

cmdline_of() {  # pid: its command line, empty when it is gone (or a zombie)
  local args=()
  mapfile -d '' -t args 2>/dev/null <"/proc/$1/cmdline" || return 0
  printf '%s' "${args[*]}"
}

# Pids the run dir's pid files name, with their command lines (taken while everything
# runs, checked after the stop; a pid is only "still ours" with the same command line).
snapshot_pids() {
  local f pid
  procs=()
  for f in "$run_dir"/pids/*.pid "$run_dir"/rabbitmq/rabbit.pid; do
    # (rabbit.pid: the RabbitMQ VM, a child of the launcher its pid file names.)
    [[ -s $f ]] || continue
    pid=$(head -n1 "$f")
    [[ $pid =~ ^[0-9]+$ ]] || continue
    procs+=("$pid")
    proc_cmdline[$pid]=$(cmdline_of "$pid")
  done
  return 0
}

alive() { [[ -n ${proc_cmdline[$1]} && $(cmdline_of "$1") == "${proc_cmdline[$1]}" ]]; }

# What is still there after a stop: our pids, listeners on our ports, processes naming the run dir.
leftovers() {
  local pid p f line
  for pid in "${procs[@]}"; do
    if alive "$pid"; then echo "pid $pid: ${proc_cmdline[$pid]}"; fi
  done
  for p in $ports; do
    if listening "$p"; then echo "port $p: $(ss -Htlnp "sport = :$p")"; fi
  done
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    ((pid == $$ || pid == BASHPID)) && continue
    line=$(cmdline_of "$pid")
    if [[ $line == *"$run_dir/"* ]]; then echo "pid $pid: $line"; fi
  done
  return 0
}

teardown() {
  local rc=$? f pid
  trap - EXIT INT TERM
  set +e
  if ((started && !stopped)); then
    say "stopping what scripts/run started"
    "$run" stop
    ((rc != 0)) || rc=1
  fi
  if ((rc != 0)); then
    # Nothing may outlive the test, even when the stop itself failed.
    for pid in "${procs[@]}"; do alive "$pid" && kill -KILL "$pid" 2>/dev/null; done
    for f in "$run_dir"/logs/*.log; do
      [[ -s $f ]] || continue
      say "---- last lines of $f"
      tail -n 25 "$f" | sed 's/^/    /'
    done
    say "logs kept in $run_dir/logs"
  else
    run_stack_remove "$run_dir"
    say "PASSED"
  fi
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- start --------------------------------------------------------------------------------

say "scripts/run --detach --no-build (ports $base..$((base + 11)), run dir $run_dir)"
started=1
out=$("$run" --detach --no-build 2>&1) || { printf '%s\n' "$out"; fail "scripts/run --detach failed"; }
printf '%s\n' "$out"
snapshot_pids

[[ -x $run_dir/curl.sh ]] || fail "no $run_dir/curl.sh"
# The curl a user pastes is the one printed: every line of curl.sh after its comment.
while IFS= read -r line; do
  grep -qxF -- "$line" <<<"$out" || fail "curl.sh line not in the printed summary: $line"
done < <(sed -n '3,$p' "$run_dir/curl.sh")

[[ -r $run_dir/env ]] || fail "no $run_dir/env"
# shellcheck disable=SC1091 # written by scripts/run
. "$run_dir/env"
for var in GATEWAY_URL USER_SERVICE_URL TEMPLATE_SERVICE_URL API_KEY SERVICE_TOKEN RABBITMQ_URL \
  DEMO_USER_ID RABBITMQ_MANAGEMENT_URL RABBITMQ_USER RABBITMQ_PASSWORD; do
  [[ -n ${!var:-} ]] || fail "$var is not set by $run_dir/env"
done
"$run" status >/dev/null || fail "scripts/run status says something is not running"

# --- the curl, the email, the status ------------------------------------------------------

response=$(sh "$run_dir/curl.sh") || fail "the printed curl failed: $response"
status_line=$(head -n1 <<<"$response" | tr -d '\r')
[[ $status_line == "HTTP/1.1 202"* ]] || fail "the printed curl answered '$status_line': $response"
id=$(grep -o '"notification_id":"[0-9a-f-]*"' <<<"$response" | cut -d'"' -f4)
[[ -n $id ]] || fail "no notification_id in: $response"
say "202, notification $id"

deadline=$((SECONDS + 60))
mail_file=
state=
while ((SECONDS < deadline)); do
  [[ -n $mail_file ]] || mail_file=$(grep -lF "$id" "$run_dir"/mail/* 2>/dev/null | head -n1 || true)
  state=$(curl -sS --max-time 5 -H "Authorization: Bearer $API_KEY" \
    "$GATEWAY_URL/api/v1/notifications/$id" | grep -o '"status":"[a-z]*"' | cut -d'"' -f4 || true)
  [[ -n $mail_file && $state == delivered ]] && break
  sleep 0.5
done
[[ -n $mail_file ]] || fail "no email with $id in $run_dir/mail within 60 s (status: $state)"
[[ $state == delivered ]] || fail "status of $id is '$state', not delivered, after 60 s"
grep -q '^Subject: Welcome to Notifs, Ada!' "$mail_file" || fail "$mail_file lacks the subject"
grep -q '^To: .*<ada@example.com>' "$mail_file" || fail "$mail_file is not to the demo user"
say "delivered: $mail_file"

queues=$(curl -fsS --max-time 10 -u "$RABBITMQ_USER:$RABBITMQ_PASSWORD" \
  "$RABBITMQ_MANAGEMENT_URL/api/queues") || fail "the management API did not answer"
for q in email.queue push.queue failed.queue status.queue; do
  grep -q "\"name\": *\"$q\"" <<<"$queues" || fail "the management API does not list $q"
done
say "the management API lists the queues, failed.queue included"

# --- stop ---------------------------------------------------------------------------------

"$run" stop || fail "scripts/run stop failed"
stopped=1
# stop returns once each process is gone; a moment's grace for the kernel's bookkeeping.
for ((i = 0; i < 30; i++)); do
  left=$(leftovers)
  [[ -n $left ]] || break
  sleep 0.1
done
[[ -z $left ]] || fail "left running after scripts/run stop:"$'\n'"$left"
again=$("$run" stop 2>&1) || fail "a second scripts/run stop failed: $again"
say "scripts/run stop left nothing running"
