#!/usr/bin/env bash
# Points the student-api chart at a released image, so that Argo CD deploys
# it once the change is merged: image.tag and image.digest in values.yaml,
# appVersion in Chart.yaml, and the chart's own version (patch + 1, as
# Chart.yaml asks for every change to the chart).
#
# Usage: scripts/bump-image-tag.sh VERSION [DIGEST]
#   VERSION  the release, X.Y.Z or X.Y.Z-PRERELEASE (a leading v is dropped);
#            no build metadata: `+` is not allowed in an image tag
#   DIGEST   sha256:<64 hex digits> of the pushed image; without it the
#            digest is emptied, so that no digest of an older release stays
#            pinned next to the new tag
#
# Idempotent: when the chart already says so, nothing is written (not even
# the chart version) and it prints "unchanged". Each edit replaces exactly
# one line, found by its key under its parent, and the run fails without
# writing anything if a line is not found exactly once. Files are replaced
# atomically.
#
# Environment (optional):
#   CHART_DIR   the chart [deploy/helm/student-api]
set -euo pipefail

LOG_PREFIX="bump-image-tag"
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# semver.org's grammar without build metadata, and at most 128 characters
# (the longest image tag).
SEMVER_RE='^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-((0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?$'
DIGEST_RE='^sha256:[0-9a-f]{64}$'

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

# edit_line FILE PARENT KEY VALUE OUT [NAME]: writes FILE to OUT with the
# line `KEY: VALUE` in place of the one KEY line directly under the
# top-level key PARENT (two-space indent), or of the top-level KEY when
# PARENT is empty. Fails unless exactly one line matched, naming the file
# NAME (default FILE).
edit_line() {
    local file="$1" parent="$2" key="$3" value="$4" out="$5" name="${6:-$1}"
    awk -v parent="$parent" -v key="$key" -v value="$value" '
        BEGIN { inside = (parent == ""); n = 0 }
        # A top-level key starts a new block.
        /^[^[:space:]#]/ { inside = (parent == "") || ($0 ~ ("^" parent ":[[:space:]]*(#.*)?$")) }
        {
            indent = (parent == "") ? "" : "  "
            after = substr($0, length(indent key) + 2, 1)
            if (inside && index($0, indent key ":") == 1 && (after == "" || after ~ /[[:space:]]/)) {
                print indent key ": " value
                n++
                next
            }
            print
        }
        END { if (n != 1) exit 3 }
    ' "$file" >"$out" || {
        rm -f "$out"
        die "$name: expected exactly one ${parent:+$parent.}$key line"
    }
}

# current FILE PARENT KEY: the value of that line, quotes removed.
current() {
    awk -v parent="$2" -v key="$3" '
        BEGIN { inside = (parent == "") }
        /^[^[:space:]#]/ { inside = (parent == "") || ($0 ~ ("^" parent ":[[:space:]]*(#.*)?$")) }
        {
            indent = (parent == "") ? "" : "  "
            if (inside && index($0, indent key ":") == 1) {
                v = substr($0, length(indent key) + 2)
                sub(/^[[:space:]]+/, "", v); sub(/[[:space:]]+#.*$/, "", v); sub(/[[:space:]]+$/, "", v)
                gsub(/^"|"$/, "", v)
                print v
                exit
            }
        }
    ' "$1"
}

# replace FILE NEW: moves NEW over FILE keeping FILE's mode, unless equal.
replace() {
    if cmp -s "$1" "$2"; then
        rm -f "$2"
        return 1
    fi
    chmod --reference="$1" "$2"
    mv -f "$2" "$1"
}

main() {
    if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
        usage
        return 0
    fi
    (($# == 1 || $# == 2)) || {
        usage >&2
        die "expected VERSION [DIGEST]"
    }
    local version="${1#v}" digest="${2:-}"
    local chart_dir="${CHART_DIR:-$REPO_ROOT/deploy/helm/student-api}"
    local values="$chart_dir/values.yaml" chart="$chart_dir/Chart.yaml"
    local chart_version new_chart_version tmp_values tmp_chart

    [[ "$version" =~ $SEMVER_RE && ${#version} -le 128 ]] \
        || die "not a release version: '$1' (want X.Y.Z or X.Y.Z-PRERELEASE, no build metadata)"
    [[ -z "$digest" || "$digest" =~ $DIGEST_RE ]] || die "not an image digest: '$digest' (want sha256:<64 hex digits>)"
    [[ -f "$values" && -f "$chart" ]] || die "no chart at $chart_dir (values.yaml and Chart.yaml)"

    if [[ "$(current "$values" image tag)" == "$version" && "$(current "$values" image digest)" == "$digest" \
        && "$(current "$chart" "" appVersion)" == "$version" ]]; then
        log "unchanged: the chart already deploys $version${digest:+@$digest}"
        return 0
    fi

    chart_version="$(current "$chart" "" version)"
    [[ "$chart_version" =~ ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]] \
        || die "$chart: version '$chart_version' is not X.Y.Z; bump it by hand"
    new_chart_version="${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.$((BASH_REMATCH[3] + 1))"

    # Every edit is made to temporary files first: nothing is written
    # unless all of them found their line.
    tmp_values="$(mktemp "$values.XXXXXX")"
    tmp_chart="$(mktemp "$chart.XXXXXX")"
    on_exit rm -f "$tmp_values" "$tmp_values.1" "$tmp_chart" "$tmp_chart.1"
    edit_line "$values" image tag "\"$version\"" "$tmp_values.1"
    edit_line "$tmp_values.1" image digest "\"$digest\"" "$tmp_values" "$values"
    edit_line "$chart" "" appVersion "\"$version\"" "$tmp_chart.1"
    edit_line "$tmp_chart.1" "" version "$new_chart_version" "$tmp_chart" "$chart"

    replace "$values" "$tmp_values" || true
    replace "$chart" "$tmp_chart" || true
    log "image.tag $version, image.digest ${digest:-(none)}, appVersion $version, chart version $chart_version -> $new_chart_version"
}

main "$@"
