#!/bin/sh
# Runs roles.sql as the superuser with the role passwords of the mounted
# credentials Secret. Two callers:
#   - the image's docker-entrypoint.sh, from /docker-entrypoint-initdb.d, on
#     the first start of an empty data directory (local socket, no wait);
#   - the chart's hook Job after every install and upgrade, over the network
#     (PGHOST set), waiting up to ROLES_WAIT_SECONDS for the server.
# The passwords reach psql through its environment, never its arguments, so
# they do not show in the process list; nothing here prints them.
#
# Environment:
#   CREDENTIALS_DIR          the mounted Secret, one file per key
#                            [/etc/postgres-credentials]
#   ROLES_SQL                the script to run [/opt/postgres/roles.sql]
#   SUPERUSER_PASSWORD_FILE  the superuser's password, for connections that
#                            need one [unset: the local socket needs none]
#   ROLES_WAIT_SECONDS       how long to wait for the server [0: do not wait]
#   PGHOST PGPORT PGUSER PGSSLMODE ...   libpq's own settings
set -eu

credentials_dir="${CREDENTIALS_DIR:-/etc/postgres-credentials}"
roles_sql="${ROLES_SQL:-/opt/postgres/roles.sql}"
wait_seconds="${ROLES_WAIT_SECONDS:-0}"
server="${PGHOST:-local socket}:${PGPORT:-5432}"

log() {
    printf 'apply-roles: %s\n' "$*" >&2
}

# read_secret FILE: prints the file's content; stops on a missing or empty file.
read_secret() {
    if [ ! -s "$1" ]; then
        log "missing or empty: $1"
        exit 1
    fi
    cat -- "$1"
}

if [ "$wait_seconds" -gt 0 ]; then
    waited=0
    until pg_isready --quiet --timeout=5; do
        if [ "$waited" -ge "$wait_seconds" ]; then
            log "PostgreSQL at $server did not accept connections within ${wait_seconds}s"
            exit 1
        fi
        log "waiting for PostgreSQL at $server (${waited}s of ${wait_seconds}s)"
        sleep 5
        waited=$((waited + 5))
    done
fi

STUDENT_API_PASSWORD="$(read_secret "$credentials_dir/STUDENT_API_PASSWORD")"
VAULT_PASSWORD="$(read_secret "$credentials_dir/VAULT_PASSWORD")"
EXPORTER_PASSWORD="$(read_secret "$credentials_dir/EXPORTER_PASSWORD")"
export STUDENT_API_PASSWORD VAULT_PASSWORD EXPORTER_PASSWORD
if [ -n "${SUPERUSER_PASSWORD_FILE:-}" ]; then
    PGPASSWORD="$(read_secret "$SUPERUSER_PASSWORD_FILE")"
    export PGPASSWORD
fi

log "applying $roles_sql on $server"
psql --no-psqlrc --quiet --set=ON_ERROR_STOP=1 \
    --username="${PGUSER:-postgres}" --dbname=postgres --file="$roles_sql"
log "roles applied"
