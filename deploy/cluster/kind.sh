#!/usr/bin/env bash
# The platform's local cluster on kind, the same as minikube.sh makes:
# three nodes, one per role, an ingress controller, metrics and node-local
# volumes.
#
# Usage: deploy/cluster/kind.sh [up|verify|down|help]
#   up      (default) create the cluster from kind.yaml unless it exists;
#           remove the control-plane taint; label the nodes; apply kind/
#           (ingress-nginx, metrics-server, the local-path StorageClass);
#           wait; verify. A second run creates nothing.
#   verify  the checks alone (see minikube.sh)
#   down    delete the cluster
#
# Nodes get their role in a fixed order: NAME-control-plane runs
# dependent_services, NAME-worker application, NAME-worker2 database. The
# ingress controller and the API's NodePort are published on 127.0.0.1:80,
# :443 and :30080.
#
# Environment (optional):
#   KIND_CLUSTER_NAME   cluster name [student-api]; the kubectl context is kind-NAME
#   KIND_NODE_IMAGE     node image, e.g. kindest/node:v1.33.1 [kind's default]
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
CONTROL_PLANE_TAINT="node-role.kubernetes.io/control-plane:NoSchedule"

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

ensure_cluster() {
    local create=()
    if kind get clusters 2>/dev/null | grep -qxF "$NAME"; then
        log "cluster $NAME exists: reused"
        return 0
    fi
    create=(--name "$NAME" --config "$CLUSTER_DIR/kind.yaml" --wait "${WAIT_TIMEOUT}s")
    if [[ -n "${KIND_NODE_IMAGE:-}" ]]; then
        create+=(--image "$KIND_NODE_IMAGE")
    fi
    log "creating cluster $NAME"
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
    log "applying deploy/cluster/kind (ingress-nginx, metrics-server, local-path)"
    kc apply -k "$CLUSTER_DIR/kind" >/dev/null
    wait_addons
    verify_cluster
}

cmd_verify() {
    require_tools kubectl python3
    verify_cluster
}

cmd_down() {
    require_tools kind
    log "deleting cluster $NAME"
    kind delete cluster --name "$NAME"
}

case "${1:-up}" in
up) cmd_up ;;
verify) cmd_verify ;;
down) cmd_down ;;
-h | --help | help) usage ;;
*)
    usage >&2
    die "unknown command: $1"
    ;;
esac
