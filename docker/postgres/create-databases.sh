#!/usr/bin/env bash
# Runs once, when the postgres container initialises an empty data folder (the image runs
# /docker-entrypoint-initdb.d/*.sh then, and never again): one database and one role per
# service (docker/postgres/service-role.sql: the role owns its database and may connect to
# no other; no superuser, CREATEDB or CREATEROLE), so that no service can read or migrate
# another's tables. POSTGRES_USER stays the operator's superuser.
#
# NOTIFS_DATABASES lists database:role pairs; NOTIFS_PASSWORD_<role> is each role's password.
# Idempotent: on a data folder made before the roles existed, run it by hand once:
#   docker compose exec postgres bash /docker-entrypoint-initdb.d/10-create-databases.sh
set -euo pipefail

pairs=${NOTIFS_DATABASES:?NOTIFS_DATABASES must list database:role pairs}
for pair in ${pairs//,/ }; do
  db=${pair%%:*}
  role=${pair#*:}
  if ! [[ $db =~ ^[a-z_][a-z0-9_]*$ && $role =~ ^[a-z_][a-z0-9_]*$ && $pair == *:* ]]; then
    echo "create-databases: '$pair' is not database:role in plain lower-case identifiers" >&2
    exit 1
  fi
  password_var=NOTIFS_PASSWORD_$role
  password=${!password_var:-}
  [[ -n $password ]] || { echo "create-databases: $password_var is not set" >&2; exit 1; }
  psql -v ON_ERROR_STOP=1 -qAtX --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
    -v db="$db" -v role="$role" -v password="$password" -f /opt/notifs/service-role.sql
  echo "create-databases: $db ready, owned by role $role"
done
