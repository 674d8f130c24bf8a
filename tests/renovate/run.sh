#!/usr/bin/env bash
# Renovate's view of the repository, offline, in one command:
#   1. Renovate installed into tests/renovate/node_modules (npm ci of this
#      directory's package.json and package-lock.json, skipped while they
#      are unchanged), with the RE2 regular-expression engine Renovate uses
#      for custom managers built from source;
#   2. renovate-config-validator --strict on renovate.json5;
#   3. pytest tests/renovate: Renovate in extract mode (--platform=local
#      --dry-run=extract) over a snapshot of the work tree, committed and
#      uncommitted files alike; every pin of the repository (Argo CD charts
#      and Git tags, images, actions, requirements, tool and cluster
#      versions in scripts, npm and Cargo manifests) must be among what it
#      extracted, and the negative tests take managers away and expect the
#      lost pins to be named.
# Renovate 39, not the newest: Renovate 40 needs Node.js 22 (engines
# ^22.13.0) and the newest, 44.121.2 (2026-09-29), Node.js 24 (^24.11.0);
# the machines this suite runs on have Node.js 20, on which 39 runs
# (^20.15.1). 39.264.1 is the last 39.x on npm, published 2025-10-11 (npm
# view renovate time, read 2026-12-05). Its extract mode reads no network;
# the proxies point at a closed loopback port to keep it so.
# It installs what it needs (the npm packages here, the Python tools of
# tests/manifests and tests/charts into .venv/ for tests/argocd's loaders,
# and a C++ compiler through apt when missing, as root).
#
# Usage: tests/renovate/run.sh [pytest arguments]
set -euo pipefail

LOG_PREFIX="renovate"
# shellcheck source-path=SCRIPTDIR/../../scripts/lib
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/tools.sh"

cd "$REPO_ROOT"

HERE="tests/renovate"
NODE_DIR="$REPO_ROOT/$HERE/node_modules"
CONFIG="renovate.json5"
# tests/argocd/gitops.py renders the Applications: its requirements.
REQUIREMENTS=(tests/manifests/requirements.txt tests/charts/requirements.txt)
# A loopback port nothing listens on (see extract.py).
CLOSED_PROXY="http://127.0.0.1:9"
# Nothing here may leave __pycache__ directories in the work tree.
export PYTHONDONTWRITEBYTECODE=1

re2_works() { (cd "$HERE" && node -e "require('re2')") >/dev/null 2>&1; }

# The RE2 module built here is kept in the user's cache as well, keyed by
# its version and Node.js's ABI, so a new clone on the same machine (CI)
# copies it instead of compiling again (a minute or two).
RE2_CACHE="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/student-api/renovate-re2"
RE2_BUILT="$NODE_DIR/re2/build/Release/re2.node"
re2_key() {
    (cd "$HERE" && node -p "require('re2/package.json').version + '-' + process.platform + '-' + process.arch + '-abi' + process.versions.modules")
}

# build_re2: RE2 from its source with node-gyp, against the headers of the
# installed Node.js when they are there. No download attempt
# (install-artifact-from-github's prebuilt binaries are on GitHub, which
# only the package registries can replace here).
build_re2() {
    local cached logfile nodedir=()
    cached="$RE2_CACHE/$(re2_key)/re2.node"
    if [[ -f "$cached" ]]; then
        mkdir -p "$(dirname "$RE2_BUILT")"
        cp "$cached" "$RE2_BUILT"
        re2_works && return 0
    fi
    if ! command -v make >/dev/null || ! command -v g++ >/dev/null; then
        is_root || die "make and g++ are needed to build RE2 for Renovate (Debian: apt-get install make g++)"
        apt_install make g++
    fi
    log "building RE2 for Renovate (node-gyp)"
    [[ -f /usr/include/node/node.h ]] && nodedir=(env npm_config_nodedir=/usr)
    logfile="$(mktemp)"
    (cd "$HERE" && _tools_run_logged "$logfile" "${nodedir[@]}" env DEVELOPMENT_SKIP_GETTING_ASSET=1 \
        npm rebuild re2 --foreground-scripts) \
        || die "building RE2 failed"
    rm -f "$logfile"
    re2_works || die "RE2 does not load after the build"
    if ! { mkdir -p "$(dirname "$cached")" && cp "$RE2_BUILT" "$cached"; }; then
        warn "could not keep RE2 in $RE2_CACHE"
    fi
}

# install_renovate: npm ci here, then RE2. Install scripts are skipped: those
# of Renovate's dependencies fetch prebuilt binaries from GitHub (RE2,
# better-sqlite3), and none but RE2 matters for extraction.
install_renovate() {
    local stamp="$NODE_DIR/.student-api-renovate" want logfile
    command -v npm >/dev/null || die "npm not found; this project needs Node.js and npm"
    want="$(cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$NODE_DIR/.bin/renovate" ]] && re2_works; then
        return 0
    fi
    logfile="$(mktemp)"
    log "installing Renovate into $HERE/node_modules: npm ci"
    (cd "$HERE" && _tools_run_logged "$logfile" npm ci --no-audit --no-fund --ignore-scripts) \
        || die "npm ci failed in $HERE"
    rm -f "$logfile"
    build_re2
    printf '%s\n' "$want" >"$stamp"
}

t0=$SECONDS
tools_requirements renovate "${REQUIREMENTS[@]}"
install_renovate
log "renovate $("$NODE_DIR/.bin/renovate" --version 2>/dev/null), node $(node --version)"

header "renovate-config-validator --strict $CONFIG"
HTTP_PROXY="$CLOSED_PROXY" HTTPS_PROXY="$CLOSED_PROXY" http_proxy="$CLOSED_PROXY" https_proxy="$CLOSED_PROXY" \
    NO_PROXY="" no_proxy="" "$NODE_DIR/.bin/renovate-config-validator" --strict "$CONFIG"

header "pytest tests/renovate"
"$VENV_DIR/bin/python" -m pytest -q -p no:cacheprovider "$HERE" "$@"

log "all Renovate checks passed in $((SECONDS - t0))s"
