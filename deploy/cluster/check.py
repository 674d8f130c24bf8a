#!/usr/bin/env python3
"""Reads what kubectl, minikube or kind print as JSON and says whether the
local cluster is what the platform needs. minikube.sh and kind.sh pipe one
document into one subcommand; nothing here talks to a cluster itself.

Usage: check.py SUBCOMMAND [ARGS] < document.json

  nodes ROLE...           `kubectl get nodes -o json`: as many nodes as roles,
                          each role on exactly one node (label `type`), every
                          node Ready and free of NoSchedule/NoExecute taints
  roles ROLE...           `kubectl get nodes -o json`, for a cluster that may
                          have more nodes (production): each role on at least
                          one node, every node with a role Ready and untainted
  storageclasses NAME...  `kubectl get storageclass -o json`: one default
                          StorageClass, and each NAME present
  deployment NS/NAME      `kubectl get deployment -o json`: every replica
                          of the rollout ready
  metrics                 `kubectl get --raw /apis/metrics.k8s.io/v1beta1/nodes`:
                          the metrics API reports every node
  version MIN             `kubectl version -o json`: the server is MIN or newer
  gateway-api VERSION     `kubectl get crd gateways.gateway.networking.k8s.io
                          --ignore-not-found -o json` ({} when absent): no
                          Gateway API CRDs yet, or the standard channel at
                          VERSION or older, which the platform's sync upgrades
  minikube-profile NAME   `minikube profile list -o json`: prints
                          "absent", "running N" or "stopped N" (N nodes)
  minikube-addons ADDON...  `minikube addons list -o json`: prints the ADDONs
                          that are not enabled yet, one a line

A check prints what it found, one line each, and exits 0 when all is well;
otherwise it prints one line per problem, each naming the object and what is
wrong with it, and exits 1. Exit 2: the input is not the document expected.
Only the Python 3 standard library is used.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

ROLE_LABEL = "type"
GATEWAY_API_CHANNEL = "gateway.networking.k8s.io/channel"
GATEWAY_API_BUNDLE = "gateway.networking.k8s.io/bundle-version"
DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    # Still set by some provisioners; the API server honours both.
    "storageclass.beta.kubernetes.io/is-default-class",
)


class BadInput(Exception):
    """The document on stdin is not what the subcommand reads."""


def items(doc: object, kind: str) -> list[dict]:
    """The items of a kubectl List, refusing anything else."""
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        raise BadInput(f"expected a {kind} list (an object with items)")
    return [item for item in doc["items"] if isinstance(item, dict)]


def name_of(obj: dict) -> str:
    return str(obj.get("metadata", {}).get("name", "?"))


def check_nodes(doc: object, roles: list[str], exact: bool = True) -> tuple[list[str], list[str]]:
    """Exact: one node per role and no other node. Otherwise each role on at
    least one node; nodes without a platform role are left alone."""
    nodes = items(doc, "Node")
    info: list[str] = []
    problems: list[str] = []
    names = sorted(name_of(n) for n in nodes)
    if exact and len(nodes) != len(roles):
        problems.append(f"nodes: expected {len(roles)} nodes, found {len(nodes)} ({', '.join(names) or 'none'})")

    holders: dict[str, list[str]] = {role: [] for role in roles}
    for node in sorted(nodes, key=name_of):
        name = name_of(node)
        role = node.get("metadata", {}).get("labels", {}).get(ROLE_LABEL)
        ready = next(
            (c for c in node.get("status", {}).get("conditions", []) if c.get("type") == "Ready"),
            None,
        )
        status = ready.get("status", "Unknown") if ready else "Unknown"
        info.append(f"node {name}: {ROLE_LABEL}={role or '(none)'}, Ready={status}")
        if not exact and role not in holders:
            continue
        if role is None:
            problems.append(f"nodes: {name} has no {ROLE_LABEL} label")
        elif role not in holders:
            problems.append(f"nodes: {name} has {ROLE_LABEL}={role}, which is not a platform role ({', '.join(roles)})")
        else:
            holders[role].append(name)
        if status != "True":
            reason = f": {ready.get('reason')}" if ready and ready.get("reason") else ""
            problems.append(f"nodes: {name} is not Ready (Ready={status}{reason})")
        # The charts tolerate nothing: a tainted role node runs none of them.
        for taint in node.get("spec", {}).get("taints", []):
            if taint.get("effect") in ("NoSchedule", "NoExecute"):
                problems.append(
                    f"nodes: {name} has the taint {taint.get('key')}:{taint.get('effect')}, "
                    "which the platform's pods do not tolerate"
                )

    for role, names_with_role in holders.items():
        if not names_with_role:
            problems.append(
                f"nodes: label {ROLE_LABEL}={role} is on no node; expected {'exactly' if exact else 'at least'} one"
            )
        elif exact and len(names_with_role) > 1:
            problems.append(
                f"nodes: label {ROLE_LABEL}={role} is on {len(names_with_role)} nodes "
                f"({', '.join(names_with_role)}); expected exactly one"
            )
    return info, problems


def check_storageclasses(doc: object, required: list[str]) -> tuple[list[str], list[str]]:
    classes = items(doc, "StorageClass")
    problems: list[str] = []
    defaults = [
        name_of(sc)
        for sc in classes
        if any(sc.get("metadata", {}).get("annotations", {}).get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS)
    ]
    present = {name_of(sc): sc.get("provisioner", "?") for sc in classes}
    if not defaults:
        problems.append(
            "storage: no default StorageClass (annotation storageclass.kubernetes.io/is-default-class=true); "
            f"classes present: {', '.join(sorted(present)) or 'none'}"
        )
    elif len(defaults) > 1:
        problems.append(f"storage: {len(defaults)} default StorageClasses ({', '.join(sorted(defaults))}); expected one")
    for name in required:
        if name not in present:
            problems.append(f"storage: StorageClass {name} is missing")
    info = [f"default StorageClass: {', '.join(defaults) or 'none'}"]
    info += [f"StorageClass {name}: {present[name]}" for name in required if name in present]
    return info, problems


def check_deployment(doc: object, ref: str) -> tuple[list[str], list[str]]:
    if not isinstance(doc, dict) or doc.get("kind") != "Deployment":
        raise BadInput("expected a Deployment")
    wanted = doc.get("spec", {}).get("replicas", 1)
    status = doc.get("status", {})
    ready = status.get("readyReplicas", 0)
    updated = status.get("updatedReplicas", 0)
    line = f"deployment {ref}: {ready}/{wanted} ready"
    if wanted < 1 or ready < wanted or updated < wanted:
        return [], [f"{line}, {updated}/{wanted} updated; expected all ready"]
    return [line], []


def check_metrics(doc: object) -> tuple[list[str], list[str]]:
    nodes = items(doc, "NodeMetrics")
    if not nodes:
        return [], ["metrics: the metrics API answers but reports no node yet"]
    return [f"metrics API: {len(nodes)} nodes reporting"], []


def check_version(doc: object, minimum: str) -> tuple[list[str], list[str]]:
    server = doc.get("serverVersion") if isinstance(doc, dict) else None
    if not isinstance(server, dict):
        raise BadInput("expected `kubectl version -o json` output with serverVersion")
    major = int("".join(ch for ch in str(server.get("major", "0")) if ch.isdigit()) or 0)
    minor = int("".join(ch for ch in str(server.get("minor", "0")) if ch.isdigit()) or 0)
    want_major, want_minor = (int(part) for part in minimum.split("."))
    version = server.get("gitVersion", f"v{major}.{minor}")
    if (major, minor) < (want_major, want_minor):
        return [], [f"kubernetes: the server runs {version}; the platform needs {minimum} or newer"]
    return [f"Kubernetes {version}"], []


def _release(version: str) -> tuple[int, ...]:
    """(major, minor, patch) of v1.6.3; pre-releases count as their release."""
    numbers = version.lstrip("v").split("-", 1)[0].split(".")
    if len(numbers) != 3 or not all(n.isdigit() for n in numbers):
        raise ValueError(f"{version!r} is not a release vMAJOR.MINOR.PATCH")
    return tuple(int(n) for n in numbers)


def check_gateway_api(doc: object, wanted: str) -> tuple[list[str], list[str]]:
    if doc == {}:
        return [f"Gateway API CRDs: not installed yet (Argo CD installs {wanted}, standard channel)"], []
    if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
        raise BadInput("expected a CustomResourceDefinition, or {} when there is none")
    annotations = doc.get("metadata", {}).get("annotations") or {}
    channel = annotations.get(GATEWAY_API_CHANNEL, "?")
    bundle = annotations.get(GATEWAY_API_BUNDLE, "?")
    found = f"Gateway API CRDs: {bundle}, {channel} channel"
    problems = []
    if channel != "standard":
        problems.append(
            f"gateway-api: the cluster has the Gateway API CRDs of the {channel} channel ({bundle}); the "
            f"platform's standard channel {wanted} would replace them and drop the kinds only that channel "
            "has: delete them first, with the manifest they came from"
        )
    try:
        newer = _release(bundle) > _release(wanted)
    except ValueError:
        newer = True
    if newer:
        problems.append(
            f"gateway-api: the cluster has the Gateway API CRDs {bundle}; the platform installs {wanted} "
            "and would downgrade them"
        )
    return ([], problems) if problems else ([found], [])


def minikube_profile(doc: object, profile: str) -> str:
    # Without ~/.minikube/profiles minikube prints {"error": …} instead of
    # an empty list: no profile either way.
    valid = doc.get("valid") if isinstance(doc, dict) else None
    for entry in valid if isinstance(valid, list) else []:
        if isinstance(entry, dict) and entry.get("Name") == profile:
            nodes = len((entry.get("Config") or {}).get("Nodes") or [])
            # Older releases say Running, newer ones OK.
            state = "running" if entry.get("Status") in ("Running", "OK") else "stopped"
            return f"{state} {nodes}"
    return "absent"


def minikube_addons_to_enable(doc: object, wanted: list[str]) -> list[str]:
    if not isinstance(doc, dict):
        raise BadInput("expected `minikube addons list -o json` output")
    unknown = [name for name in wanted if name not in doc]
    if unknown:
        raise BadInput(f"this minikube has no addon {', '.join(unknown)}")
    return [name for name in wanted if (doc[name] or {}).get("Status") != "enabled"]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[1], argv[2:]
    try:
        doc = json.load(sys.stdin)
    except ValueError as err:
        print(f"check.py {command}: the input is not JSON ({err})", file=sys.stderr)
        return 2

    checks: dict[str, Callable[[], tuple[list[str], list[str]]]] = {
        "nodes": lambda: check_nodes(doc, args),
        "roles": lambda: check_nodes(doc, args, exact=False),
        "storageclasses": lambda: check_storageclasses(doc, args),
        "deployment": lambda: check_deployment(doc, args[0]),
        "metrics": lambda: check_metrics(doc),
        "version": lambda: check_version(doc, args[0]),
        "gateway-api": lambda: check_gateway_api(doc, args[0]),
    }
    try:
        if command == "minikube-profile":
            print(minikube_profile(doc, args[0]))
            return 0
        if command == "minikube-addons":
            for name in minikube_addons_to_enable(doc, args):
                print(name)
            return 0
        if command not in checks:
            print(f"check.py: unknown subcommand {command}", file=sys.stderr)
            return 2
        info, problems = checks[command]()
    except (BadInput, IndexError, ValueError) as err:
        print(f"check.py {command}: {err or 'missing argument'}", file=sys.stderr)
        return 2
    for line in problems or info:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
