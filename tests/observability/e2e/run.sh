#!/usr/bin/env bash
# Live end-to-end proof of the observability stack, on loopback only:
#   1. a throwaway PostgreSQL, `student-api migrate` and `student-api serve`
#      (API and METRICS_ADDR on free ports, FAULT_INJECTION=on, traces over
#      OTLP/HTTP to a sink, e2e.py otlp-sink);
#   2. postgres_exporter, node_exporter (CPU only) and blackbox_exporter
#      probing the service's /healthcheck and /ready;
#   3. a webhook receiver (e2e.py receiver) recording every notification;
#   4. Alertmanager with the project's configuration: routes, grouping and
#      inhibition as written, receivers pointed at that webhook, short route
#      timers;
#   5. Prometheus scraping those targets with the labels the Prometheus
#      Operator gives them in the cluster, evaluating the project's
#      PrometheusRule groups with every `for` divided by TIME_SCALE, and
#      alerting to that Alertmanager (README.md says what changes and why);
#   6. traffic, then: every target up, no rule failing, every recording rule
#      with samples, exemplars of the latency histogram in Prometheus naming
#      traces the service logged;
#   6b. drill: the fault switch fails API requests on purpose; the
#      availability SLO's page reaches the receiver within its `for` plus
#      SLACK; the fault is cleared and clean traffic dilutes the errors: the
#      page arrives resolved within SLACK, then every SLO alert goes quiet;
#   7. database outage (PostgreSQL stopped): the database-down alert reaches
#      the receiver within its `for` plus SLACK seconds; the alerts it
#      inhibits (readiness, the availability SLO's) fire in Prometheus, are held
#      inhibited by Alertmanager and never reach the receiver; PostgreSQL
#      started again: the database-down alert arrives resolved within SLACK;
#   8. readiness alone (the service's database refuses connections, the
#      server stays up): the readiness alert reaches the receiver firing,
#      then resolved, each within its bound;
#   9. a timeline. Everything started is stopped, and every file removed, on
#      exit.
#
# Usage: tests/observability/e2e/run.sh
# Environment (all optional):
#   STUDENT_API_BIN          service binary (default target/debug/student-api,
#                            built with `cargo build --locked` when missing)
#   OBS_E2E_RULES            rule files, space-separated (default
#                            deploy/observability/manifests/rules/*.yaml)
#   OBS_E2E_ALERTMANAGER     file holding the Alertmanager configuration
#                            (default: found under deploy/observability)
#   OBS_E2E_DB_DOWN_ALERT    the database-down alert (default: the alert on
#                            `pg_up == 0`)
#   OBS_E2E_READINESS_ALERT  the readiness alert (default: the alert on the
#                            probe of /ready)
#   OBS_E2E_TIME_SCALE       divisor of every `for` (default 12: 1m -> 5s)
#   OBS_E2E_SLACK            seconds allowed on top of an alert's `for` for
#                            scrapes, evaluations and Alertmanager (default 20)
set -euo pipefail

LOG_PREFIX="obs-e2e"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib/common.sh"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib/postgres.sh"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/lib/tools.sh"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$REPO_ROOT"

# Everything here talks to loopback only: never through a proxy.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"
export PYTHONDONTWRITEBYTECODE=1

# Scrapes and evaluations every 2s. The scrape timeout must exceed the
# exporter's 1s connection attempt, or a scrape of a down database fails
# instead of reporting pg_up 0.
INTERVAL=2s
SCRAPE_TIMEOUT=2s
TIME_SCALE="${OBS_E2E_TIME_SCALE:-12}"
SLACK="${OBS_E2E_SLACK:-20}"

RUN_START=$SECONDS

# ------------------------------------------------------------ prerequisites
PROMETHEUS_BIN=/usr/bin/prometheus
PROMTOOL_BIN=/usr/bin/promtool
ALERTMANAGER_BIN=/usr/bin/prometheus-alertmanager
AMTOOL_BIN=/usr/bin/amtool
PG_EXPORTER_BIN=/usr/bin/prometheus-postgres-exporter
NODE_EXPORTER_BIN=/usr/bin/prometheus-node-exporter
BLACKBOX_BIN=/usr/bin/prometheus-blackbox-exporter

install_prerequisites() {
    local missing=()
    [[ -x "$PROMETHEUS_BIN" && -x "$PROMTOOL_BIN" ]] || missing+=(prometheus)
    [[ -x "$ALERTMANAGER_BIN" && -x "$AMTOOL_BIN" ]] || missing+=(prometheus-alertmanager)
    [[ -x "$PG_EXPORTER_BIN" ]] || missing+=(prometheus-postgres-exporter)
    [[ -x "$NODE_EXPORTER_BIN" ]] || missing+=(prometheus-node-exporter)
    [[ -x "$BLACKBOX_BIN" ]] || missing+=(prometheus-blackbox-exporter)
    if ((${#missing[@]})); then
        # The packages may start system services of their own; this test
        # never uses them: it runs its own instances on its own ports.
        is_root || die "missing Debian packages: ${missing[*]} (apt-get install them, or run as root)"
        apt_install "${missing[@]}"
    fi
    log "$("$PROMETHEUS_BIN" --version 2>&1 | head -n 1)"
    log "$("$ALERTMANAGER_BIN" --version 2>&1 | head -n 1)"
    # PyYAML, installed with the suite's Python tools, reads the manifests.
    tools_python
    PY="$VENV_DIR/bin/python"
    "$PY" -c 'import yaml' 2>/dev/null || die "PyYAML is missing from $VENV_DIR"
}

SERVICE_BIN=""
ensure_binary() {
    SERVICE_BIN="${STUDENT_API_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/student-api}"
    if [[ ! -x "$SERVICE_BIN" ]]; then
        [[ -z "${STUDENT_API_BIN:-}" ]] || die "STUDENT_API_BIN is not executable: $STUDENT_API_BIN"
        log "cargo build --locked"
        cargo build --locked
    fi
    [[ -x "$SERVICE_BIN" ]] || die "service binary not found: $SERVICE_BIN"
}

# ---------------------------------------------------------------- processes
# Every process this script starts, by PID; stopped on exit, newest first.
STARTED_PIDS=()
LAST_PID=""

# start_bg NAME LOGFILE CMD...: runs CMD in the background, output to LOGFILE.
start_bg() {
    local name="$1" logfile="$2"
    shift 2
    "$@" </dev/null >"$logfile" 2>&1 &
    LAST_PID=$!
    STARTED_PIDS+=("$LAST_PID")
    log "$name started (pid $LAST_PID)"
}

# stop_pid PID: SIGTERM, then SIGKILL after 5s.
stop_pid() {
    local pid="$1" i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stop_started() {
    local i
    for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${STARTED_PIDS[i]}"
    done
    STARTED_PIDS=()
}

# show_log NAME FILE: the end of a log, on failure. Never used for
# postgres_exporter, whose log names its connection settings.
show_log() {
    if [[ -f "$2" ]]; then
        warn "last lines of the $1 log:"
        tail -n 30 "$2" >&2 || true
    fi
}

# wait_up NAME URL PID [LOGFILE]: waits for URL to answer 200.
wait_up() {
    if ! wait_http "$2" 30 "$3"; then
        [[ -n "${4:-}" ]] && show_log "$1" "$4"
        die "$1 did not come up"
    fi
}

# mark TEXT: an event of the timeline.
mark() {
    printf '%s %s\n' "$(date +%s.%3N)" "$*" >>"$MARKS"
    log "$*"
}

e2e() { "$PY" "$HERE/e2e.py" "$@"; }

# ------------------------------------------- PostgreSQL stop and start again
# The outage stops and starts the server pg_start made (same data directory,
# port and settings), as its owner, the way postgres.sh runs pg_ctl.
pg_ctl_local() {
    (cd "$_PG_TMP" && _pg_as_owner "$PG_BIN/pg_ctl" -D "$_PG_TMP/data" "$@") >&2
}

pg_outage_stop() {
    pg_ctl_local -s -w -t 30 -m fast stop || die "could not stop PostgreSQL"
}

pg_outage_start() {
    pg_ctl_local -l "$_PG_TMP/server.log" -w -t 30 -s start -o "-p $PG_PORT \
-c listen_addresses=127.0.0.1 -c unix_socket_directories=$_PG_TMP \
-c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        || die "could not start PostgreSQL again on port $PG_PORT"
}

# --------------------------------------------------------------------- main
header "prerequisites"
install_prerequisites
ensure_binary

shopt -s nullglob
if [[ -n "${OBS_E2E_RULES:-}" ]]; then
    read -r -a RULE_FILES <<<"$OBS_E2E_RULES"
else
    RULE_FILES=(deploy/observability/manifests/rules/*.yaml)
fi
shopt -u nullglob
((${#RULE_FILES[@]})) || die "no rule files in deploy/observability/manifests/rules; set OBS_E2E_RULES"

WORK="$(mktemp -d /tmp/student-api-obs-e2e.XXXXXX)"
on_exit rm -rf "$WORK"
chmod 700 "$WORK"
MARKS="$WORK/marks"
EVENTS="$WORK/notifications.json"
PLAN="$WORK/plan.json"
: >"$MARKS"
RUN_OK=""
# On failure, what happened until then.
timeline_on_failure() {
    if [[ -z "$RUN_OK" && -s "$MARKS" ]]; then
        "$PY" "$HERE/e2e.py" timeline --events "$EVENTS" --marks "$MARKS" >&2 || true
    fi
}
on_exit timeline_on_failure

header "PostgreSQL and the service"
pg_install
pg_start
on_exit stop_started
# Traces go to a sink that takes and counts them (no collector is
# installable here); what the spans hold is the Rust tests' job.
start_bg "otlp sink" "$WORK/otlp-sink.log" "$PY" "$HERE/e2e.py" otlp-sink \
    --port-file "$WORK/otlp.port" --count-file "$WORK/otlp.count"
for _ in $(seq 50); do
    [[ -s "$WORK/otlp.port" ]] && break
    sleep 0.1
done
[[ -s "$WORK/otlp.port" ]] || die "the OTLP sink did not start"
OTLP_ENDPOINT="http://127.0.0.1:$(cat "$WORK/otlp.port")"
DB_NAME="obs_e2e_$(random_hex 6)"
pg_psql -c "create database $DB_NAME"
# The superuser on a database made for this run; the URL stays in the
# environment of the service's processes.
DB_URL="postgres://${PG_SUPERUSER}:${PG_PASSWORD}@${PG_HOST}:${PG_PORT}/${DB_NAME}"
if ! DATABASE_URL="$DB_URL" LOG_FORMAT=json "$SERVICE_BIN" migrate </dev/null >"$WORK/migrate.log" 2>&1; then
    show_log migrate "$WORK/migrate.log"
    die "student-api migrate failed"
fi
API_PORT="$(free_port)"
METRICS_PORT="$(free_port)"
BASE="http://127.0.0.1:$API_PORT"
# The URL reaches the service through its environment, never an argument
# list that `ps` would show.
serve() {
    export DATABASE_URL="$DB_URL" LISTEN_ADDR="127.0.0.1:$API_PORT" METRICS_ADDR="127.0.0.1:$METRICS_PORT"
    export LOG_FORMAT=json RUST_LOG=info
    # The drill's switch, on the metrics address only.
    export FAULT_INJECTION=on
    export OTEL_EXPORTER_OTLP_ENDPOINT="$OTLP_ENDPOINT"
    export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_SERVICE_NAME=student-api
    exec "$SERVICE_BIN" serve
}
start_bg service "$WORK/service.log" serve
SERVICE_PID=$LAST_PID
wait_up service "$BASE/ready" "$SERVICE_PID" "$WORK/service.log"
wait_up "service metrics" "http://127.0.0.1:$METRICS_PORT/metrics" "$SERVICE_PID" "$WORK/service.log"

header "configuration"
start_bg receiver "$WORK/receiver.log" "$PY" "$HERE/e2e.py" receiver \
    --events "$EVENTS" --port-file "$WORK/receiver.port"
for _ in $(seq 50); do
    [[ -s "$WORK/receiver.port" ]] && break
    sleep 0.1
done
[[ -s "$WORK/receiver.port" ]] || die "the webhook receiver did not start"
PG_EXPORTER_PORT="$(free_port)"
NODE_EXPORTER_PORT="$(free_port)"
BLACKBOX_PORT="$(free_port)"
AM_PORT="$(free_port)"
PROM_PORT="$(free_port)"
AM="http://127.0.0.1:$AM_PORT"
PROM="http://127.0.0.1:$PROM_PORT"
configure_args=(
    --repo "$REPO_ROOT" --work "$WORK" --time-scale "$TIME_SCALE"
    --interval "$INTERVAL" --scrape-timeout "$SCRAPE_TIMEOUT"
    --blackbox-values deploy/observability/prometheus-blackbox-exporter/values.yaml
    --webhook "http://127.0.0.1:$(cat "$WORK/receiver.port")"
    --service-base "$BASE" --metrics-addr "127.0.0.1:$METRICS_PORT"
    --pg-exporter-addr "127.0.0.1:$PG_EXPORTER_PORT" --node-exporter-addr "127.0.0.1:$NODE_EXPORTER_PORT"
    --blackbox-addr "127.0.0.1:$BLACKBOX_PORT" --alertmanager-addr "127.0.0.1:$AM_PORT"
)
[[ -n "${OBS_E2E_ALERTMANAGER:-}" ]] && configure_args+=(--alertmanager "$OBS_E2E_ALERTMANAGER")
[[ -n "${OBS_E2E_DB_DOWN_ALERT:-}" ]] && configure_args+=(--db-down-alert "$OBS_E2E_DB_DOWN_ALERT")
[[ -n "${OBS_E2E_READINESS_ALERT:-}" ]] && configure_args+=(--readiness-alert "$OBS_E2E_READINESS_ALERT")
"$PY" "$HERE/configs.py" "${configure_args[@]}" "${RULE_FILES[@]}"
"$PROMTOOL_BIN" check rules "$WORK/rules.json" >"$WORK/check.log" 2>&1 \
    || { show_log promtool "$WORK/check.log"; die "promtool rejected the extracted rules"; }
"$PROMTOOL_BIN" check config "$WORK/prometheus.json" >"$WORK/check.log" 2>&1 \
    || { show_log promtool "$WORK/check.log"; die "promtool rejected the Prometheus configuration"; }
"$AMTOOL_BIN" check-config "$WORK/alertmanager.json" >"$WORK/check.log" 2>&1 \
    || { show_log amtool "$WORK/check.log"; die "amtool rejected the Alertmanager configuration"; }
"$BLACKBOX_BIN" --config.file="$WORK/blackbox.json" --config.check >"$WORK/check.log" 2>&1 \
    || { show_log blackbox_exporter "$WORK/check.log"; die "blackbox_exporter rejected its configuration"; }
log "promtool, amtool and blackbox_exporter accept the generated configurations"

header "exporters, Alertmanager, Prometheus"
# postgres_exporter logs in to the server's `postgres` database, so that it
# still sees the server up when only the service's database is closed.
# User and password apart from the URI, the password from a file, as the
# production exporter gets them from its Secret.
mkdir -m 700 "$WORK/secrets"
(umask 077 && printf '%s' "$PG_PASSWORD" >"$WORK/secrets/pg-password")
postgres_exporter() {
    export DATA_SOURCE_URI="127.0.0.1:${PG_PORT}/postgres?sslmode=disable"
    export DATA_SOURCE_USER="$PG_SUPERUSER" DATA_SOURCE_PASS_FILE="$WORK/secrets/pg-password"
    exec "$PG_EXPORTER_BIN" --web.listen-address="127.0.0.1:$PG_EXPORTER_PORT" --log.level=warn
}
start_bg postgres_exporter "$WORK/postgres-exporter.log" postgres_exporter
wait_up postgres_exporter "http://127.0.0.1:$PG_EXPORTER_PORT/metrics" "$LAST_PID"
start_bg node_exporter "$WORK/node-exporter.log" "$NODE_EXPORTER_BIN" \
    --web.listen-address="127.0.0.1:$NODE_EXPORTER_PORT" --collector.disable-defaults --collector.cpu
wait_up node_exporter "http://127.0.0.1:$NODE_EXPORTER_PORT/metrics" "$LAST_PID" "$WORK/node-exporter.log"
start_bg blackbox_exporter "$WORK/blackbox.log" "$BLACKBOX_BIN" \
    --config.file="$WORK/blackbox.json" --web.listen-address="127.0.0.1:$BLACKBOX_PORT"
wait_up blackbox_exporter "http://127.0.0.1:$BLACKBOX_PORT/-/healthy" "$LAST_PID" "$WORK/blackbox.log"
start_bg alertmanager "$WORK/alertmanager.log" "$ALERTMANAGER_BIN" \
    --config.file="$WORK/alertmanager.json" --storage.path="$WORK/alertmanager-data" \
    --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address= --log.level=warn
wait_up alertmanager "$AM/-/ready" "$LAST_PID" "$WORK/alertmanager.log"
start_bg prometheus "$WORK/prometheus.log" "$PROMETHEUS_BIN" \
    --config.file="$WORK/prometheus.json" --storage.tsdb.path="$WORK/prometheus-data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn --enable-feature=exemplar-storage
wait_up prometheus "$PROM/-/ready" "$LAST_PID" "$WORK/prometheus.log"

header "traffic, targets, rules"
mark "stack up"
e2e check-targets --prom "$PROM" --timeout 30
e2e traffic --base "$BASE" --requests 400
mark "traffic sent"
e2e check-rules-health --prom "$PROM"
e2e check-recording --prom "$PROM" --plan "$PLAN" --timeout 15
e2e check-exemplars --prom "$PROM" --log "$WORK/service.log" --count-file "$WORK/otlp.count"

header "drill: injected errors page, then resolve"
# Before the outage, whose 503s hold the SLO's windows for five minutes.
# The windows hold only this run, so a few errors burn the budget fast;
# clean traffic then dilutes them in every window, which is how the page
# resolves here without waiting five minutes (docs/runbooks/drills.md).
METRICS="http://127.0.0.1:$METRICS_PORT"
e2e wait-quiet --prom "$PROM" --am "$AM" --plan "$PLAN" --events "$EVENTS" --alert fast_burn --alert slow_burn --timeout 5
e2e fault --metrics "$METRICS" --set '{"error_ratio": 1.0, "status": 500}'
mark "fault on"
e2e drill-errors --base "$BASE" --burst 10 --settle 3
e2e wait-delivery --events "$EVENTS" --marks "$MARKS" --plan "$PLAN" \
    --alert fast_burn --status firing --since "fault on" --slack "$SLACK"
e2e fault --metrics "$METRICS" --clear
mark "fault off"
CLEAN_STOP="$WORK/clean.stop"
start_bg "clean traffic" "$WORK/clean-traffic.log" "$PY" "$HERE/e2e.py" clean-traffic \
    --base "$BASE" --stop-file "$CLEAN_STOP"
CLEAN_TRAFFIC_PID=$LAST_PID
e2e wait-delivery --events "$EVENTS" --marks "$MARKS" --plan "$PLAN" \
    --alert fast_burn --status resolved --since "fault off" --slack "$SLACK"
# The ticket fired too while the page held it back; it resolves once the
# errors are under the objective's share, and nothing of the drill may
# still be active when the outage starts.
e2e wait-quiet --prom "$PROM" --am "$AM" --plan "$PLAN" --events "$EVENTS" --alert fast_burn --alert slow_burn \
    --and-inhibited --timeout 90
touch "$CLEAN_STOP"
wait "$CLEAN_TRAFFIC_PID" || { cat "$WORK/clean-traffic.log"; die "the clean traffic failed"; }
cat "$WORK/clean-traffic.log"
mark "drill over"

header "database outage"
OUTAGE_STOP="$WORK/outage.stop"
start_bg "alert watcher" "$WORK/watch.log" "$PY" "$HERE/e2e.py" watch \
    --prom "$PROM" --am "$AM" --out "$WORK/observed.json" --stop-file "$OUTAGE_STOP"
WATCH_PID=$LAST_PID
# Requests during the outage: 503s, which the error-ratio alert counts.
start_bg "outage traffic" "$WORK/outage-traffic.log" "$PY" "$HERE/e2e.py" outage-traffic \
    --base "$BASE" --stop-file "$OUTAGE_STOP"
OUTAGE_TRAFFIC_PID=$LAST_PID
pg_outage_stop
mark "postgres stopped"
e2e wait-delivery --events "$EVENTS" --marks "$MARKS" --plan "$PLAN" \
    --alert db_down --status firing --since "postgres stopped" --slack "$SLACK"
READINESS_INHIBITED="$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["readiness_inhibited"])' "$PLAN")"
if [[ "$READINESS_INHIBITED" != True ]]; then
    e2e wait-delivery --events "$EVENTS" --marks "$MARKS" --plan "$PLAN" \
        --alert readiness --status firing --since "postgres stopped" --slack "$SLACK"
fi
e2e wait-inhibited --observed "$WORK/observed.json" --plan "$PLAN" --marks "$MARKS" \
    --since "postgres stopped" --slack "$SLACK"
pg_outage_start
mark "postgres started"
touch "$OUTAGE_STOP"
wait "$OUTAGE_TRAFFIC_PID" "$WATCH_PID" 2>/dev/null || true
cat "$WORK/outage-traffic.log"
e2e check-inhibition --events "$EVENTS" --marks "$MARKS" --observed "$WORK/observed.json" --plan "$PLAN" \
    --since "postgres stopped" --until "postgres started"
e2e wait-delivery --events "$EVENTS" --marks "$MARKS" --plan "$PLAN" \
    --alert db_down --status resolved --since "postgres started" --slack "$SLACK"
if [[ "$READINESS_INHIBITED" != True ]]; then
    e2e wait-delivery --events "$EVENTS" --marks "$MARKS" --plan "$PLAN" \
        --alert readiness --status resolved --since "postgres started" --slack "$SLACK"
fi

if [[ "$READINESS_INHIBITED" == True ]]; then
    # The readiness alert was inhibited above; here it fires alone: the
    # service's database refuses connections while the server, and so
    # pg_up, stays up.
    header "readiness alone"
    e2e wait-inactive --prom "$PROM" --plan "$PLAN" --alert readiness --timeout "$SLACK"
    pg_psql -c "alter database $DB_NAME allow_connections false" \
        -c "select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = '$DB_NAME'" >/dev/null
    mark "service database closed"
    e2e wait-delivery --events "$EVENTS" --marks "$MARKS" --plan "$PLAN" \
        --alert readiness --status firing --since "service database closed" --slack "$SLACK"
    pg_psql -c "alter database $DB_NAME allow_connections true"
    mark "service database open"
    e2e wait-delivery --events "$EVENTS" --marks "$MARKS" --plan "$PLAN" \
        --alert readiness --status resolved --since "service database open" --slack "$SLACK"
    e2e check-not-delivered --events "$EVENTS" --marks "$MARKS" --plan "$PLAN" \
        --alert db_down --since "service database closed"
fi
mark "done"
RUN_OK=1

header "timeline"
e2e timeline --events "$EVENTS" --marks "$MARKS"
log "observability e2e OK in $((SECONDS - RUN_START))s"
