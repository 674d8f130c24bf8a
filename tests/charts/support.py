"""What the chart tests share: the combinations, their renders, and samples.

Owns: finding the chart × values combinations (CHARTS_DIR, default
deploy/helm), rendering each once per test run in-process with render.py
(so `pytest tests/charts` needs no earlier step), and two small samples,
one per chart, that hold to every hardening rule.

Must not: check anything itself; the rules are in hardening.py.
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any, Callable

import pytest

import render

CHARTS_DIR = Path(os.environ.get("CHARTS_DIR") or render.CHARTS_DIR)
try:
    COMBOS = render.discover(CHARTS_DIR)
    DISCOVERY_ERROR = ""
except render.RenderError as error:
    COMBOS, DISCOVERY_ERROR = [], str(error)
COMBO_IDS = [c.id for c in COMBOS]


@functools.lru_cache(maxsize=None)
def rendered(combo_id: str) -> tuple[str, list[Any]]:
    """(chart, parsed documents) of one combination, rendered once."""
    combo = next(c for c in COMBOS if c.id == combo_id)
    try:
        result = render.render(combo)
    except render.RenderError as error:
        pytest.fail(str(error), pytrace=False)
    return combo.chart, [d.obj for d in result.documents]


def findings_text(findings: list[str]) -> str:
    """Findings one per line, for a test's failure message."""
    return "\n  " + "\n  ".join(findings)


# ---------------------------------------------------- compliant samples
SAMPLE_IMAGE = "registry.example.org/student-api:1.4.2"


def _container(name: str, ports: bool) -> dict:
    container: dict[str, Any] = {
        "name": name,
        "image": SAMPLE_IMAGE,
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if ports:
        container["ports"] = [{"name": "http", "containerPort": 8080}]
        container["readinessProbe"] = {"httpGet": {"path": "/ready", "port": "http"}}
        container["livenessProbe"] = {"httpGet": {"path": "/health", "port": "http"}}
    return container


def _pod_spec(role: str) -> dict:
    return {
        "automountServiceAccountToken": False,
        "nodeSelector": {"type": role},
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [_container("migrate", ports=False)],
        "containers": [_container("api", ports=True)],
    }


def sample_student_api() -> list[dict]:
    ns = "student-api"
    labels = {"app.kubernetes.io/name": "student-api"}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "student-api", "namespace": ns},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": _pod_spec("application")},
            },
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "seed", "namespace": ns, "annotations": {"helm.sh/hook": "post-install"}},
            "spec": {"template": {"spec": {**_pod_spec("dependent_services"), "restartPolicy": "Never"}}},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "student-api", "namespace": ns},
            "spec": {"type": "ClusterIP", "selector": labels, "ports": [{"port": 80, "targetPort": "http"}]},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "student-api", "namespace": ns},
            "spec": {
                "parentRefs": [{"name": "platform", "namespace": "traefik", "sectionName": "http"}],
                "rules": [{"backendRefs": [{"name": "student-api", "port": 80}]}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "student-api", "namespace": ns},
            "spec": {"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "seed", "namespace": ns},
            "spec": {
                "podSelector": {"matchExpressions": [{"key": "job-name", "operator": "In", "values": ["seed"]}]},
                "policyTypes": ["Ingress", "Egress"],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "placeholder", "namespace": ns},
            "type": "Opaque",
        },
    ]


def sample_postgres() -> list[dict]:
    ns = "database"
    return [
        {
            "apiVersion": "postgresql.cnpg.io/v1",
            "kind": "Cluster",
            "metadata": {"name": "postgres", "namespace": ns},
            "spec": {
                "instances": 2,
                "imageName": "ghcr.io/cloudnative-pg/postgresql:17.5-bookworm",
                "affinity": {"nodeSelector": {"type": "database"}},
                "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
                "storage": {"size": "5Gi"},
            },
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "roles", "namespace": ns, "annotations": {"helm.sh/hook": "post-install"}},
            "spec": {"template": {"spec": {**_pod_spec("database"), "restartPolicy": "Never"}}},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "postgres", "namespace": ns},
            "spec": {"podSelector": {"matchLabels": {"cnpg.io/cluster": "postgres"}}, "policyTypes": ["Ingress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "jobs", "namespace": ns},
            "spec": {"podSelector": {"matchLabels": {"job-name": "roles"}}, "policyTypes": ["Ingress", "Egress"]},
        },
    ]


SAMPLES: dict[str, Callable[[], list[dict]]] = {
    "sample student-api": sample_student_api,
    "sample postgres": sample_postgres,
}

# Sources a negative test mutates: the samples, then every real render.
SOURCES = list(SAMPLES) + COMBO_IDS


def source_docs(source: str) -> tuple[str, list[Any]]:
    """(chart, a fresh deep copy of the documents) of one source."""
    if source in SAMPLES:
        return source.split(" ", 1)[1], SAMPLES[source]()
    chart, docs = rendered(source)
    return chart, copy.deepcopy(docs)
