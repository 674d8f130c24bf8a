# shellcheck shell=bash
# What minikube.sh and kind.sh share: prerequisites, node roles, bounded
# waits, and the verification that ends every `up` (and is `verify` alone).
# Every kubectl call names the cluster's context (KUBE_CONTEXT), never the
# current one, so a re-run cannot label or judge another cluster.
#
# The sourcing script sets PROVIDER, KUBE_CONTEXT and DEFAULT_NODE_ROLES
# before calling anything here.

# shellcheck source-path=SCRIPTDIR/../../scripts/lib
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/common.sh"

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# The platform's node roles (label `type`), each on exactly one node.
PLATFORM_ROLES=(dependent_services application database)
# Longest one wait may take, in seconds, and the pause between polls.
WAIT_TIMEOUT="${WAIT_TIMEOUT:-300}"
POLL_INTERVAL="${POLL_INTERVAL:-5}"
# The oldest Kubernetes minor still supported upstream, the platform's
# floor: 1.34 reached its end of life on 2026-10-27, 1.35 gets patches until
# 2027-02-28 (kubernetes.io/releases/1.35, read 2026-12-05).
MIN_KUBERNETES="1.35"
# The Gateway API release the platform installs (the Application
# gateway-api-crds, deploy/argocd/platform/templates/gateway-api-crds.yaml; a
# test keeps the two equal). A cluster that already has these CRDs must not hold a
# newer release or the experimental channel, which that sync would replace.
# renovate: datasource=git-tags depName=https://github.com/kubernetes-sigs/gateway-api.git
GATEWAY_API_VERSION="v1.6.3"
GATEWAY_API_CRD="gateways.gateway.networking.k8s.io"
# The database's volume must be created on the node that runs it: the
# local-path provisioner does that on every provider (see docs/deploy.md).
REQUIRED_STORAGECLASSES=(local-path)
# Deployments the platform needs from the cluster itself: namespace/name.
# Traffic from outside enters through the Gateway Argo CD deploys
# (deploy/gateway), not through anything the cluster brings.
METRICS_DEPLOYMENT="kube-system/metrics-server"
LOCAL_PATH_DEPLOYMENT="local-path-storage/local-path-provisioner"

kc() { kubectl --context "$KUBE_CONTEXT" "$@"; }

check() { python3 "$CLUSTER_DIR/check.py" "$@"; }

# require_tools TOOL...: every TOOL is on PATH, or one message lists what
# is missing and where to get it.
require_tools() {
    local tool missing=()
    declare -A hint=(
        [minikube]="https://minikube.sigs.k8s.io/docs/start/"
        [kind]="https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
        [kubectl]="https://kubernetes.io/docs/tasks/tools/"
        [docker]="https://docs.docker.com/engine/install/ (or Docker Desktop)"
        [python3]="your package manager (Debian: apt-get install python3)"
        [helm]="https://helm.sh/docs/intro/install/"
        [git]="https://git-scm.com/downloads"
    )
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool: ${hint[$tool]:-install it}")
    done
    if ((${#missing[@]} > 0)); then
        for tool in "${missing[@]}"; do
            printf '[%s] ERROR: missing prerequisite %s\n' "$LOG_PREFIX" "$tool" >&2
        done
        exit 1
    fi
}

require_docker() {
    docker info --format '{{.ServerVersion}}' >/dev/null 2>&1 \
        || die "the Docker daemon does not answer (docker info failed): start Docker (Docker Desktop, or: sudo systemctl start docker) and make sure this user may use it"
}

# node_roles: "node=role" pairs, from NODE_ROLES when set, else the
# provider's fixed order. Refuses a list that does not give each platform
# role to exactly one node.
node_roles() {
    local pairs=() pair role seen=" " wanted
    read -r -a pairs <<<"${NODE_ROLES:-$DEFAULT_NODE_ROLES}"
    for pair in "${pairs[@]}"; do
        role="${pair#*=}"
        [[ "$pair" == *=* && -n "${pair%%=*}" ]] || die "NODE_ROLES: '$pair' is not node=role"
        [[ " ${PLATFORM_ROLES[*]} " == *" $role "* ]] \
            || die "NODE_ROLES: '$role' is not a platform role (${PLATFORM_ROLES[*]})"
        [[ "$seen" != *" $role "* ]] || die "NODE_ROLES: role $role is given twice"
        seen+="$role "
    done
    for wanted in "${PLATFORM_ROLES[@]}"; do
        [[ "$seen" == *" $wanted "* ]] || die "NODE_ROLES: no node gets role $wanted"
    done
    printf '%s\n' "${pairs[@]}"
}

# label_nodes: `type=<role>` on each node, overwriting what is there; the
# same calls on every run, so a label changed by hand is put back.
label_nodes() {
    local pair
    while read -r pair; do
        log "node ${pair%%=*}: type=${pair#*=}"
        kc label node "${pair%%=*}" "type=${pair#*=}" --overwrite >/dev/null
    done < <(node_roles)
}

wait_nodes_ready() {
    log "waiting up to ${WAIT_TIMEOUT}s for every node to be Ready"
    kc wait --for=condition=Ready node --all --timeout="${WAIT_TIMEOUT}s" >/dev/null
}

# wait_rollout NAMESPACE/NAME: the Deployment exists and is rolled out.
wait_rollout() {
    local ns="${1%%/*}" name="${1#*/}" deadline=$((SECONDS + WAIT_TIMEOUT))
    log "waiting up to ${WAIT_TIMEOUT}s for deployment $1"
    # `rollout status` fails at once on a Deployment not created yet.
    until kc -n "$ns" get deployment "$name" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "deployment $1 was not created within ${WAIT_TIMEOUT}s"
        sleep "$POLL_INTERVAL"
    done
    kc -n "$ns" rollout status "deployment/$name" --timeout="$((deadline > SECONDS ? deadline - SECONDS : 1))s" >/dev/null \
        || die "deployment $1 did not become ready within ${WAIT_TIMEOUT}s (kubectl --context $KUBE_CONTEXT -n $ns describe deployment $name)"
}

# wait_metrics_api: metrics-server needs a scrape or two after it starts
# before the API reports nodes.
wait_metrics_api() {
    local deadline=$((SECONDS + WAIT_TIMEOUT)) json
    log "waiting up to ${WAIT_TIMEOUT}s for the metrics API"
    while :; do
        if json="$(kc get --raw /apis/metrics.k8s.io/v1beta1/nodes 2>/dev/null)" \
            && check metrics <<<"$json" >/dev/null; then
            return 0
        fi
        ((SECONDS < deadline)) || die "the metrics API did not report nodes within ${WAIT_TIMEOUT}s (kubectl --context $KUBE_CONTEXT -n kube-system logs deployment/metrics-server)"
        sleep "$POLL_INTERVAL"
    done
}

# wait_addons: metrics-server and the local-path provisioner rolled out,
# and the metrics API reporting nodes.
wait_addons() {
    wait_rollout "$METRICS_DEPLOYMENT"
    wait_rollout "$LOCAL_PATH_DEPLOYMENT"
    wait_metrics_api
}

# _oneline FILE: the file's text on one line.
_oneline() { tr '\n' ' ' <"$1" | sed 's/ *$//'; }

# verify_cluster: every check, all problems reported together; exits 1 if
# any. Reads only.
verify_cluster() {
    local roles=() found=() problems=() out json pair errors
    node_roles >/dev/null
    # kubectl's warnings go to stderr even when it succeeds: kept apart from
    # the JSON, and quoted only when a call fails.
    errors="$(mktemp)"
    on_exit rm -f "$errors"
    while read -r pair; do roles+=("${pair#*=}"); done < <(node_roles)

    # _judge LABEL CHECK-ARGS... < JSON: appends what check.py says.
    _judge() {
        local label="$1"
        shift
        if out="$(check "$@")"; then
            mapfile -t -O "${#found[@]}" found <<<"$out"
        elif [[ -n "$out" ]]; then
            mapfile -t -O "${#problems[@]}" problems <<<"$out"
        else
            problems+=("$label: unexpected answer (see the message above)")
        fi
    }

    if json="$(kc get nodes -o json 2>"$errors")"; then
        _judge nodes nodes "${roles[@]}" <<<"$json"
    else
        problems+=("nodes: kubectl cannot list nodes of context $KUBE_CONTEXT: $(_oneline "$errors")")
    fi
    if json="$(kc version -o json 2>/dev/null)"; then
        _judge kubernetes version "$MIN_KUBERNETES" <<<"$json"
    else
        problems+=("kubernetes: kubectl version cannot reach the API server of context $KUBE_CONTEXT")
    fi
    if json="$(kc get storageclass -o json 2>"$errors")"; then
        _judge storage storageclasses "${REQUIRED_STORAGECLASSES[@]}" <<<"$json"
    else
        problems+=("storage: kubectl cannot list StorageClasses: $(_oneline "$errors")")
    fi
    # Absent is fine (Argo CD installs them); present, they must be ones
    # that sync can take over.
    if json="$(kc get crd "$GATEWAY_API_CRD" --ignore-not-found -o json 2>"$errors")"; then
        _judge gateway-api gateway-api "$GATEWAY_API_VERSION" <<<"${json:-"{}"}"
    else
        problems+=("gateway-api: kubectl cannot read CustomResourceDefinitions: $(_oneline "$errors")")
    fi
    if json="$(kc get --raw /apis/metrics.k8s.io/v1beta1/nodes 2>"$errors")"; then
        _judge metrics metrics <<<"$json"
    else
        problems+=("metrics: the metrics API (metrics.k8s.io) does not answer: $(_oneline "$errors")")
    fi

    if ((${#problems[@]} > 0)); then
        for out in "${problems[@]}"; do
            printf '[%s] FAIL %s\n' "$LOG_PREFIX" "$out" >&2
        done
        die "cluster $KUBE_CONTEXT ($PROVIDER) is not ready for the platform: ${#problems[@]} problem(s) above"
    fi
    printf '\n%s cluster %s is ready for the platform:\n' "$PROVIDER" "$KUBE_CONTEXT"
    printf '  %s\n' "${found[@]}"
}

# https_url URL: the https form Argo CD reads a Git URL in. A GitHub SSH URL
# (git@github.com:OWNER/NAME, ssh://git@github.com/OWNER/NAME) becomes
# https://github.com/OWNER/NAME.git, as does a GitHub https URL without
# .git; another https URL stays as it is. Exit 2 for credentials in the URL
# (a user of an http URL, or user:password of any), exit 1 for anything
# else; nothing is printed then.
https_url() {
    local url="$1" path authority
    authority="${url#*://}"
    authority="${authority%%/*}"
    if [[ "$url" == *://* && "$authority" == *@* ]] && [[ "$url" == http* || "${authority%@*}" == *:* ]]; then
        return 2
    fi
    # Nothing Helm's --set-string or a YAML scalar would read otherwise.
    [[ "$url" =~ ^[^[:space:],\"\'\\]+$ ]] || return 1
    case "$url" in
        https://*)
            [[ "$authority" == github.com ]] || {
                printf '%s\n' "$url"
                return 0
            }
            path="${url#https://github.com/}"
            ;;
        git@github.com:*) path="${url#git@github.com:}" ;;
        ssh://git@github.com/*) path="${url#ssh://git@github.com/}" ;;
        *) return 1 ;;
    esac
    path="${path%/}"
    path="${path%.git}"
    [[ "$path" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] || return 1
    printf 'https://github.com/%s.git\n' "$path"
}

# github_image URL: ghcr.io/OWNER/NAME, lowercase, for the https URL of a
# GitHub repository (https_url's form): where the release workflow
# publishes the image of that repository. Fails for any other URL.
github_image() {
    local path
    [[ "$1" == https://github.com/*/*.git ]] || return 1
    path="${1#https://github.com/}"
    printf 'ghcr.io/%s\n' "${path%.git}" | tr '[:upper:]' '[:lower:]'
}
