-- One service's PostgreSQL role and database, idempotently (psql script; run as a
-- superuser, connected to any database):
--
--   psql -v ON_ERROR_STOP=1 -v db=notifs_gateway -v role=gateway -v password=... \
--        -f docker/postgres/service-role.sql
--
-- Used by scripts/run at every start and by docker/postgres/create-databases.sh (compose).
-- The role may log in, owns its database and that database's public schema (so its
-- migrations can create tables, indexes and functions there), and nothing else: no
-- superuser, no CREATEDB, no CREATEROLE, no replication, and no other database accepts its
-- connections (CONNECT is revoked from PUBLIC on each service database and on `postgres`).
-- The superuser that runs this stays the operator's account.

SELECT format('CREATE ROLE %I LOGIN', :'role')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role')\gexec
-- Again on every run: the password follows the secret, and a role made by hand with more
-- rights loses them.
ALTER ROLE :"role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'password';

-- CREATE DATABASE cannot run in a transaction or a DO block: \gexec runs it only when the
-- SELECT returns a row.
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db')\gexec
ALTER DATABASE :"db" OWNER TO :"role";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;

\connect :"db"
ALTER SCHEMA public OWNER TO :"role";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- A database made before the roles existed (a run dir of an earlier scripts/run) holds
-- tables, sequences and functions the superuser created: they pass to the role, so that
-- its migrations can alter them. Sequences that belong to a column follow their table.
SELECT format('ALTER TABLE public.%I OWNER TO %I', c.relname, :'role')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
  AND pg_get_userbyid(c.relowner) <> :'role'\gexec
SELECT format('ALTER SEQUENCE public.%I OWNER TO %I', c.relname, :'role')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'S' AND pg_get_userbyid(c.relowner) <> :'role'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                    AND d.deptype IN ('a', 'i'))\gexec
SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, :'role')
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> :'role'\gexec
