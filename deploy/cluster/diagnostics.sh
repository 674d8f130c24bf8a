#!/usr/bin/env bash
# Collects into a directory what shows why the platform is not running:
# the state of every object that matters, the events, and the logs of
# every pod. For a bug report, or the CI job's artifact when a step failed.
#
# Usage: deploy/cluster/diagnostics.sh DIR
#
# Writes into DIR (created if needed):
#   cluster.txt        kubectl and server versions, nodes with their role
#                      labels, `kubectl describe nodes`
#   argocd.txt         the Argo CD Applications and AppProjects: a table,
#                      then `describe` (sync and health of each, conditions,
#                      the last operation)
#   argocd.yaml        the same objects in full
#   resources.txt      every workload, Service, volume, Gateway API object,
#                      ExternalSecret and secret store of every namespace;
#                      Secrets by name and type only
#   events.txt         every event, oldest first
#   describe/KIND.txt  `kubectl describe` of every pod, workload, Job,
#                      volume claim, ExternalSecret and route
#   logs/NS/POD.log    every container of every pod, init containers too,
#                      and POD.CONTAINER.previous.log for a restarted one
#   kind/              `kind export logs` (nodes, kubelet, containerd), when
#                      KIND_CLUSTER_NAME names a kind cluster
#   errors.txt         each command that failed, and why
#
# No Secret value is ever written. Every command runs on its own with a
# time limit: one that fails is noted in errors.txt and the rest goes on,
# so the script exits 0 whatever state the cluster is in (2 only for a
# usage error). kubectl acts on the current context.
#
# Environment (optional):
#   KIND_CLUSTER_NAME  a kind cluster whose node logs to export
#   LOG_TAIL           lines kept per container log [5000]
set -uo pipefail

LOG_PREFIX="diagnostics"
# shellcheck source-path=SCRIPTDIR/../../scripts/lib
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/common.sh"

LOG_TAIL="${LOG_TAIL:-5000}"
# Each kubectl call gives up after this long, so a dead API server cannot
# hold the job.
REQUEST_TIMEOUT="30s"
# Built-in kinds listed in resources.txt, in one call.
RESOURCE_KINDS="deployments,statefulsets,daemonsets,replicasets,pods,jobs,cronjobs,services,endpointslices,persistentvolumeclaims,configmaps,serviceaccounts,horizontalpodautoscalers,poddisruptionbudgets,networkpolicies"
# Kinds of the platform's CRDs, one call each: a kind the cluster does not
# have (yet) fails alone and is noted in errors.txt.
PLATFORM_KINDS=(
    gatewayclasses.gateway.networking.k8s.io gateways.gateway.networking.k8s.io
    httproutes.gateway.networking.k8s.io externalsecrets.external-secrets.io
    clustersecretstores.external-secrets.io servicemonitors.monitoring.coreos.com
    prometheusrules.monitoring.coreos.com
)
DESCRIBE_KINDS=(
    pods deployments statefulsets daemonsets jobs persistentvolumeclaims
    externalsecrets.external-secrets.io httproutes.gateway.networking.k8s.io
)
ARGOCD_KINDS="applications.argoproj.io,appprojects.argoproj.io"

usage() {
    sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

OUT=""
FAILED=0

# run FILE CMD...: appends CMD's output to FILE under a header; a failure
# goes to errors.txt and is otherwise ignored.
run() {
    local file="$OUT/$1" status
    shift
    mkdir -p "$(dirname "$file")"
    printf '### %s\n' "$*" >>"$file"
    "$@" >>"$file" 2>>"$OUT/errors.txt.part"
    status=$?
    if ((status != 0)); then
        FAILED=$((FAILED + 1))
        printf '%s: exit %d: %s\n' "$1 ${*:2}" "$status" "$(tr '\n' ' ' <"$OUT/errors.txt.part")" >>"$OUT/errors.txt"
    fi
    : >"$OUT/errors.txt.part"
    printf '\n' >>"$file"
}

KC=(kubectl --request-timeout="$REQUEST_TIMEOUT")

# pods: "NAMESPACE POD CONTAINER RESTARTS" for every container of every pod.
pods() {
    "${KC[@]}" get pods -A -o json | python3 -c '
import json, sys
for pod in json.load(sys.stdin).get("items", []):
    meta, status = pod["metadata"], pod.get("status") or {}
    for c in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        print(meta["namespace"], meta["name"], c["name"], c.get("restartCount", 0))'
}

collect_logs() {
    local ns pod container restarts listing
    listing="$(pods 2>>"$OUT/errors.txt")" || {
        printf 'listing the pods failed: no logs\n' >>"$OUT/errors.txt"
        FAILED=$((FAILED + 1))
        return 0
    }
    # One file per pod with every container (prefixed), written once.
    while read -r ns pod; do
        [[ -n "$pod" ]] || continue
        run "logs/$ns/$pod.log" "${KC[@]}" -n "$ns" logs "$pod" --all-containers --prefix --timestamps --tail="$LOG_TAIL"
    done < <(awk '{print $1, $2}' <<<"$listing" | sort -u)
    while read -r ns pod container restarts; do
        ((${restarts:-0} > 0)) || continue
        run "logs/$ns/$pod.$container.previous.log" "${KC[@]}" -n "$ns" logs "$pod" -c "$container" --previous --timestamps --tail="$LOG_TAIL"
    done <<<"$listing"
}

main() {
    local kind
    case "${1:-}" in
        -h | --help)
            usage
            return 0
            ;;
        "")
            usage >&2
            printf '[%s] ERROR: which directory should the diagnostics go to?\n' "$LOG_PREFIX" >&2
            return 2
            ;;
    esac
    OUT="$1"
    if ! mkdir -p "$OUT"; then
        printf '[%s] ERROR: cannot create %s\n' "$LOG_PREFIX" "$OUT" >&2
        return 2
    fi
    : >"$OUT/errors.txt"
    : >"$OUT/errors.txt.part"
    if ! command -v kubectl >/dev/null; then
        printf 'kubectl not found on PATH: nothing collected\n' >>"$OUT/errors.txt"
        warn "kubectl not found on PATH: nothing collected"
        return 0
    fi
    log "collecting into $OUT (context: $(kubectl config current-context 2>/dev/null || echo none))"

    run cluster.txt "${KC[@]}" version
    run cluster.txt "${KC[@]}" get nodes -o wide -L type
    run cluster.txt "${KC[@]}" describe nodes

    run argocd.txt "${KC[@]}" get "$ARGOCD_KINDS" -A -o wide
    run argocd.txt "${KC[@]}" describe "$ARGOCD_KINDS" -A
    run argocd.yaml "${KC[@]}" get "$ARGOCD_KINDS" -A -o yaml

    run resources.txt "${KC[@]}" get "$RESOURCE_KINDS" -A -o wide
    for kind in "${PLATFORM_KINDS[@]}"; do
        run resources.txt "${KC[@]}" get "$kind" -A -o wide
    done
    # NAME, TYPE, DATA (a count) and AGE: never a value.
    run resources.txt "${KC[@]}" get secrets -A
    run resources.txt "${KC[@]}" get persistentvolumes,storageclasses -o wide

    run events.txt "${KC[@]}" get events -A --sort-by=.lastTimestamp -o wide

    for kind in "${DESCRIBE_KINDS[@]}"; do
        run "describe/${kind%%.*}.txt" "${KC[@]}" describe "$kind" -A
    done

    collect_logs

    if [[ -n "${KIND_CLUSTER_NAME:-}" ]] && command -v kind >/dev/null \
        && kind get clusters 2>/dev/null | grep -qxF "$KIND_CLUSTER_NAME"; then
        run kind.txt kind export logs "$OUT/kind" --name "$KIND_CLUSTER_NAME"
    fi

    rm -f "$OUT/errors.txt.part"
    if ((FAILED > 0)); then
        log "done, $FAILED command(s) failed (see $OUT/errors.txt)"
    else
        log "done"
    fi
    return 0
}

main "$@"
