"""The GitOps app-of-apps as data, and the rules it must keep.

Owns: rendering the platform chart deploy/argocd/platform with the Helm SDK
into the Applications of each variant (development: values.yaml;
production: values-prod.yaml on top; any other settings, such as a fork's
repository), what they point at (charts, values files, Kustomize directories
and components), and one check function per rule. Each check takes the parsed Applications (or values) and
returns its findings as sentences naming the Application and field; an empty
list means the rule holds, so a test can feed it a mutated copy and expect a
finding.

Must not: contact a cluster or the network. Upstream charts are not
downloaded: their pods are judged from the values we pass, through the table
of node-selector paths below (taken from each chart's own values.yaml).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import helm_python as helm
import yaml

REPO = Path(__file__).resolve().parents[2]
ARGOCD_DIR = REPO / "deploy" / "argocd"
PLATFORM_CHART = ARGOCD_DIR / "platform"
TEMPLATES_DIR = PLATFORM_CHART / "templates"
PROD_VALUES = PLATFORM_CHART / "values-prod.yaml"
SCRATCH = REPO / ".tmp" / "argocd"

# What Argo CD reads this repository as, the revision it follows and the
# service's image: the platform chart's defaults, which bootstrap.sh
# replaces with a fork's.
PLATFORM_DEFAULTS = yaml.safe_load((PLATFORM_CHART / "values.yaml").read_text(encoding="utf-8"))
GIT_REPO = PLATFORM_DEFAULTS["repo"]["url"]
GIT_REVISION = PLATFORM_DEFAULTS["repo"]["revision"]
IMAGE_REPOSITORY = PLATFORM_DEFAULTS["image"]["repository"]
# The root Application: the release name of the chart's render, and the
# namespace Argo CD reads Applications from.
ROOT = "root"
ARGOCD_NAMESPACE = "argocd"
IN_CLUSTER = "https://kubernetes.default.svc"
WAVE_ANNOTATION = "argocd.argoproj.io/sync-wave"
RESOURCES_FINALIZER = "resources-finalizer.argocd.argoproj.io"
NODE_ROLE_LABEL = "type"
PLATFORM_ROLE = "dependent_services"
# The taint of the control-plane node(s); a node agent that must run on every
# node tolerates it.
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}

# A chart version Argo CD resolves to exactly one release: MAJOR.MINOR.PATCH,
# no "v", no range, no wildcard, no pre-release.
EXACT_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")

# Charts whose upstream versions carry a prefix (cert-manager publishes
# chart version v1.21.2, never 1.21.2): the prefix, then an exact version.
CHART_VERSION_PREFIX = {"cert-manager": "v"}

# The official Helm repository of each upstream chart; a chart taken from
# anywhere else is a finding.
CHART_REPOS = {
    "argo-cd": "https://argoproj.github.io/argo-helm",
    "openbao": "https://openbao.github.io/openbao-helm",
    "external-secrets": "https://charts.external-secrets.io",
    "cloudnative-pg": "https://cloudnative-pg.github.io/charts",
    "plugin-barman-cloud": "https://cloudnative-pg.github.io/charts",
    "cert-manager": "https://charts.jetstack.io",
    "prometheus-operator-crds": "https://prometheus-community.github.io/helm-charts",
    "kube-prometheus-stack": "https://prometheus-community.github.io/helm-charts",
    "prometheus-postgres-exporter": "https://prometheus-community.github.io/helm-charts",
    "prometheus-blackbox-exporter": "https://prometheus-community.github.io/helm-charts",
    # The open-source Loki chart moved to grafana-community on 2026-03-16.
    "loki": "https://grafana-community.github.io/helm-charts",
    "alloy": "https://grafana.github.io/helm-charts",
    # The single-binary Tempo chart, moved to grafana-community in 2026.
    "tempo": "https://grafana-community.github.io/helm-charts",
    "traefik": "https://traefik.github.io/charts",
}

# Upstream Git repositories an Application may read, each at a release tag
# (vMAJOR.MINOR.PATCH) and only at the path given: the Gateway API's
# standard-channel CRDs, never its experimental ones.
UPSTREAM_GIT_SOURCES = {
    "https://github.com/kubernetes-sigs/gateway-api.git": "config/crd/standard",
}
RELEASE_TAG = re.compile(r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")

# The Applications each variant must hold (the root aside).
DEV_APPS = frozenset(
    {
        "argo-cd",
        "openbao",
        "external-secrets",
        "prometheus-operator-crds",
        "gateway-api-crds",
        "traefik",
        "platform-secrets",
        "gateway",
        "postgres",
        "kube-prometheus-stack",
        "observability-manifests",
        "loki",
        "tempo",
        "alloy",
        "prometheus-postgres-exporter",
        "prometheus-blackbox-exporter",
        "student-api",
    }
)
PROD_APPS = DEV_APPS | {"cert-manager", "cloudnative-pg", "plugin-barman-cloud"}

# Our own charts: the node roles their pods must land on are
# tests/charts/hardening.py's NODE_ROLES; every other Application is a
# platform component on dependent_services nodes.
OWN_CHARTS = frozenset({"postgres", "student-api"})

# Helm release names other manifests depend on: the Job openbao-config and
# the stores reach http://openbao.openbao.svc, the OpenBao role binds the
# service account student-api, the bootstrap script installed `argocd`, the
# service's NetworkPolicy selects Traefik's pods by the instance label
# <release>-<namespace> (GATEWAY_POD_LABELS).
RELEASE_NAMES = {
    "argo-cd": "argocd",
    "openbao": "openbao",
    "external-secrets": "external-secrets",
    "postgres": "postgres",
    "student-api": "student-api",
    "traefik": "traefik",
}

# Where each Application deploys.
NAMESPACES = {
    "argo-cd": "argocd",
    "openbao": "openbao",
    "external-secrets": "external-secrets",
    "cloudnative-pg": "cnpg-system",
    # The plugin must share the operator's namespace.
    "plugin-barman-cloud": "cnpg-system",
    "cert-manager": "cert-manager",
    "postgres": "database",
    "student-api": "student-api",
    "platform-secrets": "observability",
    "prometheus-operator-crds": "observability",
    "kube-prometheus-stack": "observability",
    "observability-manifests": "observability",
    "loki": "observability",
    "tempo": "observability",
    "alloy": "observability",
    "prometheus-postgres-exporter": "observability",
    "prometheus-blackbox-exporter": "observability",
    "gateway-api-crds": "traefik",
    "traefik": "traefik",
    "gateway": "traefik",
}

# The controller name Traefik's Gateway API provider claims GatewayClasses by.
GATEWAY_CONTROLLER = "traefik.io/gateway-controller"

# The labels the traefik chart gives its pods (traefik.labelselector in its
# templates/_helpers.tpl at the pinned version): what the service's
# NetworkPolicy must select the Gateway's data plane by.
GATEWAY_POD_LABELS = {
    "app.kubernetes.io/name": "traefik",
    "app.kubernetes.io/instance": f"{RELEASE_NAMES['traefik']}-{NAMESPACES['traefik']}",
}

# Applications whose CRDs exceed client-side apply's annotation limit.
SERVER_SIDE_APPLY = frozenset(
    {
        "argo-cd",
        "external-secrets",
        "prometheus-operator-crds",
        "kube-prometheus-stack",
        "cloudnative-pg",
        "gateway-api-crds",
    }
)


@dataclass(frozen=True)
class Before:
    """Application `first` must sync in an earlier wave than `then`."""

    first: str
    then: str
    why: str


# The ordering the platform needs. A pair whose two ends are not both in a
# variant (cert-manager, cloudnative-pg and plugin-barman-cloud are
# production only) is not checked there.
WAVE_ORDER = (
    # Argo CD before everything it reconciles.
    *(Before("argo-cd", app, "Argo CD reconciles every other Application") for app in sorted(PROD_APPS - {"argo-cd"})),
    # CRD providers before their users.
    Before("external-secrets", "platform-secrets", "ClusterSecretStore and ExternalSecret CRDs"),
    Before("external-secrets", "postgres", "the chart's ExternalSecrets"),
    Before("external-secrets", "student-api", "the chart's ExternalSecret"),
    Before("external-secrets", "observability-manifests", "the Alertmanager receiver's ExternalSecret"),
    Before("prometheus-operator-crds", "kube-prometheus-stack", "ServiceMonitor and PrometheusRule CRDs"),
    Before("prometheus-operator-crds", "external-secrets", "ServiceMonitor CRD (the chart always renders it)"),
    Before("prometheus-operator-crds", "observability-manifests", "PrometheusRule CRD"),
    Before("prometheus-operator-crds", "loki", "ServiceMonitor CRD"),
    Before("prometheus-operator-crds", "alloy", "ServiceMonitor CRD"),
    Before("prometheus-operator-crds", "tempo", "ServiceMonitor CRD"),
    Before("prometheus-operator-crds", "prometheus-postgres-exporter", "ServiceMonitor CRD"),
    Before("prometheus-operator-crds", "prometheus-blackbox-exporter", "ServiceMonitor CRD"),
    Before("prometheus-operator-crds", "postgres", "PodMonitor CRD (production)"),
    Before("prometheus-operator-crds", "student-api", "ServiceMonitor CRD (production)"),
    Before("cloudnative-pg", "postgres", "Cluster CRD (production)"),
    Before("cert-manager", "plugin-barman-cloud", "the plugin's Issuer and Certificates (production)"),
    Before("cert-manager", "cloudnative-pg", "the operator comes up with its plugin, after cert-manager (production)"),
    Before("plugin-barman-cloud", "postgres", "ObjectStore CRD and the WAL archiver the Cluster names (production)"),
    Before("gateway-api-crds", "traefik", "its Gateway API provider watches the Gateway API kinds from the start"),
    Before("gateway-api-crds", "gateway", "GatewayClass and Gateway CRDs"),
    Before("gateway-api-crds", "student-api", "HTTPRoute CRD"),
    # The controller before what it programs, the Gateway before its routes.
    Before("traefik", "gateway", "a Gateway counts as healthy once its controller has programmed it"),
    Before("gateway", "student-api", "the service's HTTPRoute attaches to the Gateway's listener"),
    # Stores before their users.
    Before("openbao", "platform-secrets", "the store logs in with the role OpenBao's self-initialisation creates"),
    Before("platform-secrets", "postgres", "the database's credentials come through the store"),
    Before("platform-secrets", "student-api", "the service's credentials come through the store"),
    Before("platform-secrets", "kube-prometheus-stack", "Grafana mounts the admin Secret synced by platform-secrets"),
    Before("platform-secrets", "observability-manifests", "the Alertmanager receiver's ExternalSecret"),
    Before("platform-secrets", "prometheus-postgres-exporter", "the exporter's login Secret"),
    # Nothing on the service's path waits for the alerting stack: Alertmanager
    # mounts a Secret whose Slack URL an operator writes into OpenBao.
    *(
        Before(app, alerting, "the service's path must not wait for the alerting stack")
        for app in ("postgres", "student-api")
        for alerting in ("kube-prometheus-stack", "observability-manifests")
    ),
    # The database before its clients, the log store before its shipper.
    Before("postgres", "student-api", "the service migrates and serves the database"),
    Before("postgres", "prometheus-postgres-exporter", "the exporter logs in to the database"),
    Before("loki", "alloy", "Alloy ships logs to Loki"),
    Before("tempo", "alloy", "Alloy exports the service's spans to Tempo"),
)


# Applications that must share a wave: a later wave for one would wait for
# the other forever, an earlier one would sync before what it needs.
SAME_WAVE = (("kube-prometheus-stack", "observability-manifests", "Alertmanager mounts the Secret the manifests sync"),)


# ------------------------------------------------------------------ loading
class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe YAML with dates kept as strings, as Kubernetes reads them."""


_Loader.add_constructor(
    "tag:yaml.org,2002:timestamp",
    lambda loader, node: str(loader.construct_scalar(node)),  # type: ignore[arg-type]
)


def load_documents(text: str) -> list[Any]:
    return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]


def load_file(path: Path) -> list[Any]:
    return load_documents(path.read_text(encoding="utf-8"))


def kubectl() -> str:
    """The kubectl of tests/manifests/requirements.txt, else one on PATH."""
    venv = Path(os.environ.get("VENV_DIR") or REPO / ".venv") / "bin" / "kubectl"
    if venv.is_file():
        return str(venv)
    found = shutil.which("kubectl")
    if not found:
        raise RuntimeError("kubectl not found: run tests/argocd/run.sh, which installs it into .venv")
    return found


def kustomize(directory: Path, components: list[str] | None = None) -> str:
    """`kubectl kustomize` of a directory, with Kustomize components added the
    way Argo CD adds an Application's kustomize.components (paths relative to
    the directory)."""
    if not components:
        return _run([kubectl(), "kustomize", str(directory)])
    SCRATCH.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        # Kustomize takes only relative paths from a kustomization.
        rel = os.path.relpath(directory, tmp)
        (Path(tmp) / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": [rel],
                    "components": [f"{rel}/{c}" for c in components],
                }
            ),
            encoding="utf-8",
        )
        return _run([kubectl(), "kustomize", tmp])


def _run(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:])} failed: {result.stderr.strip()}")
    return result.stdout


@dataclass
class Variant:
    """One way of deploying the platform: the platform chart rendered with
    its values, split into the root, the Applications it creates, the
    AppProjects and anything else (the repository ExternalSecret)."""

    name: str
    root: dict
    apps: dict[str, dict]  # name -> Application
    sources: dict[str, str]  # name -> the template it was rendered from
    projects: dict[str, dict]
    others: list[dict]
    rendered: dict[str, list[Any]]  # template -> its documents


def variant_values(name: str) -> list[Path]:
    """The platform chart's values files of a variant, besides values.yaml."""
    return [PROD_VALUES] if name == "prod" else []


def render_platform(value_files: list[Path] | tuple[Path, ...] = (), overrides: dict | None = None) -> dict[str, list[Any]]:
    """The platform chart rendered by the real Helm SDK as Argo CD renders the
    root (release root, namespace argocd): `value_files` then `overrides` on
    top of values.yaml, checked against values.schema.json. Keys are the
    templates' paths in this repository."""
    values: dict = {}
    for path in value_files:
        values = merge_values(values, helm.values_from_yaml(path.read_text(encoding="utf-8")) or {})
    values = merge_values(values, overrides or {})
    try:
        with helm.Chart.load(PLATFORM_CHART) as chart:
            chart.validate_schema(values)
            manifests = chart.render(values, name=ROOT, namespace=ARGOCD_NAMESPACE, is_install=True)
    except helm.HelmError as error:
        raise RuntimeError(f"{PLATFORM_CHART.relative_to(REPO)}: helm render failed: {error}") from None
    prefix = f"{PLATFORM_CHART.name}/"
    return {
        str((PLATFORM_CHART / template.removeprefix(prefix)).relative_to(REPO)): load_documents(text)
        for template, text in sorted(manifests.items())
    }


def platform_variant(name: str, overrides: dict | None = None) -> Variant:
    """A variant (dev, prod) of the platform chart, with `overrides` (e.g. a
    fork's repo and image) on top of its values files."""
    rendered = render_platform(variant_values(name), overrides)
    root, apps, sources, projects, others = None, {}, {}, {}, []
    for template, docs in rendered.items():
        for doc in docs:
            kind, doc_name = doc.get("kind"), (doc.get("metadata") or {}).get("name")
            if kind == "Application" and doc_name == ROOT:
                root = doc
            elif kind == "Application":
                apps[doc_name] = doc
                sources[doc_name] = template
            elif kind == "AppProject":
                projects[doc_name] = doc
            else:
                others.append(doc)
    if root is None:
        raise RuntimeError(f"{PLATFORM_CHART.relative_to(REPO)} renders no Application {ROOT}")
    return Variant(name, root, apps, sources, projects, others, rendered)


def dev_variant() -> Variant:
    return platform_variant("dev")


def prod_variant() -> Variant:
    return platform_variant("prod")


def root_values(root: dict) -> tuple[list[Path], dict]:
    """What the root passes to the platform chart: its values files (paths
    in this repository) and its valuesObject."""
    source = app_sources(root)[0]
    helm_spec = source.get("helm") or {}
    files = [REPO / source["path"] / f for f in helm_spec.get("valueFiles") or []]
    return files, helm_spec.get("valuesObject") or {}


# ------------------------------------------------------------- app helpers
def app_sources(app: dict) -> list[dict]:
    spec = app.get("spec") or {}
    if spec.get("sources"):
        return list(spec["sources"])
    return [spec["source"]] if spec.get("source") else []


def wave(app: dict) -> int | None:
    value = ((app.get("metadata") or {}).get("annotations") or {}).get(WAVE_ANNOTATION)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def value_refs(app: dict) -> dict[str, dict]:
    """ref name -> the source that defines it (multi-source `ref:` entries)."""
    return {s["ref"]: s for s in app_sources(app) if s.get("ref")}


@dataclass(frozen=True)
class ValuesFile:
    """One entry of an Application's helm.valueFiles, resolved in this repository."""

    app: str
    entry: str  # as written, e.g. $values/deploy/... or values-dev.yaml
    path: Path | None  # the file in this repository; None if not resolvable here
    problem: str = ""


def values_files(app: dict) -> list[ValuesFile]:
    name = app["metadata"]["name"]
    refs = value_refs(app)
    files = []
    for source in app_sources(app):
        for entry in ((source.get("helm") or {}).get("valueFiles")) or []:
            if entry.startswith("$"):
                ref, _, rest = entry[1:].partition("/")
                target = refs.get(ref)
                if target is None:
                    files.append(ValuesFile(name, entry, None, f"no source with ref: {ref}"))
                elif target.get("repoURL") != GIT_REPO:
                    files.append(ValuesFile(name, entry, None, f"ref {ref} is not this repository"))
                else:
                    files.append(ValuesFile(name, entry, REPO / (target.get("path") or "") / rest))
            elif source.get("path") and source.get("repoURL") == GIT_REPO:
                files.append(ValuesFile(name, entry, REPO / source["path"] / entry))
            else:
                files.append(ValuesFile(name, entry, None, "relative to a chart outside this repository"))
    return files


def merge_values(base: dict, overlay: dict) -> dict:
    """Helm's merge of two values files (`-f a -f b`): maps merge key by key,
    anything else in the later file replaces the earlier value."""
    out = copy.deepcopy(base)
    for key, value in (overlay or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_values(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def passed_values(app: dict) -> dict:
    """The values an Application passes: its values files merged in order,
    then its valuesObject, which Argo CD gives precedence."""
    merged: dict = {}
    for vf in values_files(app):
        if vf.path is None or not vf.path.is_file():
            continue
        merged = merge_values(merged, yaml.safe_load(vf.path.read_text(encoding="utf-8")) or {})
    for source in app_sources(app):
        merged = merge_values(merged, (source.get("helm") or {}).get("valuesObject") or {})
    return merged


def get_path(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


# ------------------------------------------------------------------- rules
def check_schema_shape(app: dict) -> list[str]:
    """What the JSON schema cannot say: one way of giving sources, a name, a namespace."""
    name = (app.get("metadata") or {}).get("name", "?")
    spec = app.get("spec") or {}
    findings = []
    if bool(spec.get("source")) == bool(spec.get("sources")):
        findings.append(f"{name}: set exactly one of spec.source and spec.sources")
    if (app.get("metadata") or {}).get("namespace") != "argocd":
        findings.append(f"{name}: metadata.namespace must be argocd, where Argo CD looks for Applications")
    return findings


def check_versions(app: dict) -> list[str]:
    """Every upstream chart at an exact version from its official repository;
    every Git source on this repository's main branch, or an allowed upstream
    repository at a release tag and its one allowed path."""
    name = app["metadata"]["name"]
    findings = []
    for i, source in enumerate(app_sources(app)):
        where = f"{name}: sources[{i}]"
        revision = source.get("targetRevision")
        if source.get("chart"):
            chart = source["chart"]
            prefix = CHART_VERSION_PREFIX.get(chart, "")
            exact = isinstance(revision, str) and revision.startswith(prefix)
            if not exact or not EXACT_SEMVER.match(revision[len(prefix) :]):
                findings.append(
                    f"{where}: chart {chart} targetRevision {revision!r} is not an exact version (MAJOR.MINOR.PATCH)"
                )
            official = CHART_REPOS.get(chart)
            if official is None:
                findings.append(f"{where}: chart {chart} is not in CHART_REPOS (tests/argocd/gitops.py)")
            elif source.get("repoURL") != official:
                findings.append(f"{where}: chart {chart} from {source.get('repoURL')}, expected {official}")
        elif source.get("repoURL") == GIT_REPO:
            if revision != GIT_REVISION:
                findings.append(f"{where}: this repository at {revision!r}, expected {GIT_REVISION!r}")
        elif source.get("repoURL") in UPSTREAM_GIT_SOURCES:
            repo = source["repoURL"]
            if not isinstance(revision, str) or not RELEASE_TAG.match(revision):
                findings.append(f"{where}: {repo} at {revision!r}, not a release tag (vMAJOR.MINOR.PATCH)")
            if source.get("path") != UPSTREAM_GIT_SOURCES[repo]:
                findings.append(
                    f"{where}: {repo} path {source.get('path')!r}, expected {UPSTREAM_GIT_SOURCES[repo]!r}"
                )
        else:
            findings.append(f"{where}: {source.get('repoURL')} is neither a pinned chart nor this repository")
    return findings


def check_sync_policy(app: dict, child: bool = True) -> list[str]:
    """Automated sync with prune and selfHeal, retries with backoff, a wave,
    CreateNamespace for children, server-side apply where CRDs are large."""
    name = app["metadata"]["name"]
    policy = (app.get("spec") or {}).get("syncPolicy") or {}
    automated = policy.get("automated") or {}
    findings = []
    if automated.get("enabled") is False:
        findings.append(f"{name}: syncPolicy.automated.enabled is false")
    for key in ("prune", "selfHeal"):
        if automated.get(key) is not True:
            findings.append(f"{name}: syncPolicy.automated.{key} must be true")
    retry = policy.get("retry") or {}
    if not retry.get("limit") or not (retry.get("backoff") or {}).get("duration"):
        findings.append(f"{name}: syncPolicy.retry needs a limit and a backoff")
    if wave(app) is None:
        findings.append(f"{name}: no integer {WAVE_ANNOTATION} annotation")
    options = policy.get("syncOptions") or []
    if child and "CreateNamespace=true" not in options:
        findings.append(f"{name}: syncOptions lacks CreateNamespace=true")
    if name in SERVER_SIDE_APPLY and "ServerSideApply=true" not in options:
        findings.append(
            f"{name}: syncOptions lacks ServerSideApply=true (its CRDs are too large for client-side apply)"
        )
    return findings


def check_destination(app: dict) -> list[str]:
    name = app["metadata"]["name"]
    dest = (app.get("spec") or {}).get("destination") or {}
    findings = []
    if dest.get("server") != IN_CLUSTER:
        findings.append(f"{name}: destination.server {dest.get('server')!r}, expected {IN_CLUSTER}")
    want = NAMESPACES.get(name)
    if want and dest.get("namespace") != want:
        findings.append(f"{name}: destination.namespace {dest.get('namespace')!r}, expected {want}")
    release = RELEASE_NAMES.get(name)
    if release:
        helm_sources = [s for s in app_sources(app) if s.get("helm") is not None]
        got = {(s.get("helm") or {}).get("releaseName") or name for s in helm_sources}
        if got != {release}:
            findings.append(f"{name}: Helm release name {sorted(got)}, expected {release}")
    return findings


def check_waves(apps: dict[str, dict], order: tuple[Before, ...] = WAVE_ORDER) -> list[str]:
    findings = []
    for first, second, why in SAME_WAVE:
        if first in apps and second in apps and wave(apps[first]) != wave(apps[second]):
            findings.append(
                f"{first} ({wave(apps[first])}) and {second} ({wave(apps[second])}) must share a wave: {why}"
            )
    for rule in order:
        if rule.first not in apps or rule.then not in apps:
            continue
        a, b = wave(apps[rule.first]), wave(apps[rule.then])
        if a is None or b is None:
            continue  # reported by check_sync_policy
        if not a < b:
            findings.append(f"wave of {rule.first} ({a}) must be lower than that of {rule.then} ({b}): {rule.why}")
    return findings


def check_values_files_exist(app: dict) -> list[str]:
    findings = []
    for vf in values_files(app):
        if vf.path is None:
            findings.append(f"{vf.app}: valueFiles {vf.entry}: {vf.problem}")
        elif not vf.path.is_file():
            findings.append(f"{vf.app}: valueFiles {vf.entry}: {vf.path.relative_to(REPO)} does not exist")
    return findings


def check_paths_exist(app: dict) -> list[str]:
    """Git sources point at existing directories, Kustomize components too."""
    name = app["metadata"]["name"]
    findings = []
    for source in app_sources(app):
        if source.get("repoURL") != GIT_REPO or source.get("ref"):
            continue
        path = source.get("path")
        if not path or not (REPO / path).is_dir():
            findings.append(f"{name}: source path {path!r} is not a directory of this repository")
            continue
        for component in ((source.get("kustomize") or {}).get("components")) or []:
            if not (REPO / path / component / "kustomization.yaml").is_file():
                findings.append(f"{name}: Kustomize component {path}/{component} does not exist")
    return findings


def check_project(app: dict, projects: dict[str, dict]) -> list[str]:
    """The Application's project allows its sources and its destination."""
    name = app["metadata"]["name"]
    project_name = (app.get("spec") or {}).get("project")
    if project_name == "default":
        return []
    project = projects.get(project_name)
    if project is None:
        return [f"{name}: project {project_name!r} is not rendered by {PLATFORM_CHART.relative_to(REPO)}"]
    spec = project.get("spec") or {}
    findings = []
    repos = set(spec.get("sourceRepos") or [])
    for source in app_sources(app):
        if source.get("repoURL") not in repos:
            findings.append(f"{name}: project {project_name} does not allow source {source.get('repoURL')}")
    dest = (app.get("spec") or {}).get("destination") or {}
    allowed = {(d.get("server"), d.get("namespace")) for d in spec.get("destinations") or []}
    if (dest.get("server"), dest.get("namespace")) not in allowed:
        findings.append(f"{name}: project {project_name} does not allow destination namespace {dest.get('namespace')}")
    return findings


# -------------------------------------------------- node selectors by chart
@dataclass(frozen=True)
class Pods:
    """Pods a chart runs while `enabled` holds, their node selector at `selector`.
    They must land on dependent_services nodes."""

    what: str
    selector: tuple[str, ...]
    enabled: Callable[[dict], bool] = lambda values: True


@dataclass(frozen=True)
class NodeAgent:
    """A DaemonSet that collects from the node it runs on. With `must_reach`
    None it collects from every node, so its node selector must not narrow
    it to one node role; otherwise it may be narrowed, but only to the one
    role in `must_reach` (where what it collects runs)."""

    what: str
    selector: tuple[str, ...]
    enabled: Callable[[dict], bool] = lambda values: True
    must_reach: frozenset[str] | None = None
    # Where its tolerations are, and the chart's default there: when given,
    # an agent that must reach every node must tolerate CONTROL_PLANE_TAINT.
    tolerations: tuple[str, ...] | None = None
    default_tolerations: tuple[dict, ...] = ()


@dataclass(frozen=True)
class StaysOff:
    """Pods the chart can run that must stay disabled here (no node selector
    of their own, or a per-node DaemonSet nothing needs)."""

    what: str
    enabled: Callable[[dict], bool]


def switch(path: str, default: bool) -> Callable[[dict], bool]:
    """Whether a chart's boolean switch at `path` is on; `default` when unset.
    OpenBao's "-" means "follow global.enabled", which is on."""
    keys = tuple(path.split("."))

    def on(values: dict) -> bool:
        value = get_path(values, keys)
        if value is None or value == "-":
            return default
        return bool(value)

    return on


def both(*checks: Callable[[dict], bool]) -> Callable[[dict], bool]:
    return lambda values: all(c(values) for c in checks)


def _p(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


# kube-prometheus-stack's admission webhook: the Jobs that make and patch
# its certificate (on by default), or a Deployment (off by default).
_ADMISSION_PATCH_JOBS = both(
    switch("prometheusOperator.enabled", True),
    switch("prometheusOperator.admissionWebhooks.enabled", True),
    switch("prometheusOperator.admissionWebhooks.patch.enabled", True),
)
_ADMISSION_DEPLOYMENT = both(
    switch("prometheusOperator.enabled", True),
    switch("prometheusOperator.admissionWebhooks.deployment.enabled", False),
)


# Where each chart keeps the node selector of each kind of pod, read from the
# chart's values.yaml at the pinned version; `enabled` mirrors the chart's
# default for components that are optional.
NODE_SELECTORS: dict[str, tuple[Pods | NodeAgent | StaysOff, ...]] = {
    # argo-helm charts/argo-cd: each component's nodeSelector, defaulting to
    # global.nodeSelector.
    "argo-cd": (
        Pods("fallback of every component", _p("global.nodeSelector")),
        Pods("application controller", _p("controller.nodeSelector")),
        Pods("API server and UI", _p("server.nodeSelector")),
        Pods("repo server", _p("repoServer.nodeSelector")),
        Pods("Redis", _p("redis.nodeSelector"), switch("redis.enabled", True)),
        Pods("Redis secret-init Job", _p("redisSecretInit.nodeSelector"), switch("redisSecretInit.enabled", True)),
        Pods("ApplicationSet controller", _p("applicationSet.nodeSelector")),
        Pods("notifications controller", _p("notifications.nodeSelector"), switch("notifications.enabled", True)),
        Pods("Dex", _p("dex.nodeSelector"), switch("dex.enabled", True)),
        Pods("commit server", _p("commitServer.nodeSelector"), switch("commitServer.enabled", False)),
        StaysOff("Redis HA subchart", switch("redis-ha.enabled", False)),
    ),
    # openbao-helm charts/openbao.
    "openbao": (
        Pods("server StatefulSet", _p("server.nodeSelector"), switch("server.enabled", True)),
        Pods("agent injector", _p("injector.nodeSelector"), switch("injector.enabled", True)),
        StaysOff("CSI provider DaemonSet", switch("csi.enabled", False)),
        StaysOff("snapshot agent CronJob (no node selector value)", switch("snapshotAgent.enabled", False)),
    ),
    # external-secrets deploy/charts/external-secrets.
    "external-secrets": (
        Pods("fallback of every component", _p("global.nodeSelector")),
        Pods("operator", _p("nodeSelector"), switch("createOperator", True)),
        Pods("webhook", _p("webhook.nodeSelector"), switch("webhook.create", True)),
        Pods("cert controller", _p("certController.nodeSelector"), switch("certController.create", True)),
        StaysOff("Bitwarden SDK server subchart", switch("bitwarden-sdk-server.enabled", False)),
    ),
    # cloudnative-pg charts/cloudnative-pg.
    "cloudnative-pg": (Pods("operator", _p("nodeSelector")),),
    # cloudnative-pg charts/plugin-barman-cloud: one Deployment. The sidecar
    # it injects runs in the database pods (the postgres chart's placement).
    "plugin-barman-cloud": (Pods("plugin", _p("nodeSelector")),),
    # cert-manager deploy/charts/cert-manager: each component's nodeSelector,
    # merged over global.nodeSelector. ACME solver pods would be made at run
    # time, for ACME issuers, which the platform has none of.
    "cert-manager": (
        Pods("fallback of every component", _p("global.nodeSelector")),
        Pods("controller", _p("nodeSelector")),
        Pods("webhook", _p("webhook.nodeSelector")),
        Pods("CA injector", _p("cainjector.nodeSelector"), switch("cainjector.enabled", True)),
        Pods("startup API check Job", _p("startupapicheck.nodeSelector"), switch("startupapicheck.enabled", True)),
    ),
    # A chart of CRDs only.
    "prometheus-operator-crds": (),
    # prometheus-community charts/kube-prometheus-stack and its subcharts.
    "kube-prometheus-stack": (
        Pods("Prometheus Operator", _p("prometheusOperator.nodeSelector"), switch("prometheusOperator.enabled", True)),
        Pods(
            "admission webhook patch Jobs",
            _p("prometheusOperator.admissionWebhooks.patch.nodeSelector"),
            _ADMISSION_PATCH_JOBS,
        ),
        Pods(
            "admission webhook Deployment",
            _p("prometheusOperator.admissionWebhooks.deployment.nodeSelector"),
            _ADMISSION_DEPLOYMENT,
        ),
        Pods("Prometheus", _p("prometheus.prometheusSpec.nodeSelector"), switch("prometheus.enabled", True)),
        Pods("Alertmanager", _p("alertmanager.alertmanagerSpec.nodeSelector"), switch("alertmanager.enabled", True)),
        Pods("Grafana", _p("grafana.nodeSelector"), switch("grafana.enabled", True)),
        Pods("kube-state-metrics", _p("kube-state-metrics.nodeSelector"), switch("kubeStateMetrics.enabled", True)),
        Pods("Thanos Ruler", _p("thanosRuler.thanosRulerSpec.nodeSelector"), switch("thanosRuler.enabled", False)),
        Pods("CRD upgrade Job", _p("crds.upgradeJob.nodeSelector"), switch("crds.upgradeJob.enabled", False)),
        NodeAgent(
            "node-exporter DaemonSet",
            _p("prometheus-node-exporter.nodeSelector"),
            switch("nodeExporter.enabled", True),
        ),
    ),
    # grafana/loki production/helm/loki (single binary; the scalable targets
    # are checked whenever they are given replicas).
    "loki": (),  # filled in below
    # grafana/alloy operations/helm/charts/alloy (controller.*, default
    # type daemonset, no tolerations): each pod ships the logs of its own
    # node's pods, so as a DaemonSet it runs on every node, the control plane
    # included; as a Deployment or StatefulSet it is a platform pod.
    "alloy": (
        NodeAgent(
            "Alloy DaemonSet",
            _p("controller.nodeSelector"),
            lambda values: (get_path(values, _p("controller.type")) or "daemonset") == "daemonset",
            tolerations=_p("controller.tolerations"),
        ),
        Pods(
            "Alloy Deployment or StatefulSet",
            _p("controller.nodeSelector"),
            lambda values: (get_path(values, _p("controller.type")) or "daemonset") != "daemonset",
        ),
    ),
    "prometheus-postgres-exporter": (Pods("exporter", _p("nodeSelector")),),
    "prometheus-blackbox-exporter": (Pods("exporter", _p("nodeSelector")),),
    # grafana-community/helm-charts charts/tempo (2.x): one StatefulSet, the
    # single binary (and tempo-query beside it when enabled), at nodeSelector.
    "tempo": (Pods("single binary StatefulSet", _p("nodeSelector")),),
    # traefik/traefik-helm-chart traefik/: one Deployment, the Gateway API
    # controller and data plane in one, its pods at nodeSelector. As a
    # DaemonSet it would run a proxy on every node, the application and
    # database nodes included.
    "traefik": (
        Pods("proxy and Gateway API controller", _p("nodeSelector"), switch("deployment.enabled", True)),
        StaysOff(
            "DaemonSet mode (deployment.kind)",
            lambda values: get_path(values, ("deployment", "kind")) == "DaemonSet",
        ),
    ),
}


def _replicas(path: str, default: int) -> Callable[[dict], bool]:
    keys = _p(path)

    def on(values: dict) -> bool:
        value = get_path(values, keys)
        return (default if value is None else int(value)) > 0

    return on


def _loki_mode(*modes: str) -> Callable[[dict], bool]:
    # The chart's default mode since chart 12 is Monolithic (formerly SingleBinary).
    return lambda values: (get_path(values, ("deploymentMode",)) or "Monolithic") in modes


_MONOLITHIC = ("Monolithic", "SingleBinary", "Monolithic<->SimpleScalable", "SingleBinary<->SimpleScalable")
_SCALABLE = ("SimpleScalable", "Monolithic<->SimpleScalable", "SingleBinary<->SimpleScalable", "SimpleScalable<->Distributed")
_DISTRIBUTED = ("Distributed", "SimpleScalable<->Distributed")

# grafana-community/helm-charts charts/loki (18.x): a component's
# nodeSelector, else defaults.nodeSelector (gateway included). The scalable
# and distributed targets render only in their modes (and with object
# storage); they are checked whenever their mode and switch say they exist.
NODE_SELECTORS["loki"] = (
    Pods("fallback of every Loki component and the gateway", _p("defaults.nodeSelector")),
    Pods(
        "single binary",
        _p("singleBinary.nodeSelector"),
        both(_loki_mode(*_MONOLITHIC), switch("singleBinary.enabled", True)),
    ),
    *(
        Pods(
            f"{target} target",
            _p(f"{target}.nodeSelector"),
            both(_loki_mode(*_SCALABLE), _replicas(f"{target}.replicas", 3)),
        )
        for target in ("write", "read", "backend")
    ),
    *(
        Pods(f"{target} (distributed)", _p(f"{target}.nodeSelector"), both(_loki_mode(*_DISTRIBUTED), switch(f"{target}.enabled", on)))
        for target, on in (
            ("ingester", True),
            ("distributor", True),
            ("querier", True),
            ("queryFrontend", True),
            ("queryScheduler", True),
            ("indexGateway", True),
            ("compactor", True),
            ("ruler", True),
            ("bloomGateway", False),
            ("bloomPlanner", False),
            ("bloomBuilder", False),
            ("patternIngester", False),
            ("overridesExporter", False),
        )
    ),
    Pods("gateway", _p("gateway.nodeSelector"), switch("gateway.enabled", True)),
    Pods("chunks cache", _p("chunksCache.nodeSelector"), switch("chunksCache.enabled", True)),
    Pods(
        "second-level chunks cache",
        _p("chunksCache.l2.nodeSelector"),
        both(switch("chunksCache.enabled", True), switch("chunksCache.l2.enabled", False)),
    ),
    Pods("results cache", _p("resultsCache.nodeSelector"), switch("resultsCache.enabled", True)),
    Pods("table manager", _p("tableManager.nodeSelector"), switch("tableManager.enabled", False)),
    StaysOff("MinIO subchart (deprecated, fails to render)", switch("minio.enabled", False)),
    StaysOff("rollout-operator subchart", switch("rollout_operator.enabled", False)),
    StaysOff("helm test Pod (no node selector value)", switch("test.enabled", True)),
    NodeAgent("Loki canary DaemonSet", _p("lokiCanary.nodeSelector"), switch("lokiCanary.enabled", True)),
)


# ------------------------------------------------ resource requests by chart
@dataclass(frozen=True)
class Requests:
    """Containers a chart runs while `enabled` holds, sized by the resources
    block at `resources`. The values we pass must request CPU and memory
    there: without requests the scheduler places a pod blind and the kubelet
    evicts it first when the node runs short."""

    what: str
    resources: tuple[str, ...]
    enabled: Callable[[dict], bool] = lambda values: True


def _grafana_sidecar(values: dict) -> bool:
    return switch("grafana.enabled", True)(values) and (
        switch("grafana.sidecar.dashboards.enabled", False)(values)
        or switch("grafana.sidecar.datasources.enabled", True)(values)
    )


# Where each chart takes the resources of each container, read from the
# chart's values.yaml at the pinned version (and checked against a render of
# the chart with our values: no container left without requests). Switches
# mirror the chart's defaults, as in NODE_SELECTORS.
RESOURCE_REQUESTS: dict[str, tuple[Requests, ...]] = {
    "argo-cd": (
        Requests("application controller", _p("controller.resources")),
        Requests("API server and UI", _p("server.resources")),
        # Its copyutil init container takes the same block.
        Requests("repo server", _p("repoServer.resources")),
        Requests("Redis", _p("redis.resources"), switch("redis.enabled", True)),
        Requests("Redis secret-init Job", _p("redisSecretInit.resources"), switch("redisSecretInit.enabled", True)),
        Requests("ApplicationSet controller", _p("applicationSet.resources")),
        Requests("notifications controller", _p("notifications.resources"), switch("notifications.enabled", True)),
        Requests("Dex", _p("dex.resources"), switch("dex.enabled", True)),
        Requests("commit server", _p("commitServer.resources"), switch("commitServer.enabled", False)),
    ),
    "openbao": (
        Requests("server", _p("server.resources"), switch("server.enabled", True)),
        Requests("agent injector", _p("injector.resources"), switch("injector.enabled", True)),
    ),
    "external-secrets": (
        Requests("operator", _p("resources"), switch("createOperator", True)),
        Requests("webhook", _p("webhook.resources"), switch("webhook.create", True)),
        Requests("cert controller", _p("certController.resources"), switch("certController.create", True)),
    ),
    "cloudnative-pg": (Requests("operator", _p("resources")),),
    "plugin-barman-cloud": (Requests("plugin", _p("resources")),),
    "cert-manager": (
        Requests("controller", _p("resources")),
        Requests("webhook", _p("webhook.resources")),
        Requests("CA injector", _p("cainjector.resources"), switch("cainjector.enabled", True)),
        Requests("startup API check Job", _p("startupapicheck.resources"), switch("startupapicheck.enabled", True)),
    ),
    "prometheus-operator-crds": (),
    "kube-prometheus-stack": (
        Requests("Prometheus Operator", _p("prometheusOperator.resources"), switch("prometheusOperator.enabled", True)),
        Requests(
            "admission webhook patch Jobs",
            _p("prometheusOperator.admissionWebhooks.patch.resources"),
            _ADMISSION_PATCH_JOBS,
        ),
        Requests(
            "admission webhook Deployment",
            _p("prometheusOperator.admissionWebhooks.deployment.resources"),
            _ADMISSION_DEPLOYMENT,
        ),
        # The operator adds it to Prometheus and Alertmanager, with the
        # requests the chart passes it (none unless set).
        Requests(
            "config-reloader sidecars",
            _p("prometheusOperator.prometheusConfigReloader.resources"),
            switch("prometheusOperator.enabled", True),
        ),
        Requests("Prometheus", _p("prometheus.prometheusSpec.resources"), switch("prometheus.enabled", True)),
        Requests("Alertmanager", _p("alertmanager.alertmanagerSpec.resources"), switch("alertmanager.enabled", True)),
        Requests("Grafana", _p("grafana.resources"), switch("grafana.enabled", True)),
        Requests("Grafana's dashboard and data-source sidecars", _p("grafana.sidecar.resources"), _grafana_sidecar),
        Requests("kube-state-metrics", _p("kube-state-metrics.resources"), switch("kubeStateMetrics.enabled", True)),
        Requests("node-exporter", _p("prometheus-node-exporter.resources"), switch("nodeExporter.enabled", True)),
        Requests("Thanos Ruler", _p("thanosRuler.thanosRulerSpec.resources"), switch("thanosRuler.enabled", False)),
        Requests("CRD upgrade Job", _p("crds.upgradeJob.resources"), switch("crds.upgradeJob.enabled", False)),
    ),
    "loki": (
        Requests(
            "single binary",
            _p("singleBinary.resources"),
            both(_loki_mode(*_MONOLITHIC), switch("singleBinary.enabled", True)),
        ),
        *(
            Requests(
                f"{target} target",
                _p(f"{target}.resources"),
                both(_loki_mode(*_SCALABLE), _replicas(f"{target}.replicas", 3)),
            )
            for target in ("write", "read", "backend")
        ),
        Requests("rules sidecar", _p("sidecar.resources"), switch("sidecar.rules.enabled", True)),
        Requests("gateway", _p("gateway.resources"), switch("gateway.enabled", True)),
        Requests("chunks cache", _p("chunksCache.resources"), switch("chunksCache.enabled", True)),
        Requests("results cache", _p("resultsCache.resources"), switch("resultsCache.enabled", True)),
        Requests("Loki canary", _p("lokiCanary.resources"), switch("lokiCanary.enabled", True)),
    ),
    "alloy": (
        Requests("Alloy", _p("alloy.resources")),
        Requests("config reloader", _p("configReloader.resources"), switch("configReloader.enabled", True)),
    ),
    "prometheus-postgres-exporter": (Requests("exporter", _p("resources")),),
    "prometheus-blackbox-exporter": (Requests("exporter", _p("resources")),),
    "tempo": (
        Requests("Tempo", _p("tempo.resources")),
        Requests("Jaeger query UI", _p("tempoQuery.resources"), switch("tempoQuery.enabled", False)),
    ),
    "traefik": (Requests("proxy and Gateway API controller", _p("resources")),),
}


def check_requests(app_name: str, chart: str, values: dict) -> list[str]:
    """The values an Application passes request CPU and memory for every
    container its chart runs."""
    if chart not in RESOURCE_REQUESTS:
        return [f"{app_name}: no resource-requests table for chart {chart} in tests/argocd/gitops.py"]
    findings = []
    for entry in RESOURCE_REQUESTS[chart]:
        if not entry.enabled(values):
            continue
        requests = get_path(values, entry.resources + ("requests",))
        missing = [r for r in ("cpu", "memory") if not (isinstance(requests, dict) and requests.get(r))]
        if missing:
            findings.append(
                f"{app_name}: {entry.what}: {'.'.join(entry.resources)}.requests sets no {' and no '.join(missing)}"
            )
    return findings


def tolerates(toleration: Any, taint: dict) -> bool:
    """Kubernetes' rule: an empty key with Exists matches every taint; an
    empty effect matches every effect; Equal (the default) compares values."""
    if not isinstance(toleration, dict):
        return False
    operator = toleration.get("operator") or "Equal"
    key_ok = toleration.get("key") == taint["key"] or (not toleration.get("key") and operator == "Exists")
    effect_ok = not toleration.get("effect") or toleration.get("effect") == taint["effect"]
    value_ok = operator == "Exists" or (toleration.get("value") or "") == (taint.get("value") or "")
    return key_ok and effect_ok and value_ok


def chart_of(app: dict) -> str | None:
    for source in app_sources(app):
        if source.get("chart"):
            return str(source["chart"])
    return None


def check_node_selectors(app_name: str, chart: str, values: dict) -> list[str]:
    """The values an Application passes keep every pod of its chart on
    dependent_services nodes (node agents on every node)."""
    if chart not in NODE_SELECTORS:
        return [f"{app_name}: no node-selector table for chart {chart} in tests/argocd/gitops.py"]
    findings = []
    for entry in NODE_SELECTORS[chart]:
        if not entry.enabled(values):
            continue
        if isinstance(entry, StaysOff):
            findings.append(f"{app_name}: {entry.what} must stay disabled")
            continue
        where = ".".join(entry.selector)
        selector = get_path(values, entry.selector)
        if isinstance(entry, NodeAgent):
            if isinstance(selector, dict) and NODE_ROLE_LABEL in selector:
                role = selector[NODE_ROLE_LABEL]
                if entry.must_reach is None:
                    findings.append(
                        f"{app_name}: {entry.what}: {where} narrows it to {NODE_ROLE_LABEL}={role}; "
                        "a node agent that collects from every node must run on every node"
                    )
                elif {role} != entry.must_reach:
                    findings.append(
                        f"{app_name}: {entry.what}: {where} narrows it to {NODE_ROLE_LABEL}={role}, "
                        f"but what it collects runs on {sorted(entry.must_reach)}"
                    )
            if entry.must_reach is None and entry.tolerations is not None:
                given = get_path(values, entry.tolerations)
                tolerations = list(entry.default_tolerations) if given is None else given
                if not any(tolerates(t, CONTROL_PLANE_TAINT) for t in tolerations or []):
                    findings.append(
                        f"{app_name}: {entry.what}: {'.'.join(entry.tolerations)} does not tolerate "
                        f"{CONTROL_PLANE_TAINT['key']}:{CONTROL_PLANE_TAINT['effect']}, so it misses the control plane"
                    )
            continue
        if not isinstance(selector, dict) or selector.get(NODE_ROLE_LABEL) != PLATFORM_ROLE:
            got = "not set" if selector is None else f"is {selector!r}"
            findings.append(f"{app_name}: {entry.what}: {where} {got}, expected {{{NODE_ROLE_LABEL}: {PLATFORM_ROLE}}}")
    return findings


# ------------------------------------------------ rendered Kustomize apps
def kustomize_app(app: dict) -> list[Any]:
    """The documents of a Kustomize Application of this repository, rendered
    as Argo CD would (with its kustomize.components)."""
    return kustomize_source(app_sources(app)[0])


def kustomize_source(source: dict) -> list[Any]:
    """One Git source of this repository with a kustomization, rendered."""
    components = list(((source.get("kustomize") or {}).get("components")) or [])
    return load_documents(kustomize(REPO / source["path"], components))


def extra_kustomize_sources(app: dict) -> list[dict]:
    """The Kustomize directories of this repository that a multi-source
    Application renders beside its chart (e.g. Alloy's pipeline ConfigMap)."""
    sources = app_sources(app)
    if len(sources) < 2:
        return []
    return [
        s
        for s in sources
        if s.get("repoURL") == GIT_REPO
        and not s.get("ref")
        and (REPO / str(s.get("path") or "-") / "kustomization.yaml").is_file()
    ]


def is_kustomize_app(app: dict) -> bool:
    sources = app_sources(app)
    return (
        len(sources) == 1
        and sources[0].get("repoURL") == GIT_REPO
        and (REPO / str(sources[0].get("path") or "-") / "kustomization.yaml").is_file()
    )


def is_own_chart_app(app: dict) -> bool:
    sources = app_sources(app)
    return (
        len(sources) == 1
        and sources[0].get("repoURL") == GIT_REPO
        and (REPO / str(sources[0].get("path") or "-") / "Chart.yaml").is_file()
    )


# ------------------------------------------------ OpenBao's own files
# Where the server finds deploy/vault's ConfigMaps (deploy/argocd/values/
# openbao.yaml and openbao-prod.yaml mount them there).
OPENBAO_MOUNTS = {"/openbao/platform": "openbao-platform-config", "/openbao/policies": "openbao-policies"}
# The files every environment's server loads beside the chart's own; the
# seal file is the one that differs.
OPENBAO_SHARED_CONFIG = ("audit.hcl", "initialize.hcl")
OPENBAO_SEALS = {"dev": "seal-static.hcl", "prod": "seal-transit.hcl"}


def openbao_config_files(values: dict) -> list[str]:
    """The configuration files the server is started with beside the chart's
    (-config=... in server.extraArgs, also inside a shell substitution)."""
    return re.findall(r"-config=(\S+?)\)?(?=\s|$)", str(get_path(values, ("server", "extraArgs")) or ""))


def check_openbao_files(variant: str, values: dict, docs: list[Any]) -> list[str]:
    """The server's configuration files and the policies its
    self-initialisation reads are in the ConfigMaps deploy/vault renders, at
    the paths the chart mounts them; development and production load the
    same files but the seal."""
    findings = []
    config_maps = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d.get("kind") == "ConfigMap"}
    volumes = {v.get("name"): v for v in get_path(values, ("server", "volumes")) or []}
    mounts = {m.get("mountPath"): m.get("name") for m in get_path(values, ("server", "volumeMounts")) or []}
    for path, config_map in OPENBAO_MOUNTS.items():
        volume = volumes.get(mounts.get(path)) or {}
        got = (volume.get("configMap") or {}).get("name")
        if got != config_map:
            findings.append(f"{variant}: server.volumeMounts: {path} mounts {got!r}, expected the ConfigMap {config_map}")
    files = openbao_config_files(values)
    expected = {f"/openbao/platform/{OPENBAO_SEALS[variant]}", *(f"/openbao/platform/{f}" for f in OPENBAO_SHARED_CONFIG)}
    if set(files) != expected:
        findings.append(f"{variant}: server.extraArgs loads {sorted(files)}, expected {sorted(expected)}")
    platform = config_maps.get(OPENBAO_MOUNTS["/openbao/platform"], {})
    for file in files:
        if file.startswith("/openbao/platform/") and file.removeprefix("/openbao/platform/") not in platform:
            findings.append(f"{variant}: server.extraArgs loads {file}, which deploy/vault does not render")
    policies = config_maps.get(OPENBAO_MOUNTS["/openbao/policies"], {})
    for name in re.findall(r'path\s*=\s*"/openbao/policies/([^"]+)"', platform.get("initialize.hcl", "")):
        if name not in policies:
            findings.append(f"{variant}: initialize.hcl reads /openbao/policies/{name}, which deploy/vault does not render")
    return findings
