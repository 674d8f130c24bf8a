#!/usr/bin/env bash
# Writes the Slack incoming-webhook URL Alertmanager posts to into OpenBao
# (KV secret/observability/alertmanager, property slack-webhook-url), where
# the ExternalSecret alertmanager-slack (deploy/observability/manifests)
# reads it. Until it is there, kube-prometheus-stack and
# observability-manifests stay Progressing.
#
# Usage: deploy/observability/set-alertmanager-webhook.sh FILE
#   FILE  a file holding the URL (one line), or - for standard input
#
# The URL goes from the file to OpenBao through standard input only: never
# on a command line, in a log or on this script's output. The write runs
# `bao kv put` inside the OpenBao pod, with a token read the same way:
# VAULT_TOKEN when set (e.g. one made with `bao operator generate-root`,
# docs/runbooks/vault.md), else the root token the bootstrap keeps in the
# Secret openbao/openbao-init until an operator removes it. A new cluster
# may still be starting OpenBao: the write is retried until it succeeds or
# WAIT_TIMEOUT has passed. Afterwards, if the ExternalSecret exists already,
# External Secrets is asked to sync it now rather than at its next refresh.
#
# Environment (optional):
#   VAULT_TOKEN      token allowed to write the secret [the bootstrap's root token]
#   WAIT_TIMEOUT     seconds to keep retrying [900]
#   POLL_INTERVAL    seconds between two tries [10]
# kubectl acts on the current context, as bootstrap.sh does.
set -euo pipefail

LOG_PREFIX="alertmanager-webhook"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/common.sh"

WAIT_TIMEOUT="${WAIT_TIMEOUT:-900}"
POLL_INTERVAL="${POLL_INTERVAL:-10}"
# Where OpenBao runs (deploy/argocd/values/openbao.yaml: release openbao,
# one server in development, openbao-0 of three in production) and where
# the bootstrap Job keeps the init material (deploy/vault/k8s/job.yaml).
OPENBAO_NAMESPACE="openbao"
OPENBAO_POD="openbao-0"
OPENBAO_CONTAINER="openbao"
INIT_SECRET="openbao-init"
# What the ExternalSecret reads (deploy/observability/manifests/
# externalsecret-alertmanager-slack.yaml): mount, path and property.
KV_MOUNT="secret"
KV_PATH="observability/alertmanager"
KV_PROPERTY="slack-webhook-url"
EXTERNAL_SECRET="observability/alertmanager-slack"
# Run by sh inside the OpenBao container: the token is the first line of
# standard input, the URL the rest, which `bao kv put KEY=-` reads.
# shellcheck disable=SC2016 # expanded by that sh, from its arguments
IN_POD_WRITE='IFS= read -r BAO_TOKEN && export BAO_TOKEN && exec bao kv put -mount="$1" "$2" "$3=-" >/dev/null'

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

# read_url FILE: the URL, checked; stops naming the problem, never the URL.
read_url() {
    local file="$1" url
    if [[ "$file" == - ]]; then
        url="$(cat)"
    else
        [[ -r "$file" ]] || die "cannot read $file"
        url="$(<"$file")"
    fi
    [[ -n "$url" ]] || die "$file is empty: it must hold the webhook URL"
    [[ "$url" =~ ^https?://[^[:space:]]+$ ]] \
        || die "$file does not hold one http(s) URL on one line (its content is not shown)"
    printf '%s' "$url"
}

# token prints VAULT_TOKEN, else the root token of the bootstrap's init material.
token() {
    local json
    if [[ -n "${VAULT_TOKEN:-}" ]]; then
        printf '%s' "$VAULT_TOKEN"
        return 0
    fi
    json="$(kubectl -n "$OPENBAO_NAMESPACE" get secret "$INIT_SECRET" -o 'jsonpath={.data.init\.json}' 2>/dev/null)" \
        || return 1
    base64 -d <<<"$json" 2>/dev/null | python3 -c '
import json, sys
token = json.load(sys.stdin).get("root_token")
sys.exit(1) if not token else print(token, end="")'
}

main() {
    local file="${1:-}" url secret_token deadline errors error="" last_error=""
    case "$file" in
        -h | --help)
            usage
            return 0
            ;;
        "")
            usage >&2
            die "which file holds the URL? (- for standard input)"
            ;;
    esac
    (($# == 1)) || die "one FILE only"
    command -v kubectl >/dev/null || die "kubectl not found on PATH"
    command -v python3 >/dev/null || die "python3 not found on PATH"
    url="$(read_url "$file")"
    errors="$(mktemp)"
    on_exit rm -f "$errors"

    deadline=$((SECONDS + WAIT_TIMEOUT))
    log "writing the webhook URL to OpenBao ($KV_MOUNT/$KV_PATH, $KV_PROPERTY); retrying up to ${WAIT_TIMEOUT}s while OpenBao starts"
    while :; do
        if ! secret_token="$(token)"; then
            error="no token yet: VAULT_TOKEN is not set and the Secret $OPENBAO_NAMESPACE/$INIT_SECRET holds no root token (not initialised yet, or removed after the bootstrap: see docs/runbooks/vault.md for a short-lived one)"
        elif printf '%s\n%s' "$secret_token" "$url" \
            | kubectl -n "$OPENBAO_NAMESPACE" exec -i "$OPENBAO_POD" -c "$OPENBAO_CONTAINER" -- \
                sh -c "$IN_POD_WRITE" sh "$KV_MOUNT" "$KV_PATH" "$KV_PROPERTY" >/dev/null 2>"$errors"; then
            break
        else
            # bao's and kubectl's errors name the API path and the server's
            # reason, never the data sent.
            error="$(tr '\n' ' ' <"$errors")"
        fi
        if ((SECONDS >= deadline)); then
            die "could not write the webhook URL within ${WAIT_TIMEOUT}s: $error"
        fi
        [[ "$error" == "$last_error" ]] || log "not yet: $error"
        last_error="$error"
        sleep "$POLL_INTERVAL"
    done
    log "written: $KV_MOUNT/$KV_PATH ($KV_PROPERTY)"

    if kubectl -n "${EXTERNAL_SECRET%/*}" get externalsecret "${EXTERNAL_SECRET#*/}" >/dev/null 2>&1; then
        kubectl -n "${EXTERNAL_SECRET%/*}" annotate externalsecret "${EXTERNAL_SECRET#*/}" \
            "force-sync=$(date +%s)" --overwrite >/dev/null
        log "asked External Secrets to sync $EXTERNAL_SECRET now"
    else
        log "External Secrets syncs it into $EXTERNAL_SECRET once Argo CD creates that (wave 3)"
    fi
}

main "$@"
