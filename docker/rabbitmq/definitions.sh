#!/usr/bin/env bash
# Prints the RabbitMQ definitions (JSON) of the suite: the vhost, the operator's
# administrator, one user per process with only the permissions it needs, and the
# contract's topology (CONTRACT.md, "RabbitMQ topology"). The broker imports them at every
# boot (load_definitions), before it accepts connections, so the services find their users
# and queues in place. Used by scripts/run and by docker-compose.yml's rabbitmq service
# (docker/rabbitmq/entrypoint.sh).
#
#   RABBITMQ_QUEUE_TYPE=classic docker/rabbitmq/definitions.sh >definitions.json
#
# Environment (user names and passwords: letters, digits and - _ . ~ only, as they go into
# URLs unescaped):
#   RABBITMQ_QUEUE_TYPE                                      quorum (default) or classic
#   NOTIFS_RABBITMQ_ADMIN_USER, NOTIFS_RABBITMQ_ADMIN_PASSWORD        the operator's account
#   NOTIFS_RABBITMQ_GATEWAY_USER, NOTIFS_RABBITMQ_GATEWAY_PASSWORD            api_gateway
#   NOTIFS_RABBITMQ_EMAIL_WORKER_USER, NOTIFS_RABBITMQ_EMAIL_WORKER_PASSWORD  email worker
#   NOTIFS_RABBITMQ_PUSH_WORKER_USER, NOTIFS_RABBITMQ_PUSH_WORKER_PASSWORD    push worker
#
# Why the topology is declared here, by the operator, and not only by the services: a queue
# with a dead-letter exchange may only be CREATED by a user who may also read it (RabbitMQ
# checks read on the queue and write on the exchange then), and the gateway must not be
# able to read email.queue. The services still redeclare everything at each connect (the
# contract's idempotent declaration, which also checks that the arguments agree), which
# needs `configure` on the suite's names only. So the arguments below must stay those of
# libs/messaging/src/amqp/topology_declarer.cpp: a difference makes every service refuse
# to start (406 inequivalent arg), which tests/smoke/least_privilege.sh would show.
#
# What each user may do (regular expressions on the names in vhost /):
#   configure  the suite's exchanges and queues (the idempotent redeclaration), nothing else
#   write      every suite queue (a queue.bind needs write on its queue) and the exchanges
#              the process publishes to: gateway notifications.direct (new notifications),
#              notifications.dlx (status events it cannot use); a worker notifications.retry,
#              notifications.dlx and notifications.status
#   read       every suite exchange (a queue.bind needs read on its exchange) and the one
#              queue it consumes: gateway status.queue, a worker its channel's queue
# So the gateway cannot consume email.queue nor forge status events, a worker cannot
# consume the other channel's queue nor publish new notifications, and no service can
# create a queue or exchange outside the suite's names. Their residual power is that of the
# contract's redeclaration: configure on the suite's names also allows deleting them.
set -euo pipefail

queue_type=${RABBITMQ_QUEUE_TYPE:-quorum}
case $queue_type in
  quorum | classic) ;;
  *) echo "definitions.sh: RABBITMQ_QUEUE_TYPE must be quorum or classic, got '$queue_type'" >&2; exit 1 ;;
esac

for var in NOTIFS_RABBITMQ_ADMIN_USER NOTIFS_RABBITMQ_ADMIN_PASSWORD \
  NOTIFS_RABBITMQ_GATEWAY_USER NOTIFS_RABBITMQ_GATEWAY_PASSWORD \
  NOTIFS_RABBITMQ_EMAIL_WORKER_USER NOTIFS_RABBITMQ_EMAIL_WORKER_PASSWORD \
  NOTIFS_RABBITMQ_PUSH_WORKER_USER NOTIFS_RABBITMQ_PUSH_WORKER_PASSWORD; do
  value=${!var:-}
  # Also what makes the JSON below safe without escaping.
  if ! [[ $value =~ ^[A-Za-z0-9._~-]+$ ]]; then
    echo "definitions.sh: $var must be set, with letters, digits and - _ . ~ only" >&2
    exit 1
  fi
done

# Retry tiers of TopologySettings: 3, TTL 5 s * 4^(n-1).
tiers=3
base_ms=5000
factor=4

names_exchanges='notifications\\.(direct|retry|dlx|status)'
names_queues='(email|push)\\.(queue|retry\\.[0-9]+)|failed\\.queue|status\\.queue'

user() {  # name password
  printf '    {"name": "%s", "password": "%s", "tags": []}' "$1" "$2"
}
permission() {  # user configure write read
  printf '    {"user": "%s", "vhost": "/", "configure": "%s", "write": "%s", "read": "%s"}' "$@"
}
exchange() {
  printf '    {"name": "%s", "vhost": "/", "type": "direct", "durable": true, "auto_delete": false, "internal": false, "arguments": {}}' "$1"
}
queue() {  # name arguments-json
  printf '    {"name": "%s", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {%s}}' "$1" "$2"
}
binding() {  # exchange queue key
  printf '    {"source": "%s", "vhost": "/", "destination": "%s", "destination_type": "queue", "routing_key": "%s", "arguments": {}}' "$@"
}
# Dead-lettering of a quorum queue: at-least-once, which needs reject-publish overflow.
dead_letter() {  # exchange key
  printf '"x-dead-letter-exchange": "%s", "x-dead-letter-routing-key": "%s"' "$1" "$2"
  [[ $queue_type == quorum ]] && printf ', "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"'
  return 0
}
join() {  # prints its arguments separated by ",\n"
  local first=1 item
  for item in "$@"; do
    ((first)) || printf ',\n'
    printf '%s' "$item"
    first=0
  done
  printf '\n'
}

everything="^($names_exchanges|$names_queues)\$"
all_exchanges="notifications\\\\.(direct|retry|dlx|status)"

users=("$(user "$NOTIFS_RABBITMQ_ADMIN_USER" "$NOTIFS_RABBITMQ_ADMIN_PASSWORD" | sed 's/"tags": \[\]/"tags": ["administrator"]/')"
  "$(user "$NOTIFS_RABBITMQ_GATEWAY_USER" "$NOTIFS_RABBITMQ_GATEWAY_PASSWORD")"
  "$(user "$NOTIFS_RABBITMQ_EMAIL_WORKER_USER" "$NOTIFS_RABBITMQ_EMAIL_WORKER_PASSWORD")"
  "$(user "$NOTIFS_RABBITMQ_PUSH_WORKER_USER" "$NOTIFS_RABBITMQ_PUSH_WORKER_PASSWORD")")
permissions=("$(permission "$NOTIFS_RABBITMQ_ADMIN_USER" '.*' '.*' '.*')"
  "$(permission "$NOTIFS_RABBITMQ_GATEWAY_USER" "$everything" \
    "^(notifications\\\\.(direct|dlx)|$names_queues)\$" "^($all_exchanges|status\\\\.queue)\$")"
  "$(permission "$NOTIFS_RABBITMQ_EMAIL_WORKER_USER" "$everything" \
    "^(notifications\\\\.(retry|dlx|status)|$names_queues)\$" "^($all_exchanges|email\\\\.queue)\$")"
  "$(permission "$NOTIFS_RABBITMQ_PUSH_WORKER_USER" "$everything" \
    "^(notifications\\\\.(retry|dlx|status)|$names_queues)\$" "^($all_exchanges|push\\\\.queue)\$")")

exchanges=()
for name in notifications.direct notifications.retry notifications.dlx notifications.status; do
  exchanges+=("$(exchange "$name")")
done

queues=()
bindings=()
for channel in email push; do
  if [[ $queue_type == quorum ]]; then
    # Ends crash loops (TopologySettings::delivery_limit).
    extra='"x-delivery-limit": 10'
  else
    extra='"x-max-priority": 10'
  fi
  queues+=("$(queue "$channel.queue" "\"x-queue-type\": \"$queue_type\", $extra, $(dead_letter notifications.dlx "$channel")")")
  bindings+=("$(binding notifications.direct "$channel.queue" "$channel")")
  ttl=$base_ms
  for ((tier = 1; tier <= tiers; tier++)); do
    queues+=("$(queue "$channel.retry.$tier" "\"x-queue-type\": \"$queue_type\", \"x-message-ttl\": $ttl, $(dead_letter notifications.direct "$channel")")")
    bindings+=("$(binding notifications.retry "$channel.retry.$tier" "$channel.retry.$tier")")
    ttl=$((ttl * factor))
  done
done
queues+=("$(queue failed.queue "\"x-queue-type\": \"$queue_type\"")")
queues+=("$(queue status.queue "\"x-queue-type\": \"$queue_type\"")")
bindings+=("$(binding notifications.dlx failed.queue email)")
bindings+=("$(binding notifications.dlx failed.queue push)")
bindings+=("$(binding notifications.status status.queue status)")

printf '{\n  "vhosts": [{"name": "/"}],\n'
printf '  "users": [\n'; join "${users[@]}"; printf '  ],\n'
printf '  "permissions": [\n'; join "${permissions[@]}"; printf '  ],\n'
printf '  "exchanges": [\n'; join "${exchanges[@]}"; printf '  ],\n'
printf '  "queues": [\n'; join "${queues[@]}"; printf '  ],\n'
printf '  "bindings": [\n'; join "${bindings[@]}"; printf '  ]\n}\n'
