#!/usr/bin/env bash
# Scale benchmark of student-api's list, search and sort at 1,000,000
# students, on PostgreSQL and on SQLite: the rows are loaded with SQL into
# the service's own schema (bench/scale_load.sh), then wrk runs at 16
# connections the first page, a deep page reached by cursor, a search by
# fragment, sorted pages and a mix of the four, and GET by id at 1,000,000
# rows next to 10,000. Then the plan of each list query shape: EXPLAIN
# (ANALYZE, BUFFERS) on PostgreSQL, EXPLAIN QUERY PLAN on SQLite
# (bench/scale_explain.py). Everything runs on 127.0.0.1, every load run is
# bounded in time, and every process and directory it creates is removed on
# exit.
#
# Usage: bash bench/scale.sh   (make bench runs it after bench/run.sh)
# Tunables (environment, seconds are integers): BENCH_SECONDS (10),
# BENCH_WARMUP_SECONDS (3), BENCH_THREADS (2), BENCH_CONNECTIONS (16),
# BENCH_TIMEOUT (2: wrk's time-out per request, counted as a socket error),
# BENCH_SCALE_ROWS (1000000), BENCH_SCALE_SMALL_ROWS (10000),
# BENCH_DEEP_PAGE (5000), BENCH_SORT_DEPTH (100), BENCH_SCALE_BACKENDS
# ("postgres sqlite"), BENCH_EXPLAIN (1; 0 skips the plans); BENCH_BIN:
# benchmark that binary instead of building the release binary.
#
# Exit status: 0 even when a target is missed (it is a benchmark, not a
# test); 1 when any request failed or a step could not run.

# shellcheck source-path=SCRIPTDIR
set -euo pipefail

export LOG_PREFIX=bench-scale
# shellcheck source=../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
# shellcheck source=../scripts/lib/postgres.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/postgres.sh"
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CHECK_WIDTH=62
# shellcheck source=scale_load.sh
source "$(dirname "${BASH_SOURCE[0]}")/scale_load.sh"

SECONDS_RUN="${BENCH_SECONDS:-10}"
SECONDS_WARMUP="${BENCH_WARMUP_SECONDS:-3}"
THREADS="${BENCH_THREADS:-2}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"
TIMEOUT="${BENCH_TIMEOUT:-2}"
ROWS="${BENCH_SCALE_ROWS:-1000000}"
SMALL_ROWS="${BENCH_SCALE_SMALL_ROWS:-10000}"
DEEP_PAGE="${BENCH_DEEP_PAGE:-5000}"
SORT_DEPTH="${BENCH_SORT_DEPTH:-100}"
read -ra BACKENDS <<<"${BENCH_SCALE_BACKENDS:-postgres sqlite}"
EXPLAIN="${BENCH_EXPLAIN:-1}"
BENCH_DIR="$REPO_ROOT/bench"
BIN="${BENCH_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/student-api}"
# The list scenarios, each a file of paths from bench/scale_paths.py.
SCENARIOS=(first deep search sort mix)

# Targets (issue #16).
declare -A TARGET_MIX_P99_MS=([postgres]=10 [sqlite]=20)
TARGET_GET_RATIO=0.8 # GET by id at ROWS >= this x GET by id at SMALL_ROWS

cd "$REPO_ROOT"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/student-api-bench-scale.XXXXXX")"
on_exit rm -rf "$WORK"
on_exit stop_service

# start_service LOGFILE DATABASE_URL [RUST_LOG]: serves on a free loopback
# port; sets SERVICE_PID, PORT and BASE.
start_service() {
    local logfile="$1" url="$2" filter="${3:-warn}"
    PORT="$(free_port)"
    BASE="http://127.0.0.1:$PORT"
    DATABASE_URL="$url" LISTEN_ADDR="127.0.0.1:$PORT" LOG_FORMAT=json RUST_LOG="$filter" \
        "$BIN" serve >"$logfile" 2>&1 &
    SERVICE_PID=$!
    if ! wait_http "$BASE/ready" 60 "$SERVICE_PID"; then
        tail -n 30 "$logfile" >&2 || true
        die "student-api did not become ready ($url)"
    fi
}

# migrate DATABASE_URL: the service's own migrations, as the binary runs them.
migrate() {
    DATABASE_URL="$1" "$BIN" migrate >"$WORK/migrate.log" 2>&1 \
        || { cat "$WORK/migrate.log" >&2; die "student-api migrate failed"; }
}

# loadavg: the 1, 5 and 15 minute load averages.
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

declare -A RESULT LOAD
ERRORS_TOTAL=0
# run_wrk LABEL SCRIPT LOGFILE: warm-up, then the measured run of
# bench/SCRIPT.lua against $BASE (its inputs in BENCH_PATHS/BENCH_MAX_ID);
# the measured BENCH line goes to RESULT[LABEL], the load average before it
# to LOAD[LABEL].
run_wrk() {
    local label="$1" script="$2" logfile="$3" phase d out line errs
    header "wrk: $label (warm-up ${SECONDS_WARMUP}s, then ${SECONDS_RUN}s; load $(loadavg))"
    for phase in warmup measure; do
        if [[ "$phase" == warmup ]]; then d="$SECONDS_WARMUP"; else d="$SECONDS_RUN"; fi
        if [[ "$phase" == measure ]]; then LOAD[$label]="$(loadavg)"; fi
        out="$WORK/wrk-$label-$phase.txt"
        BENCH_SCENARIO="$label" wrk -t "$THREADS" -c "$CONNECTIONS" -d "${d}s" --timeout "${TIMEOUT}s" \
            --latency -s "$BENCH_DIR/$script.lua" "$BASE" -- "$phase" >"$out" 2>&1 \
            || { cat "$out" >&2; die "wrk failed ($label, $phase)"; }
        line="$(grep '^BENCH ' "$out")" || { cat "$out" >&2; die "no BENCH line from wrk ($label)"; }
        errs=$(($(field "$line" non2xx) + $(field "$line" socket_errors)))
        if [[ "$phase" == measure ]]; then
            ERRORS_TOTAL=$((ERRORS_TOTAL + errs))
        fi
        ((errs == 0)) || warn "$label ($phase): $errs failed requests"
    done
    grep -E '^(BENCH|  Latency|Requests/sec)' "$out" || true
    RESULT[$label]="$line"
    if ((errs > 0)); then
        warn "last lines of the service log:"
        tail -n 10 "$logfile" >&2 || true
    fi
}

# get_by_id LABEL DATABASE_URL MAX_ID
get_by_id() {
    local label="$1" url="$2" max_id="$3"
    start_service "$WORK/service-$label.log" "$url"
    BENCH_MAX_ID="$max_id" run_wrk "$label" get_by_id "$WORK/service-$label.log"
    stop_service
}

# ---------------------------------------------------------------------------
release_binary
command -v wrk >/dev/null || apt_install wrk
command -v sqlite3 >/dev/null || apt_install sqlite3
command -v python3 >/dev/null || die "python3 not found"
export BENCH_PATHS=""

declare -A MODE
for backend in "${BACKENDS[@]}"; do
    case "$backend" in
    postgres)
        pg_install
        pg_start
        pg_psql -c "create database scale_big"
        pg_psql -c "create database scale_small"
        URL_BIG="${PG_URL%/*}/scale_big"
        URL_SMALL="${PG_URL%/*}/scale_small"
        ;;
    sqlite)
        mkdir -p "$WORK/sqlite-big" "$WORK/sqlite-small"
        URL_BIG="sqlite://$WORK/sqlite-big/students.db"
        URL_SMALL="sqlite://$WORK/sqlite-small/students.db"
        ;;
    *) die "unknown backend in BENCH_SCALE_BACKENDS: $backend" ;;
    esac

    header "$backend: loading $ROWS and $SMALL_ROWS students with SQL"
    for size in big small; do
        if [[ "$size" == big ]]; then url="$URL_BIG" n="$ROWS"; else url="$URL_SMALL" n="$SMALL_ROWS"; fi
        migrate "$url"
        started=$SECONDS
        if [[ "$backend" == postgres ]]; then
            scale_load_postgres "scale_$size" "$n"
            max_id="$(pg_psql -d "scale_$size" -At -c "select max(id) from students")"
        else
            scale_load_sqlite "${url#sqlite://}" "$n"
            max_id="$(sqlite3 "${url#sqlite://}" "select max(id) from students")"
        fi
        [[ "$max_id" == "$n" ]] || die "loaded ids end at $max_id, expected $n"
        log "$backend: $n students loaded in $((SECONDS - started)) s (load $(loadavg))"
    done

    header "$backend: request paths ($ROWS students)"
    start_service "$WORK/service-$backend.log" "$URL_BIG"
    log "student-api ready on $BASE (pid $SERVICE_PID)"
    python3 "$BENCH_DIR/scale_paths.py" "$PORT" "$WORK/paths-$backend" \
        --deep-page "$DEEP_PAGE" --sort-depth "$SORT_DEPTH" | tee "$WORK/paths-$backend.txt"
    paths_line="$(grep '^PATHS ' "$WORK/paths-$backend.txt")"
    MODE[$backend]="$(field "$paths_line" mode)"

    for s in "${SCENARIOS[@]}"; do
        BENCH_PATHS="$WORK/paths-$backend/$s.txt" \
            run_wrk "${backend}_$s" paths "$WORK/service-$backend.log"
    done
    stop_service

    # GET by id at both sizes, alternating (small, big, small, big), each
    # run on a service of its own. The better run of each size counts: a
    # burst of other work on the machine during one run must not decide
    # the ratio.
    for round in 1 2; do
        get_by_id "${backend}_get_small_$round" "$URL_SMALL" "$SMALL_ROWS"
        get_by_id "${backend}_get_big_$round" "$URL_BIG" "$ROWS"
    done
    for size in small big; do
        a="${RESULT[${backend}_get_${size}_1]}" b="${RESULT[${backend}_get_${size}_2]}"
        if awk "BEGIN { exit !($(field "$a" rps) >= $(field "$b" rps)) }"; then
            RESULT[${backend}_get_$size]="$a" LOAD[${backend}_get_$size]="${LOAD[${backend}_get_${size}_1]}"
        else
            RESULT[${backend}_get_$size]="$b" LOAD[${backend}_get_$size]="${LOAD[${backend}_get_${size}_2]}"
        fi
    done

    if [[ "$EXPLAIN" == 1 ]]; then
        header "$backend: plans of the list queries at $ROWS students"
        if [[ "$backend" == postgres ]]; then
            # auto_explain logs the plan of each statement the service runs,
            # with the parameters it really bound; only this database's
            # sessions load it, and only for this pass.
            pg_psql -c "alter database scale_big set session_preload_libraries = 'auto_explain'" \
                -c "alter database scale_big set auto_explain.log_min_duration = 0" \
                -c "alter database scale_big set auto_explain.log_analyze = on" \
                -c "alter database scale_big set auto_explain.log_buffers = on"
            start_service "$WORK/service-explain.log" "$URL_BIG"
            python3 "$BENCH_DIR/scale_explain.py" postgres "$PORT" "$WORK/paths-$backend" \
                --pg-log "$_PG_TMP/server.log" | tee "$WORK/explain-$backend.txt"
            stop_service
            pg_psql -c "alter database scale_big reset all"
        else
            # sqlx logs each statement's text; the plans are asked of the
            # same file once the service has stopped.
            start_service "$WORK/service-explain.log" "$URL_BIG" "warn,sqlx::query=debug"
            python3 "$BENCH_DIR/scale_explain.py" sqlite "$PORT" "$WORK/paths-$backend" \
                --service-log "$WORK/service-explain.log" --sqlite-db "${URL_BIG#sqlite://}" \
                | tee "$WORK/explain-$backend.txt"
            stop_service
        fi
    fi

    if [[ "$backend" == postgres ]]; then
        pg_stop
    else
        rm -rf "$WORK/sqlite-big" "$WORK/sqlite-small"
    fi
done

# ---------------------------------------------------------------------------
header "results"
log "load average at the end: $(loadavg)"
cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
printf 'student-api %s, %s cores (%s); wrk -t%s -c%s -d%ss --timeout %ss\n' \
    "$("$BIN" --version | awk '{ print $2 }')" "$(nproc)" "${cpu:-unknown CPU}" \
    "$THREADS" "$CONNECTIONS" "$SECONDS_RUN" "$TIMEOUT"
printf '%s students (GET by id also at %s, two rounds; the better of each compared); deep page %s\n\n' \
    "$ROWS" "$SMALL_ROWS" "$DEEP_PAGE"
printf '%-22s %-7s %11s %9s %9s %7s  %s\n' scenario paging requests/s "p50 ms" "p99 ms" failed "load before (1, 5, 15 min)"
for backend in "${BACKENDS[@]}"; do
    for s in "${SCENARIOS[@]}" get_small_1 get_big_1 get_small_2 get_big_2; do
        label="${backend}_$s"
        line="${RESULT[$label]}"
        p50="$(field "$line" p50_ms)" p99="$(field "$line" p99_ms)"
        # wrk keeps no latency of a request that timed out: when none
        # answered in time its percentiles are 0, which reads as fast.
        if [[ "$p99" == 0.000 ]] && (($(field "$line" socket_errors) > 0)); then
            p50="timeout" p99="timeout"
        fi
        printf '%-22s %-7s %11s %9s %9s %7s  %s\n' "$label" "${MODE[$backend]}" "$(field "$line" rps)" \
            "$p50" "$p99" "$(($(field "$line" non2xx) + $(field "$line" socket_errors)))" "${LOAD[$label]}"
    done
done

echo
echo "targets:"
for backend in "${BACKENDS[@]}"; do
    line="${RESULT[${backend}_mix]}"
    p99="$(field "$line" p99_ms)"
    [[ "$p99" != 0.000 ]] || p99="$((TIMEOUT * 1000))"
    check "$backend mix p99 < ${TARGET_MIX_P99_MS[$backend]} ms ($p99)" "$p99 < ${TARGET_MIX_P99_MS[$backend]}"
    failed=0
    for s in "${SCENARIOS[@]}"; do
        line="${RESULT[${backend}_$s]}"
        failed=$((failed + $(field "$line" non2xx) + $(field "$line" socket_errors)))
    done
    check "$backend list scenarios: zero failed requests ($failed)" "$failed == 0"
    small="$(field "${RESULT[${backend}_get_small]}" rps)"
    big="$(field "${RESULT[${backend}_get_big]}" rps)"
    check "$backend GET by id at $ROWS >= $TARGET_GET_RATIO x at $SMALL_ROWS ($(calc "sprintf(\"%.2f\", $big / $small)"))" \
        "$big >= $TARGET_GET_RATIO * $small"
done

if ((ERRORS_TOTAL > 0)); then
    die "$ERRORS_TOTAL requests failed during the measured runs"
fi
