#!/usr/bin/env bash
# The platform's local cluster on minikube: three nodes (docker driver), one
# per role, with the addons the platform relies on.
#
# Usage: deploy/cluster/minikube.sh [up|verify|down|help]
#   up      (default) create the profile, or start or reuse it; label the
#           nodes; enable the missing addons; wait; verify. A second run
#           creates and enables nothing and only re-applies the labels.
#   verify  the checks alone: 3 nodes, each role (label `type`) on exactly
#           one and all Ready; Kubernetes >= 1.35; a default StorageClass
#           and local-path; the metrics API; Gateway API CRDs absent or
#           ones the platform's can replace. Every problem is named; exit 1
#           if any.
#   down    delete the profile and everything in it.
#
# Nodes get their role in a fixed order: the control plane (PROFILE) runs
# dependent_services, PROFILE-m02 application, PROFILE-m03 database.
#
# Environment (optional):
#   MINIKUBE_PROFILE     profile, and kubectl context [student-api]
#   MINIKUBE_CPUS        CPUs per node [2]
#   MINIKUBE_MEMORY      memory per node [4g]
#   MINIKUBE_DISK_SIZE   disk per node [20g]
#   KUBERNETES_VERSION   Kubernetes of a new profile [v1.36.4]
#   NODE_ROLES           node=role pairs, space-separated, instead of the order above
#   WAIT_TIMEOUT         seconds each wait may take [300]
set -euo pipefail

LOG_PREFIX="minikube"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROVIDER="minikube"
PROFILE="${MINIKUBE_PROFILE:-student-api}"
KUBE_CONTEXT="$PROFILE"
DEFAULT_NODE_ROLES="$PROFILE=dependent_services $PROFILE-m02=application $PROFILE-m03=database"
NODE_COUNT=3
# Kubernetes of a new profile, the same release kind.sh creates: 1.36, the
# newest minor every operator of the platform supports (1.37 is out, but not
# yet in their support matrices), supported upstream until 2027-06-28.
# v1.36.4: kubernetes/kubernetes tag v1.36.4, 2026-08-20, the newest 1.36
# patch kind publishes a node image of (kind v0.33.0); minikube v1.39.0 and
# later run it. An existing profile keeps its version.
# renovate: datasource=docker depName=kindest/node
KUBERNETES_VERSION="${KUBERNETES_VERSION:-v1.36.4}"
# storage-provisioner-rancher: the local-path StorageClass, whose volumes
# are made on the node that mounts them; the default `standard` class makes
# every volume on the control plane's disk, which pods on the other nodes
# cannot write to.
# Nothing for incoming traffic: it enters through the Gateway Argo CD deploys
# (Traefik, deploy/gateway), reached on minikube through its NodePorts.
ADDONS=(default-storageclass storage-provisioner storage-provisioner-rancher metrics-server)

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

# profile_state: "absent", or "running N" / "stopped N" with N nodes.
profile_state() {
    local json
    # Before the first profile exists minikube prints an error object here.
    json="$(minikube profile list -o json 2>/dev/null || true)"
    check minikube-profile "$PROFILE" <<<"${json:-"{}"}"
}

ensure_profile() {
    local state nodes start=()
    state="$(profile_state)"
    nodes="${state#* }"
    case "$state" in
    absent)
        start=(--driver=docker "--nodes=$NODE_COUNT"
            "--cpus=${MINIKUBE_CPUS:-2}" "--memory=${MINIKUBE_MEMORY:-4g}"
            "--disk-size=${MINIKUBE_DISK_SIZE:-20g}" "--kubernetes-version=$KUBERNETES_VERSION")
        log "creating profile $PROFILE: ${start[*]}"
        minikube start -p "$PROFILE" "${start[@]}"
        ;;
    running\ * | stopped\ *)
        [[ "$nodes" == "$NODE_COUNT" ]] \
            || die "profile $PROFILE has $nodes node(s), the platform needs $NODE_COUNT: delete it ($0 down) or set MINIKUBE_PROFILE to another name"
        if [[ "$state" == stopped\ * ]]; then
            log "starting the stopped profile $PROFILE"
            minikube start -p "$PROFILE"
        else
            log "profile $PROFILE is running with $nodes nodes: reused"
        fi
        ;;
    *) die "unexpected profile state: $state" ;;
    esac
}

enable_addons() {
    local json addon missing=()
    json="$(minikube -p "$PROFILE" addons list -o json)"
    mapfile -t missing < <(check minikube-addons "${ADDONS[@]}" <<<"$json")
    if ((${#missing[@]} == 0)); then
        log "addons already enabled: ${ADDONS[*]}"
        return 0
    fi
    for addon in "${missing[@]}"; do
        log "enabling addon $addon"
        minikube -p "$PROFILE" addons enable "$addon"
    done
}

cmd_up() {
    require_tools minikube kubectl docker python3
    require_docker
    node_roles >/dev/null
    ensure_profile
    wait_nodes_ready
    label_nodes
    enable_addons
    wait_addons
    verify_cluster
}

cmd_verify() {
    require_tools kubectl python3
    verify_cluster
}

cmd_down() {
    require_tools minikube
    log "deleting profile $PROFILE"
    minikube delete -p "$PROFILE"
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
