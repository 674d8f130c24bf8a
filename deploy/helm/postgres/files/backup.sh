#!/bin/sh
# Logical backup of the application database for the standalone mode: one
# pg_dump in custom format into BACKUP_DIR, then the oldest dumps beyond
# BACKUP_KEEP are deleted. A dump is written under a temporary name and
# renamed when complete, so a file named *.dump is always a whole dump.
#
# Restore into a database created by roles.sql (which also creates the roles
# the dump refers to):
#   pg_restore --clean --if-exists --dbname=student_api <file>.dump
#
# Environment:
#   BACKUP_DIR               where dumps are kept [/backups]
#   BACKUP_KEEP              how many dumps to keep [7]
#   BACKUP_DATABASE          the database to dump [student_api]
#   SUPERUSER_PASSWORD_FILE  the superuser's password (required)
#   PGHOST PGPORT PGUSER PGSSLMODE ...   libpq's own settings
set -eu

backup_dir="${BACKUP_DIR:-/backups}"
keep="${BACKUP_KEEP:-7}"
database="${BACKUP_DATABASE:-student_api}"

log() {
    printf 'backup: %s\n' "$*" >&2
}

if [ ! -s "${SUPERUSER_PASSWORD_FILE:-}" ]; then
    log "SUPERUSER_PASSWORD_FILE is unset, missing or empty"
    exit 1
fi
PGPASSWORD="$(cat -- "$SUPERUSER_PASSWORD_FILE")"
export PGPASSWORD

umask 077
name="${database}-$(date -u +%Y%m%dT%H%M%SZ).dump"
partial="$backup_dir/.$name.partial"
trap 'rm -f -- "$partial"' EXIT

log "dumping $database from ${PGHOST:-local socket}:${PGPORT:-5432}"
pg_dump --format=custom --username="${PGUSER:-postgres}" --file="$partial" "$database"
mv -- "$partial" "$backup_dir/$name"
log "wrote $name ($(du -h -- "$backup_dir/$name" | cut -f1))"

# Dump names sort by time, so everything before the newest $keep goes.
count=0
for old in $(find "$backup_dir" -maxdepth 1 -name "${database}-*.dump" -type f | sort -r); do
    count=$((count + 1))
    if [ "$count" -gt "$keep" ]; then
        log "removing $(basename -- "$old")"
        rm -f -- "$old"
    fi
done
