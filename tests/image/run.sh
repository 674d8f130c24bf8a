#!/usr/bin/env bash
# Offline checks of the container files, in one command. Steps:
#   lint   hadolint on Dockerfile and tests/image/Dockerfile.scratch (settings
#          in .hadolint.yaml); checkov on Dockerfile with no failed check and
#          a reason for every skip; compose.yaml against the Compose
#          Specification schema, then the project's rules for it
#          (check_compose.py); the Dockerfile's base images pinned by digest
#          and on one Debian release; the scratch twin in step with it.
#   image  (root) the FROM scratch proof: release build, a context staged with
#          the binary, the shared libraries it links and CA certificates
#          (this host's, not Debian 13's: docs/container.md says what that
#          leaves unproven) and a nonroot user, `podman build` of
#          Dockerfile.scratch, its config and filesystem checked; then the
#          image's own entrypoint run as UID 65532 on a read-only copy of its
#          filesystem with a data volume: --version, serve on SQLite (GET
#          /healthcheck and /ready, a student written and read back), the
#          process's credentials, SIGTERM and exit 0.
# No base image is pulled and nothing but loopback is contacted. It installs
# what it needs: tests/image/requirements.txt into .venv/image, podman (apt)
# when missing.
#
# Usage: tests/image/run.sh [lint|image]...   (no argument: both)
set -euo pipefail

LOG_PREFIX="image"
# shellcheck source-path=SCRIPTDIR/../../scripts/lib
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/tools.sh"

cd "$REPO_ROOT"

REQUIREMENTS="tests/image/requirements.txt"
# Apart from .venv: checkov and pytest want incompatible versions of packaging.
IMAGE_VENV="$VENV_DIR/image"
PY="$IMAGE_VENV/bin/python"
HELPER="tests/image/image.py"
NONROOT=65532
# Nothing here may leave __pycache__ directories in the work tree.
export PYTHONDONTWRITEBYTECODE=1
# checkov: no update check, no download of guidelines or policies.
export CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

# install_requirements: pip install -r into .venv/image, skipped while the
# requirements file is unchanged.
install_requirements() {
    local stamp="$IMAGE_VENV/.student-api-image" want
    want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$PY" -c '' >/dev/null 2>&1; then
        return 0
    fi
    log "installing $REQUIREMENTS into .venv/image"
    if ! "$PY" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' >/dev/null 2>&1; then
        (VENV_DIR="$IMAGE_VENV" && _tools_make_venv) || die "cannot create $IMAGE_VENV"
    fi
    _tools_run_logged "$IMAGE_VENV/pip-install.log" "$PY" -m pip install \
        --disable-pip-version-check --no-input -r "$REQUIREMENTS" \
        || die "pip install failed (log: $IMAGE_VENV/pip-install.log)"
    printf '%s\n' "$want" >"$stamp"
}

# crate_version: the version in crates/student-api/Cargo.toml.
crate_version() {
    "$PY" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["package"]["version"])' \
        crates/student-api/Cargo.toml
}

# checkov_dockerfile FILE: no failed check, no parse error, a reason for
# every skip (`# checkov:skip=CKV_ID: reason` in FILE).
checkov_dockerfile() {
    local file="$1" report rc=0
    report="$(mktemp)"
    on_exit rm -f "$report"
    "$IMAGE_VENV/bin/checkov" --skip-download --framework dockerfile -f "$file" \
        --output json >"$report" 2>/dev/null || rc=$?
    "$PY" - "$report" "$file" "$rc" <<'PY'
import json, sys
report, file, rc = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    data = json.load(open(report))
except ValueError:
    sys.exit(f"checkov produced no report for {file} (exit {rc})")
results, summary = data["results"], data["summary"]
for check in results["failed_checks"]:
    lines = "-".join(map(str, check["file_line_range"]))
    print(f"FAILED {check['check_id']} {check['check_name']} ({file}:{lines})", file=sys.stderr)
unexplained = [c["check_id"] for c in results["skipped_checks"]
               if not (c["check_result"].get("suppress_comment") or "").strip()]
for check_id in unexplained:
    print(f"SKIPPED WITHOUT A REASON {check_id} in {file}", file=sys.stderr)
if results["failed_checks"] or unexplained or summary["parsing_errors"] or rc not in (0, 1):
    sys.exit(f"checkov: {file} does not pass")
skips = ", ".join(c["check_id"] for c in results["skipped_checks"]) or "none"
print(f"checkov {summary['checkov_version']}: {file}: {summary['passed']} passed, "
      f"0 failed, skipped with a reason: {skips}", file=sys.stderr)
PY
}

step_lint() {
    header "hadolint"
    "$IMAGE_VENV/bin/hadolint" --config .hadolint.yaml Dockerfile tests/image/Dockerfile.scratch
    log "hadolint $("$IMAGE_VENV/bin/hadolint" --version | awk '{print $NF}'): Dockerfile, tests/image/Dockerfile.scratch clean"

    header "checkov"
    checkov_dockerfile Dockerfile

    header "compose.yaml"
    "$IMAGE_VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec compose.yaml
    "$PY" tests/image/check_compose.py compose.yaml

    header "scratch twin"
    "$PY" "$HELPER" check-dockerfiles Dockerfile tests/image/Dockerfile.scratch
}

# http PATH [METHOD BODY]: prints "STATUS BODY" of a request to the service.
http() {
    "$PY" - "$BASE_URL$1" "${2:-GET}" "${3:-}" <<'PY'
import sys, urllib.error, urllib.request
url, method, body = sys.argv[1], sys.argv[2], sys.argv[3]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
request = urllib.request.Request(url, method=method, data=body.encode() or None,
                                 headers={"content-type": "application/json"})
try:
    with opener.open(request, timeout=5) as response:
        print(response.status, response.read().decode())
except urllib.error.HTTPError as err:
    print(err.code, err.read().decode())
PY
}

# expect_status WANT PATH [METHOD BODY]: the request answers WANT; prints the body.
expect_status() {
    local want="$1" got
    shift
    got="$(http "$@")"
    [[ "${got%% *}" == "$want" ]] || die "${2:-GET} $1 answered ${got%% *}, want $want: ${got#* }"
    printf '%s\n' "${got#* }"
}

# The PID of the service this script started, while it runs.
SERVICE_PID=""

# stop_service: SIGTERM to the service this script started, if it still runs.
stop_service() {
    [[ -n "$SERVICE_PID" ]] || return 0
    kill -TERM "$SERVICE_PID" 2>/dev/null
    wait "$SERVICE_PID" 2>/dev/null
    SERVICE_PID=""
}

# remove_image TAG: removes the image this script built.
remove_image() {
    podman rmi --force "$1" >/dev/null 2>&1 || true
}

# proc_field PID FIELD: a line of /proc/PID/status without its name.
proc_field() {
    awk -v f="$2:" '$1 == f { $1 = ""; sub(/^ +/, ""); print }' "/proc/$1/status"
}

step_image() {
    is_root || die "the image step needs root (podman image mount, chroot); 'tests/image/run.sh lint' runs the static checks alone"
    command -v podman >/dev/null || apt_install podman
    local version revision work binary tag mnt rootfs data port pid rc body id status health ready
    version="$(crate_version)"
    revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"

    header "release build"
    cargo build --release --locked -p student-api
    binary="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/student-api"

    header "FROM scratch image"
    work="$(mktemp -d "${TMPDIR:-/tmp}/student-api-image.XXXXXX")"
    on_exit rm -rf "$work"
    mkdir "$work/context" "$work/context/data"
    "$PY" "$HELPER" stage-base "$binary" "$work/context/base.tar"
    cp "$binary" "$work/context/student-api"
    tag="localhost/student-api-image-test:$(random_hex 6)"
    on_exit remove_image "$tag"
    # --layers=false: only the final image is stored, so removing the tag
    # removes everything this build made.
    podman build --quiet --pull=never --layers=false --force-rm --format oci \
        --build-arg VERSION="$version" --build-arg REVISION="$revision" \
        -f tests/image/Dockerfile.scratch -t "$tag" "$work/context" >/dev/null
    log "built $tag ($(podman image inspect --format '{{.Size}}' "$tag") bytes)"
    podman image inspect "$tag" >"$work/inspect.json"
    "$PY" "$HELPER" check-image "$work/inspect.json" --revision "$revision"

    # A copy of the image's filesystem: the run below needs mount points in
    # it, which the read-only image mount cannot take.
    rootfs="$work/rootfs"
    mkdir "$rootfs"
    mnt="$(podman image mount "$tag")"
    if ! cp -a "$mnt/." "$rootfs/"; then
        podman image unmount "$tag" >/dev/null
        die "cannot copy the image filesystem from $mnt"
    fi
    podman image unmount "$tag" >/dev/null
    "$PY" "$HELPER" check-rootfs "$rootfs"

    header "run the image as UID $NONROOT"
    # As a new named volume would be: owner and mode of the image's directory.
    data="$work/volume-data"
    install -d -o "$(stat -c %u "$rootfs/home/nonroot/data")" -g "$(stat -c %g "$rootfs/home/nonroot/data")" \
        -m "$(stat -c %a "$rootfs/home/nonroot/data")" "$data"
    # unshare and the helper exec in turn, so the PID of this command is the
    # service's; the mounts live in a private namespace and end with it.
    local run_image=(unshare --mount --propagation private
        "$PY" "$HELPER" exec "$rootfs" "$work/inspect.json"
        --read-only --volume "$data:/home/nonroot/data")

    [[ "$("${run_image[@]}" -- --version)" == "student-api $version" ]] \
        || die "--version does not print 'student-api $version'"
    log "--version: student-api $version"

    port="$(free_port)"
    BASE_URL="http://127.0.0.1:$port"
    "${run_image[@]}" --env "LISTEN_ADDR=127.0.0.1:$port" >"$work/serve.out" 2>"$work/serve.err" &
    pid=$!
    SERVICE_PID=$pid
    on_exit stop_service
    if ! wait_http "$BASE_URL/healthcheck" 30 "$pid"; then
        tail -n 20 "$work/serve.out" "$work/serve.err" >&2 || true
        die "the service in the image did not come up"
    fi
    health="$(expect_status 200 /healthcheck)"
    ready="$(expect_status 200 /ready)"
    log "GET /healthcheck: $health"
    log "GET /ready: $ready"
    body="$(expect_status 201 /api/v1/students POST \
        '{"name":"Ada Lovelace","email":"ada@example.org","domain":"Mathematics","gpa":9.4}')"
    id="$("$PY" -c 'import json, sys; print(json.loads(sys.argv[1])["id"])' "$body")"
    expect_status 200 "/api/v1/students/$id" >/dev/null
    [[ -s "$data/students.db" && "$(stat -c %u "$data/students.db")" == "$NONROOT" ]] \
        || die "no SQLite database owned by $NONROOT in the data volume"
    log "POST and GET /api/v1/students: written to the data volume on a read-only root"

    # The kernel's view of the process: exec kept the PID, so this is the service.
    [[ "$(proc_field "$pid" Name)" == "student-api" ]] || die "PID $pid is $(proc_field "$pid" Name), not student-api"
    for status in "Uid:$NONROOT $NONROOT $NONROOT $NONROOT" "Gid:$NONROOT $NONROOT $NONROOT $NONROOT" \
        "Groups:" "CapEff:0000000000000000" "CapPrm:0000000000000000" "NoNewPrivs:1"; do
        [[ "$(proc_field "$pid" "${status%%:*}" | tr -s '\t ' ' ')" == "${status#*:}" ]] \
            || die "/proc/$pid/status ${status%%:*} is '$(proc_field "$pid" "${status%%:*}")', want '${status#*:}'"
    done
    log "process $pid: UID and GID $NONROOT, no supplementary groups, no capabilities, no_new_privs"

    # The image's HEALTHCHECK command, run the way a runtime runs it.
    "${run_image[@]}" --env "LISTEN_ADDR=127.0.0.1:$port" -- healthcheck \
        || die "the image's healthcheck command failed against the running service"
    log "healthcheck command: exit 0 while the service answers"

    kill -TERM "$pid"
    rc=0
    wait "$pid" || rc=$?
    SERVICE_PID=""
    if "${run_image[@]}" --env "LISTEN_ADDR=127.0.0.1:$port" -- healthcheck 2>/dev/null; then
        die "the image's healthcheck command passed with the service stopped"
    fi
    ((rc == 0)) || {
        tail -n 20 "$work/serve.out" "$work/serve.err" >&2 || true
        die "the service exited $rc after SIGTERM, want 0"
    }
    "$PY" - "$work/serve.out" <<'PY' || die "the service's log is not JSON lines (LOG_FORMAT=json from the image)"
import json, sys
lines = [line for line in open(sys.argv[1]) if line.strip()]
assert lines and all(isinstance(json.loads(line), dict) for line in lines)
PY
    log "SIGTERM: exit 0; log: JSON lines"
}

main() {
    local steps=("$@") step t0=$SECONDS
    ((${#steps[@]})) || steps=(lint image)
    for step in "${steps[@]}"; do
        case "$step" in
            lint | image) ;;
            -h | --help) usage && return 0 ;;
            *) usage >&2 && die "unknown step: $step" ;;
        esac
    done
    install_requirements
    for step in "${steps[@]}"; do
        "step_$step"
    done
    log "image checks passed (${steps[*]}) in $((SECONDS - t0))s"
}

main "$@"
