# shellcheck shell=bash
# Sourced by the tests that start the whole system with scripts/run (tests/smoke,
# tests/faults, tests/battery): what each of them needs around it.

# Whether something listens on loopback TCP port $1.
listening() { [[ -n $(ss -Htln "sport = :$1" 2>/dev/null) ]]; }

# Removes the run dir $1 and the servers' data, which may live elsewhere (/var/tmp)
# behind its pg and rabbitmq symbolic links (see scripts/run).
run_stack_remove() {
  local dir=$1 link
  for link in "$dir/pg" "$dir/rabbitmq"; do
    [[ -L $link ]] && rm -rf "$(readlink -f "$link")"
  done
  rm -rf "$dir"
}

# A run dir $1 left by an earlier, killed run: stops what it left, then removes it.
run_stack_reset() {
  local dir=$1
  [[ -d $dir ]] || return 0
  NOTIFS_RUN_DIR=$dir "$(dirname "${BASH_SOURCE[0]}")/../scripts/run" stop >/dev/null 2>&1 || true
  run_stack_remove "$dir"
}

# Prints the first of twelve consecutive free ports below the ephemeral range (scripts/run's
# NOTIFS_RUN_PORT_BASE); fails when 200 tries found none.
run_stack_port_base() {
  local try candidate p
  for ((try = 0; try < 200; try++)); do
    candidate=$((20000 + RANDOM % 11900))
    for ((p = candidate; p < candidate + 12; p++)); do listening "$p" && continue 2; done
    echo "$candidate"
    return 0
  done
  return 1
}
