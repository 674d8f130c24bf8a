#!/usr/bin/env bash
# Offline checks of the deployment manifests, in one command:
#   1. every static manifest directory validated by validate.py: a directory
#      with a kustomization.yaml is rendered with `kubectl kustomize` (and
#      once more with each Kustomize component in a subdirectory added), any
#      other directory has its *.yaml files validated as they are;
#   2. yamllint --strict over deploy/ with the repository's .yamllint.yaml;
#   3. the validator's own tests (pytest tests/manifests).
# It installs what it needs (tests/manifests/requirements.txt) into .venv/
# and talks to no cluster.
#
# Usage: tests/manifests/run.sh
# Environment (optional):
#   KUBERNETES_VERSION   the one release whose built-in schemas apply
#                        (default: every supported release, see validate.py)
set -euo pipefail

LOG_PREFIX="manifests"
# shellcheck source-path=SCRIPTDIR/../../scripts/lib
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/tools.sh"

cd "$REPO_ROOT"

# Static manifest directories; one that does not exist yet is skipped.
MANIFEST_DIRS=(
    deploy/external-secrets
    deploy/vault
    deploy/observability/manifests
    deploy/gateway
)
REQUIREMENTS="tests/manifests/requirements.txt"
VALIDATE=("$VENV_DIR/bin/python" tests/manifests/validate.py)
if [[ -n "${KUBERNETES_VERSION:-}" ]]; then
    VALIDATE+=(--kubernetes-version "$KUBERNETES_VERSION")
fi
# Rendered kustomizations are made here (ignored by git), removed on exit.
SCRATCH="$REPO_ROOT/.tmp/manifests"
KUBECTL=""
# Nothing here may leave __pycache__ directories in the work tree.
export PYTHONDONTWRITEBYTECODE=1

install_requirements() { tools_requirements manifests "$REQUIREMENTS"; }

# is_component DIR: whether DIR/kustomization.yaml is a Kustomize Component.
is_component() {
    grep -Eq '^kind:[[:space:]]*Component[[:space:]]*$' "$1/kustomization.yaml"
}

# render_with_component BASE COMPONENT: kustomize output of BASE with
# COMPONENT added, through a throwaway kustomization (kustomize takes only
# relative paths, and refuses a root inside the base).
render_with_component() {
    local base="$1" component="$2" dir
    dir="$(mktemp -d "$SCRATCH/kustomize.XXXXXX")"
    cat >"$dir/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to="$dir" "$base")
components:
  - $(realpath --relative-to="$dir" "$component")
EOF
    "$KUBECTL" kustomize "$dir"
}

# validate_dir DIR: validates what DIR deploys; returns non-zero on a problem.
validate_dir() {
    local dir="$1" rc=0 sub files=()
    if [[ -f "$dir/kustomization.yaml" && -n "$KUBECTL" ]] && ! is_component "$dir"; then
        "$KUBECTL" kustomize "$dir" | "${VALIDATE[@]}" --stdin-name "kustomize $dir" - || rc=1
        for sub in "$dir"/*/; do
            sub="${sub%/}"
            if [[ -f "$sub/kustomization.yaml" ]] && is_component "$sub"; then
                render_with_component "$dir" "$sub" \
                    | "${VALIDATE[@]}" --stdin-name "kustomize $dir + component $sub" - || rc=1
            fi
        done
        return "$rc"
    fi
    # No kustomization (or no kubectl): the manifests as they are.
    mapfile -t files < <(find "$dir" -type f \( -name '*.yaml' -o -name '*.yml' \) \
        ! -name kustomization.yaml ! -name kustomization.yml | sort)
    if ((${#files[@]} == 0)); then
        log "$dir: no manifests yet, skipped"
        return 0
    fi
    "${VALIDATE[@]}" "${files[@]}"
}

step_validate() {
    local dir failed=0
    KUBECTL="$VENV_DIR/bin/kubectl"
    if ! "$KUBECTL" version --client >/dev/null 2>&1; then
        KUBECTL="$(command -v kubectl || true)"
        [[ -n "$KUBECTL" ]] || warn "kubectl not found: kustomizations are not rendered, their files are validated as they are"
    fi
    mkdir -p "$SCRATCH"
    on_exit rm -rf "$SCRATCH"
    for dir in "${MANIFEST_DIRS[@]}"; do
        if [[ ! -d "$dir" ]]; then
            log "$dir: not present, skipped"
            continue
        fi
        log "validating $dir"
        validate_dir "$dir" || failed=1
    done
    ((failed == 0)) || die "manifest validation failed"
}

t0=$SECONDS
install_requirements

header "manifests"
step_validate

header "yamllint deploy/"
"$VENV_DIR/bin/yamllint" --strict -c .yamllint.yaml deploy/
log "yamllint: clean"

header "validator tests"
"$VENV_DIR/bin/python" -m pytest -q -p no:cacheprovider tests/manifests

log "all manifest checks passed in $((SECONDS - t0))s"
