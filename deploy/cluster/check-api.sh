#!/usr/bin/env bash
# The deployed service's HTTP contract, checked through the platform's
# Gateway as a client outside the cluster reaches it: the Postman
# collection (postman/) run by newman.
#
# Usage: deploy/cluster/check-api.sh [BASE_URL]
#   BASE_URL  where the Gateway serves the API [http://127.0.0.1: the
#             Gateway's listener http as kind.yaml publishes it; minikube:
#             http://$(minikube -p student-api ip):30080]
#
# Waits, within WAIT_TIMEOUT, for BASE_URL/ready to answer 200; runs every
# folder of the collection except those that read /metrics; then checks
# that /metrics is NOT served through the Gateway. The service serves its
# metrics on a port of their own (ports.metrics of its chart), which only
# Prometheus scrapes; through the Gateway it is an unknown route (404).
# Needs newman from the repository's package.json: run `npm ci` first.
#
# Environment (optional):
#   WAIT_TIMEOUT   seconds to wait for the service to be ready [300]
#   POLL_INTERVAL  seconds between two tries [2]
set -euo pipefail

LOG_PREFIX="check-api"
# shellcheck source-path=SCRIPTDIR/../../scripts/lib
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/common.sh"

WAIT_TIMEOUT="${WAIT_TIMEOUT:-300}"
POLL_INTERVAL="${POLL_INTERVAL:-2}"
COLLECTION="postman/student-api.postman_collection.json"

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

# folders: the collection's top-level folders, one a line, "run NAME" or
# "skip NAME" (a folder with a request to {{baseUrl}}/metrics).
folders() {
    python3 - "$REPO_ROOT/$COLLECTION" <<'PY'
import json, sys

def urls(item):
    if "item" in item:
        for child in item["item"]:
            yield from urls(child)
    else:
        url = item["request"]["url"]
        yield url["raw"] if isinstance(url, dict) else url

for folder in json.load(open(sys.argv[1], encoding="utf-8"))["item"]:
    metrics = any(u.split("?")[0] == "{{baseUrl}}/metrics" for u in urls(folder))
    print(("skip " if metrics else "run ") + folder["name"])
PY
}

wait_ready() {
    local base="$1" status deadline=$((SECONDS + WAIT_TIMEOUT))
    log "waiting up to ${WAIT_TIMEOUT}s for $base/ready to answer 200"
    while :; do
        status="$(http_status "$base/ready")"
        [[ "$status" == 200 ]] && return 0
        ((SECONDS < deadline)) \
            || die "$base/ready answered $status, not 200, for ${WAIT_TIMEOUT}s (is the route Accepted? kubectl -n student-api describe httproute student-api)"
        sleep "$POLL_INTERVAL"
    done
}

main() {
    local base="${1:-http://127.0.0.1}" line run=() skipped=() status
    case "$base" in
        -h | --help)
            usage
            return 0
            ;;
        http://* | https://*) ;;
        *)
            usage >&2
            die "BASE_URL must be an http(s) URL, not '$base'"
            ;;
    esac
    (($# <= 1)) || die "one BASE_URL only"
    base="${base%/}"
    command -v python3 >/dev/null || die "python3 not found on PATH"
    command -v npx >/dev/null || die "npx not found on PATH: install Node.js (https://nodejs.org/), then npm ci"
    (cd "$REPO_ROOT" && npx --no-install newman --version >/dev/null 2>&1) \
        || die "newman is not installed: run npm ci in $REPO_ROOT"

    while read -r line; do
        if [[ "$line" == run\ * ]]; then
            run+=(--folder "${line#run }")
        else
            skipped+=("${line#skip }")
        fi
    done < <(folders)
    ((${#run[@]} > 0)) || die "no folder to run in $COLLECTION"

    wait_ready "$base"
    log "newman: $COLLECTION against $base (every folder but: ${skipped[*]:-none})"
    (cd "$REPO_ROOT" && npx --no-install newman run "$COLLECTION" \
        --env-var "baseUrl=$base" --bail --color off "${run[@]}") \
        || die "the collection failed against $base (above: the first failed request and why)"

    status="$(http_status "$base/metrics")"
    [[ "$status" == 404 ]] \
        || die "$base/metrics answered $status through the Gateway, not 404: the metrics must stay on their own port"
    log "the API answers its whole contract through the Gateway, and /metrics is not exposed there"
}

main "$@"
