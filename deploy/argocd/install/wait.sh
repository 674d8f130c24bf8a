#!/usr/bin/env bash
# After bootstrap.sh: waits, within a bound, until every Argo CD Application
# of the platform is Synced and Healthy, printing each change as it happens.
# Run it instead of `kubectl -n argocd get applications -w`, which never
# ends and never fails.
#
# Usage: deploy/argocd/install/wait.sh
#
# Exit 0 once the root and every Application it created are Synced and
# Healthy and no sync is still running (the root's runs until its last wave
# is healthy). Exit 1 once WAIT_TIMEOUT has passed, naming each Application
# that is not, with its sync and health status and what Argo CD says about
# it; at once when the cluster has no Argo CD.
#
# kube-prometheus-stack and observability-manifests become Healthy only
# once the Alertmanager webhook URL is in OpenBao
# (deploy/observability/set-alertmanager-webhook.sh).
#
# Environment (optional):
#   WAIT_TIMEOUT      seconds to wait in all [1800]
#   POLL_INTERVAL     seconds between two looks [10]
#   SUMMARY_INTERVAL  seconds between two "still waiting for" lines [60]
#   ARGOCD_NAMESPACE  namespace of the Applications [argocd]
# kubectl acts on the current context, as bootstrap.sh does.
set -euo pipefail

LOG_PREFIX="argocd-wait"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib/common.sh"

WAIT_TIMEOUT="${WAIT_TIMEOUT:-1800}"
POLL_INTERVAL="${POLL_INTERVAL:-10}"
SUMMARY_INTERVAL="${SUMMARY_INTERVAL:-60}"
ARGOCD_NAMESPACE="${ARGOCD_NAMESPACE:-argocd}"
# Reads `kubectl get applications -o json`; see there for its output.
SUMMARISE="$(dirname "${BASH_SOURCE[0]}")/applications.py"
# The two Applications that wait for an operator's step (see above).
WEBHOOK_APPS=(kube-prometheus-stack observability-manifests)

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

elapsed() { printf '%dm%02ds' $((SECONDS / 60)) $((SECONDS % 60)); }

# waiting_names STATE: the names of the Applications not ready yet.
waiting_names() { awk -F'\t' '$2 != "ready" {print $1}' <<<"$1"; }

report_timeout() {
    local state="$1" name detail status waiting=()
    if [[ -z "$state" ]]; then
        die "no Application appeared in namespace $ARGOCD_NAMESPACE within ${WAIT_TIMEOUT}s: did bootstrap.sh apply the root?"
    fi
    while IFS=$'\t' read -r name status detail; do
        [[ "$status" == ready ]] && continue
        waiting+=("$name")
        printf '[%s] FAIL %s: %s\n' "$LOG_PREFIX" "$name" "$detail" >&2
    done <<<"$state"
    for name in "${WEBHOOK_APPS[@]}"; do
        if [[ " ${waiting[*]} " == *" $name "* ]]; then
            log "${WEBHOOK_APPS[*]} stay Progressing until the Alertmanager webhook URL is in OpenBao: deploy/observability/set-alertmanager-webhook.sh"
            break
        fi
    done
    log "more: kubectl -n $ARGOCD_NAMESPACE describe application ${waiting[0]}; everything at once: deploy/cluster/diagnostics.sh DIR"
    die "${#waiting[@]} Application(s) not Synced and Healthy within ${WAIT_TIMEOUT}s"
}

main() {
    case "${1:-}" in
        "") ;;
        -h | --help)
            usage
            return 0
            ;;
        *)
            usage >&2
            die "unexpected argument: $1"
            ;;
    esac
    command -v kubectl >/dev/null || die "kubectl not found on PATH"
    command -v python3 >/dev/null || die "python3 not found on PATH"

    local deadline=$((SECONDS + WAIT_TIMEOUT)) next_summary=$((SECONDS + SUMMARY_INTERVAL))
    local json state="" rc errors error="" last_error="" name status detail total waiting
    local -A seen=()
    errors="$(mktemp)"
    on_exit rm -f "$errors"

    log "waiting up to ${WAIT_TIMEOUT}s for every Application in $ARGOCD_NAMESPACE to be Synced and Healthy"
    while :; do
        if json="$(kubectl -n "$ARGOCD_NAMESPACE" get applications.argoproj.io -o json 2>"$errors")"; then
            rc=0
            state="$(python3 "$SUMMARISE" <<<"$json")" || rc=$?
            ((rc != 2)) || die "kubectl printed something that is not a list of Applications"
            # One line per change of an Application, not one per poll.
            while IFS=$'\t' read -r name status detail; do
                [[ -n "$name" && "${seen[$name]:-}" != "$detail" ]] || continue
                seen[$name]="$detail"
                log "$name: $detail"
            done <<<"$state"
            if ((rc == 0)); then
                log "all $(grep -c . <<<"$state") Applications are Synced and Healthy ($(elapsed))"
                return 0
            fi
            last_error=""
        else
            error="$(tr '\n' ' ' <"$errors")"
            if [[ "$error" == *"doesn't have a resource type"* ]]; then
                die "this cluster has no Argo CD (no Application resource): run deploy/argocd/install/bootstrap.sh first"
            fi
            [[ "$error" == "$last_error" ]] || warn "cannot list the Applications: $error"
            last_error="$error"
        fi

        if ((SECONDS >= next_summary)); then
            next_summary=$((SECONDS + SUMMARY_INTERVAL))
            if [[ -z "$state" ]]; then
                log "no Application in $ARGOCD_NAMESPACE yet ($(elapsed))"
            else
                total="$(grep -c . <<<"$state")"
                waiting="$(waiting_names "$state" | paste -sd' ' -)"
                log "$((total - $(wc -w <<<"$waiting"))) of $total Synced and Healthy ($(elapsed)); waiting for: $waiting"
            fi
        fi
        ((SECONDS < deadline)) || report_timeout "$state"
        sleep "$POLL_INTERVAL"
    done
}

main "$@"
