"""Hardening rules for rendered Helm charts: one function per rule.

Owns: what a rendered chart must look like before it may reach a cluster
(node roles, resources, probes, security contexts, service-account tokens,
image pins, no literal Secrets, no unexpected LoadBalancer, namespaces,
NetworkPolicies, HTTPRoutes that reach only the chart's own Services). Each
check takes the parsed documents of one render and returns its findings as
sentences naming the object and field; an empty list means the rule holds.
test_hardening.py runs every check over every chart × values combination;
test_rules_catch_violations.py proves each one catches a violation.

Must not: print a value found under a Secret's data or stringData.

What counts as a workload, and as a job, is workloads.py's answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from render import CHART_NAMESPACES
from workloads import (
    cluster_pod_labels,
    clusters,
    containers,
    describe,
    get_path,
    plugin_object_stores,
    selector_matches,
    workloads,
)

# Node role (the nodes' `type` label) each chart's pods must be pinned to.
#   workloads: what serves (Deployments, StatefulSets, CNPG Clusters, ...)
#   jobs:      Jobs, CronJobs and Helm hooks: short-lived work goes next to
#              the database or on the nodes for dependent services, never on
#              the application nodes, which are sized for serving traffic.
NODE_ROLE_LABEL = "type"


@dataclass(frozen=True)
class NodeRoles:
    workloads: frozenset[str]
    jobs: frozenset[str]


NODE_ROLES = {
    "student-api": NodeRoles(
        workloads=frozenset({"application"}),
        jobs=frozenset({"database", "dependent_services"}),
    ),
    "postgres": NodeRoles(
        workloads=frozenset({"database"}),
        jobs=frozenset({"database", "dependent_services"}),
    ),
}

# Services allowed to be of type LoadBalancer, as (chart, Service name).
# None today: traffic enters through the platform's Gateway (deploy/gateway).
EXPECTED_LOAD_BALANCERS: frozenset[tuple[str, str]] = frozenset()

# Kinds that live outside any namespace; every other kind must carry the
# chart's namespace.
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService",
        "CSIDriver",
        "ClusterImageCatalog",
        "ClusterIssuer",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterSecretStore",
        "CustomResourceDefinition",
        "GatewayClass",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "Namespace",
        "PersistentVolume",
        "PriorityClass",
        "RuntimeClass",
        "StorageClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeSnapshotClass",
    }
)

# An image tag counts as a version when it is MAJOR.MINOR.PATCH, with an
# optional leading "v", pre-release and build suffix (SemVer 2.0); PATCH may
# be left out because PostgreSQL versions itself MAJOR.MINOR (17.5,
# 17.5-bookworm).
VERSION_TAG = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)(\.(0|[1-9]\d*))?"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"
)
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")

# Audience of the projected token a pod presents to Vault's Kubernetes auth.
VAULT_AUDIENCE = "vault"


# ------------------------------------------------------------------ rules
def check_node_pinning(docs: list[Any], chart: str) -> list[str]:
    """Every workload's pods are pinned to the chart's node role (label `type`)."""
    roles = NODE_ROLES.get(chart)
    if roles is None:
        return [f"no node roles known for chart {chart!r}; add it to NODE_ROLES in tests/charts/hardening.py"]
    findings = []
    for w in workloads(docs):
        allowed = roles.jobs if w.is_job else roles.workloads
        what = "job" if w.is_job else "workload"
        node_affinity = get_path(w.pod_spec, "affinity", "nodeAffinity")
        for problem in _pinning_problems(w.pod_spec.get("nodeSelector"), node_affinity, allowed):
            findings.append(f"{w.name}: {w.pod_path}: {problem} ({what} of chart {chart})")
    for cluster in clusters(docs):
        affinity = get_path(cluster, "spec", "affinity") or {}
        for problem in _pinning_problems(affinity.get("nodeSelector"), affinity.get("nodeAffinity"), roles.workloads):
            findings.append(f"{describe(cluster)}: spec.affinity: {problem} (workload of chart {chart})")
    return findings


def _pinning_problems(node_selector: Any, node_affinity: Any, allowed: frozenset[str]) -> list[str]:
    want = " or ".join(sorted(allowed))
    problems, pinned = [], False
    if isinstance(node_selector, dict) and NODE_ROLE_LABEL in node_selector:
        value = node_selector[NODE_ROLE_LABEL]
        if value in allowed:
            pinned = True
        else:
            problems.append(f"nodeSelector {NODE_ROLE_LABEL}={value}, expected {want}")
    terms = get_path(node_affinity, "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms") or []
    if terms:
        # Terms are alternatives: each one must keep the pods on an allowed role.
        bad = [i for i, term in enumerate(terms) if not _term_pins(term, allowed)]
        if bad:
            problems.append(
                f"required nodeAffinity term(s) {bad} do not restrict label {NODE_ROLE_LABEL} to {want}"
            )
        else:
            pinned = True
    if not pinned and not problems:
        problems.append(
            f"not pinned to a node role: set nodeSelector {NODE_ROLE_LABEL}: {want}, "
            f"or a required nodeAffinity on label {NODE_ROLE_LABEL}"
        )
    return problems


def _term_pins(term: Any, allowed: frozenset[str]) -> bool:
    for expression in get_path(term, "matchExpressions") or []:
        if (
            get_path(expression, "key") == NODE_ROLE_LABEL
            and get_path(expression, "operator") == "In"
            and isinstance(expression.get("values"), list)
            and expression["values"]
            and set(expression["values"]) <= allowed
        ):
            return True
    return False


def check_resources(docs: list[Any]) -> list[str]:
    """Every container and init container requests cpu and memory and has a
    memory limit; in a CNPG Cluster's pods the plugin's backup sidecar too,
    through the ObjectStore the Cluster names."""
    findings = []
    wanted = (("requests", "cpu"), ("requests", "memory"), ("limits", "memory"))
    for w in workloads(docs):
        for path, container, _ in containers(w):
            if path.split(".")[-1].startswith("ephemeralContainers"):
                continue  # the API forbids resources on ephemeral containers
            missing = [f"{a}.{b}" for a, b in wanted if get_path(container, "resources", a, b) in (None, "")]
            if missing:
                findings.append(f"{w.name}: {path}: resources {', '.join(missing)} not set")
    for cluster in clusters(docs):
        missing = [f"{a}.{b}" for a, b in wanted if get_path(cluster, "spec", "resources", a, b) in (None, "")]
        if missing:
            findings.append(f"{describe(cluster)}: spec.resources: {', '.join(missing)} not set")
        for where, name, store in plugin_object_stores(cluster, docs):
            if store is None:
                findings.append(
                    f"{describe(cluster)}: {where}: ObjectStore {name} is not in the chart, so the "
                    "resources of the backup sidecar in its pods are unknown"
                )
                continue
            sidecar = ("spec", "instanceSidecarConfiguration", "resources")
            missing = [f"{a}.{b}" for a, b in wanted if get_path(store, *sidecar, a, b) in (None, "")]
            if missing:
                findings.append(
                    f"{describe(store)}: {'.'.join(sidecar)}: {', '.join(missing)} not set "
                    f"(the backup sidecar in the pods of {describe(cluster)})"
                )
    return findings


def check_probes(docs: list[Any]) -> list[str]:
    """Every long-running container that exposes a port has readiness and liveness probes."""
    findings = []
    for w in workloads(docs):
        for path, container, serves in containers(w):
            if not serves or not container.get("ports"):
                continue
            missing = [p for p in ("readinessProbe", "livenessProbe") if not container.get(p)]
            if missing:
                findings.append(f"{w.name}: {path}: serves on a port but has no {' and no '.join(missing)}")
    return findings


def check_security_context(docs: list[Any]) -> list[str]:
    """Every container runs as a non-root user, read-only, unprivileged, with no
    capabilities and the runtime's default seccomp profile."""
    findings = []
    for w in workloads(docs):
        pod_sc = w.pod_spec.get("securityContext") or {}
        for path, container, _ in containers(w):
            sc = container.get("securityContext") or {}
            findings.extend(f"{w.name}: {path}: {p}" for p in _security_problems(pod_sc, sc))
    for cluster in clusters(docs):
        # The operator hardens the instance pods itself; what the chart sets
        # instead replaces those defaults, so it must hold to the same rules.
        spec = cluster.get("spec") or {}
        pod_sc = spec.get("podSecurityContext") or {}
        if isinstance(spec.get("securityContext"), dict):
            problems = _security_problems(pod_sc, spec["securityContext"], pod_defaults=True)
            findings.extend(f"{describe(cluster)}: spec.securityContext: {p}" for p in problems)
        if pod_sc.get("runAsNonRoot") is False or pod_sc.get("runAsUser") == 0:
            findings.append(f"{describe(cluster)}: spec.podSecurityContext: allows running as root")
        seccomp = get_path(spec, "seccompProfile", "type")
        if seccomp not in (None, "RuntimeDefault"):
            findings.append(f"{describe(cluster)}: spec.seccompProfile.type is {seccomp}, expected RuntimeDefault")
    return findings


def _security_problems(pod_sc: dict, sc: dict, pod_defaults: bool = False) -> list[str]:
    """What is wrong with one container's effective security context.

    pod_defaults: unset user settings fall back to safe defaults someone else
    applies (the CNPG operator), so only settings made unsafe are reported.
    """
    def effective(key: str) -> Any:
        return sc[key] if key in sc else pod_sc.get(key)

    problems = []
    if effective("runAsNonRoot") is not True and not (pod_defaults and effective("runAsNonRoot") is None):
        problems.append("runAsNonRoot is not true (container or pod securityContext)")
    user = effective("runAsUser")
    if user == 0 or (user is None and not pod_defaults) or (user is not None and not isinstance(user, int)):
        problems.append(f"runAsUser is {user!r}, expected a non-zero user id (container or pod securityContext)")
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append("securityContext.readOnlyRootFilesystem is not true")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("securityContext.allowPrivilegeEscalation is not false")
    if sc.get("privileged") is True:
        problems.append("securityContext.privileged is true")
    if "ALL" not in (get_path(sc, "capabilities", "drop") or []):
        problems.append("securityContext.capabilities.drop does not contain ALL")
    seccomp = get_path(sc, "seccompProfile", "type") or get_path(pod_sc, "seccompProfile", "type")
    if seccomp != "RuntimeDefault" and not (pod_defaults and seccomp is None):
        problems.append(
            f"seccompProfile.type is {seccomp!r}, expected RuntimeDefault (container or pod securityContext)"
        )
    return problems


def check_service_account_token(docs: list[Any]) -> list[str]:
    """No pod mounts its service-account token, unless it presents a projected
    token to Vault instead."""
    findings = []
    for w in workloads(docs):
        if w.pod_spec.get("automountServiceAccountToken") is False:
            continue
        if _mounts_vault_token(w.pod_spec):
            continue
        findings.append(
            f"{w.name}: {w.pod_path}.automountServiceAccountToken is "
            f"{w.pod_spec.get('automountServiceAccountToken')!r}, expected false "
            f"(only a pod with a projected serviceAccountToken of audience {VAULT_AUDIENCE!r} is exempt)"
        )
    return findings


def _mounts_vault_token(pod_spec: dict) -> bool:
    for volume in pod_spec.get("volumes") or []:
        for source in get_path(volume, "projected", "sources") or []:
            token = get_path(source, "serviceAccountToken")
            if isinstance(token, dict) and token.get("audience") == VAULT_AUDIENCE:
                return True
    return False


def image_problem(image: Any) -> str | None:
    """Why an image reference is not pinned; None when it is."""
    if not isinstance(image, str) or not image:
        return "has no image"
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.rpartition(":")[2] if ":" in last else None
    if digest and not DIGEST.match(digest):
        return f"image {image} has a malformed digest (expected sha256:<64 hex>)"
    if tag == "latest":
        return f"image {image} uses the tag latest"
    if digest:
        return None
    if tag is None:
        return f"image {image} has no tag"
    if not VERSION_TAG.match(tag):
        return f"image {image}: tag {tag} is neither a version (e.g. 1.2.3) nor pinned by a digest"
    return None


def check_images(docs: list[Any]) -> list[str]:
    """Every image is pinned to a version tag or a digest; none is untagged or latest."""
    findings = []
    for w in workloads(docs):
        for path, container, _ in containers(w):
            problem = image_problem(container.get("image"))
            if problem:
                findings.append(f"{w.name}: {path}: {problem}")
    for cluster in clusters(docs):
        # No imageName: the operator's own default image, pinned by its release.
        image = get_path(cluster, "spec", "imageName")
        if image is not None:
            problem = image_problem(image)
            if problem:
                findings.append(f"{describe(cluster)}: spec.imageName: {problem}")
    return findings


def check_secrets(docs: list[Any]) -> list[str]:
    """No Secret carries literal data: credentials come from ExternalSecrets or
    Secrets that already exist."""
    findings = []
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") != "Secret":
            continue
        for field in ("data", "stringData"):
            value = doc.get(field)
            if value:
                # Key names only: the values are never printed.
                keys = ", ".join(sorted(map(str, value))) if isinstance(value, dict) else "?"
                findings.append(
                    f"{describe(doc)}: {field} is set in the chart (keys: {keys}); "
                    "use an ExternalSecret or an existing Secret"
                )
    return findings


def check_load_balancers(docs: list[Any], chart: str) -> list[str]:
    """No Service is of type LoadBalancer unless it is listed as expected."""
    return [
        f"{describe(doc)}: spec.type is LoadBalancer, which is not expected "
        "(EXPECTED_LOAD_BALANCERS in tests/charts/hardening.py)"
        for doc in docs
        if isinstance(doc, dict)
        and doc.get("kind") == "Service"
        and get_path(doc, "spec", "type") == "LoadBalancer"
        and (chart, get_path(doc, "metadata", "name")) not in EXPECTED_LOAD_BALANCERS
    ]


def check_namespaces(docs: list[Any], chart: str) -> list[str]:
    """Every namespace-scoped object names the chart's namespace itself."""
    expected = CHART_NAMESPACES.get(chart)
    if expected is None:
        return [f"no namespace known for chart {chart!r}; add it to CHART_NAMESPACES in tests/charts/render.py"]
    findings = []
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") in CLUSTER_SCOPED_KINDS:
            continue
        namespace = get_path(doc, "metadata", "namespace")
        if namespace is None:
            findings.append(f"{describe(doc)}: metadata.namespace is not set, expected {expected}")
        elif namespace != expected:
            findings.append(f"{describe(doc)}: metadata.namespace is {namespace}, expected {expected}")
    return findings


def check_network_policies(docs: list[Any]) -> list[str]:
    """Some NetworkPolicy of the same namespace selects every workload's pods."""
    policies = [
        doc
        for doc in docs
        if isinstance(doc, dict)
        and (doc.get("apiVersion"), doc.get("kind")) == ("networking.k8s.io/v1", "NetworkPolicy")
    ]
    pods = [(w.doc, w.pod_labels) for w in workloads(docs)] + [(c, cluster_pod_labels(c)) for c in clusters(docs)]
    findings = []
    for doc, labels in pods:
        namespace = get_path(doc, "metadata", "namespace")
        selecting = [
            p for p in policies
            if get_path(p, "metadata", "namespace") == namespace
            and selector_matches(get_path(p, "spec", "podSelector"), labels)
        ]
        if not selecting:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "no labels"
            findings.append(f"{describe(doc)}: no NetworkPolicy in its namespace selects its pods ({shown})")
    return findings


GATEWAY_GROUP = "gateway.networking.k8s.io"
HTTP_ROUTE = (f"{GATEWAY_GROUP}/v1", "HTTPRoute")


def check_routes(docs: list[Any]) -> list[str]:
    """Every HTTPRoute names the Gateway listener it attaches to, and sends
    traffic only to a Service of the same render and namespace, at a port
    that Service serves, never to a headless one (the metrics Service); each
    rule either forwards to backends or redirects, never both or neither."""
    services = {
        (get_path(doc, "metadata", "namespace"), get_path(doc, "metadata", "name")): doc
        for doc in docs
        if isinstance(doc, dict) and (doc.get("apiVersion"), doc.get("kind")) == ("v1", "Service")
    }
    findings = []
    for doc in docs:
        if not isinstance(doc, dict) or (doc.get("apiVersion"), doc.get("kind")) != HTTP_ROUTE:
            continue
        route, namespace = describe(doc), get_path(doc, "metadata", "namespace")
        parents = get_path(doc, "spec", "parentRefs") or []
        if not parents:
            findings.append(f"{route}: spec.parentRefs is empty: the route attaches to no Gateway")
        for i, parent in enumerate(parents):
            where = f"{route}: spec.parentRefs[{i}]"
            if (parent.get("group", GATEWAY_GROUP), parent.get("kind", "Gateway")) != (GATEWAY_GROUP, "Gateway"):
                findings.append(f"{where} is a {parent.get('kind')}, not a Gateway")
            if not parent.get("sectionName"):
                findings.append(f"{where} has no sectionName: name the listener the route attaches to")
        for i, rule in enumerate(get_path(doc, "spec", "rules") or []):
            where = f"{route}: spec.rules[{i}]"
            backends = rule.get("backendRefs") or []
            redirects = any(f.get("type") == "RequestRedirect" for f in rule.get("filters") or [])
            if redirects and backends:
                findings.append(f"{where} both redirects and forwards to backendRefs")
            elif not redirects and not backends:
                findings.append(f"{where} neither redirects nor forwards: it has no backendRefs")
            for j, backend in enumerate(backends):
                problems = _backend_problems(backend, namespace, services)
                findings.extend(f"{where}.backendRefs[{j}]: {p}" for p in problems)
    return findings


def _backend_problems(backend: dict, namespace: Any, services: dict[tuple[Any, Any], dict]) -> list[str]:
    if backend.get("group", "") != "" or backend.get("kind", "Service") != "Service":
        return [f"{backend.get('group')}/{backend.get('kind')} is not a Service of this chart"]
    if backend.get("namespace", namespace) != namespace:
        return [f"Service {backend.get('namespace')}/{backend.get('name')} is in another namespace"]
    service = services.get((namespace, backend.get("name")))
    if service is None:
        return [f"no Service {backend.get('name')} in this chart's namespace {namespace}"]
    problems = []
    ports = [p.get("port") for p in get_path(service, "spec", "ports") or []]
    if backend.get("port") not in ports:
        problems.append(f"port {backend.get('port')} is not a port of Service {backend.get('name')} ({ports})")
    if get_path(service, "spec", "clusterIP") == "None":
        problems.append(f"Service {backend.get('name')} is headless (clusterIP None), not the API's Service")
    return problems


def check_has_workload(docs: list[Any]) -> list[str]:
    """The render makes pods at all (otherwise every other check passes vacuously)."""
    if any(True for _ in workloads(docs)) or any(True for _ in clusters(docs)):
        return []
    return ["renders no workload (Deployment, StatefulSet, Job, CNPG Cluster, ...)"]


# Every rule, by name, as a function of (documents, chart).
RULES: dict[str, Callable[[list[Any], str], list[str]]] = {
    "has_workload": lambda docs, chart: check_has_workload(docs),
    "node_pinning": check_node_pinning,
    "resources": lambda docs, chart: check_resources(docs),
    "probes": lambda docs, chart: check_probes(docs),
    "security_context": lambda docs, chart: check_security_context(docs),
    "service_account_token": lambda docs, chart: check_service_account_token(docs),
    "images": lambda docs, chart: check_images(docs),
    "secrets": lambda docs, chart: check_secrets(docs),
    "load_balancers": check_load_balancers,
    "namespaces": check_namespaces,
    "network_policies": lambda docs, chart: check_network_policies(docs),
    "routes": lambda docs, chart: check_routes(docs),
}
