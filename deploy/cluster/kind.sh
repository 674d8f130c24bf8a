#!/usr/bin/env bash
# The platform's local cluster on kind, the same as minikube.sh makes:
# three nodes, one per role, metrics and node-local volumes.
#
# Usage: deploy/cluster/kind.sh [up|verify|down|help]
#   up      (default) create the cluster from kind.yaml unless it exists;
#           remove the control-plane taint; label the nodes; apply kind/
#           (metrics-server, the local-path StorageClass); wait; verify. A
#           second run creates nothing.
#   verify  the checks alone (see minikube.sh)
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
