#!/usr/bin/env bash
# Load benchmark of student-api on PostgreSQL, measured against pgbench's
# select-only ceiling on the same machine, plus POST throughput on SQLite,
# idle memory and SQLite startup time. Everything runs on 127.0.0.1, every load run is bounded in
# time, and every process and directory it creates is removed on exit.
#
# Usage: bash bench/run.sh   (or: make bench)
# Tunables (environment, seconds are integers): BENCH_SECONDS (10),
# BENCH_WARMUP_SECONDS (3),
# BENCH_THREADS (2), BENCH_CONNECTIONS (16), BENCH_STUDENTS (10000),
# BENCH_STARTUP_RUNS (5); BENCH_BIN: benchmark this binary instead of
# building the release binary (to compare two builds back to back).
#
# Exit status: 0 even when a target is missed (it is a benchmark, not a
# test); 1 when any request failed or a step could not run.

# shellcheck source-path=SCRIPTDIR
set -euo pipefail

# Read by common.sh when it is sourced.
export LOG_PREFIX=bench
# shellcheck source=../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
# shellcheck source=../scripts/lib/postgres.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/postgres.sh"
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECONDS_RUN="${BENCH_SECONDS:-10}"
SECONDS_WARMUP="${BENCH_WARMUP_SECONDS:-3}"
THREADS="${BENCH_THREADS:-2}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"
STUDENTS="${BENCH_STUDENTS:-10000}"
STARTUP_RUNS="${BENCH_STARTUP_RUNS:-5}"
BENCH_DIR="$REPO_ROOT/bench"
BIN="${BENCH_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/student-api}"
SCENARIOS=(get_by_id list create)

# Targets.
TARGET_RATIO=0.4 # GET by id requests/s >= this x pgbench tps
TARGET_P99_MS=5
TARGET_RSS_MB=20
TARGET_READY_MS=100

cd "$REPO_ROOT"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/student-api-bench.XXXXXX")"
on_exit rm -rf "$WORK"
on_exit stop_service

# ---------------------------------------------------------------------------
release_binary

if ! command -v wrk >/dev/null; then
    apt_install wrk
fi
command -v python3 >/dev/null || die "python3 not found"
pg_install
pg_start

header "preparing databases"
# Other work on the machine skews every figure below: say how busy it was.
log "load average before the load runs: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
API_DB=bench_api
PGBENCH_DB=bench_pgbench
pg_psql -c "create database $API_DB"
pg_psql -c "create database $PGBENCH_DB"
API_URL="${PG_URL%/*}/$API_DB"

DATABASE_URL="$API_URL" "$BIN" migrate >"$WORK/migrate.log" 2>&1 \
    || { cat "$WORK/migrate.log" >&2; die "student-api migrate failed"; }

# One statement; ids come from the identity column (1..STUDENTS on a fresh table).
pg_psql -d "$API_DB" -c "
insert into students (name, email, domain, gpa)
select 'Student ' || g,
       'student' || g || '@bench.example.com',
       (array['Mathematics', 'Physics', 'Computer Science', 'History', 'Biology'])[1 + g % 5],
       (g % 1001) / 100.0
from generate_series(1, $STUDENTS) as g"
pg_psql -d "$API_DB" -c "analyze students"
max_id="$(pg_psql -d "$API_DB" -At -c "select max(id) from students")"
[[ "$max_id" == "$STUDENTS" ]] || die "seeded ids end at $max_id, expected $STUDENTS"
log "seeded $STUDENTS students"

# ---------------------------------------------------------------------------
header "pgbench ceiling (select-only, prepared, -c $CONNECTIONS -j $THREADS)"
pgbench() {
    PGPASSWORD="$PG_PASSWORD" PGHOST="$PG_HOST" PGPORT="$PG_PORT" PGUSER="$PG_SUPERUSER" \
        "$PG_BIN/pgbench" "$@"
}
pgbench -i -q -s 10 "$PGBENCH_DB" >"$WORK/pgbench-init.log" 2>&1 \
    || { cat "$WORK/pgbench-init.log" >&2; die "pgbench -i failed"; }
pgbench -n -S -M prepared -c "$CONNECTIONS" -j "$THREADS" -T "$SECONDS_WARMUP" "$PGBENCH_DB" >/dev/null 2>&1 \
    || die "pgbench warm-up failed"
pgbench -n -S -M prepared -c "$CONNECTIONS" -j "$THREADS" -T "$SECONDS_RUN" "$PGBENCH_DB" \
    >"$WORK/pgbench.log" 2>&1 || { cat "$WORK/pgbench.log" >&2; die "pgbench failed"; }
cat "$WORK/pgbench.log"
PGBENCH_TPS="$(awk '/^tps = / { printf "%.1f", $3; exit }' "$WORK/pgbench.log")"
PGBENCH_LAT="$(awk '/^latency average = / { print $4; exit }' "$WORK/pgbench.log")"
[[ -n "$PGBENCH_TPS" ]] || die "no tps in pgbench output"

# ---------------------------------------------------------------------------
header "starting student-api on PostgreSQL"
PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
DATABASE_URL="$API_URL" LISTEN_ADDR="127.0.0.1:$PORT" LOG_FORMAT=json RUST_LOG=warn \
    "$BIN" serve >"$WORK/service.log" 2>&1 &
SERVICE_PID=$!
if ! wait_http "$BASE/ready" 30 "$SERVICE_PID"; then
    tail -n 30 "$WORK/service.log" >&2 || true
    die "student-api did not become ready"
fi
VERSION="$(python3 - "$PORT" <<'PY'
import http.client, json, sys
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
conn.request("GET", "/healthcheck")
print(json.loads(conn.getresponse().read())["version"])
PY
)"
sleep 1
RSS_MB="$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVICE_PID/status")"
log "student-api $VERSION ready on $BASE (pid $SERVICE_PID), idle RSS ${RSS_MB} MB"

# ---------------------------------------------------------------------------
declare -A RESULT
ERRORS_TOTAL=0
# run_wrk SCENARIO LABEL LOGFILE: warm-up, then the measured run of
# bench/SCENARIO.lua against $BASE; the measured BENCH line goes to RESULT[LABEL].
run_wrk() {
    local s="$1" label="$2" logfile="$3" phase d out line errs
    header "wrk: $label (warm-up ${SECONDS_WARMUP}s, then ${SECONDS_RUN}s)"
    for phase in warmup measure; do
        if [[ "$phase" == warmup ]]; then d="$SECONDS_WARMUP"; else d="$SECONDS_RUN"; fi
        out="$WORK/wrk-$label-$phase.txt"
        BENCH_MAX_ID="$STUDENTS" wrk -t "$THREADS" -c "$CONNECTIONS" -d "${d}s" --latency \
            -s "$BENCH_DIR/$s.lua" "$BASE" -- "$phase" >"$out" 2>&1 \
            || { cat "$out" >&2; die "wrk failed ($label, $phase)"; }
        line="$(grep '^BENCH ' "$out")" || { cat "$out" >&2; die "no BENCH line from wrk ($label)"; }
        errs=$(($(field "$line" non2xx) + $(field "$line" socket_errors)))
        ERRORS_TOTAL=$((ERRORS_TOTAL + errs))
        ((errs == 0)) || warn "$label ($phase): $errs failed requests"
    done
    cat "$out"
    RESULT[$label]="$line"
    # Not-2xx responses leave their cause in the service log.
    if ((errs > 0)); then
        warn "last lines of the service log:"
        tail -n 20 "$logfile" >&2 || true
    fi
}

for s in "${SCENARIOS[@]}"; do
    run_wrk "$s" "$s" "$WORK/service.log"
done
stop_service

# ---------------------------------------------------------------------------
# Writes on SQLite: every 201 is a commit synced to disk (synchronous=FULL),
# so this measures the file system's sync latency as much as the service.
header "starting student-api on SQLite (a fresh file in $WORK)"
PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
DATABASE_URL="sqlite://$WORK/sqlite/students.db" LISTEN_ADDR="127.0.0.1:$PORT" LOG_FORMAT=json RUST_LOG=warn \
    "$BIN" serve >"$WORK/service-sqlite.log" 2>&1 &
SERVICE_PID=$!
if ! wait_http "$BASE/ready" 30 "$SERVICE_PID"; then
    tail -n 30 "$WORK/service-sqlite.log" >&2 || true
    die "student-api did not become ready on SQLite"
fi
run_wrk create create_sqlite "$WORK/service-sqlite.log"
stop_service

# ---------------------------------------------------------------------------
header "startup to ready on SQLite ($STARTUP_RUNS runs each)"
python3 "$BENCH_DIR/startup.py" "$BIN" --runs "$STARTUP_RUNS" --workdir "$WORK" | tee "$WORK/startup.txt"
startup_line="$(grep '^STARTUP ' "$WORK/startup.txt")"
READY_FRESH="$(field "$startup_line" fresh_median_ms)"
READY_EXISTING="$(field "$startup_line" existing_median_ms)"
RSS_SQLITE="$(field "$startup_line" rss_mb)"

# ---------------------------------------------------------------------------
header "results"
log "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
printf 'student-api %s on PostgreSQL, %s cores (%s); wrk -t%s -c%s -d%ss; %s seeded students\n\n' \
    "$VERSION" "$(nproc)" "${cpu:-unknown CPU}" "$THREADS" "$CONNECTIONS" "$SECONDS_RUN" "$STUDENTS"
printf '%-26s %12s %9s %9s %7s %14s\n' scenario requests/s "p50 ms" "p99 ms" errors "x pgbench tps"
for s in "${SCENARIOS[@]}" create_sqlite; do
    line="${RESULT[$s]}"
    rps="$(field "$line" rps)"
    printf '%-26s %12s %9s %9s %7s %14s\n' "$s" "$rps" "$(field "$line" p50_ms)" "$(field "$line" p99_ms)" \
        "$(($(field "$line" non2xx) + $(field "$line" socket_errors)))" \
        "$(calc "sprintf(\"%.2f\", $rps / $PGBENCH_TPS)")"
done
printf '%-26s %12s %9s %9s %7s %14s\n' "pgbench -S (ceiling)" "$PGBENCH_TPS" "-" "-" - "1.00"
printf '  (pgbench average latency %s ms)\n\n' "${PGBENCH_LAT:-?}"
printf 'idle RSS after start (PostgreSQL):  %s MB\n' "$RSS_MB"
printf 'idle RSS after start (SQLite):      %s MB\n' "$RSS_SQLITE"
printf 'spawn to ready, SQLite, fresh db:   %s ms (median of %s)\n' "$READY_FRESH" "$STARTUP_RUNS"
printf 'spawn to ready, SQLite, existing:   %s ms (median of %s)\n\n' "$READY_EXISTING" "$STARTUP_RUNS"

get_line="${RESULT[get_by_id]}"
get_rps="$(field "$get_line" rps)"
get_p99="$(field "$get_line" p99_ms)"
echo "targets:"
check "GET by id >= $TARGET_RATIO x pgbench tps ($(calc "sprintf(\"%.2f\", $get_rps / $PGBENCH_TPS)"))" \
    "$get_rps >= $TARGET_RATIO * $PGBENCH_TPS"
check "GET by id p99 < $TARGET_P99_MS ms ($get_p99)" "$get_p99 < $TARGET_P99_MS"
check "idle RSS < $TARGET_RSS_MB MB ($RSS_MB)" "$RSS_MB < $TARGET_RSS_MB"
check "ready < $TARGET_READY_MS ms on SQLite, fresh ($READY_FRESH)" "$READY_FRESH < $TARGET_READY_MS"
check "ready < $TARGET_READY_MS ms on SQLite, existing ($READY_EXISTING)" "$READY_EXISTING < $TARGET_READY_MS"

if ((ERRORS_TOTAL > 0)); then
    die "$ERRORS_TOTAL requests failed during the load runs"
fi
