#!/usr/bin/env bash
# The AMQP benchmarks (Release build) against a RabbitMQ node of their own: a throwaway
# node on loopback ports picked now, started the way scripts/test starts one and torn down
# on exit. With NOTIFS_BENCH_RABBITMQ_URL set, that broker is used instead and nothing is
# started.
#
#   bench/amqp.sh [publish|consume|all] [-- arguments for the benchmark program]
#
#   publish   amqp_publish_bench: AmqpPublisher vs raw rabbitmq-c, confirmed msg/s (default)
#   consume   amqp_consume_bench: Consumer vs raw rabbitmq-c consume loops
#
# NOTIFS_BENCH_BUILD: the build directory (default build/bench).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

which=publish
if (($#)) && [[ $1 != -- ]]; then which=$1; shift; fi
[[ ${1:-} == -- ]] && shift
case $which in
  publish) targets=(amqp_publish_bench) ;;
  consume) targets=(amqp_consume_bench) ;;
  all) targets=(amqp_publish_bench amqp_consume_bench) ;;
  *) echo "bench/amqp.sh: publish, consume or all, not '$which'" >&2; exit 2 ;;
esac

build=${NOTIFS_BENCH_BUILD:-build/bench}
export CCACHE_BASEDIR=$repo CCACHE_NOHASHDIR=1
bash scripts/deps >/dev/null
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNOTIFS_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" --parallel "${NOTIFS_BUILD_JOBS:-2}" --target "${targets[@]}" >/dev/null

run_dir=
epmd_pid=

# Whether /proc/PID/cmdline mentions TEXT: only processes this run started are signalled.
pid_mentions() {
  local pid=$1 text=$2 args=()
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  mapfile -d '' -t args 2>/dev/null <"/proc/$pid/cmdline" || return 1
  [[ " ${args[*]} " == *"$text"* ]]
}

teardown() {
  local rc=$? f pid
  trap - EXIT INT TERM
  set +e
  if [[ -n $run_dir ]]; then
    "$run_dir/rabbitmqctl" stop >/dev/null 2>&1
    # Whatever of the node is left (the VM names its home folder in its command line).
    for f in /proc/[0-9]*/cmdline; do
      pid=${f#/proc/}
      pid=${pid%/cmdline}
      ((pid == $$)) && continue
      pid_mentions "$pid" "$run_dir/" && kill -KILL "$pid" 2>/dev/null
    done
    [[ -n $epmd_pid ]] && pid_mentions "$epmd_pid" epmd && kill -KILL "$epmd_pid" 2>/dev/null
    rm -rf "$run_dir"
  fi
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 12000))
    [[ -z $(ss -Htan "sport = :$port" 2>/dev/null) ]] && { echo "$port"; return; }
  done
}

start_broker() {
  local amqp_port dist_port epmd_port node runas='' i
  amqp_port=$(free_port)
  dist_port=$(free_port)
  epmd_port=$(free_port)
  node=notifs-bench-$$@localhost
  # Under /tmp: the rabbitmq user must reach it, which a private home folder may forbid.
  run_dir=$(mktemp -d "/tmp/notifs-bench.$$.XXXXXX")
  chmod 755 "$run_dir"
  mkdir -p "$run_dir"/{home,mnesia,log}
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$run_dir/home/.erlang.cookie"
  chmod 400 "$run_dir/home/.erlang.cookie"
  printf 'loopback_users.guest = true\nlog.console = false\nlog.file.level = warning\n' \
    >"$run_dir/rabbitmq.conf"
  echo '[].' >"$run_dir/enabled_plugins"
  : >"$run_dir/rabbitmq-env.conf"
  printf '%s=%q\n' \
    HOME "$run_dir/home" \
    ERL_EPMD_PORT "$epmd_port" \
    RABBITMQ_NODENAME "$node" \
    RABBITMQ_NODE_IP_ADDRESS 127.0.0.1 \
    RABBITMQ_NODE_PORT "$amqp_port" \
    RABBITMQ_DIST_PORT "$dist_port" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS "-kernel inet_dist_use_interface {127,0,0,1}" \
    RABBITMQ_MNESIA_BASE "$run_dir/mnesia" \
    RABBITMQ_LOG_BASE "$run_dir/log" \
    RABBITMQ_PID_FILE "$run_dir/rabbit.pid" \
    RABBITMQ_CONFIG_FILE "$run_dir/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE "$run_dir/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE "$run_dir/enabled_plugins" \
    RABBITMQ_CONF_ENV_FILE "$run_dir/rabbitmq-env.conf" >"$run_dir/env"
  ((EUID == 0)) && runas="runuser -u rabbitmq --"
  {
    echo '#!/usr/bin/env bash'
    echo "set -a; . $(printf %q "$run_dir/env"); set +a"
    echo 'cd "$RABBITMQ_LOG_BASE" || exit 1'
    echo "exec $runas env HOME=\"\$HOME\" /usr/lib/rabbitmq/bin/rabbitmqctl -n \"\$RABBITMQ_NODENAME\" \"\$@\""
  } >"$run_dir/rabbitmqctl"
  chmod 755 "$run_dir/rabbitmqctl"
  ((EUID == 0)) && chown -R rabbitmq: "$run_dir"

  epmd -port "$epmd_port" -address 127.0.0.1 >"$run_dir/epmd.log" 2>&1 &
  epmd_pid=$!
  disown "$epmd_pid"
  (
    set -a; . "$run_dir/env"; set +a
    cd "$run_dir/log"
    setsid $runas env HOME="$HOME" /usr/lib/rabbitmq/bin/rabbitmq-server \
      >>"$run_dir/log/startup.log" 2>&1 </dev/null &
  )
  for ((i = 0; i < 600; i++)); do [[ -s $run_dir/rabbit.pid ]] && break; sleep 0.2; done
  "$run_dir/rabbitmqctl" -q wait --timeout 120 "$run_dir/rabbit.pid" >/dev/null 2>&1 || {
    tail -n 30 "$run_dir/log/startup.log" >&2
    echo "bench/amqp.sh: RabbitMQ did not start" >&2
    exit 1
  }
  export NOTIFS_BENCH_RABBITMQ_URL=amqp://guest:guest@127.0.0.1:$amqp_port/%2f
  echo "throwaway RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null) on 127.0.0.1:$amqp_port"
}

[[ -n ${NOTIFS_BENCH_RABBITMQ_URL:-} ]] || start_broker
for target in "${targets[@]}"; do
  echo "== $target"
  "$build/bench/$target" "$@"
done
