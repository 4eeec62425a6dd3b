#!/usr/bin/env bash
# Least privilege of scripts/run's suite (ctest smoke.least_privilege): every process logs in
# to RabbitMQ and PostgreSQL with an account of its own, the whole pipeline works with those
# accounts, and each account is refused what lies outside its job.
#
#   tests/smoke/least_privilege.sh BUILD_DIR
#
#   1. scripts/run --detach --no-build with BUILD_DIR's binaries, on 12 free ports
#   2. who is connected: each service's RabbitMQ connections and PostgreSQL sessions are
#      its own user's, none the administrator's
#   3. it works with them: an email and a push are delivered (gateway publishes, workers
#      consume and report status, the gateway consumes status.queue); an unrenderable email
#      ends `failed` in failed.queue (a worker writes notifications.dlx); with the SMTP
#      catcher gone an email goes `retrying` (a worker writes notifications.retry)
#   4. RabbitMQ refuses (403, with tests/smoke/amqp_probe.py): the gateway consuming
#      email.queue, push.queue or failed.queue, declaring an unrelated queue or exchange,
#      publishing to notifications.status or .retry; a worker consuming the other channel's
#      queue or status.queue, publishing to notifications.direct; a wrong password. The same
#      probe succeeds where the user has the right (so a refusal is the broker's verdict).
#   5. PostgreSQL refuses: a service role connecting to another service's database or to
#      `postgres`, CREATE DATABASE, CREATE ROLE; no service role is superuser, CREATEDB or
#      CREATEROLE; each owns its database and its tables, and reads them.
#   6. scripts/run stop leaves no process.
#
# Keeps its run dir in BUILD_DIR/least-privilege-run (logs kept when it fails).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=SCRIPTDIR/../run_stack.sh
. "$repo/tests/run_stack.sh"
build_dir=$(cd "${1:?usage: least_privilege.sh BUILD_DIR}" && pwd)
run_dir=$build_dir/least-privilege-run
run=$repo/scripts/run
probe=$repo/tests/smoke/amqp_probe.py

say() { printf '[least-privilege] %s\n' "$*"; }
fail() { say "FAIL: $*"; exit 1; }
checks=0
pass() { checks=$((checks + 1)); printf '[least-privilege]   ok  %s\n' "$*"; }

export NOTIFS_RUN_DIR=$run_dir NOTIFS_RUN_BUILD_DIR=$build_dir

run_stack_reset "$run_dir"

base=$(run_stack_port_base) || fail "no 12 free ports in a row"
export NOTIFS_RUN_PORT_BASE=$base

started=0
stopped=0
teardown() {
  local rc=$? f
  trap - EXIT INT TERM
  set +e
  if ((started && !stopped)); then
    say "stopping what scripts/run started"
    "$run" stop >/dev/null
    ((rc != 0)) || rc=1
  fi
  if ((rc != 0)); then
    for f in "$run_dir"/logs/*.log; do
      [[ -s $f ]] || continue
      say "---- last lines of $f"
      tail -n 15 "$f" | sed 's/^/    /'
    done
    say "logs kept in $run_dir/logs"
  else
    run_stack_remove "$run_dir"
    say "PASSED ($checks checks)"
  fi
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. start -----------------------------------------------------------------------------

say "scripts/run --detach --no-build (ports $base..$((base + 11)))"
started=1
out=$("$run" --detach --no-build 2>&1) || { printf '%s\n' "$out"; fail "scripts/run --detach failed"; }
# shellcheck disable=SC1091 # written by scripts/run
. "$run_dir/env"
for var in GATEWAY_RABBITMQ_URL EMAIL_WORKER_RABBITMQ_URL PUSH_WORKER_RABBITMQ_URL \
  GATEWAY_DATABASE_URL USER_SERVICE_DATABASE_URL TEMPLATE_SERVICE_DATABASE_URL \
  WORKER_DATABASE_URL RABBITMQ_URL POSTGRES_URL; do
  [[ -n ${!var:-} ]] || fail "$run_dir/env does not set $var"
done
pass "scripts/run started the suite; env has each service's own URLs"

amqp_host=${RABBITMQ_URL#*@}  # 127.0.0.1:PORT/%2f
as_amqp() {  # USER PASSWORD: a URL on the same broker
  echo "amqp://$1:$2@$amqp_host"
}
user_of() {  # URL: its user name
  local rest=${1#*://}
  echo "${rest%%:*}"
}

admin_api() {
  curl -fsS --max-time 10 -u "$RABBITMQ_USER:$RABBITMQ_PASSWORD" "$RABBITMQ_MANAGEMENT_URL/api/$1"
}
admin_sql() {
  psql "$POSTGRES_URL" -qAtX -v ON_ERROR_STOP=1 -c "$1"
}

# --- 2. who is connected --------------------------------------------------------------------

# The management API lists a connection once the node's statistics include it (seconds).
connections=
for ((i = 0; i < 60; i++)); do
  connections=$(admin_api connections | python3 -c '
import json, sys
for c in json.load(sys.stdin):
    print(c["user"], (c.get("client_properties") or {}).get("connection_name", "?"))')
  grep -q " api_gateway" <<<"$connections" && grep -q " notification_worker email" <<<"$connections" &&
    grep -q " notification_worker push" <<<"$connections" && break
  sleep 0.5
done
expect_connections() {  # connection-name-prefix user
  local lines
  lines=$(grep -E "^[^ ]+ $1" <<<"$connections" || true)
  [[ -n $lines ]] || fail "no RabbitMQ connection named '$1*':"$'\n'"$connections"
  if grep -qv "^$2 " <<<"$lines"; then
    fail "a '$1' connection is not user $2's:"$'\n'"$lines"
  fi
  pass "RabbitMQ: every '$1' connection logs in as $2 ($(wc -l <<<"$lines"))"
}
expect_connections "api_gateway" "$(user_of "$GATEWAY_RABBITMQ_URL")"
expect_connections "notification_worker email" "$(user_of "$EMAIL_WORKER_RABBITMQ_URL")"
expect_connections "notification_worker push" "$(user_of "$PUSH_WORKER_RABBITMQ_URL")"
if grep -q "^$RABBITMQ_USER " <<<"$connections"; then
  fail "a connection uses the administrator $RABBITMQ_USER:"$'\n'"$connections"
fi
pass "RabbitMQ: no service uses the administrator account"

sessions=$(admin_sql "SELECT datname || ' ' || usename FROM pg_stat_activity
  WHERE datname LIKE 'notifs\_%' AND pid <> pg_backend_pid() ORDER BY 1")
for pair in "notifs_gateway $(user_of "$GATEWAY_DATABASE_URL")" \
  "notifs_users $(user_of "$USER_SERVICE_DATABASE_URL")" \
  "notifs_templates $(user_of "$TEMPLATE_SERVICE_DATABASE_URL")" \
  "notifs_worker $(user_of "$WORKER_DATABASE_URL")"; do
  db=${pair% *}
  lines=$(grep "^$db " <<<"$sessions" || true)
  [[ -n $lines ]] || fail "no session on $db:"$'\n'"$sessions"
  grep -qvx "$pair" <<<"$lines" && fail "a session on $db is not ${pair#* }'s:"$'\n'"$lines"
  pass "PostgreSQL: every session on $db is role ${pair#* }'s"
done

# --- 3. the pipeline works with these accounts -------------------------------------------

send() {  # type template variables-json: the notification_id of the 202
  local response id
  response=$(curl -sS --max-time 10 -X POST "$GATEWAY_URL/api/v1/notifications" \
    -H "Authorization: Bearer $API_KEY" -H 'Content-Type: application/json' \
    -d "{\"notification_type\":\"$1\",\"user_id\":\"$DEMO_USER_ID\",\"template_code\":\"$2\",\"variables\":$3,\"request_id\":\"lp-$1-$2-$RANDOM$RANDOM\"}")
  id=$(grep -o '"notification_id":"[0-9a-f-]*"' <<<"$response" | cut -d'"' -f4 || true)
  [[ -n $id ]] || fail "POST $1 $2 answered: $response"
  echo "$id"
}
status_of() {
  curl -sS --max-time 5 -H "Authorization: Bearer $API_KEY" \
    "$GATEWAY_URL/api/v1/notifications/$1" | grep -o '"status":"[a-z]*"' | cut -d'"' -f4 || true
}
wait_status() {  # id wanted seconds
  local deadline=$((SECONDS + $3)) state=
  while ((SECONDS < deadline)); do
    state=$(status_of "$1")
    [[ $state == "$2" ]] && return 0
    sleep 0.5
  done
  fail "notification $1 is '$state', not $2, after $3 s"
}

email=$(send email welcome_email '{"name":"Ada","link":"https://example.com/start"}')
push=$(send push welcome_push '{"name":"Ada"}')
wait_status "$email" delivered 60
grep -lqF "$email" "$run_dir"/mail/* 2>/dev/null || fail "no email with $email in $run_dir/mail"
pass "an email went gateway -> email.queue -> email worker -> SMTP, status delivered"
wait_status "$push" delivered 60
grep -qF "$push" "$run_dir/logs/push-provider.log" || fail "the push provider never saw $push"
pass "a push went gateway -> push.queue -> push worker -> provider, status delivered"

# welcome_email needs name and link: the render is refused for good, so the worker
# dead-letters the message itself (a publish to notifications.dlx).
unrenderable=$(send email welcome_email '{}')
wait_status "$unrenderable" failed 60
# The management API's counts lag a few seconds behind.
failed_depth=0
for ((i = 0; i < 30 && failed_depth < 1; i++)); do
  ((i == 0)) || sleep 0.5
  failed_depth=$(admin_api queues/%2f/failed.queue |
    python3 -c 'import json,sys; print(json.load(sys.stdin).get("messages") or 0)')
done
((failed_depth >= 1)) || fail "failed.queue is empty after $unrenderable failed"
pass "an unrenderable email ended failed, in failed.queue (worker writes notifications.dlx)"

# --- 4. RabbitMQ: refused outside each user's permissions ---------------------------------

expect_amqp() {  # allowed|refused URL operation args...
  local want=$1 url=$2 answer
  shift 2
  answer=$(python3 "$probe" "$url" "$@" 2>&1) || true
  case $want in
    allowed) [[ $answer == allowed ]] || fail "$(user_of "$url") $*: expected allowed, got: $answer" ;;
    refused) [[ $answer == "refused 403 "* ]] || fail "$(user_of "$url") $*: expected a 403, got: $answer" ;;
  esac
  pass "RabbitMQ $(user_of "$url") $*: $want"
}
gateway=$GATEWAY_RABBITMQ_URL
email_worker=$EMAIL_WORKER_RABBITMQ_URL
push_worker=$PUSH_WORKER_RABBITMQ_URL

# What each may do, with the same probe (harmless: existing objects, same arguments).
expect_amqp allowed "$gateway" declare-exchange notifications.direct
expect_amqp allowed "$gateway" bind status.queue notifications.status status
expect_amqp allowed "$email_worker" declare-exchange notifications.retry
expect_amqp allowed "$push_worker" declare-exchange notifications.status
expect_amqp allowed "$RABBITMQ_URL" declare-queue "lp-probe-$$"
expect_amqp allowed "$RABBITMQ_URL" delete-queue "lp-probe-$$"

expect_amqp refused "$gateway" consume email.queue
expect_amqp refused "$gateway" consume push.queue
expect_amqp refused "$gateway" consume failed.queue
expect_amqp refused "$gateway" purge-queue email.queue
expect_amqp refused "$gateway" declare-queue "lp-unrelated-$$"
expect_amqp refused "$gateway" declare-exchange "lp-unrelated-$$"
expect_amqp refused "$gateway" publish notifications.status status
expect_amqp refused "$gateway" publish notifications.retry email.retry.1
expect_amqp refused "$email_worker" consume push.queue
expect_amqp refused "$email_worker" consume status.queue
expect_amqp refused "$email_worker" publish notifications.direct email
expect_amqp refused "$email_worker" declare-queue "lp-unrelated-$$"
expect_amqp refused "$push_worker" consume email.queue
expect_amqp refused "$push_worker" consume failed.queue
expect_amqp refused "$push_worker" publish notifications.direct push
expect_amqp refused "$(as_amqp "$(user_of "$gateway")" wrong-password)" login

# --- 5. PostgreSQL: refused outside each role's database ----------------------------------

expect_sql() {  # allowed|refused URL sql
  local want=$1 url=$2 sql=$3 answer rc=0
  answer=$(PGCONNECT_TIMEOUT=10 psql "$url" -qAtX -v ON_ERROR_STOP=1 -c "$sql" 2>&1) || rc=$?
  case $want in
    allowed) ((rc == 0)) || fail "$(user_of "$url") on ${url##*/}: '$sql' failed: $answer" ;;
    refused)
      ((rc != 0)) || fail "$(user_of "$url") on ${url##*/}: '$sql' was allowed: $answer"
      [[ $answer == *"permission denied"* || $answer == *"must be superuser"* ]] || fail "$(user_of "$url"): '$sql' failed, but not for lack of rights: $answer"
      ;;
  esac
  pass "PostgreSQL $(user_of "$url") on ${url##*/}: ${sql:0:50}: $want"
}
on_db() {  # URL database: the same role on another database
  echo "${1%/*}/$2"
}

expect_sql allowed "$GATEWAY_DATABASE_URL" "SELECT count(*) FROM notifications"
expect_sql allowed "$USER_SERVICE_DATABASE_URL" "SELECT count(*) FROM users"
expect_sql allowed "$TEMPLATE_SERVICE_DATABASE_URL" "SELECT count(*) FROM templates"
expect_sql allowed "$WORKER_DATABASE_URL" "SELECT count(*) FROM sent_notifications"

expect_sql refused "$(on_db "$USER_SERVICE_DATABASE_URL" notifs_gateway)" "SELECT count(*) FROM notifications"
expect_sql refused "$(on_db "$USER_SERVICE_DATABASE_URL" notifs_templates)" "SELECT 1"
expect_sql refused "$(on_db "$GATEWAY_DATABASE_URL" notifs_users)" "SELECT count(*) FROM users"
expect_sql refused "$(on_db "$GATEWAY_DATABASE_URL" notifs_worker)" "SELECT 1"
expect_sql refused "$(on_db "$WORKER_DATABASE_URL" notifs_gateway)" "SELECT 1"
expect_sql refused "$(on_db "$TEMPLATE_SERVICE_DATABASE_URL" postgres)" "SELECT 1"
expect_sql refused "$USER_SERVICE_DATABASE_URL" "CREATE DATABASE lp_probe"
expect_sql refused "$GATEWAY_DATABASE_URL" "CREATE ROLE lp_probe"
expect_sql refused "$WORKER_DATABASE_URL" "ALTER ROLE CURRENT_USER SUPERUSER"

roles="'$(user_of "$GATEWAY_DATABASE_URL")','$(user_of "$USER_SERVICE_DATABASE_URL")','$(user_of "$TEMPLATE_SERVICE_DATABASE_URL")','$(user_of "$WORKER_DATABASE_URL")'"
privileged=$(admin_sql "SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolname IN ($roles)
  AND (rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls)")
[[ -z $privileged ]] || fail "service roles with more than LOGIN: $privileged"
pass "PostgreSQL: no service role is superuser, CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS"
owners=$(admin_sql "SELECT string_agg(datname || '=' || pg_get_userbyid(datdba), ' ' ORDER BY datname)
  FROM pg_database WHERE datname LIKE 'notifs\_%'")
expected="notifs_gateway=$(user_of "$GATEWAY_DATABASE_URL") notifs_templates=$(user_of "$TEMPLATE_SERVICE_DATABASE_URL") notifs_users=$(user_of "$USER_SERVICE_DATABASE_URL") notifs_worker=$(user_of "$WORKER_DATABASE_URL")"
[[ $owners == "$expected" ]] || fail "database owners are '$owners', expected '$expected'"
pass "PostgreSQL: each service database is owned by its service's role"
for url in "$GATEWAY_DATABASE_URL" "$USER_SERVICE_DATABASE_URL" "$TEMPLATE_SERVICE_DATABASE_URL" "$WORKER_DATABASE_URL"; do
  others=$(psql "$url" -qAtX -c "SELECT string_agg(tablename || ':' || tableowner, ' ')
    FROM pg_tables WHERE schemaname = 'public' AND tableowner <> current_user")
  [[ -z $others ]] || fail "tables in ${url##*/} not owned by $(user_of "$url"): $others"
done
pass "PostgreSQL: every table of a service database belongs to its role"

# --- 3, continued: the retry path (last: it stops the SMTP catcher) -----------------------

# With nothing listening on the SMTP port the send fails for now: the worker republishes
# the message to notifications.retry (tier 1) and reports `retrying`.
read -r sink_pid <"$run_dir/pids/smtp-sink.pid"
kill -TERM "$sink_pid"
for ((i = 0; i < 50; i++)); do
  [[ -e /proc/$sink_pid ]] || break
  sleep 0.1
done
retried=$(send email welcome_email '{"name":"Ada","link":"https://example.com/retry"}')
wait_status "$retried" retrying 60
grep -q "delivery retrying .*message_id=$retried" "$run_dir/logs/notification_worker-email.log" ||
  fail "the email worker's log shows no retry of $retried"
pass "with SMTP down an email went retrying (worker writes notifications.retry)"

for f in api_gateway notification_worker-email notification_worker-push user_service template_service; do
  if grep -n -E "ACCESS_REFUSED|permission denied" "$run_dir/logs/$f.log" >&2; then
    fail "$f logged a refusal (above)"
  fi
done
pass "no service logged ACCESS_REFUSED or permission denied"

# --- 6. stop ------------------------------------------------------------------------------

"$run" stop >/dev/null || fail "scripts/run stop failed"
stopped=1
# Processes whose command line names the run dir (the servers, the services).
leftovers() {
  local f pid args=()
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    ((pid == $$ || pid == BASHPID)) && continue
    mapfile -d '' -t args 2>/dev/null <"$f" || continue
    [[ " ${args[*]} " == *"$run_dir/"* ]] && echo "pid $pid: ${args[*]}"
  done
  return 0
}
for ((i = 0; i < 30; i++)); do
  left=$(leftovers)
  [[ -z $left ]] && break
  sleep 0.1
done
[[ -z $left ]] || fail "processes naming $run_dir outlived scripts/run stop: $left"
pass "scripts/run stop left nothing running"
