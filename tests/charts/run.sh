#!/usr/bin/env bash
# Offline checks of the Helm charts (every deploy/helm/*/Chart.yaml), in one
# command. Each chart is taken with values.yaml alone, then with each
# values-<env>.yaml on top, and each such combination is:
#   1. rendered and linted (`helm lint --strict`) with the real Helm SDK
#      (render.py), into .tmp/charts/ (kept for inspection);
#   2. validated by tests/manifests/validate.py against the strict schemas
#      of every supported Kubernetes release (the floor, 1.35, and 1.37);
#   3. its custom resources checked again by the check-jsonschema CLI
#      against tests/schemas/ (crd_schemas.py);
#   4. scanned by checkov with zero failed checks, every skip listed with its
#      justification (checkov_gate.py); the Dockerfile too, when there is one;
# then the chart values files are linted (yamllint --strict) and the
# hardening rules run (pytest tests/charts). Every step runs even when an
# earlier one failed, so one run shows every problem.
# It installs what it needs (requirements.txt here and in tests/manifests
# into .venv/, checkov into .venv/checkov/) and talks to no cluster.
#
# Usage: tests/charts/run.sh
# Environment (optional):
#   CHARTS_DIR     where the charts are (default deploy/helm)
#   DOCKERFILE     the Dockerfile checkov scans (default Dockerfile)
#   CHECKOV_JOBS   checkov runs at once (default: the number of cores)
set -euo pipefail

LOG_PREFIX="charts"
# shellcheck source-path=SCRIPTDIR/../../scripts/lib
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/tools.sh"

cd "$REPO_ROOT"

HERE="tests/charts"
CHARTS_DIR="${CHARTS_DIR:-deploy/helm}"
DOCKERFILE="${DOCKERFILE:-Dockerfile}"
CHECKOV_JOBS="${CHECKOV_JOBS:-$(nproc)}"
REQUIREMENTS=(tests/manifests/requirements.txt "$HERE/requirements.txt")
CHECKOV_REQUIREMENTS="$HERE/requirements-checkov.txt"
CHECKOV_VENV="$VENV_DIR/checkov"
OUT="$REPO_ROOT/.tmp/charts"
PY="$VENV_DIR/bin/python"
# Nothing here may leave __pycache__ directories in the work tree.
export PYTHONDONTWRITEBYTECODE=1
export CHARTS_DIR

install_requirements() { tools_requirements charts "${REQUIREMENTS[@]}"; }

# install_checkov: checkov in a virtualenv of its own (see the requirements
# file for why), skipped while the requirements are unchanged.
install_checkov() {
    local stamp="$CHECKOV_VENV/.student-api-checkov" want
    want="$(sha256sum "$CHECKOV_REQUIREMENTS" | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$CHECKOV_VENV/bin/checkov" --version >/dev/null 2>&1; then
        return 0
    fi
    log "installing $CHECKOV_REQUIREMENTS into .venv/checkov"
    rm -rf "$CHECKOV_VENV"
    "$PY" -m venv "$CHECKOV_VENV" || die "cannot create $CHECKOV_VENV"
    _tools_run_logged "$VENV_DIR/pip-install-checkov.log" "$CHECKOV_VENV/bin/python" -m pip install \
        --disable-pip-version-check --no-input -r "$CHECKOV_REQUIREMENTS" \
        || die "pip install of checkov failed (log: $VENV_DIR/pip-install-checkov.log)"
    printf '%s\n' "$want" >"$stamp"
}

# stop_checkov_install: on an early exit, ends the background install (the
# subshell and the pip it runs), and nothing else.
CHECKOV_INSTALL_PID=""
stop_checkov_install() {
    [[ -n "$CHECKOV_INSTALL_PID" ]] || return 0
    pkill -TERM -P "$CHECKOV_INSTALL_PID" 2>/dev/null || true
    kill -TERM "$CHECKOV_INSTALL_PID" 2>/dev/null || true
}

FAILED=()
# run STEP CMD...: runs CMD under a header; a failure is recorded, not fatal.
# CMD runs where `set -e` does not apply: step functions check each command.
run() {
    local step="$1" t0=$SECONDS
    shift
    header "$step"
    if "$@"; then
        log "$step: passed in $((SECONDS - t0))s"
    else
        warn "$step: FAILED"
        FAILED+=("$step")
    fi
}

# combos: how many chart × values combinations rendered.
combos() {
    [[ -f "$OUT/index.json" ]] || { echo 0; return; }
    "$PY" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["combos"]))' "$OUT/index.json"
}

step_validate() {
    local rc=0 files=()
    mapfile -t files < <(find "$OUT" -mindepth 2 -maxdepth 2 -name '*.yaml' | sort)
    if ((${#files[@]} == 0)); then
        log "nothing rendered to validate"
        return 0
    fi
    # Every release of validate.py's SUPPORTED_KUBERNETES_VERSIONS, in one run.
    log "${#files[@]} rendered file(s)"
    "$PY" tests/manifests/validate.py "${files[@]}" || rc=1
    return "$rc"
}

step_crd_schemas() {
    "$PY" "$HERE/crd_schemas.py" --index "$OUT/index.json"
}

step_checkov() {
    local rc=0
    # Installed in the background while the steps before ran.
    wait "$CHECKOV_INSTALL_PID" || rc=$?
    CHECKOV_INSTALL_PID=""
    cat "$CHECKOV_INSTALL_LOG" >&2
    ((rc == 0)) || return "$rc"
    "$PY" "$HERE/checkov_gate.py" --index "$OUT/index.json" --dockerfile "$DOCKERFILE" --jobs "$CHECKOV_JOBS"
}

step_yamllint() {
    local files=()
    # Every YAML file of the charts but their templates (Go templates, not
    # YAML: they are checked once rendered), with the repository's settings.
    [[ -d "$CHARTS_DIR" ]] && mapfile -t files < <(find "$CHARTS_DIR" \( -name '*.yaml' -o -name '*.yml' \) \
        -not -path '*/templates/*' | sort)
    if ((${#files[@]} == 0)); then
        log "$CHARTS_DIR: no chart files, skipped"
        return 0
    fi
    "$VENV_DIR/bin/yamllint" --strict -c .yamllint.yaml "${files[@]}" || return 1
    log "yamllint: ${#files[@]} file(s) clean"
}

step_pytest() {
    local rc=0
    "$PY" -m pytest -q --tb=short -p no:cacheprovider "$HERE" 2>&1 | tee "$OUT/pytest.out" || rc=$?
    # pytest exits 5 when it collected nothing; the rules' own tests always run.
    return "$rc"
}

# summary_counts: "N charts, N combinations, ..." from what the steps wrote.
summary_counts() {
    "$PY" - "$OUT" <<'PY'
import json, re, sys
from pathlib import Path
sys.path.insert(0, "tests/manifests")
from validate import SUPPORTED_KUBERNETES_VERSIONS
out = Path(sys.argv[1])
def load(name, default):
    path = out / name
    return json.loads(path.read_text()) if path.is_file() else default
index = load("index.json", {"charts": [], "combos": []})
crds = load("crd-schemas.json", {"documents": 0})
ck = load("checkov.json", {"runs": 0, "passed": 0, "failed": 0, "skipped": 0})
docs = sum(len(c["documents"]) for c in index["combos"])
tests = ""
pytest_out = out / "pytest.out"
if pytest_out.is_file():
    lines = [l for l in pytest_out.read_text().splitlines() if re.search(r"\d+ (passed|failed)", l)]
    tests = lines[-1].strip("= ") if lines else ""
print(f"{len(index['charts'])} chart(s), {len(index['combos'])} combination(s), {docs} document(s) "
      f"validated for Kubernetes {' and '.join(SUPPORTED_KUBERNETES_VERSIONS)}; {crds['documents']} custom resource(s) by check-jsonschema; "
      f"checkov {ck['runs']} run(s): {ck['passed']} passed, {ck['failed']} failed, {ck['skipped']} skipped; "
      f"hardening tests: {tests or 'none ran'}")
PY
}

t0=$SECONDS
install_requirements
CHECKOV_INSTALL_LOG="$(mktemp)"
on_exit rm -f "$CHECKOV_INSTALL_LOG"
install_checkov >"$CHECKOV_INSTALL_LOG" 2>&1 &
CHECKOV_INSTALL_PID=$!
on_exit stop_checkov_install

run "render and helm lint --strict ($CHARTS_DIR)" "$PY" "$HERE/render.py" --charts-dir "$CHARTS_DIR" --out "$OUT"
if (($(combos) == 0)); then
    log "no chart rendered: schema, CRD and checkov steps for charts have nothing to check"
fi
run "validate.py (every supported Kubernetes release)" step_validate
run "check-jsonschema on custom resources" step_crd_schemas
run "checkov (charts${DOCKERFILE:+ and $DOCKERFILE})" step_checkov
run "yamllint $CHARTS_DIR" step_yamllint
run "hardening rules (pytest $HERE)" step_pytest

counts="$(summary_counts)"
if ((${#FAILED[@]} > 0)); then
    printf '\n[%s] FAILED after %ss: %s\n' "$LOG_PREFIX" "$((SECONDS - t0))" "$counts" >&2
    for step in "${FAILED[@]}"; do printf '[%s]   failed: %s\n' "$LOG_PREFIX" "$step" >&2; done
    exit 1
fi
printf '\n[%s] all chart checks passed in %ss: %s\n' "$LOG_PREFIX" "$((SECONDS - t0))" "$counts" >&2
