# shellcheck shell=bash
# What bench/run.sh and bench/scale.sh share: the binary they measure,
# stopping the service they started, and reading and judging the BENCH
# lines wrk's scripts print. Sourced after scripts/lib/common.sh (log,
# header, warn, die), with BIN set; the caller registers
# `on_exit stop_service` once it has started a service into SERVICE_PID.

# release_binary: BIN as given by BENCH_BIN, or the release build, made
# here.
release_binary() {
    if [[ -n "${BENCH_BIN:-}" ]]; then
        [[ -x "$BIN" ]] || die "BENCH_BIN=$BIN is not an executable"
        log "benchmarking $BIN (BENCH_BIN; not building)"
    else
        header "building the release binary"
        cargo build --release --locked
        [[ -x "$BIN" ]] || die "$BIN missing after the build"
    fi
}

SERVICE_PID=""
# stop_service: SIGTERM to the service in SERVICE_PID, SIGKILL after 10 s.
stop_service() {
    local pid="$SERVICE_PID" i
    [[ -n "$pid" ]] || return 0
    SERVICE_PID=""
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "student-api ($pid) still running after 10s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# field LINE KEY: value of KEY=value in a space-separated line.
field() {
    local kv kvs
    read -ra kvs <<<"$1"
    for kv in "${kvs[@]}"; do
        if [[ "$kv" == "$2="* ]]; then
            printf '%s\n' "${kv#*=}"
            return 0
        fi
    done
    die "no $2 in: $1"
}

# calc EXPR: floating-point arithmetic (awk), e.g. calc '1.5 * 2'.
calc() { awk "BEGIN { print $1 }"; }

# check LABEL CONDITION: PASS or FAIL for an awk condition, the label
# padded to CHECK_WIDTH characters.
CHECK_WIDTH=46
check() {
    if awk "BEGIN { exit !($2) }"; then
        printf "  %-${CHECK_WIDTH}s PASS\n" "$1"
    else
        printf "  %-${CHECK_WIDTH}s FAIL\n" "$1"
    fi
}
