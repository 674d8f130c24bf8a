#!/usr/bin/env bash
# Browser tests of the web front end, in one command: the real service
# binary on a fresh SQLite database in a temporary directory, a second one
# against a PostgreSQL URL on a closed loopback port (the database is down),
# and headless Chromium driven by playwright-core through Node's built-in
# test runner (tests/ui/ui.test.mjs), and the README's Mermaid pictures
# rendered by Mermaid in the same browser (tests/ui/diagrams.test.mjs).
# Screenshots go to tests/ui/output/.
# Both services are stopped on exit, whatever the outcome; the browser is
# closed by the tests themselves. Nothing but loopback is contacted.
#
# It installs what it needs: chromium (apt, as root) and the Node tools
# (npm ci).
#
# Environment (all optional):
#   STUDENT_API_BIN  binary to test (default: `cargo build --locked`, then
#                    target/debug/student-api)
#   CHROMIUM_BIN     browser (default /usr/bin/chromium)
set -euo pipefail

LOG_PREFIX="ui"
# shellcheck source-path=SCRIPTDIR/../../scripts/lib
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/tools.sh"

cd "$REPO_ROOT"

export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
OUTPUT_DIR="$REPO_ROOT/tests/ui/output"

if [[ ! -x "$CHROMIUM_BIN" ]]; then
    is_root || die "$CHROMIUM_BIN not found; install it (Debian: apt-get install chromium)"
    apt_install chromium
fi
tools_node

if [[ -n "${STUDENT_API_BIN:-}" ]]; then
    SERVICE_BIN="$STUDENT_API_BIN"
else
    log "cargo build --locked"
    cargo build --locked
    SERVICE_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/student-api"
fi
[[ -x "$SERVICE_BIN" ]] || die "service binary not found: $SERVICE_BIN"

WORK_DIR="$(mktemp -d)"
remove_work_dir() { rm -rf "$WORK_DIR"; }
on_exit remove_work_dir

# stop_process PID: SIGTERM, then SIGKILL after ten seconds.
stop_process() {
    local pid="$1" i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
}

# start_service NAME DATABASE_URL: serves on a free loopback port; sets
# SERVICE_URL. Registers the stop before waiting, so a failed start is
# stopped too.
SERVICE_URL=""
start_service() {
    local name="$1" database_url="$2" port pid
    port="$(free_port)"
    LISTEN_ADDR="127.0.0.1:$port" DATABASE_URL="$database_url" DB_ACQUIRE_TIMEOUT=1s \
        LOG_FORMAT=json RUST_LOG=warn \
        "$SERVICE_BIN" >"$WORK_DIR/$name.log" 2>&1 &
    pid=$!
    on_exit stop_process "$pid"
    SERVICE_URL="http://127.0.0.1:$port"
    if ! wait_http "$SERVICE_URL/healthcheck" 30 "$pid"; then
        tail -n 40 "$WORK_DIR/$name.log" >&2 || true
        die "the $name service did not start"
    fi
    log "$name service on $SERVICE_URL (pid $pid)"
}

start_service working "sqlite://$WORK_DIR/students.db"
UI_BASE_URL="$SERVICE_URL"
# Nothing listens on this port: every database call fails within
# DB_ACQUIRE_TIMEOUT and the API answers 503.
start_service unavailable "postgres://nobody:unused@127.0.0.1:$(free_port)/nothing"
UI_UNAVAILABLE_URL="$SERVICE_URL"

rm -rf "$OUTPUT_DIR"
mkdir -p "$OUTPUT_DIR"
log "node --test tests/ui (screenshots in tests/ui/output/)"
UI_BASE_URL="$UI_BASE_URL" UI_UNAVAILABLE_URL="$UI_UNAVAILABLE_URL" \
    UI_OUTPUT_DIR="$OUTPUT_DIR" CHROMIUM_BIN="$CHROMIUM_BIN" \
    node --test --test-reporter=spec tests/ui/ui.test.mjs tests/ui/diagrams.test.mjs
