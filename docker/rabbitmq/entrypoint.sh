#!/usr/bin/env bash
# Entrypoint of docker-compose.yml's rabbitmq service: writes the suite's definitions (the
# operator's administrator, one user per service with only its permissions, the topology;
# docker/rabbitmq/definitions.sh says which) and has the broker import them at every boot,
# before it accepts connections; then runs the image's own entrypoint. Passwords come from
# the environment (.env) and are re-applied at each start, so changing one in .env and
# restarting the service is enough.
set -euo pipefail

definitions=/etc/rabbitmq/notifs-definitions.json
(umask 077 && bash /opt/notifs/definitions.sh >"$definitions")
# The image's entrypoint starts the broker as the rabbitmq user.
chown rabbitmq:rabbitmq "$definitions" 2>/dev/null || true
echo "load_definitions = $definitions" >/etc/rabbitmq/conf.d/90-notifs-definitions.conf
# The passwords are in the file now; the broker's environment need not carry them.
for var in $(compgen -e); do
  [[ $var == NOTIFS_RABBITMQ_* ]] && unset "$var"
done
exec docker-entrypoint.sh "$@"
