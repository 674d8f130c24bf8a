-- The PostgreSQL roles and database the platform needs. Idempotent: run it as
-- the superuser when the data directory is first initialised and after every
-- deployment (the Helm chart does both) and it creates what is missing,
-- repairs role attributes and grants, and never changes an existing password
-- (Vault rotates the password of 'vault' itself, so resetting it here would
-- lock Vault out).
--
-- Each password is a psql variable, or, when that variable is not set, the
-- environment variable of the same name in capitals. The environment keeps
-- the passwords out of the process list (the Helm chart's files/apply-roles.sh
-- runs it that way); psql 15 or later is needed for \getenv.
--
--   psql -X -v ON_ERROR_STOP=1 \
--        -v student_api_password=... -v vault_password=... \
--        -v exporter_password=... -f roles.sql
--
--   STUDENT_API_PASSWORD=... VAULT_PASSWORD=... EXPORTER_PASSWORD=... \
--        psql -X -v ON_ERROR_STOP=1 -f roles.sql
--
-- The three passwords come from the KV seeds the Vault bootstrap writes
-- (secret/student-api/db, secret/postgres/vault,
-- secret/observability/postgres-exporter), synced by External Secrets.
-- psql variables do not expand inside DO blocks, so conditionals are written
-- as "select ... \gset" followed by "\if".

\set ON_ERROR_STOP on
-- "already a member" and similar notices are expected on every re-run.
set client_min_messages = warning;

\if :{?student_api_password}
\else
  \getenv student_api_password STUDENT_API_PASSWORD
\endif
\if :{?vault_password}
\else
  \getenv vault_password VAULT_PASSWORD
\endif
\if :{?exporter_password}
\else
  \getenv exporter_password EXPORTER_PASSWORD
\endif

\if :{?student_api_password}
\else
  do $$ begin raise exception 'roles.sql: set student_api_password (psql -v) or STUDENT_API_PASSWORD'; end $$;
\endif
\if :{?vault_password}
\else
  do $$ begin raise exception 'roles.sql: set vault_password (psql -v) or VAULT_PASSWORD'; end $$;
\endif
\if :{?exporter_password}
\else
  do $$ begin raise exception 'roles.sql: set exporter_password (psql -v) or EXPORTER_PASSWORD'; end $$;
\endif

-- student_api_owner owns the application's tables, sequences and indexes.
-- Nobody logs in as it: every login that works on the schema (the static
-- user and each user Vault issues) is a member whose sessions SET ROLE to it,
-- so objects never belong to a short-lived user and dropping that user never
-- fails on, or takes, owned objects.
select not exists (select from pg_roles where rolname = 'student_api_owner') as missing \gset
\if :missing
  create role student_api_owner nologin;
\endif
alter role student_api_owner nologin;

-- The application's database belongs to the group role, which therefore also
-- owns its public schema (pg_database_owner in PostgreSQL 15+). Only members
-- of the group may connect.
select not exists (select from pg_database where datname = 'student_api') as missing \gset
\if :missing
  create database student_api owner student_api_owner;
\endif
alter database student_api owner to student_api_owner;
revoke all on database student_api from public;
grant connect, temporary on database student_api to student_api_owner;

-- student_api: the static login used when the service reads its password
-- from a file or from KV (through External Secrets) instead of asking Vault
-- for dynamic credentials. The role-level "SET role" makes everything its
-- sessions create, migrations included, owned by student_api_owner.
select not exists (select from pg_roles where rolname = 'student_api') as missing \gset
\if :missing
  create role student_api login password :'student_api_password';
\endif
alter role student_api login nocreaterole nocreatedb;
grant student_api_owner to student_api;
alter role student_api set role = 'student_api_owner';

-- vault: the login of Vault's database secrets engine. It creates and drops
-- the short-lived users of database/creds/student-api: CREATEROLE to create
-- them, ADMIN OPTION on the group to make them members, pg_signal_backend to
-- end their sessions before dropping them. Its password is rotated by Vault
-- (database/rotate-root/postgres) right after the connection is configured,
-- so after that only Vault knows it.
select not exists (select from pg_roles where rolname = 'vault') as missing \gset
\if :missing
  create role vault login createrole password :'vault_password';
\endif
alter role vault login createrole nocreatedb;
grant student_api_owner to vault with admin option;
grant pg_signal_backend to vault;

-- postgres_exporter: Prometheus metrics. pg_monitor gives read access to the
-- statistics views and nothing else.
select not exists (select from pg_roles where rolname = 'postgres_exporter') as missing \gset
\if :missing
  create role postgres_exporter login password :'exporter_password';
\endif
alter role postgres_exporter login nocreaterole nocreatedb;
grant pg_monitor to postgres_exporter;
