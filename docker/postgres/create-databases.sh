#!/usr/bin/env bash
# Runs once, when the postgres container initialises an empty data folder (the image runs
# /docker-entrypoint-initdb.d/*.sh then, and never again): one database per service, so
# that no service can read or migrate another's tables. NOTIFS_DATABASES names them.
set -euo pipefail

databases=${NOTIFS_DATABASES:?NOTIFS_DATABASES must list the databases to create}
for db in ${databases//,/ }; do
  [[ $db =~ ^[a-z_][a-z0-9_]*$ ]] || {
    echo "create-databases: '$db' is not a plain lower-case identifier" >&2
    exit 1
  }
  # CREATE DATABASE cannot run inside a DO block, so the existence check is a query;
  # psql's \gexec runs the CREATE only when the SELECT returns a row.
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
SELECT 'CREATE DATABASE $db OWNER "$POSTGRES_USER"'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$db')\gexec
SQL
  echo "create-databases: $db ready"
done
