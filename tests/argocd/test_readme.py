"""The README's pictures, kept true to the repository.

README.md draws the platform and the service in Mermaid. The platform
picture must name every Argo CD Application of the app-of-apps (both
variants, the root included) and nothing else as a component, each on the
node its pods are pinned to; the service picture must name only modules that
exist and every module of the crate. Mermaid itself renders both pictures in
tests/ui/diagrams.test.mjs; this file checks what they say.

The pictures follow a few conventions, which the parser below enforces (a
line it does not understand fails the test, so a convention cannot drift
silently): one statement per line; nodes declared on their own line as
`id["label"]`, `id(["label"])` or `id[("label")]`, with `:::app` (a platform
component: the first line of its label is the Application's name) or
`:::mod` (a module of the service: the first line of its label is its path
under crates/student-api/src, `main.rs` included); edges name declared ids
only; the platform's node roles are subgraphs `role_<type label>`.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "charts")]

import gitops  # noqa: E402
import hardening  # noqa: E402  (tests/charts: the node roles of our charts)
from workloads import workloads  # noqa: E402  (tests/charts)

README = gitops.REPO / "README.md"
CRATE_SRC = gitops.REPO / "crates" / "student-api" / "src"

NODE = re.compile(
    r'^(?P<id>[A-Za-z][A-Za-z0-9_]*)'
    r'(?:\["(?P<box>[^"]+)"\]|\(\["(?P<stadium>[^"]+)"\]\)|\[\("(?P<cylinder>[^"]+)"\)\])'
    r'(?::::(?P<cls>[a-z]+))?$'
)
EDGE_ARROW = re.compile(r'\s*(?:-->|-\.->)(?:\|"[^"|]+"\|)?\s*')
SUBGRAPH = re.compile(r'^subgraph (?P<id>[A-Za-z][A-Za-z0-9_]*)\["(?P<title>[^"]+)"\]$')
IGNORED = re.compile(r"^(?:flowchart (?:LR|TB|TD|RL|BT)|classDef \w+ .+|%%.*|)$")
ROLE_PREFIX = "role_"
EVERY_NODE = "every_node"
NO_PODS = "objects"


@dataclass
class Node:
    id: str
    name: str  # the first line of the label
    label: str
    cls: str | None
    groups: tuple[str, ...]  # enclosing subgraph ids, outermost first


@dataclass
class Diagram:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    subgraphs: dict[str, str] = field(default_factory=dict)

    def of_class(self, cls: str) -> dict[str, Node]:
        return {n.name: n for n in self.nodes.values() if n.cls == cls}


def mermaid_blocks(text: str) -> list[str]:
    return re.findall(r"^```mermaid\n(.*?)^```$", text, flags=re.M | re.S)


def parse(block: str) -> Diagram:
    diagram = Diagram()
    stack: list[str] = []
    problems = []
    for number, raw in enumerate(block.splitlines(), 1):
        line = raw.strip()
        if IGNORED.match(line):
            continue
        if m := SUBGRAPH.match(line):
            stack.append(m["id"])
            diagram.subgraphs[m["id"]] = m["title"]
        elif line == "end":
            if not stack:
                problems.append(f"line {number}: `end` closes no subgraph")
            else:
                stack.pop()
        elif m := NODE.match(line):
            label = m["box"] or m["stadium"] or m["cylinder"]
            if m["id"] in diagram.nodes:
                problems.append(f"line {number}: node {m['id']} declared twice")
            diagram.nodes[m["id"]] = Node(m["id"], label.split("<br/>")[0], label, m["cls"], tuple(stack))
        elif len(ids := EDGE_ARROW.split(line)) > 1 and all(re.fullmatch(r"[A-Za-z]\w*", i) for i in ids):
            undeclared = [i for i in ids if i not in diagram.nodes]
            if undeclared:
                problems.append(f"line {number}: edge names undeclared node(s) {undeclared}")
            diagram.edges.extend(zip(ids, ids[1:]))
        else:
            problems.append(f"line {number}: not understood: {line!r}")
    if stack:
        problems.append(f"subgraph(s) {stack} never closed")
    assert not problems, "README diagram:\n  " + "\n  ".join(problems)
    return diagram


def diagrams() -> tuple[Diagram, Diagram]:
    blocks = mermaid_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) == 2, f"README.md holds {len(blocks)} Mermaid diagrams; expected the platform's and the service's"
    return parse(blocks[0]), parse(blocks[1])


def applications() -> set[str]:
    dev, prod = gitops.dev_variant(), gitops.prod_variant()
    return set(dev.apps) | set(prod.apps) | {prod.root["metadata"]["name"]}


def cluster_roles() -> set[str]:
    """The node roles deploy/cluster/lib.sh gives the three nodes."""
    lib = (gitops.REPO / "deploy" / "cluster" / "lib.sh").read_text(encoding="utf-8")
    (roles,) = re.findall(r"^PLATFORM_ROLES=\((.*)\)$", lib, flags=re.M)
    return set(roles.split())


def expected_group(name: str) -> str:
    """Where an Application's pods run, as the picture's subgraph: our
    charts on their node role; an upstream chart's pods, as the values it is
    given enable them, on dependent_services, or on every node when all it
    runs is a node agent; nothing of its own (CRDs, Kustomize objects, the
    root) in the objects group."""
    if name in gitops.OWN_CHARTS:
        (role,) = hardening.NODE_ROLES[name].workloads
        return ROLE_PREFIX + role
    application = gitops.prod_variant().apps.get(name)
    if application is None:
        return NO_PODS
    if gitops.is_kustomize_app(application):
        return ROLE_PREFIX + gitops.PLATFORM_ROLE if any(workloads(gitops.kustomize_app(application))) else NO_PODS
    values = gitops.passed_values(application)
    running = {
        type(entry)
        for entry in gitops.NODE_SELECTORS.get(gitops.chart_of(application) or "", ())
        if not isinstance(entry, gitops.StaysOff) and entry.enabled(values)
    }
    if gitops.Pods in running:
        return ROLE_PREFIX + gitops.PLATFORM_ROLE
    return EVERY_NODE if gitops.NodeAgent in running else NO_PODS


def test_the_platform_picture_names_every_application_and_nothing_else():
    platform, _ = diagrams()
    drawn = set(platform.of_class("app"))
    apps = applications()
    assert drawn == apps, f"not drawn: {sorted(apps - drawn)}; drawn but no Application: {sorted(drawn - apps)}"


def test_each_component_is_drawn_on_the_node_its_pods_are_pinned_to():
    platform, _ = diagrams()
    findings = []
    for name, node in sorted(platform.of_class("app").items()):
        want = expected_group(name)
        if want not in node.groups:
            findings.append(f"{name}: drawn in {node.groups[-1:] or 'no subgraph'}, its pods run in {want}")
    assert not findings, "\n".join(findings)
    roles = {sid.removeprefix(ROLE_PREFIX) for sid in platform.subgraphs if sid.startswith(ROLE_PREFIX)}
    assert roles == cluster_roles(), "one subgraph per node role the cluster scripts label"


def test_production_only_components_say_so():
    platform, _ = diagrams()
    only_prod = gitops.PROD_APPS - gitops.DEV_APPS
    unsaid = [name for name, node in platform.of_class("app").items() if (name in only_prod) != ("production only" in node.label)]
    assert not unsaid, f"'production only' must mark exactly {sorted(only_prod)}; wrong on {sorted(unsaid)}"


def test_the_platform_picture_draws_each_flow():
    """The request, secret, telemetry and GitOps paths, as edges."""
    platform, _ = diagrams()
    edges = {(platform.nodes[a].name, platform.nodes[b].name) for a, b in platform.edges}
    for flow in (
        ("traefik", "student-api"),
        ("student-api", "postgres"),
        ("openbao", "external-secrets"),
        ("openbao", "student-api"),
        ("student-api", "alloy"),
        ("alloy", "loki"),
        ("alloy", "tempo"),
        ("student-api", "kube-prometheus-stack"),
        ("argo-cd", "root"),
    ):
        assert flow in edges, f"no arrow {flow[0]} -> {flow[1]}"


def module_path(name: str) -> Path | None:
    """The file or directory of a module path like `storage/postgres`."""
    if name.endswith(".rs"):
        candidates = [CRATE_SRC / name]
    else:
        candidates = [CRATE_SRC / f"{name}.rs", CRATE_SRC / name / "mod.rs"]
    return next((c for c in candidates if c.is_file()), None)


def crate_modules() -> set[str]:
    lib = (CRATE_SRC / "lib.rs").read_text(encoding="utf-8")
    return set(re.findall(r"^pub mod (\w+);", lib, flags=re.M))


def test_every_module_the_service_picture_names_exists():
    _, service = diagrams()
    modules = service.of_class("mod")
    missing = sorted(name for name in modules if module_path(name) is None)
    assert not missing, f"the service picture names modules that do not exist under {CRATE_SRC}: {missing}"


def test_the_service_picture_and_the_module_map_name_every_module_of_the_crate():
    _, service = diagrams()
    crate = crate_modules()
    assert crate, "lib.rs declares the crate's modules"
    drawn = {name.split("/")[0] for name in service.of_class("mod")}
    assert crate <= drawn, f"modules missing from the README's service picture: {sorted(crate - drawn)}"
    architecture = (gitops.REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    mapped = set(re.findall(r"^\| `(\w+)/?` \|", architecture, flags=re.M))
    assert crate <= mapped, f"modules missing from docs/architecture.md's table: {sorted(crate - mapped)}"


def test_the_parser_refuses_what_it_does_not_understand():
    for broken in ('a["x"] --> b', 'subgraph s["t"]', 'a[x]:::app', 'a["x"]\na --> zz'):
        with pytest.raises(AssertionError):
            parse(broken)
