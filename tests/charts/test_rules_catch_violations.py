"""Each hardening rule catches what it must.

Each test mutates documents in memory, in a compliant sample and in every
real render, and expects the check to report the mutated object: a check
that stops seeing a violation fails here, whatever the charts look like.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import pytest

import hardening
import workloads
from hardening import RULES
from support import SOURCES, findings_text, sample_postgres, sample_student_api, source_docs


def first_pod(docs: list[Any], *, jobs: bool | None = None) -> workloads.Workload | None:
    for w in workloads.workloads(docs):
        if jobs is None or w.is_job == jobs:
            return w
    return None


def first_serving_container(docs: list[Any]) -> tuple[workloads.Workload, dict] | None:
    for w in workloads.workloads(docs):
        for _, container, serves in workloads.containers(w):
            if serves:
                return w, container
    return None


def reported(rule: str, source: str, mutate: Callable[[list[Any]], str | None], expected: str) -> None:
    """Applies mutate to a source's documents and asserts the rule's check
    reports a finding containing expected and naming the mutated object.

    A render that already breaks the rule still proves the check here: what
    it is reported for is the positive tests' business."""
    chart, docs = source_docs(source)
    changed = mutate(docs)
    if changed is None:
        pytest.skip(f"{source} has nothing this mutation applies to")
    findings = RULES[rule](docs, chart)
    assert any(expected in f and changed in f for f in findings), (
        f"{rule} did not report the mutation of {changed} (expected {expected!r}); findings:{findings_text(findings)}"
    )


@pytest.mark.parametrize("source", SOURCES)
def test_the_pinning_check_reports_a_workload_on_the_wrong_node_role(source):
    def mutate(docs):
        w = first_pod(docs)
        if w is not None:
            w.pod_spec.pop("affinity", None)
            w.pod_spec["nodeSelector"] = {"type": "monitoring"}
            return w.name
        cluster = next(workloads.clusters(docs), None)
        if cluster is None:
            return None
        cluster["spec"]["affinity"] = {"nodeSelector": {"type": "monitoring"}}
        return workloads.describe(cluster)

    reported("node_pinning", source, mutate, "type=monitoring, expected")


@pytest.mark.parametrize("source", SOURCES)
def test_the_pinning_check_reports_a_workload_pinned_nowhere(source):
    def mutate(docs):
        w = first_pod(docs)
        if w is None:
            return None
        w.pod_spec.pop("nodeSelector", None)
        w.pod_spec.pop("affinity", None)
        return w.name

    reported("node_pinning", source, mutate, "not pinned to a node role")


def test_the_pinning_check_keeps_jobs_off_the_application_nodes():
    docs = sample_student_api()
    job = first_pod(docs, jobs=True)
    job.pod_spec["nodeSelector"] = {"type": "application"}
    assert any("type=application, expected database or dependent_services" in f
               for f in hardening.check_node_pinning(docs, "student-api"))


def test_the_pinning_check_accepts_a_required_node_affinity_and_rejects_an_open_term():
    docs = sample_student_api()
    w = first_pod(docs, jobs=False)
    w.pod_spec.pop("nodeSelector")
    pinned = {"matchExpressions": [{"key": "type", "operator": "In", "values": ["application"]}]}
    terms = [pinned]
    w.pod_spec["affinity"] = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
    }
    assert hardening.check_node_pinning(docs, "student-api") == []
    open_term = {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}
    terms.append(open_term)
    assert any("term(s) [1]" in f for f in hardening.check_node_pinning(docs, "student-api"))


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("field", ["requests.cpu", "requests.memory", "limits.memory"])
def test_the_resources_check_reports_a_container_without(field, source):
    section, resource = field.split(".")

    def mutate(docs):
        w = first_pod(docs)
        if w is not None:
            container = (w.pod_spec.get("initContainers") or w.pod_spec["containers"])[0]
            container.setdefault("resources", {}).setdefault(section, {}).pop(resource, None)
            return w.name
        cluster = next(workloads.clusters(docs), None)
        if cluster is None:
            return None
        cluster["spec"].setdefault("resources", {}).setdefault(section, {}).pop(resource, None)
        return workloads.describe(cluster)

    reported("resources", source, mutate, field)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("probe", ["readinessProbe", "livenessProbe"])
def test_the_probes_check_reports_a_serving_container_without(probe, source):
    def mutate(docs):
        found = first_serving_container(docs)
        if found is None:
            return None
        w, container = found
        container["ports"] = container.get("ports") or [{"containerPort": 8080}]
        container.pop(probe, None)
        return w.name

    reported("probes", source, mutate, f"no {probe}")


SECURITY_MUTATIONS = {
    "runs as root": (lambda c, pod: (c.setdefault("securityContext", {}).update(runAsUser=0)), "runAsUser is 0"),
    "may run as root": (
        lambda c, pod: (c.setdefault("securityContext", {}).update(runAsNonRoot=False)),
        "runAsNonRoot is not true",
    ),
    "writes its root filesystem": (
        lambda c, pod: c.setdefault("securityContext", {}).update(readOnlyRootFilesystem=False),
        "readOnlyRootFilesystem is not true",
    ),
    "may escalate privileges": (
        lambda c, pod: c.setdefault("securityContext", {}).pop("allowPrivilegeEscalation", None),
        "allowPrivilegeEscalation is not false",
    ),
    "keeps capabilities": (
        lambda c, pod: c.setdefault("securityContext", {}).update(capabilities={"drop": ["NET_RAW"]}),
        "capabilities.drop does not contain ALL",
    ),
    "runs unconfined": (
        lambda c, pod: c.setdefault("securityContext", {}).update(seccompProfile={"type": "Unconfined"}),
        "seccompProfile.type is 'Unconfined'",
    ),
}


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("case", list(SECURITY_MUTATIONS))
def test_the_security_check_reports_a_container_that(case, source):
    change, expected = SECURITY_MUTATIONS[case]

    def mutate(docs):
        w = first_pod(docs)
        if w is None:
            return None
        change(w.pod_spec["containers"][0], w.pod_spec)
        return w.name

    reported("security_context", source, mutate, expected)


def _drop_cluster_policy(docs: list[dict], spec: dict) -> None:
    docs[:] = [d for d in docs if (d["kind"], d["metadata"]["name"]) != ("NetworkPolicy", "postgres")]


CLUSTER_MUTATIONS: dict[str, tuple[str, Callable[[list[dict], dict], Any], str]] = {
    "pinned to another node role": (
        "node_pinning",
        lambda docs, spec: spec.update(affinity={"nodeSelector": {"type": "application"}}),
        "type=application, expected database",
    ),
    "pinned nowhere": ("node_pinning", lambda docs, spec: spec.pop("affinity"), "not pinned to a node role"),
    "without a memory limit": (
        "resources", lambda docs, spec: spec["resources"].pop("limits"), "limits.memory not set"
    ),
    "on an image tagged latest": (
        "images",
        lambda docs, spec: spec.update(imageName="ghcr.io/cloudnative-pg/postgresql:latest"),
        "uses the tag latest",
    ),
    "whose pods no policy selects": ("network_policies", _drop_cluster_policy, "no NetworkPolicy"),
}


@pytest.mark.parametrize("case", list(CLUSTER_MUTATIONS))
def test_the_checks_report_a_cnpg_cluster(case):
    rule, change, expected = CLUSTER_MUTATIONS[case]
    docs = sample_postgres()
    change(docs, next(workloads.clusters(docs))["spec"])
    findings = RULES[rule](docs, "postgres")
    assert any(expected in f and f.startswith("Cluster database/postgres") for f in findings), findings


def test_the_security_check_holds_a_cnpg_clusters_own_security_context_to_the_rules():
    docs = sample_postgres()
    docs[0]["spec"]["securityContext"] = {"readOnlyRootFilesystem": False}
    findings = hardening.check_security_context(docs)
    assert any("readOnlyRootFilesystem is not true" in f for f in findings), findings
    assert any("capabilities.drop does not contain ALL" in f for f in findings), findings


@pytest.mark.parametrize("source", SOURCES)
def test_the_token_check_reports_a_pod_that_mounts_its_service_account_token(source):
    def mutate(docs):
        w = first_pod(docs)
        if w is None:
            return None
        w.pod_spec["automountServiceAccountToken"] = True
        w.pod_spec["volumes"] = []
        return w.name

    reported("service_account_token", source, mutate, "automountServiceAccountToken is True, expected false")


def test_the_token_check_exempts_only_a_projected_token_for_vault():
    docs = sample_student_api()
    w = first_pod(docs, jobs=False)
    w.pod_spec.pop("automountServiceAccountToken")
    token = {"serviceAccountToken": {"audience": "kubernetes", "path": "token"}}
    w.pod_spec["volumes"] = [{"name": "vault-token", "projected": {"sources": [token]}}]
    assert hardening.check_service_account_token(docs), "a token of another audience is not exempt"
    token["serviceAccountToken"]["audience"] = "vault"
    assert hardening.check_service_account_token(docs) == []


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(
    "image,expected",
    [
        ("registry.example.org/student-api", "has no tag"),
        ("registry.example.org:5000/student-api", "has no tag"),
        ("registry.example.org/student-api:latest", "uses the tag latest"),
        ("registry.example.org/student-api:main", "neither a version"),
        ("registry.example.org/student-api@sha256:abc", "malformed digest"),
    ],
)
def test_the_image_check_reports_an_image_that_is_not_pinned(image, expected, source):
    def mutate(docs):
        w = first_pod(docs)
        if w is not None:
            w.pod_spec["containers"][0]["image"] = image
            return w.name
        cluster = next(workloads.clusters(docs), None)
        if cluster is None:
            return None
        cluster["spec"]["imageName"] = image
        return workloads.describe(cluster)

    reported("images", source, mutate, expected)


@pytest.mark.parametrize(
    "image",
    [
        "registry.example.org/student-api:1.4.2",
        "registry.example.org:5000/student-api:v1.4.2-rc.1+build.7",
        "ghcr.io/cloudnative-pg/postgresql:17.5-bookworm",
        "registry.example.org/student-api@sha256:" + "a" * 64,
        "registry.example.org/student-api:main@sha256:" + "b" * 64,
    ],
)
def test_the_image_check_accepts_versions_and_digests(image):
    assert hardening.image_problem(image) is None


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("field", ["data", "stringData"])
def test_the_secret_check_reports_literal_data_without_printing_it(field, source):
    value = "do-not-print-" + os.urandom(6).hex()

    def mutate(docs):
        namespace = next((d["metadata"].get("namespace") for d in docs if isinstance(d, dict)), None)
        docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "leak", "namespace": namespace},
                     field: {"password": value}})
        return "Secret"

    reported("secrets", source, mutate, f"{field} is set in the chart (keys: password)")
    chart, docs = source_docs(source)
    mutate(docs)
    assert value not in "".join(hardening.check_secrets(docs))


@pytest.mark.parametrize("source", SOURCES)
def test_the_load_balancer_check_reports_an_unexpected_load_balancer(source):
    def mutate(docs):
        namespace = next((d["metadata"].get("namespace") for d in docs if isinstance(d, dict)), None)
        docs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "exposed", "namespace": namespace},
                     "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]}})
        return "Service"

    reported("load_balancers", source, mutate, "spec.type is LoadBalancer")


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("namespace,expected", [(None, "metadata.namespace is not set"), ("default", "is default")])
def test_the_namespace_check_reports_an_object_outside_the_charts_namespace(namespace, expected, source):
    def mutate(docs):
        scoped = (d for d in docs if isinstance(d, dict) and d.get("kind") not in hardening.CLUSTER_SCOPED_KINDS)
        doc = next(scoped, None)
        if doc is None:
            return None
        doc["metadata"].pop("namespace", None)
        if namespace:
            doc["metadata"]["namespace"] = namespace
        return workloads.describe(doc)

    reported("namespaces", source, mutate, expected)


@pytest.mark.parametrize("source", SOURCES)
def test_the_network_policy_check_reports_pods_no_policy_selects(source):
    def mutate(docs):
        # Policies that select nothing any more: every workload is uncovered.
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "NetworkPolicy":
                doc["spec"]["podSelector"] = {"matchLabels": {"selects": "nothing"}}
        w = first_pod(docs)
        if w is not None:
            return w.name
        cluster = next(workloads.clusters(docs), None)
        return workloads.describe(cluster) if cluster else None

    reported("network_policies", source, mutate, "no NetworkPolicy in its namespace selects its pods")


def first_route(docs: list[Any]) -> dict | None:
    return next((d for d in docs if isinstance(d, dict) and d.get("kind") == "HTTPRoute"), None)


def first_backend(route: dict) -> dict:
    return next(b for rule in route["spec"]["rules"] for b in rule.get("backendRefs") or [])


def _headless(docs: list[Any], route: dict) -> None:
    name = first_backend(route)["name"]
    service = next(d for d in docs if d.get("kind") == "Service" and d["metadata"]["name"] == name)
    service["spec"]["clusterIP"] = "None"


ROUTE_MUTATIONS: dict[str, tuple[Callable[[list[Any], dict], Any], str]] = {
    "to a Service the chart does not make": (
        lambda docs, route: first_backend(route).update(name="elsewhere"),
        "no Service elsewhere in this chart's namespace",
    ),
    "to a port its Service does not serve": (
        lambda docs, route: first_backend(route).update(port=9999),
        "port 9999 is not a port of Service",
    ),
    "to a Service of another namespace": (
        lambda docs, route: first_backend(route).update(namespace="database"),
        "is in another namespace",
    ),
    "to something else than a Service": (
        lambda docs, route: first_backend(route).update(group="example.org", kind="Bucket"),
        "example.org/Bucket is not a Service of this chart",
    ),
    "to a headless Service": (_headless, "is headless"),
    "without naming its listener": (
        lambda docs, route: route["spec"]["parentRefs"][0].pop("sectionName"),
        "has no sectionName",
    ),
    "with a rule that neither forwards nor redirects": (
        lambda docs, route: route["spec"]["rules"][0].pop("backendRefs"),
        "neither redirects nor forwards",
    ),
    "with a rule that both forwards and redirects": (
        lambda docs, route: route["spec"]["rules"][0].setdefault("filters", []).append(
            {"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}}
        ),
        "both redirects and forwards",
    ),
}


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("case", list(ROUTE_MUTATIONS))
def test_the_route_check_reports_a_route(case, source):
    change, expected = ROUTE_MUTATIONS[case]

    def mutate(docs):
        route = first_route(docs)
        if route is None:
            return None
        change(docs, route)
        return workloads.describe(route)

    reported("routes", source, mutate, expected)


@pytest.mark.parametrize(
    "selector,selected",
    [
        ({}, True),
        ({"matchLabels": {"app": "api"}}, True),
        ({"matchLabels": {"app": "db"}}, False),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["api", "web"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["api"]}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, True),
    ],
)
def test_label_selectors_select_as_kubernetes_does(selector, selected):
    assert workloads.selector_matches(selector, {"app": "api"}) is selected


def test_the_workload_check_reports_a_render_without_pods():
    docs = [d for d in sample_student_api() if d["kind"] not in ("Deployment", "Job")]
    assert hardening.check_has_workload(docs)


def test_the_resource_check_follows_a_cnpg_cluster_to_its_backup_sidecar():
    docs = sample_postgres()
    cluster = next(workloads.clusters(docs))
    cluster["spec"]["plugins"] = [
        {"name": "barman-cloud.cloudnative-pg.io", "isWALArchiver": True, "parameters": {"barmanObjectName": "store"}}
    ]
    findings = hardening.check_resources(docs)
    assert any("ObjectStore store is not in the chart" in f for f in findings), findings
    store = {
        "apiVersion": "barmancloud.cnpg.io/v1",
        "kind": "ObjectStore",
        "metadata": {"name": "store", "namespace": "database"},
        "spec": {"configuration": {"destinationPath": "s3://bucket/path"}},
    }
    docs.append(store)
    findings = hardening.check_resources(docs)
    expected = "requests.cpu, requests.memory, limits.memory not set (the backup sidecar"
    assert any(f.startswith("ObjectStore database/store") and expected in f for f in findings), findings
    resources = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}}
    store["spec"]["instanceSidecarConfiguration"] = {"resources": resources}
    assert hardening.check_resources(docs) == []


@pytest.mark.parametrize("source", SOURCES)
def test_the_resource_check_reports_a_backup_sidecar_without_resources(source):
    def mutate(docs):
        for cluster in workloads.clusters(docs):
            for _, _, store in workloads.plugin_object_stores(cluster, docs):
                if store is not None:
                    store["spec"].pop("instanceSidecarConfiguration", None)
                    return workloads.describe(store)
        return None

    reported("resources", source, mutate, "instanceSidecarConfiguration.resources: requests.cpu")
