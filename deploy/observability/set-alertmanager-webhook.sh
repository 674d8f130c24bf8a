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
# `bao kv put` inside the OpenBao pod, as an operator: it logs in there with
# Kubernetes auth (role operator, docs/runbooks/vault.md) using a
# ten-minute token of the service account openbao/openbao-operator that
# `kubectl create token` makes for this run (so the right to write is the
# right to create that account's tokens), passed on standard input too and
# never stored. VAULT_TOKEN, when set, is used instead (a token the operator
# brings, allowed to write that path). A new cluster may still be starting
# OpenBao: the write is retried until it succeeds or WAIT_TIMEOUT has
# passed. Afterwards, if the ExternalSecret exists already, External
# Secrets is asked to sync it now rather than at its next refresh.
#
# Environment (optional):
#   VAULT_TOKEN      a token allowed to write the secret [a login as operator]
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
# one server in development, openbao-0 of three in production), and the
# operators' identity (deploy/vault/serviceaccounts.yaml and
# kubernetes-roles/operator.json).
OPENBAO_NAMESPACE="openbao"
OPENBAO_POD="openbao-0"
OPENBAO_CONTAINER="openbao"
OPERATOR_ACCOUNT="openbao-operator"
OPERATOR_ROLE="operator"
OPERATOR_TOKEN_TTL="10m"
# What the ExternalSecret reads (deploy/observability/manifests/
# externalsecret-alertmanager-slack.yaml): mount, path and property.
KV_MOUNT="secret"
KV_PATH="observability/alertmanager"
KV_PROPERTY="slack-webhook-url"
EXTERNAL_SECRET="observability/alertmanager-slack"
# Run by sh inside the OpenBao container. The first line of standard input
# is the credential, the rest the URL, which `bao kv put KEY=-` reads. With
# "jwt" the credential is a service-account token to log in with (role
# $2), with "token" an OpenBao token; either way BAO_TOKEN is this shell's
# own (in production the pod's environment holds the seal's token there).
# shellcheck disable=SC2016 # expanded by that sh, from its arguments
IN_POD_WRITE='IFS= read -r credential || exit 1
case "$1" in
    jwt) BAO_TOKEN="$(printf "%s" "$credential" | BAO_TOKEN= bao write -field=token auth/kubernetes/login role="$2" jwt=-)" || exit 1 ;;
    *) BAO_TOKEN="$credential" ;;
esac
export BAO_TOKEN
exec bao kv put -mount="$3" "$4" "$5=-" >/dev/null'

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

# credential: "token" and VAULT_TOKEN when set, else "jwt" and a fresh,
# short-lived token of the operators' service account for OpenBao, on two
# lines; kubectl's reason on failure (it names the account, never a token).
credential() {
    local jwt
    if [[ -n "${VAULT_TOKEN:-}" ]]; then
        printf 'token\n%s' "$VAULT_TOKEN"
        return 0
    fi
    jwt="$(kubectl -n "$OPENBAO_NAMESPACE" create token "$OPERATOR_ACCOUNT" --audience vault \
        --duration "$OPERATOR_TOKEN_TTL" 2>&1)" || {
        printf '%s' "$jwt"
        return 1
    }
    printf 'jwt\n%s' "$jwt"
}

main() {
    local file="${1:-}" url answer kind secret deadline errors error="" last_error=""
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
    url="$(read_url "$file")"
    errors="$(mktemp)"
    on_exit rm -f "$errors"

    deadline=$((SECONDS + WAIT_TIMEOUT))
    log "writing the webhook URL to OpenBao ($KV_MOUNT/$KV_PATH, $KV_PROPERTY); retrying up to ${WAIT_TIMEOUT}s while OpenBao starts"
    while :; do
        if ! answer="$(credential)"; then
            error="cannot get a token of $OPENBAO_NAMESPACE/$OPERATOR_ACCOUNT (the right to create it is the right to write; or set VAULT_TOKEN, docs/runbooks/vault.md): $(tr '\n' ' ' <<<"$answer")"
        else
            kind="${answer%%$'\n'*}"
            secret="${answer#*$'\n'}"
            if printf '%s\n%s' "$secret" "$url" \
                | kubectl -n "$OPENBAO_NAMESPACE" exec -i "$OPENBAO_POD" -c "$OPENBAO_CONTAINER" -- \
                    sh -c "$IN_POD_WRITE" sh "$kind" "$OPERATOR_ROLE" "$KV_MOUNT" "$KV_PATH" "$KV_PROPERTY" >/dev/null 2>"$errors"; then
                break
            fi
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
