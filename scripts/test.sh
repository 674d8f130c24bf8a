#!/usr/bin/env bash
# The whole test suite in one command. It installs what it needs (PostgreSQL
# through apt, Python tools in .venv/, Node tools in node_modules/), lints,
# runs the Rust tests against a throwaway PostgreSQL, then serves the real
# binary on SQLite and on PostgreSQL and checks its HTTP API with newman and
# schemathesis. All traffic stays on 127.0.0.1.
#
# Usage: scripts/test.sh [STEP...]      (no STEP: every step)
#
# Steps (they always run in this order, whatever order they are given in):
#   install          PostgreSQL server, Python tools, Node tools, shellcheck
#   lint             = shellcheck fmt clippy deny
#     - shellcheck   shellcheck over every *.sh, .ci/run
#     - fmt          cargo fmt --all --check
#     - clippy       cargo clippy --workspace --all-targets --locked -- -D warnings
#     - deny         cargo deny check bans licenses sources (deny.toml; the
#                    advisory database cannot be fetched here)
#   unit             cargo test --workspace --locked, with TEST_DATABASE_URL
#                    pointing at a throwaway PostgreSQL superuser
#   e2e              = e2e-sqlite e2e-postgres
#     - e2e-sqlite   serve on SQLite, then newman and schemathesis against it
#     - e2e-postgres the same on a fresh PostgreSQL database, after `migrate`
#   ui               the web page in headless Chromium: create, search, edit,
#                    errors, paging, delete, 503 and retry, headers, console
#                    (tests/ui/run.sh)
#   manifests        deployment manifests rendered and validated offline
#                    against strict schemas, yamllint (tests/manifests/run.sh)
#   charts           every Helm chart rendered with every values file (Helm
#                    SDK), lint --strict, strict schemas for Kubernetes 1.35
#                    and 1.37, CRD schemas, checkov, placement and hardening
#                    tests (tests/charts/run.sh)
#   argocd           the Argo CD app-of-apps: Applications against the strict
#                    schema, pinned chart versions, sync waves, node pinning
#                    of every platform component, our charts rendered with
#                    the values the apps pass (tests/argocd/run.sh)
#   renovate         renovate.json5 checked by Renovate's own validator, then
#                    Renovate's offline extract, which must find every pin
#                    of the repository (tests/renovate/run.sh)
#   workflows        GitHub workflows (actionlint), the cluster scripts and the
#                    image-tag bump script (tests/workflows/run.sh)
#   observability    alert and recording rules (promtool check and unit tests
#                    for every alert), Alertmanager config (amtool),
#                    dashboards' PromQL and metric names against live scrapes
#                    (tests/observability/static/run.sh)
#   observability-e2e  a real Prometheus, Alertmanager, postgres and blackbox
#                    exporters on loopback: recording rules produce values,
#                    the database-down and readiness alerts reach a webhook
#                    and resolve (tests/observability/e2e/run.sh; root)
#   image            Dockerfile and compose lint (hadolint, checkov), and a
#                    FROM-scratch twin of the image built with podman and run
#                    as its non-root user (tests/image/run.sh; root)
#   platform         a real OpenBao started from deploy/vault and a real
#                    PostgreSQL: self-initialisation, auto-unseal, the Job
#                    openbao-config, and the service's credential rotation
#                    under load (pytest tests/platform)
#   all              every step (the default)
# Every step installs what it needs itself, so any subset works on a new
# machine; `install` only does all the installing up front.
#
# Environment (all optional):
#   STUDENT_API_BIN            binary for e2e (default: target/debug/student-api,
#                              from `cargo test` when `unit` ran, else from
#                              `cargo build --locked`)
#   NEWMAN_COLLECTION          default postman/student-api.postman_collection.json
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 80)
#   SCHEMATHESIS_SEED          generation seed (default 20240917)
#   SCHEMATHESIS_WORKERS       concurrent schemathesis workers (default 1; see run_schemathesis)
set -euo pipefail

LOG_PREFIX="test"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/postgres.sh"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/tools.sh"

cd "$REPO_ROOT"

ALL_STEPS=(install shellcheck fmt clippy deny unit e2e-sqlite e2e-postgres ui manifests charts argocd renovate workflows observability observability-e2e image platform)

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

# ---------------------------------------------------------------- arguments
declare -A WANT=()
if (($# == 0)); then
    set -- all
fi
for arg in "$@"; do
    case "$arg" in
    -h | --help | help)
        usage
        exit 0
        ;;
    all) for s in "${ALL_STEPS[@]}"; do WANT[$s]=1; done ;;
    lint) WANT[shellcheck]=1 WANT[fmt]=1 WANT[clippy]=1 WANT[deny]=1 ;;
    e2e) WANT[e2e-sqlite]=1 WANT[e2e-postgres]=1 ;;
    install | shellcheck | fmt | clippy | deny | unit | e2e-sqlite | e2e-postgres | ui | manifests | charts | argocd | renovate | workflows | observability | observability-e2e | image | platform) WANT[$arg]=1 ;;
    *)
        usage >&2
        die "unknown step: $arg"
        ;;
    esac
done

# Everything this suite talks to is on loopback: never send it to a proxy.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

NEWMAN_COLLECTION="${NEWMAN_COLLECTION:-postman/student-api.postman_collection.json}"
SCHEMATHESIS_MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-80}"
SCHEMATHESIS_SEED="${SCHEMATHESIS_SEED:-20240917}"
SCHEMATHESIS_WORKERS="${SCHEMATHESIS_WORKERS:-1}"

# ------------------------------------------------------------- bookkeeping
SUITE_START=$SECONDS
CURRENT_STEP=""
SUITE_DONE=""
STEP_REPORT=()
SCHEMATHESIS_TOTAL_CASES=0

_report_failure() {
    if [[ -z "$SUITE_DONE" && -n "$CURRENT_STEP" ]]; then
        printf '\n[%s] FAILED in step %s after %ss\n' "$LOG_PREFIX" "$CURRENT_STEP" "$((SECONDS - SUITE_START))" >&2
    fi
}
on_exit _report_failure

# run_step NAME FUNC [ARG...]: runs FUNC under a header and records its time.
# An extra note for the summary may be left in STEP_NOTE.
STEP_NOTE=""
run_step() {
    local name="$1" t0=$SECONDS
    shift
    CURRENT_STEP="$name"
    STEP_NOTE=""
    header "step $name"
    "$@"
    STEP_REPORT+=("$name ${STEP_NOTE:+($STEP_NOTE) }$((SECONDS - t0))s")
    log "step $name passed in $((SECONDS - t0))s"
}

# ------------------------------------------------------------------- steps
check_cargo() {
    command -v cargo >/dev/null \
        || die "cargo not found: this project needs a Rust toolchain with rustfmt and clippy (e.g. rustup component add rustfmt clippy)"
    if [[ -n "${WANT[fmt]:-}" ]]; then
        cargo fmt --version >/dev/null 2>&1 \
            || die "rustfmt not found: this project needs a Rust toolchain with rustfmt and clippy (rustup component add rustfmt)"
    fi
    if [[ -n "${WANT[clippy]:-}" ]]; then
        cargo clippy --version >/dev/null 2>&1 \
            || die "clippy not found: this project needs a Rust toolchain with rustfmt and clippy (rustup component add clippy)"
    fi
    log "$(cargo --version)"
}

step_install() {
    pg_install
    log "PostgreSQL binaries: $PG_BIN"
    tools_python
    log "$("$VENV_DIR/bin/schemathesis" --version)"
    tools_node
    log "newman $(cd "$REPO_ROOT" && npx --no-install newman --version 2>/dev/null)"
    tools_shellcheck
    log "shellcheck $(shellcheck --version | awk '/^version:/ {print $2}')"
    tools_cargo_deny
    log "$("$CARGO_DENY" --version)"
}

step_shellcheck() {
    tools_shellcheck
    local files=()
    mapfile -t files < <(git ls-files --cached --others --exclude-standard -- '*.sh' | sort)
    files+=(.ci/run)
    shellcheck -x "${files[@]}"
    STEP_NOTE="${#files[@]} files"
    log "shellcheck: ${#files[@]} files clean"
}

step_fmt() {
    cargo fmt --all --check
}

step_clippy() {
    cargo clippy --workspace --all-targets --locked -- -D warnings
}

step_deny() {
    tools_cargo_deny
    "$CARGO_DENY" check --hide-inclusion-graph bans licenses sources
}

step_unit() {
    pg_install
    pg_start
    TEST_DATABASE_URL="$PG_URL" cargo test --workspace --locked
}

# ------------------------------------------------------------ e2e helpers
SERVICE_BIN=""
SERVICE_PID=""

# ensure_binary: the service binary, built at most once per run.
ensure_binary() {
    [[ -n "$SERVICE_BIN" ]] && return 0
    if [[ -n "${STUDENT_API_BIN:-}" ]]; then
        SERVICE_BIN="$STUDENT_API_BIN"
    elif [[ -n "${WANT[unit]:-}" ]]; then
        # `cargo test` has just built the binary for the integration tests.
        # A `cargo build` now would recompile most dependencies, since cargo
        # unifies dev-dependency features only when building tests; ask cargo
        # (a no-op build) where that binary is instead.
        SERVICE_BIN="$(cargo test --workspace --locked --no-run --message-format=json 2>/dev/null \
            | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if (m.get("reason") == "compiler-artifact" and m["target"]["name"] == "student-api"
            and m["target"]["kind"] == ["bin"] and not m["profile"]["test"]):
        print(m["executable"])
')" || SERVICE_BIN=""
        if [[ -n "$SERVICE_BIN" ]]; then
            log "reusing the binary cargo test built: $SERVICE_BIN"
        fi
    fi
    if [[ -z "$SERVICE_BIN" ]]; then
        log "cargo build --locked"
        cargo build --locked
        SERVICE_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/student-api"
    fi
    [[ -n "$SERVICE_BIN" && -x "$SERVICE_BIN" ]] || die "service binary not found: ${SERVICE_BIN:-?}"
}

# Runs on exit: a service still running after a failure is stopped.
_kill_leftover_service() {
    if [[ -n "$SERVICE_PID" ]] && kill -0 "$SERVICE_PID" 2>/dev/null; then
        kill -TERM "$SERVICE_PID" 2>/dev/null || true
        local i
        for ((i = 0; i < 50; i++)); do
            kill -0 "$SERVICE_PID" 2>/dev/null || return 0
            sleep 0.2
        done
        kill -KILL "$SERVICE_PID" 2>/dev/null || true
    fi
}
on_exit _kill_leftover_service

show_service_log() {
    local logfile="$1"
    if [[ -f "$logfile" ]]; then
        warn "last lines of the service log ($logfile):"
        tail -n 40 "$logfile" >&2 || true
    fi
}

# start_service LOGFILE PORT DATABASE_URL: serves in the background, waits
# for /ready. The URL travels in the environment only.
start_service() {
    local logfile="$1" port="$2" db_url="$3"
    DATABASE_URL="$db_url" LISTEN_ADDR="127.0.0.1:$port" LOG_FORMAT=json RUST_LOG=info \
        "$SERVICE_BIN" serve </dev/null >"$logfile" 2>&1 &
    SERVICE_PID=$!
    log "service started (pid $SERVICE_PID) on 127.0.0.1:$port"
    if ! wait_http "http://127.0.0.1:$port/ready" 60 "$SERVICE_PID"; then
        show_service_log "$logfile"
        die "service did not become ready"
    fi
    log "GET /ready -> 200"
}

# stop_service LOGFILE: SIGTERM, then the service must exit 0 within 30s.
stop_service() {
    local logfile="$1" pid="$SERVICE_PID" rc=0 i
    kill -TERM "$pid"
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        SERVICE_PID=""
        show_service_log "$logfile"
        die "service did not exit within 30s of SIGTERM"
    fi
    wait "$pid" || rc=$?
    SERVICE_PID=""
    if ((rc != 0)); then
        show_service_log "$logfile"
        die "service exited with code $rc after SIGTERM (want 0: graceful shutdown)"
    fi
    log "service stopped gracefully (exit 0)"
}

run_newman() {
    local base="$1" logfile="$2"
    log "newman: $NEWMAN_COLLECTION against $base"
    if ! npx --no-install newman run "$NEWMAN_COLLECTION" \
        --env-var "baseUrl=$base" --bail --color off; then
        show_service_log "$logfile"
        die "newman failed"
    fi
}

# run_schemathesis BASE LOGFILE WORKDIR: property-based tests of every
# operation in the service's own OpenAPI document, with every check.
# - all four phases: the document's examples, the coverage phase (boundary
#   and invalid values for every constraint), random fuzzing, and stateful
#   sequences built from links inferred from the responses (create, then
#   read, update and delete what was created);
# - a fixed seed and no example database, so two runs send the same requests;
# - one worker: Python 3.11 (Debian 12's) can raise "AST constructor recursion
#   depth mismatch" when several threads build hypothesis strategies at once,
#   which fails the run for a reason that is not the service's.
run_schemathesis() {
    local base="$1" logfile="$2" workdir="$3" out="$3/schemathesis.out" rc=0 cases
    log "schemathesis $("$VENV_DIR/bin/schemathesis" --version | awk '{print $NF}'): $base/api/v1/openapi.json"
    # Run from the work dir: schemathesis keeps a failure cache in ./.schemathesis.
    # tests/schemathesis/schemathesis.toml: what the document cannot say.
    (cd "$workdir" && "$VENV_DIR/bin/schemathesis" \
        --config-file "$REPO_ROOT/tests/schemathesis/schemathesis.toml" \
        run "$base/api/v1/openapi.json" \
        --url "$base" \
        --checks all \
        --phases examples,coverage,fuzzing,stateful \
        --max-examples "$SCHEMATHESIS_MAX_EXAMPLES" \
        --seed "$SCHEMATHESIS_SEED" \
        --workers "$SCHEMATHESIS_WORKERS" \
        --request-timeout 10 \
        --generation-database none \
        --no-color) 2>&1 | tee "$out" || rc=$?
    # The summary reads "Test cases:" then "  N generated, ...".
    cases="$(grep -oE '^ *[0-9]+ generated' "$out" | tail -n 1 | tr -dc '0-9' || true)"
    if ((rc != 0)); then
        show_service_log "$logfile"
        die "schemathesis failed (exit $rc)"
    fi
    [[ -n "$cases" ]] || die "schemathesis printed no test case count"
    ((cases > 0)) || die "schemathesis generated no test case"
    log "schemathesis: $cases test cases generated, all checks passed"
    SCHEMATHESIS_TOTAL_CASES=$((SCHEMATHESIS_TOTAL_CASES + cases))
    STEP_NOTE="newman, schemathesis $cases cases"
}

# step_e2e BACKEND: serve the built binary on BACKEND and check it over HTTP.
step_e2e() {
    local backend="$1" workdir logfile port base db_url db
    [[ -f "$NEWMAN_COLLECTION" ]] || die "Postman collection not found: $NEWMAN_COLLECTION"
    tools_python
    tools_node
    ensure_binary

    workdir="$(mktemp -d "${TMPDIR:-/tmp}/student-api-e2e-$backend.XXXXXX")"
    on_exit rm -rf "$workdir"
    logfile="$workdir/service.log"

    case "$backend" in
    sqlite)
        db_url="sqlite://$workdir/students.db"
        ;;
    postgres)
        pg_install
        pg_start
        db="e2e_$(random_hex 6)"
        pg_psql -c "create database $db"
        db_url="postgres://${PG_SUPERUSER}:${PG_PASSWORD}@${PG_HOST}:${PG_PORT}/$db"
        log "created database $db; running migrations"
        if ! DATABASE_URL="$db_url" LOG_FORMAT=json RUST_LOG=info \
            "$SERVICE_BIN" migrate </dev/null >"$workdir/migrate.log" 2>&1; then
            show_service_log "$workdir/migrate.log"
            die "student-api migrate failed"
        fi
        log "migrations applied"
        ;;
    *) die "unknown backend: $backend" ;;
    esac

    port="$(free_port)"
    base="http://127.0.0.1:$port"
    start_service "$logfile" "$port" "$db_url"
    run_newman "$base" "$logfile"
    run_schemathesis "$base" "$logfile" "$workdir"
    stop_service "$logfile"
}

# -------------------------------------------------------------------- main
header "checking the Rust toolchain"
check_cargo

step_e2e_sqlite() { step_e2e sqlite; }
step_e2e_postgres() { step_e2e postgres; }

step_ui() {
    ensure_binary
    STUDENT_API_BIN="$SERVICE_BIN" bash tests/ui/run.sh
}

step_manifests() {
    bash tests/manifests/run.sh
}

step_charts() {
    bash tests/charts/run.sh
}

step_argocd() {
    bash tests/argocd/run.sh
}

step_renovate() {
    bash tests/renovate/run.sh
}

step_workflows() {
    bash tests/workflows/run.sh
}

step_observability() {
    bash tests/observability/static/run.sh
}

step_observability_e2e() {
    tools_python
    ensure_binary
    STUDENT_API_BIN="$SERVICE_BIN" bash tests/observability/e2e/run.sh
}

step_image() {
    bash tests/image/run.sh
}

step_platform() {
    tools_python
    # The Kubernetes API stand-in of the tests serves TLS with a certificate
    # made at run time.
    if ! command -v openssl >/dev/null; then
        is_root || die "openssl not found; install it (Debian: apt-get install openssl)"
        apt_install openssl
    fi
    ensure_binary
    pg_install
    pg_start
    STUDENT_API_BIN="$SERVICE_BIN" BAO_BIN="$VENV_DIR/bin/bao" PYTHONDONTWRITEBYTECODE=1 \
        "$VENV_DIR/bin/python" -m pytest -p no:cacheprovider -q tests/platform
}

for step in "${ALL_STEPS[@]}"; do
    if [[ -n "${WANT[$step]:-}" ]]; then
        run_step "$step" "step_${step//-/_}"
    fi
done

SUITE_DONE=1
summary="test.sh OK in $((SECONDS - SUITE_START))s:"
for entry in "${STEP_REPORT[@]}"; do
    summary+=" ${entry};"
done
if ((SCHEMATHESIS_TOTAL_CASES > 0)); then
    summary+=" schemathesis total ${SCHEMATHESIS_TOTAL_CASES} cases"
fi
printf '\n%s\n' "${summary%;}"
