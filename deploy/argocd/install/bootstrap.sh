#!/usr/bin/env bash
# One-time bootstrap of the GitOps platform on a new cluster. It checks what
# a first run needs, installs Argo CD from its Helm chart with the values
# Argo CD later manages itself with (deploy/argocd/values/argo-cd.yaml), and
# applies the root Application rendered from the platform chart
# (deploy/argocd/platform) with the repository, revision and image given
# here: the one place they are set, which every Application then follows.
# From then on every change goes through Git; running it again is harmless.
#
# Usage: deploy/argocd/install/bootstrap.sh [dev|prod] [OPTION...]
#   dev              development clusters, kind or minikube (the default)
#   prod             production: the chart's values-prod.yaml
#   --repo URL       the Git repository Argo CD deploys from, over https
#                    [the clone's origin; a GitHub SSH URL becomes https]
#   --revision REF   the branch, tag or commit it follows [the current branch]
#   --image REPO     the service's image repository [ghcr.io/OWNER/NAME of a
#                    GitHub origin, lowercase; else the chart's default]
#   --context NAME   the kubectl context of the cluster [the current one]
#   --private        the repository is private: Argo CD reads it with the
#                    Secret argocd/platform-repository, created here the
#                    first time from REPO_USERNAME and REPO_TOKEN, then kept
#                    from OpenBao by External Secrets (docs/deploy.md)
#   --check          the checks alone: change nothing
#   -h, --help       this text
#
# Environment (optional):
#   REPO_USERNAME, REPO_TOKEN  a private repository's credentials (a token
#                    that can read it); never arguments, never printed
#   WAIT_TIMEOUT     seconds to wait for Argo CD to read the root [300]
#
# Needs helm 3.8 or later (4 recommended), kubectl 1.35 or later, git and
# python3, and a cluster whose nodes carry the platform's roles (label
# `type`: deploy/cluster makes one). Nothing changes until every check has
# passed; each failed check says which step to take next.
#
# On a development cluster it also makes OpenBao's seal key once: the Secret
# openbao/openbao-seal, 32 bytes from /dev/urandom that go from the kernel to
# the API server through a pipe, never printed and never in Git, and never
# replaced (deploy/vault/server/seal-static.hcl, docs/runbooks/vault.md).
# Production seals with a KMS instead.
set -euo pipefail

LOG_PREFIX="argocd-bootstrap"
# The cluster checks of deploy/cluster (check.py through `check`, `kc`,
# PLATFORM_ROLES, MIN_KUBERNETES, GATEWAY_API_VERSION, WAIT_TIMEOUT).
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/../../cluster/lib.sh"

# The release templates/argo-cd.yaml of the platform chart adopts: same
# name, chart and version (tests/argocd checks that the two agree).
ARGOCD_RELEASE="argocd"
ARGOCD_NAMESPACE="argocd"
ARGOCD_CHART_REPO="https://argoproj.github.io/argo-helm"
ARGOCD_CHART="argo-cd"
ARGOCD_CHART_VERSION="10.10.2"
VALUES="$REPO_ROOT/deploy/argocd/values/argo-cd.yaml"
PLATFORM_CHART="$REPO_ROOT/deploy/argocd/platform"
# The repository Secret of a private repository; the ExternalSecret of
# templates/repository-credentials.yaml adopts it under the same name.
REPO_SECRET="platform-repository"
# OpenBao's seal key on a development cluster: the Secret the chart mounts
# (deploy/argocd/values/openbao.yaml), holding the key under the id the
# static seal names (read from that file, so the two cannot differ).
SEAL_NAMESPACE="openbao"
SEAL_SECRET="openbao-seal"
SEAL_CONFIG="$REPO_ROOT/deploy/vault/server/seal-static.hcl"
# Older Helm lacks what the commands below use; Helm 3 as a whole gets
# security fixes only, until 2027-02-10 (helm.sh/blog/helm-v3-end-of-life,
# read 2026-12-05).
MIN_HELM="3.8"
# What Argo CD says of the root: its sync status, then one line per
# condition ("ComparisonError: ..." when the repo server cannot read it).
ROOT_STATUS='{.status.sync.status}{"\n"}{range .status.conditions[*]}{.type}{": "}{.message}{"\n"}{end}'

ENVIRONMENT="dev"
REPO_URL=""
REVISION=""
IMAGE=""
KUBE_CONTEXT=""
PRIVATE=0
CHECK_ONLY=0
# Filled by the checks: what is wrong, each followed by the next step.
PROBLEMS=()
FOUND=()

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

parse_args() {
    local flag
    while (($# > 0)); do
        flag="$1"
        case "$flag" in
            dev | prod) ENVIRONMENT="$flag" ;;
            --repo | --revision | --image | --context)
                if (($# < 2)) || [[ -z "$2" ]]; then
                    die "$flag needs a value (see --help)"
                fi
                case "$flag" in
                    --repo) REPO_URL="$2" ;;
                    --revision) REVISION="$2" ;;
                    --image) IMAGE="$2" ;;
                    --context) KUBE_CONTEXT="$2" ;;
                esac
                shift
                ;;
            --private) PRIVATE=1 ;;
            --check) CHECK_ONLY=1 ;;
            -h | --help)
                usage
                exit 0
                ;;
            *)
                usage >&2
                die "unknown argument '$flag'"
                ;;
        esac
        shift
    done
}

# problem TEXT NEXT: a failed check and the step that fixes it.
problem() {
    PROBLEMS+=("$1")
    [[ -z "${2:-}" ]] || PROBLEMS+=("next: $2")
}

# ------------------------------------------------------------ the settings
# resolve_settings: the repository, revision and image from the flags, else
# from the clone; refuses what Argo CD could not follow.
resolve_settings() {
    local given="$REPO_URL" url status=0
    if [[ -z "$given" ]]; then
        given="$(git -C "$REPO_ROOT" remote get-url origin 2>/dev/null)" \
            || die "no --repo given and this clone has no remote 'origin': pass --repo https://…"
    fi
    url="$(https_url "$given")" || status=$?
    case "$status" in
        0) REPO_URL="$url" ;;
        2) die "the repository URL holds credentials, which would end up in every Application: give it without them and pass --private (credentials from REPO_USERNAME and REPO_TOKEN)" ;;
        *) die "the repository URL '$given' is not one Argo CD can read over https: pass --repo https://HOST/OWNER/NAME.git" ;;
    esac

    if [[ -z "$REVISION" ]]; then
        REVISION="$(git -C "$REPO_ROOT" symbolic-ref --quiet --short HEAD 2>/dev/null)" \
            || die "no --revision given and this clone is on no branch (detached HEAD): pass --revision BRANCH, TAG or COMMIT"
    fi
    [[ "$REVISION" =~ ^[^[:space:]\"\',\\]+$ ]] || die "--revision '$REVISION' is not a Git revision"

    if [[ -z "$IMAGE" ]]; then
        IMAGE="$(github_image "$REPO_URL")" || IMAGE=""
    fi
    if [[ -n "$IMAGE" ]] && ! [[ "$IMAGE" =~ ^[a-z0-9]+([._-][a-z0-9]+)*(\.[a-z0-9]+([._-][a-z0-9]+)*)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$ ]]; then
        die "--image '$IMAGE' is not an image repository (REGISTRY/PATH, lowercase, no tag)"
    fi
}

# ---------------------------------------------------------------- checks
# version_at_least VERSION MIN: MAJOR.MINOR of VERSION is MIN or later.
version_at_least() {
    local have="$1" want="$2"
    ((${have%%.*} > ${want%%.*} || (${have%%.*} == ${want%%.*} && ${have#*.} >= ${want#*.})))
}

check_tools() {
    local out version
    out="$(kubectl version --client 2>/dev/null || true)"
    if [[ "$out" =~ Client\ Version:\ v([0-9]+)\.([0-9]+) ]]; then
        version="${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
        if version_at_least "$version" "$MIN_KUBERNETES"; then
            FOUND+=("kubectl $version")
        else
            problem "kubectl: version $version; the platform needs $MIN_KUBERNETES or later (the oldest Kubernetes supported upstream)" \
                "install a current kubectl: https://kubernetes.io/docs/tasks/tools/"
        fi
    else
        problem "kubectl: \`kubectl version --client\` names no version" "install kubectl: https://kubernetes.io/docs/tasks/tools/"
    fi
    out="$(helm version --short 2>/dev/null || true)"
    if [[ "$out" =~ ^v([0-9]+)\.([0-9]+) ]]; then
        version="${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
        if ! version_at_least "$version" "$MIN_HELM"; then
            problem "helm: version $version; this script needs $MIN_HELM or later" "install Helm 4: https://helm.sh/docs/intro/install/"
        else
            FOUND+=("helm $version")
            ((BASH_REMATCH[1] > 3)) || warn "helm $version: Helm 3 gets security fixes only, until 2027-02-10; move to Helm 4"
        fi
    else
        problem "helm: \`helm version --short\` names no version" "install Helm 4: https://helm.sh/docs/intro/install/"
    fi
}

# _judge LABEL NEXT CHECK-ARGS... < JSON: what check.py says, the problems
# followed by NEXT.
_judge() {
    local label="$1" next="$2" out
    shift 2
    if out="$(check "$@")"; then
        mapfile -t -O "${#FOUND[@]}" FOUND <<<"$out"
    elif [[ -n "$out" ]]; then
        mapfile -t -O "${#PROBLEMS[@]}" PROBLEMS <<<"$out"
        PROBLEMS+=("next: $next")
    else
        problem "$label: unexpected answer (see the message above)"
    fi
}

# check_cluster: the context, then the cluster as deploy/cluster/*.sh verify
# judges it; production may have more nodes than roles and its own storage.
check_cluster() {
    local json errors contexts next_up
    next_up="create the cluster with deploy/cluster/kind.sh up (or minikube.sh up), or pick another with --context NAME"
    if [[ -z "$KUBE_CONTEXT" ]]; then
        KUBE_CONTEXT="$(kubectl config current-context 2>/dev/null)" || {
            problem "context: kubectl has no current context" "$next_up"
            return 0
        }
    else
        contexts="$(kubectl config get-contexts -o name 2>/dev/null || true)"
        if ! grep -qxF -- "$KUBE_CONTEXT" <<<"$contexts"; then
            problem "context: $KUBE_CONTEXT is not a context of your kubeconfig" "$next_up"
            return 0
        fi
    fi
    FOUND+=("context $KUBE_CONTEXT")
    errors="$(mktemp)"
    on_exit rm -f "$errors"

    if ! json="$(kc version -o json 2>"$errors")"; then
        problem "cluster: the API server of context $KUBE_CONTEXT does not answer" "start the cluster (deploy/cluster/kind.sh up or minikube.sh up) or pick another with --context NAME"
        return 0
    fi
    _judge kubernetes "upgrade the cluster, or create it again with deploy/cluster/kind.sh up" version "$MIN_KUBERNETES" <<<"$json"

    if json="$(kc get nodes -o json 2>"$errors")"; then
        if [[ "$ENVIRONMENT" == prod ]]; then
            _judge nodes "label the nodes: kubectl --context $KUBE_CONTEXT label node NODE type=ROLE (roles ${PLATFORM_ROLES[*]}; deploy/argocd/README.md, Production)" \
                roles "${PLATFORM_ROLES[@]}" <<<"$json"
        else
            _judge nodes "give each role one node: kubectl --context $KUBE_CONTEXT label node NODE type=ROLE --overwrite (deploy/cluster/kind.sh up and minikube.sh up do it)" \
                nodes "${PLATFORM_ROLES[@]}" <<<"$json"
        fi
    else
        problem "nodes: kubectl cannot list the nodes of context $KUBE_CONTEXT: $(_oneline "$errors")" "use a context whose user may list nodes"
    fi
    if json="$(kc get storageclass -o json 2>"$errors")"; then
        if [[ "$ENVIRONMENT" == prod ]]; then
            _judge storage "mark one StorageClass the default (annotation storageclass.kubernetes.io/is-default-class=true)" storageclasses <<<"$json"
        else
            _judge storage "deploy/cluster/kind.sh up (or minikube.sh up) installs them" storageclasses "${REQUIRED_STORAGECLASSES[@]}" <<<"$json"
        fi
    else
        problem "storage: kubectl cannot list StorageClasses: $(_oneline "$errors")" "use a context whose user may list StorageClasses"
    fi
    if json="$(kc get crd "$GATEWAY_API_CRD" --ignore-not-found -o json 2>"$errors")"; then
        _judge gateway-api "remove those CRDs with the manifest they came from; the platform installs its own" gateway-api "$GATEWAY_API_VERSION" <<<"${json:-"{}"}"
    else
        problem "gateway-api: kubectl cannot read CustomResourceDefinitions: $(_oneline "$errors")" "use a context with cluster-admin rights: Argo CD installs CRDs"
    fi
    if json="$(kc get --raw /apis/metrics.k8s.io/v1beta1/nodes 2>"$errors")"; then
        _judge metrics "wait a minute and run this again" metrics <<<"$json"
    else
        problem "metrics: the metrics API (metrics.k8s.io) does not answer" "install metrics-server (deploy/cluster/kind.sh up does; minikube: addons enable metrics-server)"
    fi
}

# check_repository: this machine reads REPO_URL as Argo CD will (anonymously,
# or with REPO_USERNAME and REPO_TOKEN when private), and REVISION is there.
check_repository() {
    local refs errors askpass sha ref tip="" head
    # Only the credentials Argo CD will have: none of this machine's user
    # (no credential helper, no askpass program), unless said otherwise.
    local git_env=(GIT_TERMINAL_PROMPT=0 GIT_ASKPASS=) git_opts=(-c credential.helper=)
    errors="$(mktemp)"
    on_exit rm -f "$errors"
    if ((PRIVATE)); then
        if [[ -n "${REPO_USERNAME:-}" && -n "${REPO_TOKEN:-}" ]]; then
            # The token reaches git through this program's output, never
            # through an argument.
            askpass="$(mktemp)"
            on_exit rm -f "$askpass"
            cat >"$askpass" <<'ASKPASS'
#!/bin/sh
case "$1" in
    Username*) printf '%s\n' "$REPO_USERNAME" ;;
    *) printf '%s\n' "$REPO_TOKEN" ;;
esac
ASKPASS
            chmod 700 "$askpass"
            git_env=(GIT_TERMINAL_PROMPT=0 "GIT_ASKPASS=$askpass")
        elif [[ -n "${REPO_USERNAME:-}${REPO_TOKEN:-}" ]]; then
            problem "repository: only one of REPO_USERNAME and REPO_TOKEN is set" "export both"
            return 0
        elif [[ -z "$KUBE_CONTEXT" ]] || ! kc -n "$ARGOCD_NAMESPACE" get secret "$REPO_SECRET" -o name >/dev/null 2>&1; then
            problem "repository: --private, but neither REPO_USERNAME and REPO_TOKEN nor the Secret $ARGOCD_NAMESPACE/$REPO_SECRET exist" \
                "export REPO_USERNAME and REPO_TOKEN (a token that can read $REPO_URL) and run this again"
            return 0
        else
            # The cluster has credentials this machine cannot see: read
            # with the user's own.
            git_env=(GIT_TERMINAL_PROMPT=0)
            git_opts=()
            FOUND+=("repository credentials: the Secret $ARGOCD_NAMESPACE/$REPO_SECRET (kept)")
        fi
    elif [[ -n "${REPO_USERNAME:-}${REPO_TOKEN:-}" ]]; then
        warn "REPO_USERNAME or REPO_TOKEN is set, but not --private: they are not used"
    fi

    if ! refs="$(env "${git_env[@]}" git "${git_opts[@]}" ls-remote "$REPO_URL" 2>"$errors")"; then
        if ((PRIVATE)); then
            problem "repository: $REPO_URL cannot be read with REPO_USERNAME and REPO_TOKEN: $(_oneline "$errors")" \
                "check the URL and that the token may read the repository (contents: read)"
        else
            problem "repository: $REPO_URL cannot be read without credentials, as Argo CD would read it: $(_oneline "$errors")" \
                "check the URL; a private repository needs --private with REPO_USERNAME and REPO_TOKEN"
        fi
        return 0
    fi
    # A branch, a tag (its commit: the peeled ^{} line comes after), a full
    # ref name, or a commit at the tip of one of them.
    while read -r sha ref; do
        case "$ref" in
            "$REVISION" | "refs/heads/$REVISION" | "refs/tags/$REVISION" | "refs/tags/$REVISION^{}") tip="$sha" ;;
            *) [[ "$sha" != "$REVISION" ]] || tip="$sha" ;;
        esac
    done <<<"$refs"
    if [[ -n "$tip" ]]; then
        FOUND+=("repository $REPO_URL at $REVISION (commit ${tip:0:12})")
    elif [[ "$REVISION" =~ ^[0-9a-f]{40}$ ]]; then
        FOUND+=("repository $REPO_URL answers; commit $REVISION is no branch or tag tip, so only Argo CD can tell whether it is there")
    else
        problem "repository: $REPO_URL has no branch or tag $REVISION" "push it (git push origin $REVISION) or pass --revision with one that is there"
        return 0
    fi
    # What Argo CD deploys is the remote's commit, not this work tree's.
    if head="$(git -C "$REPO_ROOT" rev-parse HEAD 2>/dev/null)" && [[ -n "$tip" && "$head" != "$tip" ]] \
        && [[ "$REVISION" == "$(git -C "$REPO_ROOT" symbolic-ref --quiet --short HEAD 2>/dev/null || true)" ]]; then
        warn "this clone's $REVISION is at ${head:0:12}, the repository's at ${tip:0:12}: Argo CD deploys the repository's (push first to deploy yours)"
    fi
}

# render_root FILE: the root Application, rendered from the platform chart
# with this run's settings, into FILE.
render_root() {
    local args=(template root "$PLATFORM_CHART" --namespace "$ARGOCD_NAMESPACE" --show-only templates/root.yaml)
    [[ "$ENVIRONMENT" != prod ]] || args+=(--values "$PLATFORM_CHART/values-prod.yaml")
    args+=(--set-string "repo.url=$REPO_URL" --set-string "repo.revision=$REVISION")
    args+=(--set "repo.private=$( ((PRIVATE)) && echo true || echo false)")
    [[ -z "$IMAGE" ]] || args+=(--set-string "image.repository=$IMAGE")
    helm "${args[@]}" >"$1"
}

preflight() {
    local line root_file="$1"
    check_tools
    check_cluster
    check_repository
    if ! render_root "$root_file" 2>"$root_file.err"; then
        problem "platform chart: the root does not render with these settings: $(_oneline "$root_file.err")" "fix the settings above, or the chart (tests/argocd/run.sh)"
    fi
    if ((${#PROBLEMS[@]} > 0)); then
        for line in "${PROBLEMS[@]}"; do
            if [[ "$line" == next:* ]]; then
                printf '[%s]      %s\n' "$LOG_PREFIX" "$line" >&2
            else
                printf '[%s] FAIL %s\n' "$LOG_PREFIX" "$line" >&2
            fi
        done
        die "not ready for the platform; nothing was changed"
    fi
    for line in "${FOUND[@]}"; do
        log "ok: $line"
    done
    log "this machine reads the repository; whether the cluster can (its network, the credentials) shows once Argo CD reads the root, checked below"
    [[ "$ENVIRONMENT" != prod ]] || log "production also needs what no check here sees: deploy/argocd/README.md, Production"
}

# ---------------------------------------------------------------- changes
# b64: stdin base64-encoded on one line (no argument: nothing secret in a
# process list).
b64() { base64 | tr -d '\n'; }

# ensure_repository_secret: the first repository Secret of a private
# repository, from REPO_USERNAME and REPO_TOKEN; one that exists is kept
# (External Secrets keeps it from OpenBao from then on).
ensure_repository_secret() {
    if kc -n "$ARGOCD_NAMESPACE" get secret "$REPO_SECRET" -o name >/dev/null 2>&1; then
        log "Secret $ARGOCD_NAMESPACE/$REPO_SECRET exists: kept (to replace its token, write it to OpenBao, KV argocd/repository)"
        return 0
    fi
    # kubectl create keeps no copy of the data in an annotation, unlike
    # apply; the manifest goes through stdin only.
    {
        printf '{"apiVersion":"v1","kind":"Secret","type":"Opaque",'
        printf '"metadata":{"name":"%s","namespace":"%s",' "$REPO_SECRET" "$ARGOCD_NAMESPACE"
        printf '"labels":{"app.kubernetes.io/part-of":"student-api","argocd.argoproj.io/secret-type":"repository"}},'
        printf '"data":{"type":"%s","url":"%s",' "$(printf git | b64)" "$(printf '%s' "$REPO_URL" | b64)"
        printf '"username":"%s","password":"%s"}}\n' "$(printf '%s' "$REPO_USERNAME" | b64)" "$(printf '%s' "$REPO_TOKEN" | b64)"
    } | kc create -f - >/dev/null
    log "created the Secret $ARGOCD_NAMESPACE/$REPO_SECRET from REPO_USERNAME and REPO_TOKEN"
}

# ensure_seal_key: on a development cluster, the Secret openbao/openbao-seal
# with 32 random bytes under the key id of seal-static.hcl, made once. One
# that exists is kept whatever it holds: a new key would leave OpenBao's data
# unreadable (rotating it is a runbook step).
ensure_seal_key() {
    local key_id
    if kc -n "$SEAL_NAMESPACE" get secret "$SEAL_SECRET" -o name >/dev/null 2>&1; then
        log "Secret $SEAL_NAMESPACE/$SEAL_SECRET (OpenBao's seal key) exists: kept"
        return 0
    fi
    key_id="$(sed -n 's/^[[:space:]]*current_key_id[[:space:]]*=[[:space:]]*"\([A-Za-z0-9_.-]*\)".*/\1/p' "$SEAL_CONFIG")"
    [[ -n "$key_id" ]] || die "no current_key_id in $SEAL_CONFIG"
    if ! kc get namespace "$SEAL_NAMESPACE" -o name >/dev/null 2>&1; then
        kc create namespace "$SEAL_NAMESPACE" >/dev/null
    fi
    # As for the repository Secret: the manifest goes through stdin only,
    # and kubectl create keeps no copy of the data in an annotation.
    {
        printf '{"apiVersion":"v1","kind":"Secret","type":"Opaque",'
        printf '"metadata":{"name":"%s","namespace":"%s",' "$SEAL_SECRET" "$SEAL_NAMESPACE"
        printf '"labels":{"app.kubernetes.io/part-of":"student-api","app.kubernetes.io/name":"openbao","app.kubernetes.io/component":"seal"}},'
        printf '"data":{"%s":"%s"}}\n' "$key_id" "$(head -c 32 /dev/urandom | b64)"
    } | kc create -f - >/dev/null
    log "created OpenBao's seal key, the Secret $SEAL_NAMESPACE/$SEAL_SECRET (32 random bytes, key $key_id; never shown)"
}

# wait_root: Argo CD compared the root with Git (Synced or OutOfSync, no
# error), within WAIT_TIMEOUT; otherwise its error and the next step.
wait_root() {
    local deadline=$((SECONDS + WAIT_TIMEOUT)) answer status line seen error=""
    log "waiting up to ${WAIT_TIMEOUT}s for Argo CD to read the root from $REPO_URL at $REVISION"
    while :; do
        if answer="$(kc -n "$ARGOCD_NAMESPACE" get application root -o "jsonpath=$ROOT_STATUS" 2>/dev/null)"; then
            status="${answer%%$'\n'*}"
            seen=""
            while read -r line; do
                [[ ! "$line" =~ ^[A-Za-z]+Error:\  ]] || seen="$line"
            done <<<"${answer#*$'\n'}"
            if [[ -z "$seen" && ("$status" == Synced || "$status" == OutOfSync) ]]; then
                log "Argo CD reads the root (sync status $status); it now syncs the platform wave by wave; follow it with deploy/argocd/install/wait.sh"
                return 0
            fi
            [[ -z "$seen" ]] || error="$seen"
        fi
        ((SECONDS < deadline)) || break
        sleep "$POLL_INTERVAL"
    done
    if [[ -n "$error" ]]; then
        if ((PRIVATE)); then
            die "Argo CD cannot read the root from $REPO_URL at $REVISION: $error. Next: check the token in the Secret $ARGOCD_NAMESPACE/$REPO_SECRET (to replace it: kubectl -n $ARGOCD_NAMESPACE delete secret $REPO_SECRET, then run this again with REPO_USERNAME and REPO_TOKEN); Argo CD retries on its own"
        fi
        die "Argo CD cannot read the root from $REPO_URL at $REVISION: $error. Next: check that the cluster reaches the repository (kubectl --context $KUBE_CONTEXT -n $ARGOCD_NAMESPACE logs deploy/argocd-repo-server) and that the revision is pushed; Argo CD retries on its own"
    fi
    die "Argo CD said nothing about the root within ${WAIT_TIMEOUT}s: kubectl --context $KUBE_CONTEXT -n $ARGOCD_NAMESPACE describe application root"
}

main() {
    local root_file
    parse_args "$@"
    require_tools kubectl helm git python3
    resolve_settings
    log "environment $ENVIRONMENT: $REPO_URL at $REVISION, image ${IMAGE:-"of the chart's values"}"
    root_file="$(mktemp)"
    on_exit rm -f "$root_file" "$root_file.err"
    preflight "$root_file"
    if ((CHECK_ONLY)); then
        log "--check: every check passed, nothing was changed"
        return 0
    fi

    header "Argo CD $ARGOCD_CHART_VERSION (release $ARGOCD_RELEASE in $ARGOCD_NAMESPACE, context $KUBE_CONTEXT)"
    helm upgrade --install "$ARGOCD_RELEASE" "$ARGOCD_CHART" --kube-context "$KUBE_CONTEXT" \
        --repo "$ARGOCD_CHART_REPO" --version "$ARGOCD_CHART_VERSION" \
        --namespace "$ARGOCD_NAMESPACE" --create-namespace \
        --values "$VALUES" --wait --timeout 10m \
        || die "helm could not install Argo CD (its message above): kubectl --context $KUBE_CONTEXT -n $ARGOCD_NAMESPACE get pods, then run this again"

    if ((PRIVATE)); then
        header "repository credentials"
        ensure_repository_secret
    fi

    if [[ "$ENVIRONMENT" == dev ]]; then
        header "OpenBao's seal key"
        ensure_seal_key
    fi

    header "root Application ($ENVIRONMENT)"
    kc apply -f "$root_file" || die "kubectl could not apply the root Application (its message above)"
    wait_root
}

main "$@"
