"""Finding the pods in rendered Kubernetes documents.

Owns: which objects make pods (Deployment, StatefulSet, DaemonSet,
ReplicaSet, Job, CronJob, Pod, Argo Rollout, and the CloudNativePG Cluster,
whose pods the operator makes from the Cluster's spec), where each keeps its
pod template, the labels those pods get, and how a label selector selects.
A Job, a CronJob, or any workload carrying a `helm.sh/hook` annotation is a
job.

Must not: judge anything; the rules are in hardening.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

# Where each workload kind keeps its pod template.
POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "Rollout": ("spec", "template"),
    "Pod": (),
}
JOB_KINDS = frozenset({"Job", "CronJob"})
HOOK_ANNOTATION = "helm.sh/hook"
CNPG_CLUSTER = ("postgresql.cnpg.io/v1", "Cluster")
# The Barman Cloud plugin's object store: it says what the sidecar the plugin
# adds to a Cluster's pods may use.
BARMAN_OBJECT_STORE = ("barmancloud.cnpg.io/v1", "ObjectStore")


def get_path(obj: Any, *path: str | int) -> Any:
    """obj[path[0]][path[1]]..., or None where the path leaves the document."""
    for part in path:
        if isinstance(part, int):
            if not isinstance(obj, list) or part >= len(obj):
                return None
        elif not isinstance(obj, dict):
            return None
        obj = obj[part] if isinstance(part, int) else obj.get(part)
    return obj


def describe(doc: dict) -> str:
    """"Kind namespace/name" of a document, for findings."""
    kind = doc.get("kind", "?")
    name = get_path(doc, "metadata", "name") or "?"
    namespace = get_path(doc, "metadata", "namespace")
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


@dataclass
class Workload:
    """An object that makes pods from a pod template."""

    doc: dict
    pod_path: str  # e.g. "spec.template.spec"
    pod_spec: dict
    pod_labels: dict

    @property
    def name(self) -> str:
        return describe(self.doc)

    @property
    def is_job(self) -> bool:
        annotations = get_path(self.doc, "metadata", "annotations") or {}
        return self.doc.get("kind") in JOB_KINDS or HOOK_ANNOTATION in annotations


def workloads(docs: list[Any]) -> Iterator[Workload]:
    """Every pod-template workload among docs (CNPG Clusters excluded)."""
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") not in POD_TEMPLATE_PATHS:
            continue
        path = POD_TEMPLATE_PATHS[doc["kind"]]
        template = get_path(doc, *path) if path else doc
        if not isinstance(template, dict):
            continue
        spec = template.get("spec")
        if not isinstance(spec, dict):
            continue
        labels = dict(get_path(template, "metadata", "labels") or {})
        if doc["kind"] == "Job":
            # The Job controller labels its pods with the Job's name.
            name = get_path(doc, "metadata", "name")
            labels.setdefault("job-name", name)
            labels.setdefault("batch.kubernetes.io/job-name", name)
        yield Workload(doc, ".".join(path + ("spec",)), spec, labels)


def clusters(docs: list[Any]) -> Iterator[dict]:
    """Every CloudNativePG Cluster among docs."""
    for doc in docs:
        if isinstance(doc, dict) and (doc.get("apiVersion"), doc.get("kind")) == CNPG_CLUSTER:
            yield doc


def plugin_object_stores(cluster: dict, docs: list[Any]) -> Iterator[tuple[str, str, dict | None]]:
    """(where, name, ObjectStore or None when not among docs) for every
    Barman Cloud ObjectStore a Cluster's spec.plugins names: the plugin adds
    its sidecar to the Cluster's pods with that store's
    instanceSidecarConfiguration."""
    stores = {
        get_path(doc, "metadata", "name"): doc
        for doc in docs
        if isinstance(doc, dict) and (doc.get("apiVersion"), doc.get("kind")) == BARMAN_OBJECT_STORE
    }
    for i, plugin in enumerate(get_path(cluster, "spec", "plugins") or []):
        name = get_path(plugin, "parameters", "barmanObjectName")
        if name is not None:
            yield f"spec.plugins[{i}]", name, stores.get(name)


def cluster_pod_labels(cluster: dict) -> dict:
    """Labels the operator puts on a Cluster's instance pods."""
    labels = dict(get_path(cluster, "spec", "inheritedMetadata", "labels") or {})
    labels["cnpg.io/cluster"] = get_path(cluster, "metadata", "name")
    labels["cnpg.io/podRole"] = "instance"
    return labels


def containers(workload: Workload) -> Iterator[tuple[str, dict, bool]]:
    """(path, container, serves) for every container of a workload's pods.

    serves: a long-running container (a regular container or a native
    sidecar, an init container with restartPolicy Always).
    """
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for i, container in enumerate(workload.pod_spec.get(field) or []):
            if not isinstance(container, dict):
                continue
            name = container.get("name", i)
            serves = field == "containers" or (field == "initContainers" and container.get("restartPolicy") == "Always")
            yield f"{workload.pod_path}.{field}[{name}]", container, serves


def selector_matches(selector: Any, labels: dict) -> bool:
    """Whether a label selector (matchLabels, matchExpressions) selects labels."""
    if not isinstance(selector, dict):
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True
