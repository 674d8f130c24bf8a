#!/usr/bin/env bash
# Offline checks of the GitHub workflows, the local-cluster scripts and the
# release script, in one command:
#   1. actionlint on .github/workflows/*, with shellcheck on their run: scripts;
#   2. shellcheck on deploy/cluster/*.sh, the scripts the kind job of e2e.yml
#      runs besides them, and scripts/bump-image-tag.sh;
#   3. yamllint --strict over .github/ and deploy/cluster/ with the
#      repository's .yamllint.yaml;
#   4. pytest tests/cluster tests/workflows: the cluster scripts and the
#      platform's (wait, webhook, diagnostics, API check) run against
#      stand-ins of kubectl, minikube, kind, docker and npx, the release
#      script against copies of the chart.
# It installs what it needs (tests/workflows/requirements.txt) into .venv/
# and, when missing, the shellcheck package through apt (root). It talks to
# no cluster.
#
# Usage: tests/workflows/run.sh
set -euo pipefail

LOG_PREFIX="workflows"
# shellcheck source-path=SCRIPTDIR/../../scripts/lib
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/tools.sh"

cd "$REPO_ROOT"

REQUIREMENTS="tests/workflows/requirements.txt"
SHELL_SCRIPTS=(deploy/cluster/*.sh deploy/argocd/install/wait.sh deploy/observability/set-alertmanager-webhook.sh
    scripts/bump-image-tag.sh tests/workflows/run.sh)
YAML_DIRS=(.github deploy/cluster)
# Nothing here may leave __pycache__ directories in the work tree.
export PYTHONDONTWRITEBYTECODE=1

install_requirements() { tools_requirements workflows "$REQUIREMENTS"; }

t0=$SECONDS
install_requirements
tools_shellcheck

header "actionlint"
mapfile -t workflows < <(find .github/workflows -maxdepth 1 -type f \( -name '*.yml' -o -name '*.yaml' \) | sort)
((${#workflows[@]} > 0)) || die "no workflow under .github/workflows"
"$VENV_DIR/bin/actionlint" -shellcheck "$(command -v shellcheck)" "${workflows[@]}"
log "actionlint: ${#workflows[@]} workflows clean"

header "shellcheck"
shellcheck -x "${SHELL_SCRIPTS[@]}"
log "shellcheck: ${#SHELL_SCRIPTS[@]} scripts clean"

header "yamllint ${YAML_DIRS[*]}"
"$VENV_DIR/bin/yamllint" --strict -c .yamllint.yaml "${YAML_DIRS[@]}"
log "yamllint: clean"

header "pytest tests/cluster tests/workflows"
"$VENV_DIR/bin/python" -m pytest -q -p no:cacheprovider tests/cluster tests/workflows

log "all workflow checks passed in $((SECONDS - t0))s"
