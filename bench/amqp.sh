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
# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
bash scripts/deps >/dev/null
bench_build "$build" "${targets[@]}"

if [[ -z ${NOTIFS_BENCH_RABBITMQ_URL:-} ]]; then
  bench_require epmd "$rabbit_bin/rabbitmq-server"
  bench_run_dir amqp
  start_rabbitmq
  wait_rabbitmq
  export NOTIFS_BENCH_RABBITMQ_URL=$rabbitmq_url
  echo "throwaway RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null) on ${rabbitmq_url#*@}"
fi
for target in "${targets[@]}"; do
  echo "== $target"
  "$build/bench/$target" "$@"
done
