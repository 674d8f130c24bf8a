#!/usr/bin/env bash
# Static checks of the observability content (deploy/observability,
# docs/runbooks/alerts.md), with real tools and live processes on loopback:
#   - promtool check rules / test rules on every PrometheusRule's groups and
#     the unit tests in deploy/observability/tests, plus mutants of every
#     alert that those unit tests must catch;
#   - amtool check-config and routes test on Alertmanager's configuration,
#     rendered with a placeholder webhook made at run time;
#   - every dashboard query parsed by promtool, every metric name checked
#     against live scrapes: the service (built with cargo, on SQLite),
#     postgres_exporter (on a throwaway PostgreSQL with a streaming
#     replica), blackbox_exporter and node_exporter (Debian's packages);
#   - the kustomization rendered and validated by tests/manifests/validate.py;
#   - the SLO rules and dashboard checked to be what
#     deploy/observability/slo/generate.py makes of the SLO declaration;
#   - Alloy's pipelines (deploy/observability/alloy/config.alloy) read and
#     checked: logs against the Loki rule, the dashboards, the docs' LogQL and
#     the service's own JSON lines; traces hop by hop from the student-api
#     chart's endpoint to Tempo's receiver, with Grafana's links between
#     logs, traces and exemplars;
#   - the values files, the runbook and the docs cross-checked.
# It installs what it needs: Debian packages as root (prometheus for
# promtool, prometheus-alertmanager for amtool, the three exporters,
# PostgreSQL, openssl), Python packages into .venv/.
#
# Usage: tests/observability/static/run.sh [PYTEST_ARG...]
# Environment (optional):
#   STUDENT_API_BIN   the service's binary (default: target/debug/student-api,
#                     built with `cargo build --locked`)
set -euo pipefail

LOG_PREFIX="observability-static"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib/common.sh"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib/tools.sh"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib/postgres.sh"

cd "$REPO_ROOT"

HERE="tests/observability/static"
REQUIREMENTS="$HERE/requirements.txt"
# Binary -> the Debian package that ships it.
declare -A DEBIAN_TOOLS=(
    [promtool]=prometheus
    [amtool]=prometheus-alertmanager
    [prometheus-postgres-exporter]=prometheus-postgres-exporter
    [prometheus-blackbox-exporter]=prometheus-blackbox-exporter
    [prometheus-node-exporter]=prometheus-node-exporter
    [openssl]=openssl
)
# Nothing here may leave __pycache__ directories in the work tree.
export PYTHONDONTWRITEBYTECODE=1
# Everything these checks talk to is on loopback.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

install_debian_tools() {
    local bin missing=()
    for bin in "${!DEBIAN_TOOLS[@]}"; do
        command -v "$bin" >/dev/null || missing+=("${DEBIAN_TOOLS[$bin]}")
    done
    ((${#missing[@]} == 0)) && return 0
    is_root || die "missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]}) or run as root"
    # Debian starts the packages' services where the init system allows it;
    # the checks below use their own instances on free ports only.
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    apt_install "${missing[@]}"
}

install_requirements() { tools_requirements observability-static "$REQUIREMENTS" tests/manifests/requirements.txt; }

build_service() {
    if [[ -n "${STUDENT_API_BIN:-}" ]]; then
        [[ -x "$STUDENT_API_BIN" ]] || die "STUDENT_API_BIN=$STUDENT_API_BIN is not an executable"
        return 0
    fi
    command -v cargo >/dev/null || die "cargo not found: this project needs a Rust toolchain"
    log "cargo build --locked -p student-api"
    cargo build --quiet --locked -p student-api
    export STUDENT_API_BIN="$REPO_ROOT/target/debug/student-api"
}

# as_pg_owner CMD...: runs CMD as the user that owns the throwaway server.
as_pg_owner() {
    if is_root; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# start_replica: a streaming standby of the throwaway primary, so that
# postgres_exporter serves its replication series. Stopped and deleted on exit.
start_replica() {
    local dir port base="${TMPDIR:-/tmp}"
    is_root && base=/tmp
    dir="$(mktemp -d "$base/student-api-pg-replica.XXXXXX")"
    on_exit rm -rf "$dir"
    chmod 700 "$dir"
    if is_root; then
        chown postgres:postgres "$dir"
    fi
    (cd "$dir" && as_pg_owner env PGPASSWORD="$PG_PASSWORD" "$PG_BIN/pg_basebackup" \
        -h 127.0.0.1 -p "$PG_PORT" -U postgres -D "$dir/data" -R -X stream -c fast) \
        || die "pg_basebackup of the replica failed"
    port="$(free_port)"
    if ! (cd "$dir" && as_pg_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 -s start \
        -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c max_connections=200"); then
        tail -n 20 "$dir/server.log" >&2 || true
        die "the replica did not start"
    fi
    on_exit as_pg_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -s stop
    log "PostgreSQL replica streaming on 127.0.0.1:$port"
}

t0=$SECONDS
header "tools"
install_debian_tools
install_requirements
log "$(promtool --version 2>&1 | head -n 1)"
log "$(amtool --version 2>&1 | head -n 1)"

header "the service's binary"
build_service

header "PostgreSQL for postgres_exporter"
pg_start
start_replica
export OBS_PG_HOST=127.0.0.1 OBS_PG_PORT="$PG_PORT" OBS_PG_USER=postgres OBS_PG_PASSWORD="$PG_PASSWORD"

header "pytest $HERE"
OBS_REQUIRE_LIVE=1 "$VENV_DIR/bin/python" -m pytest -q -p no:cacheprovider "$HERE" "$@"

log "observability static checks passed in $((SECONDS - t0))s"
