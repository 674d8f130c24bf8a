#!/usr/bin/env bash
# One-time bootstrap of the GitOps platform on a new cluster: installs
# Argo CD from its Helm chart with the values Argo CD later manages itself
# with (deploy/argocd/values/argo-cd.yaml), then applies the root
# Application rendered from the platform chart (deploy/argocd/platform,
# templates/root.yaml). From then on every change goes through Git; this script is
# not run again (re-running it is harmless: same chart, same values).
#
# Usage: deploy/argocd/install/bootstrap.sh [dev|prod]
#   dev   the chart's values.yaml (default; minikube and other test clusters)
#   prod  with values-prod.yaml (production values, TLS, CloudNativePG)
#
# Needs helm (3.8 or later, or 4) and kubectl on PATH, a kubeconfig for the
# cluster, and nodes labelled type=dependent_services (Argo CD runs there).
set -euo pipefail

LOG_PREFIX="argocd-bootstrap"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib/common.sh"

# The release templates/argo-cd.yaml of the platform chart adopts: same name, chart and
# version (tests/argocd checks that the two agree).
ARGOCD_RELEASE="argocd"
ARGOCD_NAMESPACE="argocd"
ARGOCD_CHART_REPO="https://argoproj.github.io/argo-helm"
ARGOCD_CHART="argo-cd"
ARGOCD_CHART_VERSION="10.10.2"
VALUES="$REPO_ROOT/deploy/argocd/values/argo-cd.yaml"
PLATFORM_CHART="$REPO_ROOT/deploy/argocd/platform"

usage() {
    sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

main() {
    local environment="${1:-dev}" values=()
    case "$environment" in
        dev) ;;
        prod) values=(--values "$PLATFORM_CHART/values-prod.yaml") ;;
        -h | --help)
            usage
            return 0
            ;;
        *)
            usage >&2
            die "unknown environment '$environment' (dev or prod)"
            ;;
    esac
    command -v helm >/dev/null || die "helm not found on PATH"
    command -v kubectl >/dev/null || die "kubectl not found on PATH"

    # Every Argo CD pod selects these nodes; without one they stay Pending.
    if [[ -z "$(kubectl get nodes -l type=dependent_services -o name)" ]]; then
        die "no node is labelled type=dependent_services (e.g. kubectl label node <name> type=dependent_services)"
    fi

    header "Argo CD $ARGOCD_CHART_VERSION (release $ARGOCD_RELEASE in $ARGOCD_NAMESPACE)"
    helm upgrade --install "$ARGOCD_RELEASE" "$ARGOCD_CHART" \
        --repo "$ARGOCD_CHART_REPO" --version "$ARGOCD_CHART_VERSION" \
        --namespace "$ARGOCD_NAMESPACE" --create-namespace \
        --values "$VALUES" --wait --timeout 10m

    header "root Application ($environment)"
    helm template root "$PLATFORM_CHART" --namespace "$ARGOCD_NAMESPACE" --show-only templates/root.yaml "${values[@]}" \
        | kubectl apply -f -
    log "Argo CD now syncs the platform wave by wave: kubectl -n $ARGOCD_NAMESPACE get applications -w"
}

main "$@"
