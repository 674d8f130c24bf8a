# shellcheck shell=bash
# Shared helpers for the scripts under scripts/ (and bench/): logging to
# stderr, loopback ports, HTTP polling, apt installs and one EXIT trap that
# runs every registered cleanup function.
#
# Source it; it sets no shell options of its own and starts nothing.

if [[ -n "${_STUDENT_API_COMMON_SH:-}" ]]; then
    return 0
fi
_STUDENT_API_COMMON_SH=1

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export REPO_ROOT

# Prefix of every log line; callers may set it before sourcing.
: "${LOG_PREFIX:=student-api}"

log() { printf '[%s] %s\n' "$LOG_PREFIX" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$LOG_PREFIX" "$*" >&2; }
die() {
    printf '[%s] ERROR: %s\n' "$LOG_PREFIX" "$*" >&2
    exit 1
}

# A visible banner for the start of a step.
header() { printf '\n[%s] ==> %s\n' "$LOG_PREFIX" "$*" >&2; }

is_root() { [[ "$(id -u)" -eq 0 ]]; }

# random_hex BYTES: hex string from the OS CSPRNG (url-safe, no quoting needed).
random_hex() {
    python3 -c 'import secrets, sys; print(secrets.token_hex(int(sys.argv[1])))' "${1:-24}"
}

# free_port: a TCP port that was free on 127.0.0.1 a moment ago.
free_port() {
    python3 - <<'PY'
import socket
with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
PY
}

# http_status URL: prints the HTTP status of a GET (000 when nothing answered).
# Proxies are bypassed: every target here is on loopback.
http_status() {
    python3 - "$1" <<'PY'
import sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(sys.argv[1], timeout=2) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
PY
}

# wait_http URL TIMEOUT_SECONDS [PID]: polls URL until it answers 200.
# Gives up after the timeout, or at once when process PID has exited.
wait_http() {
    local url="$1" timeout="$2" pid="${3:-}" status deadline
    deadline=$((SECONDS + timeout))
    while :; do
        status="$(http_status "$url")"
        [[ "$status" == 200 ]] && return 0
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            warn "process $pid exited while waiting for $url"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            warn "$url did not answer 200 within ${timeout}s (last status: $status)"
            return 1
        fi
        sleep 0.2
    done
}

# apt_install PKG...: installs Debian packages as root, running
# `apt-get update` at most once per process.
_COMMON_APT_UPDATED=""
apt_install() {
    is_root || die "need root to install Debian packages: $*"
    command -v apt-get >/dev/null || die "apt-get not found; install these packages by hand: $*"
    if [[ -z "$_COMMON_APT_UPDATED" ]]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
        _COMMON_APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 \
        || die "apt-get install failed: $*"
}

# Cleanup registry. on_exit FUNC [ARG...] registers a command; all of them
# run once when the shell exits (normally, on error or on INT/TERM), last
# registered first, each even if an earlier one failed.
_COMMON_CLEANUPS=()
on_exit() {
    local cmd
    printf -v cmd '%q ' "$@"
    _COMMON_CLEANUPS+=("$cmd")
}

_common_run_cleanups() {
    local rc=$? i
    trap - EXIT
    set +e
    for ((i = ${#_COMMON_CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${_COMMON_CLEANUPS[i]}"
    done
    _COMMON_CLEANUPS=()
    exit "$rc"
}

trap _common_run_cleanups EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
