# shellcheck shell=bash
# A throwaway PostgreSQL server for tests and benchmarks: its own data
# directory in a fresh temporary directory, listening only on 127.0.0.1 on a
# free port, with a superuser password made at run time. It never touches a
# system cluster and is stopped and deleted when the calling shell exits.
#
# Interface (kept stable for other scripts that source this file):
#   pg_install   ensure the server binaries exist; exports PG_BIN
#   pg_start     start the server; exports PG_HOST PG_PORT PG_SUPERUSER
#                PG_PASSWORD PG_URL
#   pg_stop      stop the server and delete its files (idempotent)
#   pg_psql ARG  psql as the superuser against the server

# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

_PG_REQUIRED_BINS=(initdb pg_ctl postgres pgbench pg_isready psql)
_PG_TMP=""
_PG_CLEANUP_REGISTERED=""

# _pg_bin_ok DIR: DIR holds every binary the server needs.
_pg_bin_ok() {
    local dir="$1" b
    [[ -n "$dir" && -d "$dir" ]] || return 1
    for b in "${_PG_REQUIRED_BINS[@]}"; do
        [[ -x "$dir/$b" ]] || return 1
    done
}

# _pg_find_bin: prints the bin dir of the newest installed server, if any.
_pg_find_bin() {
    local dir candidate
    # Debian's layout: one /usr/lib/postgresql/<major>/bin per version.
    while IFS= read -r dir; do
        if _pg_bin_ok "$dir"; then
            printf '%s\n' "$dir"
            return 0
        fi
    done < <(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -rV)
    if command -v pg_config >/dev/null; then
        candidate="$(pg_config --bindir 2>/dev/null || true)"
        if _pg_bin_ok "$candidate"; then
            printf '%s\n' "$candidate"
            return 0
        fi
    fi
    if command -v initdb >/dev/null; then
        candidate="$(dirname "$(readlink -f "$(command -v initdb)")")"
        if _pg_bin_ok "$candidate"; then
            printf '%s\n' "$candidate"
            return 0
        fi
    fi
    return 1
}

pg_install() {
    local bin
    if ! bin="$(_pg_find_bin)"; then
        is_root || die "PostgreSQL server binaries (${_PG_REQUIRED_BINS[*]}) not found; install them (Debian: apt-get install postgresql postgresql-contrib) or run as root"
        apt_install postgresql postgresql-contrib
        bin="$(_pg_find_bin)" || die "PostgreSQL installed but its binaries were not found under /usr/lib/postgresql/*/bin"
    fi
    # initdb refuses to run as root, so as root the server runs as 'postgres'.
    if is_root && ! id -u postgres >/dev/null 2>&1; then
        log "creating system user 'postgres'"
        useradd --system --no-create-home --shell /usr/sbin/nologin postgres \
            || die "could not create the 'postgres' user"
    fi
    PG_BIN="$bin"
    export PG_BIN
}

# _pg_as_owner CMD...: runs CMD as the user that owns the server.
_pg_as_owner() {
    if is_root; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# _pg_show_log: prints the end of the server log (for failures).
_pg_show_log() {
    if [[ -n "$_PG_TMP" && -f "$_PG_TMP/server.log" ]]; then
        warn "last lines of the PostgreSQL log:"
        tail -n 30 "$_PG_TMP/server.log" >&2 || true
    fi
}

pg_start() {
    if [[ -n "$_PG_TMP" && -f "$_PG_TMP/data/postmaster.pid" ]]; then
        return 0 # already running in this shell
    fi
    [[ -n "${PG_BIN:-}" ]] || pg_install

    local tmp pwfile port attempt started="" base="${TMPDIR:-/tmp}"
    # As root the server runs as 'postgres', which must be able to reach it.
    is_root && base=/tmp
    tmp="$(mktemp -d "$base/student-api-pg.XXXXXX")" || die "mktemp failed"
    _PG_TMP="$tmp"
    if [[ -z "$_PG_CLEANUP_REGISTERED" ]]; then
        on_exit pg_stop
        _PG_CLEANUP_REGISTERED=1
    fi
    chmod 700 "$tmp"

    PG_PASSWORD="$(random_hex 24)"
    pwfile="$tmp/pwfile"
    (umask 077 && printf '%s\n' "$PG_PASSWORD" >"$pwfile")
    if is_root; then
        chown -R postgres:postgres "$tmp"
    fi

    # cwd inside $tmp: the server user may not be able to enter the caller's.
    if ! (cd "$tmp" && _pg_as_owner "$PG_BIN/initdb" -D "$tmp/data" -U postgres \
        --auth=scram-sha-256 --pwfile="$pwfile" --encoding=UTF8 --locale=C \
        --no-sync >"$tmp/initdb.log" 2>&1); then
        tail -n 30 "$tmp/initdb.log" >&2 || true
        die "initdb failed"
    fi
    rm -f "$pwfile"

    # The port is chosen free, but another process may take it before the
    # server binds it: try a few ports.
    for attempt in 1 2 3; do
        port="$(free_port)"
        if (cd "$tmp" && _pg_as_owner "$PG_BIN/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" \
            -w -t 30 -s start -o "-p $port -c listen_addresses=127.0.0.1 \
-c unix_socket_directories=$tmp -c max_connections=200 \
-c fsync=off -c synchronous_commit=off -c full_page_writes=off") >&2; then
            started=1
            break
        fi
        warn "PostgreSQL did not start on port $port (attempt $attempt)"
    done
    if [[ -z "$started" ]]; then
        _pg_show_log
        die "could not start PostgreSQL"
    fi

    local deadline=$((SECONDS + 30))
    until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; do
        if ((SECONDS >= deadline)); then
            _pg_show_log
            die "PostgreSQL on 127.0.0.1:$port not ready after 30s"
        fi
        sleep 0.2
    done

    PG_HOST=127.0.0.1
    PG_PORT="$port"
    PG_SUPERUSER=postgres
    PG_URL="postgres://${PG_SUPERUSER}:${PG_PASSWORD}@${PG_HOST}:${PG_PORT}/postgres"
    export PG_HOST PG_PORT PG_SUPERUSER PG_PASSWORD PG_URL
    log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') ready on ${PG_HOST}:${PG_PORT} (data in $tmp)"
}

pg_stop() {
    local tmp="$_PG_TMP"
    [[ -n "$tmp" ]] || return 0
    if [[ -f "$tmp/data/postmaster.pid" ]]; then
        if ! (cd "$tmp" && _pg_as_owner "$PG_BIN/pg_ctl" -D "$tmp/data" -s -w -t 30 -m fast stop) >&2; then
            warn "fast shutdown of PostgreSQL failed; using immediate mode"
            (cd "$tmp" && _pg_as_owner "$PG_BIN/pg_ctl" -D "$tmp/data" -s -w -t 10 -m immediate stop) >&2 || true
        fi
    fi
    rm -rf "$tmp"
    _PG_TMP=""
    unset PG_PORT PG_PASSWORD PG_URL
}

# pg_psql ARG...: psql as the superuser, database 'postgres' unless ARG names
# another. The password goes through the environment, not the command line.
pg_psql() {
    [[ -n "${PG_PORT:-}" && -n "${PG_PASSWORD:-}" ]] || die "pg_psql: server not started (call pg_start)"
    PGPASSWORD="$PG_PASSWORD" PGHOST="$PG_HOST" PGPORT="$PG_PORT" PGUSER="$PG_SUPERUSER" \
        PGDATABASE=postgres PGCONNECT_TIMEOUT=10 \
        "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"
}
