#!/usr/bin/env bash
# Offline checks of the GitOps app-of-apps (deploy/argocd), in one command:
#   1. shellcheck of the bootstrap script and of this one;
#   2. yamllint --strict over deploy/argocd with the repository's settings;
#   3. pytest tests/argocd: the platform chart deploy/argocd/platform rendered
#      with the Helm SDK in both variants (dev: values.yaml; prod: with
#      values-prod.yaml) and with a fork's settings: every Application
#      against the strict schemas and the check-jsonschema CLI, pinned chart
#      versions, sync policy and waves, values files, node selectors, the one
#      repository setting, and our charts rendered with exactly the values
#      the Applications pass; then bootstrap.sh run against stand-ins of
#      kubectl, helm and git (tests/cluster/fake_cli.py).
# It installs what it needs (tests/manifests/requirements.txt and
# tests/charts/requirements.txt) into .venv/ and talks to no cluster and no
# chart repository.
#
# Usage: tests/argocd/run.sh [pytest arguments]
set -euo pipefail

LOG_PREFIX="argocd"
# shellcheck source-path=SCRIPTDIR/../../scripts/lib
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/tools.sh"

cd "$REPO_ROOT"

REQUIREMENTS=(tests/manifests/requirements.txt tests/charts/requirements.txt)
PY="$VENV_DIR/bin/python"
# Nothing here may leave __pycache__ directories in the work tree.
export PYTHONDONTWRITEBYTECODE=1

install_requirements() { tools_requirements argocd "${REQUIREMENTS[@]}"; }

t0=$SECONDS
install_requirements
tools_shellcheck

header "shellcheck"
shellcheck -x deploy/argocd/install/bootstrap.sh tests/argocd/run.sh
log "shellcheck: clean"

header "yamllint deploy/argocd"
"$VENV_DIR/bin/yamllint" --strict -c .yamllint.yaml deploy/argocd/
log "yamllint: clean"

header "app-of-apps tests"
mkdir -p .tmp/argocd
on_exit rm -rf "$REPO_ROOT/.tmp/argocd"
"$PY" -m pytest -q -p no:cacheprovider tests/argocd "$@"

log "all app-of-apps checks passed in $((SECONDS - t0))s"
