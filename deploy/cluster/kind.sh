#!/usr/bin/env bash
# The platform's local cluster on kind, the same as minikube.sh makes:
# three nodes, one per role, metrics and node-local volumes.
#
# Usage: deploy/cluster/kind.sh [up|verify|image [REPOSITORY]|down|help]
#   up      (default) create the cluster from kind.yaml unless it exists;
#           remove the control-plane taint; label the nodes; apply kind/
#           (metrics-server, the local-path StorageClass); wait; verify. A
#           second run creates nothing.
#   verify  the checks alone (see minikube.sh)
#   image   build the Dockerfile and load the image into the nodes under
#           the name the service's chart pulls: REPOSITORY:TAG, TAG being
#           the chart's image.tag, else its appVersion. REPOSITORY is the
#           one given to bootstrap.sh --image, and has the same default:
#           ghcr.io/OWNER/NAME of a GitHub origin remote, else the chart's
#           image.repository. When the chart pins image.digest the nodes
#           pull that release instead: nothing is built then.
#   down    delete the cluster
#
# Nodes get their role in a fixed order: NAME-control-plane runs
# dependent_services, NAME-worker application, NAME-worker2 database. The
# Gateway's NodePorts (Traefik's, deployed by Argo CD) are published on
# 127.0.0.1:80 (http) and 127.0.0.1:443 (https): the API is
# http://127.0.0.1/ once the platform runs.
#
# Environment (optional):
#   KIND_CLUSTER_NAME   cluster name [student-api]; the kubectl context is kind-NAME
#   KIND_NODE_IMAGE     node image [kindest/node:v1.36.4@sha256:…, below]
#   NODE_ROLES          node=role pairs, space-separated, instead of the order above
#   WAIT_TIMEOUT        seconds each wait may take [300]
set -euo pipefail

LOG_PREFIX="kind"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROVIDER="kind"
NAME="${KIND_CLUSTER_NAME:-student-api}"
KUBE_CONTEXT="kind-$NAME"
DEFAULT_NODE_ROLES="$NAME-control-plane=dependent_services $NAME-worker=application $NAME-worker2=database"
# The service's chart, whose image the nodes must hold (`image`).
SERVICE_CHART="$REPO_ROOT/deploy/helm/student-api"
CONTROL_PLANE_TAINT="node-role.kubernetes.io/control-plane:NoSchedule"
# Kubernetes v1.36.4, as minikube.sh creates (see there why 1.36), in the
# node image built for kind v0.33.0 (its release notes list it with this
# digest, the only way to get an image built for that release;
# github.com/kubernetes-sigs/kind/releases/tag/v0.33.0, published by
# 2026-08-31). kind v0.33.0 or later runs it.
# renovate: datasource=docker depName=kindest/node
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.36.4@sha256:099e049362a1526b2db71494e1947aae99bd16290d7c895f2b7ea312e3cbfaed}"

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

ensure_cluster() {
    local create=()
    if kind get clusters 2>/dev/null | grep -qxF "$NAME"; then
        log "cluster $NAME exists: reused"
        return 0
    fi
    create=(--name "$NAME" --config "$CLUSTER_DIR/kind.yaml" --image "$KIND_NODE_IMAGE" --wait "${WAIT_TIMEOUT}s")
    log "creating cluster $NAME ($KIND_NODE_IMAGE)"
    kind create cluster "${create[@]}"
}

# untaint_control_plane: kubeadm taints the control plane of a multi-node
# cluster; here it is the dependent_services node and must take pods.
untaint_control_plane() {
    local out node
    node="$(node_roles | sed -n 's/=dependent_services$//p')"
    if out="$(kc taint node "$node" "${CONTROL_PLANE_TAINT}-" 2>&1)"; then
        log "node $node: removed the taint $CONTROL_PLANE_TAINT"
    elif [[ "$out" != *"not found"* ]]; then
        die "cannot remove the taint $CONTROL_PLANE_TAINT from $node: $out"
    fi
}

cmd_up() {
    require_tools kind kubectl docker python3
    require_docker
    node_roles >/dev/null
    ensure_cluster
    wait_nodes_ready
    untaint_control_plane
    label_nodes
    log "applying deploy/cluster/kind (metrics-server, local-path)"
    kc apply -k "$CLUSTER_DIR/kind" >/dev/null
    wait_addons
    verify_cluster
}

cmd_verify() {
    require_tools kubectl python3
    verify_cluster
}

# chart_image KEY: image.KEY as the dev cluster's release of the service
# gets it, values.yaml then values-dev.yaml (what its Application passes);
# empty when neither sets it.
chart_image() {
    awk -v key="$1" '
        /^[^[:space:]#]/ { in_image = ($0 ~ /^image:[[:space:]]*$/); next }
        in_image && $0 ~ ("^  " key ":") {
            value = $0
            sub("^  " key ":[[:space:]]*", "", value)
            sub(/[[:space:]]+#.*$/, "", value)
            gsub(/^["\047]|["\047]$/, "", value)
        }
        END { print value }' "$SERVICE_CHART/values.yaml" "$SERVICE_CHART/values-dev.yaml"
}

# origin_image: bootstrap.sh's default --image, that of a GitHub origin
# remote; fails for any other remote.
origin_image() {
    local url
    url="$(git -C "$REPO_ROOT" remote get-url origin 2>/dev/null)" || return 1
    url="$(https_url "$url")" || return 1
    github_image "$url"
}

cmd_image() {
    local repository="${1:-}" tag digest policy ref revision
    require_tools kind docker
    require_docker
    kind get clusters 2>/dev/null | grep -qxF "$NAME" || die "no kind cluster $NAME: run deploy/cluster/kind.sh up first"
    if [[ -z "$repository" ]]; then
        repository="$(origin_image || chart_image repository)"
    fi
    tag="$(chart_image tag)"
    tag="${tag:-$(sed -n 's/^appVersion:[[:space:]]*"\{0,1\}\([^"]*\)"\{0,1\}[[:space:]]*$/\1/p' "$SERVICE_CHART/Chart.yaml")}"
    digest="$(chart_image digest)"
    policy="$(chart_image pullPolicy)"
    [[ -n "$repository" && -n "$tag" ]] || die "cannot read the image repository and tag from $SERVICE_CHART"
    ref="$repository:$tag"
    if [[ -n "$digest" ]]; then
        warn "$SERVICE_CHART pins image.digest $digest: the nodes pull that release of $repository and would never run a local build; nothing built"
        return 0
    fi
    [[ "$policy" != Always ]] || warn "image.pullPolicy is Always: the nodes pull $ref from the registry even after this load"
    revision="$(git -C "$REPO_ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
    log "building $ref from $REPO_ROOT/Dockerfile (revision $revision)"
    docker build --tag "$ref" --build-arg "VERSION=$tag" --build-arg "REVISION=$revision" "$REPO_ROOT"
    log "loading $ref into the nodes of $NAME"
    kind load docker-image "$ref" --name "$NAME"
    log "loaded: the chart runs $ref (pull policy ${policy:-IfNotPresent})"
}

cmd_down() {
    require_tools kind
    log "deleting cluster $NAME"
    kind delete cluster --name "$NAME"
}

case "${1:-up}" in
up) cmd_up ;;
verify) cmd_verify ;;
image)
    (($# <= 2)) || die "image takes one REPOSITORY at most"
    cmd_image "${2:-}"
    ;;
down) cmd_down ;;
-h | --help | help) usage ;;
*)
    usage >&2
    die "unknown command: $1"
    ;;
esac
