# Shared start-up of the end-to-end benchmarks (bench/gateway.sh, bench/services.sh,
# bench/amqp.sh, bench/worker.sh); sourced, never run. It provides:
#   say / die                  progress and fatal messages on stderr
#   bench_require TOOL...      exit 2 when a tool is missing
#   bench_build DIR TARGET...  a Release build of the targets (tests off, ccache on)
#   bench_run_dir NAME         a fresh $run_dir under /tmp (logs in $run_dir/log)
#   free_port                  a free loopback port, never one handed out before
#   start_rabbitmq / wait_rabbitmq    a throwaway node in $run_dir/rabbitmq
#   start_postgres SYNC DB...  a throwaway PostgreSQL 15 cluster in $run_dir/pg
#   start_service / wait_ready one of our services, stopped by the teardown
#   seed_users                 scripts/seed's templates and N users in $run_dir/users.txt
#   cpu_ticks / postgres_ticks / process_kib   where the CPU and memory went
# and a teardown on exit that stops only what this run started. A script may define
# bench_before_teardown (called first). The script sets `set -euo pipefail` itself.
# NOTIFS_BENCH_KEEP=1 keeps the logs in $run_dir (a run that ends with a status > 1
# always keeps them).
# shellcheck shell=bash

bench_script=bench/$(basename "$0")
pg_bin=/usr/lib/postgresql/15/bin
rabbit_bin=/usr/lib/rabbitmq/bin

say() { printf '[bench] %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

bench_require() {  # tool...
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || {
      echo "$bench_script: $tool not found (scripts/deps installs it)" >&2
      exit 2
    }
  done
}

bench_build() {  # build-dir target...
  local build=$1
  shift
  export CCACHE_BASEDIR=${repo:?} CCACHE_NOHASHDIR=1
  say "building $* (Release) in $build"
  cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNOTIFS_BUILD_TESTS=OFF \
    >/dev/null
  cmake --build "$build" --parallel "${NOTIFS_BUILD_JOBS:-2}" --target "$@" >/dev/null
}

# --- teardown ----------------------------------------------------------------------------

run_dir=
epmd_pid=
service_pids=()

# Runs a command as postgres when we are root (PostgreSQL refuses to run as root).
as_postgres() {
  if ((EUID == 0)); then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# Whether /proc/PID/cmdline mentions TEXT: only processes this run started are signalled.
pid_mentions() {
  local pid=$1 text=$2 args=()
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  mapfile -d '' -t args 2>/dev/null <"/proc/$pid/cmdline" || return 1
  [[ " ${args[*]} " == *"$text"* ]]
}

bench_teardown() {
  local rc=$? pid f
  trap - EXIT INT TERM
  set +e
  declare -F bench_before_teardown >/dev/null && bench_before_teardown
  for pid in "${service_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  if [[ -n $run_dir ]]; then
    [[ -f $run_dir/pg/data/postmaster.pid ]] &&
      as_postgres "$pg_bin/pg_ctl" -D "$run_dir/pg/data" -m immediate -w -t 20 stop >/dev/null 2>&1
    [[ -x $run_dir/rabbitmqctl ]] && timeout 30 "$run_dir/rabbitmqctl" stop >/dev/null 2>&1
    # Whatever of the node is left (the VM names its home folder in its command line).
    for f in /proc/[0-9]*/cmdline; do
      pid=${f#/proc/}
      pid=${pid%/cmdline}
      ((pid == $$)) && continue
      pid_mentions "$pid" "$run_dir/" && kill -KILL "$pid" 2>/dev/null
    done
    [[ -n $epmd_pid ]] && pid_mentions "$epmd_pid" epmd && kill -KILL "$epmd_pid" 2>/dev/null
    if ((rc > 1)) || [[ ${NOTIFS_BENCH_KEEP:-0} == 1 ]]; then
      say "logs kept in $run_dir"
      rm -rf "$run_dir/pg/data" "$run_dir/rabbitmq/mnesia"
    else
      rm -rf "$run_dir"
    fi
  fi
  exit "$rc"
}
trap bench_teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Under /tmp: the rabbitmq and postgres users must reach it, which a private home folder
# may forbid.
bench_run_dir() {  # name
  run_dir=$(mktemp -d "/tmp/notifs-bench-$1.XXXXXX")
  chmod 755 "$run_dir"
  mkdir -p "$run_dir/log"
}

# A loopback port nobody listens on and this run has not handed out yet: the ones handed
# out are listed in $run_dir/ports, so that $(free_port) remembers them too.
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 12000))
    grep -qx "$port" "$run_dir/ports" 2>/dev/null && continue
    [[ -z $(ss -Htan "sport = :$port" 2>/dev/null) ]] && break
  done
  echo "$port" >>"$run_dir/ports"
  echo "$port"
}

# --- RabbitMQ ----------------------------------------------------------------------------

# Boots a node in $run_dir/rabbitmq on loopback ports picked now (as scripts/test does) and
# returns at once, so that PostgreSQL can start meanwhile; wait_rabbitmq waits for it.
# Sets rabbit (its folder), rabbitmq_url and $run_dir/rabbitmqctl (a wrapper that reaches
# this node).
rabbit=
# shellcheck disable=SC2034 # read by the sourcing script
rabbitmq_url=
start_rabbitmq() {
  local amqp_port dist_port epmd_port runas=''
  amqp_port=$(free_port)
  dist_port=$(free_port)
  epmd_port=$(free_port)
  rabbit=$run_dir/rabbitmq
  mkdir -p "$rabbit"/{home,mnesia,log}
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$rabbit/home/.erlang.cookie"
  chmod 400 "$rabbit/home/.erlang.cookie"
  printf 'loopback_users.guest = true\nlog.console = false\nlog.file.level = warning\n' \
    >"$rabbit/rabbitmq.conf"
  echo '[].' >"$rabbit/enabled_plugins"
  : >"$rabbit/rabbitmq-env.conf"
  printf '%s=%q\n' \
    HOME "$rabbit/home" \
    ERL_EPMD_PORT "$epmd_port" \
    RABBITMQ_NODENAME "notifs-bench-$(basename "$0" .sh)-$$@localhost" \
    RABBITMQ_NODE_IP_ADDRESS 127.0.0.1 \
    RABBITMQ_NODE_PORT "$amqp_port" \
    RABBITMQ_DIST_PORT "$dist_port" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS "-kernel inet_dist_use_interface {127,0,0,1}" \
    RABBITMQ_MNESIA_BASE "$rabbit/mnesia" \
    RABBITMQ_LOG_BASE "$rabbit/log" \
    RABBITMQ_PID_FILE "$rabbit/rabbit.pid" \
    RABBITMQ_CONFIG_FILE "$rabbit/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE "$rabbit/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE "$rabbit/enabled_plugins" \
    RABBITMQ_CONF_ENV_FILE "$rabbit/rabbitmq-env.conf" >"$rabbit/env"
  ((EUID == 0)) && runas="runuser -u rabbitmq --"
  {
    echo '#!/usr/bin/env bash'
    echo "set -a; . $(printf %q "$rabbit/env"); set +a"
    # shellcheck disable=SC2016 # expanded by the wrapper
    echo 'cd "$RABBITMQ_LOG_BASE" || exit 1'
    echo "exec $runas env HOME=\"\$HOME\" $rabbit_bin/rabbitmqctl -n \"\$RABBITMQ_NODENAME\" \"\$@\""
  } >"$run_dir/rabbitmqctl"
  chmod 755 "$run_dir/rabbitmqctl"
  ((EUID == 0)) && chown -R rabbitmq: "$rabbit"
  epmd -port "$epmd_port" -address 127.0.0.1 >"$run_dir/log/epmd.log" 2>&1 &
  epmd_pid=$!
  disown "$epmd_pid"
  say "starting RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null) on 127.0.0.1:$amqp_port"
  (
    set -a
    # shellcheck disable=SC1091 # written above
    . "$rabbit/env"
    set +a
    cd "$rabbit/log" || exit 1
    # shellcheck disable=SC2086 # $runas is a command prefix or nothing
    setsid $runas env HOME="$HOME" "$rabbit_bin/rabbitmq-server" \
      >>"$rabbit/log/startup.log" 2>&1 </dev/null &
  )
  # shellcheck disable=SC2034 # read by the sourcing script
  rabbitmq_url=amqp://guest:guest@127.0.0.1:$amqp_port/%2f
}

# Sets beam_pid (the node's VM, for the CPU accounting).
beam_pid=
wait_rabbitmq() {
  local i
  for ((i = 0; i < 600; i++)); do [[ -s $rabbit/rabbit.pid ]] && break; sleep 0.2; done
  "$run_dir/rabbitmqctl" -q wait --timeout 120 "$rabbit/rabbit.pid" >/dev/null 2>&1 || {
    tail -n 30 "$rabbit/log/startup.log" >&2
    die "RabbitMQ did not start"
  }
  # shellcheck disable=SC2034 # read by the sourcing script
  beam_pid=$(cat "$rabbit/rabbit.pid")
}

# --- PostgreSQL --------------------------------------------------------------------------

# A stock PostgreSQL 15 cluster in $run_dir/pg on a free loopback port, with the named
# databases. SYNC is synchronous_commit (on, as in production, when a measured path
# commits). Sets pg (its folder), pg_port, postmaster_pid and psql (an array: the command
# line of a quiet psql; add -d DB).
pg=
pg_port=
postmaster_pid=
psql=()
start_postgres() {  # on|off database...
  local synchronous_commit=$1 db args=()
  shift
  pg=$run_dir/pg
  mkdir -p "$pg/data" "$pg/sock" "$pg/log"
  chmod 700 "$pg/data"
  ((EUID == 0)) && chown postgres: "$pg" "$pg/data" "$pg/sock" "$pg/log"
  pg_port=$(free_port)
  say "starting PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port"
  as_postgres "$pg_bin/initdb" -D "$pg/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
    --no-sync --no-instructions >"$pg/log/initdb.log" 2>&1 || {
    cat "$pg/log/initdb.log" >&2
    exit 1
  }
  cat >>"$pg/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$pg/sock'
max_connections = 200
synchronous_commit = $synchronous_commit
EOF
  as_postgres "$pg_bin/pg_ctl" -D "$pg/data" -l "$pg/log/postgres.log" -w -t 60 start \
    >/dev/null || {
    tail -n 30 "$pg/log/postgres.log" >&2
    exit 1
  }
  postmaster_pid=$(head -n1 "$pg/data/postmaster.pid")
  psql=("$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -qAtX -v ON_ERROR_STOP=1)
  for db in "$@"; do args+=(-c "CREATE DATABASE $db"); done
  ((${#args[@]} == 0)) || "${psql[@]}" -d postgres "${args[@]}"
}

# --- services ----------------------------------------------------------------------------

# Starts NAME (one of ours) in the background with PORT, DATABASE_URL of DATABASE in the
# cluster above (when DATABASE is not "-"), SERVICE_TOKEN=$token, LOG_LEVEL=warn and the
# extra VAR=value settings; its log is $run_dir/log/NAME.log and its pid ${NAME}_pid.
start_service() {  # name binary port database [VAR=value...] [-- argument...]
  local name=$1 bin=$2 port=$3 db=$4 settings=() args=()
  shift 4
  while (($#)) && [[ $1 != -- ]]; do settings+=("$1"); shift; done
  [[ ${1:-} == -- ]] && { shift; args=("$@"); }
  [[ $db == - ]] || settings=("DATABASE_URL=postgresql://postgres@127.0.0.1:$pg_port/$db" "${settings[@]}")
  env PORT="$port" SERVICE_TOKEN="${token:?}" LOG_LEVEL=warn "${settings[@]}" "$bin" "${args[@]}" \
    >"$run_dir/log/$name.log" 2>&1 &
  service_pids+=($!)
  printf -v "${name}_pid" '%s' "$!"
}

wait_ready() {  # name url
  local i
  for ((i = 0; i < 600; i++)); do
    curl -fs "$2/ready" >/dev/null && return 0
    sleep 0.1
  done
  tail -n 30 "$run_dir/log/$1.log" >&2
  die "$1 not ready at $2"
}

# The templates of scripts/seed and N users bench-I@example.com (I = 1..N, locale en,
# email and push on, one push token each), whose ids go to $run_dir/users.txt.
seed_users() {  # user-service-url template-service-url count
  local user_url=$1 template_url=$2 count=$3 i seeded
  say "seeding the templates (scripts/seed) and $count users"
  USER_SERVICE_URL=$user_url TEMPLATE_SERVICE_URL=$template_url SERVICE_TOKEN=${token:?} \
    bash "$repo/scripts/seed" >/dev/null 2>"$run_dir/log/seed.log" || {
    cat "$run_dir/log/seed.log" >&2
    die "scripts/seed failed"
  }
  # One curl process, one keep-alive connection, one POST per user.
  {
    for ((i = 1; i <= count; i++)); do
      ((i > 1)) && echo next
      echo "url = \"$user_url/api/v1/users\""
      echo "header = \"Authorization: Bearer $token\""
      echo 'header = "Content-Type: application/json"'
      printf 'data-binary = "{\\"name\\":\\"Bench User %d\\",\\"email\\":\\"bench-%d@example.com\\",' "$i" "$i"
      printf '\\"push_tokens\\":[\\"bench-token-%d\\"],\\"preferences\\":{\\"email\\":true,\\"push\\":true},\\"locale\\":\\"en\\"}"\n' "$i"
    done
  } >"$run_dir/users.curl"
  curl -sS -K "$run_dir/users.curl" >"$run_dir/users.json"
  grep -o '"id":"[0-9a-f-]\{36\}"' "$run_dir/users.json" | cut -d'"' -f4 >"$run_dir/users.txt"
  seeded=$(wc -l <"$run_dir/users.txt")
  ((seeded == count)) || die "seeded $seeded users of $count (answers in $run_dir/users.json)"
}

# --- where the CPU and memory went -------------------------------------------------------

# CPU clock ticks the processes used so far (children they reaped included).
cpu_ticks() {  # pid...
  local pid total=0 t
  for pid in "$@"; do
    t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}

# The same for the postmaster and its live backends.
postgres_ticks() {
  local backends
  backends=$(ps -o pid= --ppid "$postmaster_pid" | tr '\n' ' ')
  # shellcheck disable=SC2086 # a list of pids
  cpu_ticks "$postmaster_pid" $backends
}

process_kib() {  # pid VmHWM|VmRSS|...
  awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"
}
