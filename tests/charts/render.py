#!/usr/bin/env python3
"""Renders and lints every Helm chart of the repository offline, with the Helm SDK.

Owns: finding the charts (every deploy/helm/*/Chart.yaml) and their values
combinations, rendering each combination, `helm lint --strict` of each, and
writing what was rendered under .tmp/charts/:

    <chart>/<values-name>.yaml               the whole render, for validate.py
    <chart>/<values-name>/NNN-<kind>-<name>.yaml
                                             one document per file, for checkov
                                             and check-jsonschema
    index.json                               what was rendered (counts, files)

Must not: contact a cluster or the network, or print a value of a Secret.

Values combinations of a chart, in this order: `values` (values.yaml alone,
that is the chart's defaults), then `values-<env>` for each values-<env>.yaml
beside it (values.yaml with that file on top, as `helm install -f` does).
The release is named after the chart; its namespace comes from
CHART_NAMESPACES below, the one place that says where each chart goes.

Helm is the real one (helm-python-sdk binds Helm's Go SDK): render errors
surface as HelmError exceptions; lint findings come back as a report, and
with strict=True every warning is listed under "errors" too.

Usage: render.py [--charts-dir DIR] [--out DIR] [--chart NAME ...]
Exit status: 0 when every chart renders and lints clean, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

REPO = Path(__file__).resolve().parents[2]
CHARTS_DIR = REPO / "deploy" / "helm"
OUT_DIR = REPO / ".tmp" / "charts"

# Where each chart is installed (`helm install -n`). A chart missing here
# fails the run: every namespace-scoped object is checked against it.
CHART_NAMESPACES = {
    "student-api": "student-api",
    "postgres": "database",
}

# Rendered templates that are not manifests.
NOT_MANIFESTS = ("NOTES.txt",)

# Helm's own document separator: a line starting with "---".
_SEPARATOR = re.compile(r"^---[ \t]*(?:#.*)?$", re.MULTILINE)


class RenderError(Exception):
    """A chart or values file cannot be rendered or fails lint."""


@dataclass(frozen=True)
class Combo:
    """One chart with one values combination."""

    chart: str
    chart_dir: Path
    values_name: str  # "values" or "values-<env>"
    overlay: Path | None  # values-<env>.yaml, None for values.yaml alone
    namespace: str

    @property
    def id(self) -> str:
        return f"{self.chart}/{self.values_name}"


@dataclass
class Document:
    """One rendered YAML document."""

    template: str  # e.g. "student-api/templates/deployment.yaml"
    text: str  # as Helm rendered it
    obj: Any  # parsed

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", "")) if isinstance(self.obj, dict) else ""

    @property
    def name(self) -> str:
        meta = self.obj.get("metadata") if isinstance(self.obj, dict) else None
        return str(meta.get("name", "")) if isinstance(meta, dict) else ""


@dataclass
class Rendered:
    combo: Combo
    documents: list[Document] = field(default_factory=list)


def discover(charts_dir: Path = CHARTS_DIR, only: list[str] | None = None) -> list[Combo]:
    """Every chart × values combination under charts_dir, in a stable order."""
    combos: list[Combo] = []
    for chart_yaml in sorted(charts_dir.glob("*/Chart.yaml")):
        chart_dir = chart_yaml.parent
        chart = chart_dir.name
        if only and chart not in only:
            continue
        namespace = CHART_NAMESPACES.get(chart)
        if namespace is None:
            raise RenderError(
                f"{chart_dir}: no namespace known for chart {chart!r}; "
                "add it to CHART_NAMESPACES in tests/charts/render.py"
            )
        combos.append(Combo(chart, chart_dir, "values", None, namespace))
        for overlay in sorted(chart_dir.glob("values-*.yaml")):
            combos.append(Combo(chart, chart_dir, overlay.stem, overlay, namespace))
    return combos


def overlay_values(combo: Combo) -> dict[str, Any]:
    """The values given on top of the chart's defaults (Helm's YAML parser)."""
    if combo.overlay is None:
        return {}
    text = combo.overlay.read_text(encoding="utf-8")
    if not text.strip():
        return {}
    try:
        values = helm.values_from_yaml(text)
    except helm.HelmError as error:
        raise RenderError(f"{combo.overlay}: {error}") from None
    return values or {}


def split_documents(template: str, text: str) -> list[Document]:
    """The non-empty documents of one rendered template, parsed."""
    documents = []
    for number, chunk in enumerate(_SEPARATOR.split(text), start=1):
        try:
            obj = yaml.safe_load(chunk)
        except yaml.YAMLError as error:
            # The message quotes a line or two of the template, never a value
            # taken from elsewhere.
            raise RenderError(f"{template}: document {number} is not valid YAML: {error}") from None
        if obj is None:
            continue
        documents.append(Document(template, chunk.strip("\n") + "\n", obj))
    return documents


def render(combo: Combo) -> Rendered:
    """Renders one combination; RenderError says what failed and where."""
    values = overlay_values(combo)
    try:
        with helm.Chart.load(combo.chart_dir) as chart:
            if chart.name != combo.chart:
                raise RenderError(
                    f"{combo.chart_dir}/Chart.yaml: name is {chart.name!r}, "
                    f"but the directory is {combo.chart!r}; they must match"
                )
            manifests = chart.render(values, name=combo.chart, namespace=combo.namespace, is_install=True)
    except helm.HelmError as error:
        raise RenderError(f"{combo.id}: helm render failed ({type(error).__name__}): {error}") from None
    rendered = Rendered(combo)
    for template in sorted(manifests):
        if template.rsplit("/", 1)[-1] in NOT_MANIFESTS:
            continue
        rendered.documents.extend(split_documents(template, manifests[template]))
    if not rendered.documents:
        raise RenderError(f"{combo.id}: the chart renders no Kubernetes document")
    return rendered


def lint(combo: Combo) -> list[str]:
    """`helm lint --strict` findings (warnings and errors) for one combination."""
    try:
        values = overlay_values(combo)
    except RenderError:
        return []  # render() has reported the broken values file already
    try:
        report = helm.lint(combo.chart_dir, values or None, strict=True, namespace=combo.namespace)
    except helm.HelmError as error:
        return [f"{combo.id}: helm lint could not run ({type(error).__name__}): {error}"]
    findings = [
        f"{combo.id}: lint [{_SEVERITY.get(m.get('severity'), 'unknown')}] "
        f"{m.get('path', '')}: {m.get('error', '').strip()}"
        for m in report.get("messages", [])
        if m.get("severity", 0) >= 2
    ]
    if report.get("errors") and not findings:
        findings = [f"{combo.id}: lint: {e.strip()}" for e in report["errors"]]
    return findings


_SEVERITY = {0: "unknown", 1: "info", 2: "warning", 3: "error"}


def file_stem(index: int, doc: Document) -> str:
    """NNN-<kind>-<name>, in lower case and safe as a file name."""
    kind = re.sub(r"[^a-z0-9.-]+", "-", doc.kind.lower()) or "unknown"
    name = re.sub(r"[^a-z0-9.-]+", "-", doc.name.lower()) or "unnamed"
    return f"{index:03d}-{kind}-{name}"


def write(rendered: Rendered, out_dir: Path) -> dict[str, Any]:
    """Writes one combination's files; returns its entry of index.json."""
    combo = rendered.combo
    whole = out_dir / combo.chart / f"{combo.values_name}.yaml"
    per_doc = out_dir / combo.chart / combo.values_name
    if per_doc.exists():
        shutil.rmtree(per_doc)
    per_doc.mkdir(parents=True)
    parts, documents = [], []
    for index, doc in enumerate(rendered.documents, start=1):
        parts.append(f"# Source: {doc.template}\n{doc.text}")
        path = per_doc / f"{file_stem(index, doc)}.yaml"
        path.write_text(doc.text, encoding="utf-8")
        api_version = doc.obj.get("apiVersion") if isinstance(doc.obj, dict) else None
        documents.append(
            {"file": str(path), "template": doc.template, "apiVersion": api_version, "kind": doc.kind, "name": doc.name}
        )
    whole.write_text("---\n".join(parts), encoding="utf-8")
    return {
        "id": combo.id,
        "chart": combo.chart,
        "values": combo.values_name,
        "namespace": combo.namespace,
        "file": str(whole),
        "dir": str(per_doc),
        "documents": documents,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render and lint every Helm chart offline.")
    parser.add_argument("--charts-dir", type=Path, default=CHARTS_DIR, help="default %(default)s")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="default %(default)s")
    parser.add_argument("--chart", action="append", help="only this chart (repeatable)")
    args = parser.parse_args(argv)

    # Nothing of an earlier run may be checked again as if just rendered.
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    index: dict[str, Any] = {"charts": [], "combos": []}
    try:
        combos = discover(args.charts_dir, args.chart)
    except RenderError as error:
        (args.out / "index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        print(f"render: {error}", file=sys.stderr)
        return 1
    index["charts"] = sorted({c.chart for c in combos})
    problems: list[str] = []
    for combo in combos:
        try:
            rendered = render(combo)
        except RenderError as error:
            # Lint would only say the same again.
            problems.append(str(error))
            continue
        entry = write(rendered, args.out)
        index["combos"].append(entry)
        print(f"render: {combo.id}: {len(entry['documents'])} document(s) -> {entry['file']}", file=sys.stderr)
        findings = lint(combo)
        problems.extend(findings)
        if not findings:
            print(f"render: {combo.id}: helm lint --strict clean", file=sys.stderr)
    (args.out / "index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    for problem in problems:
        print(problem)
    documents = sum(len(c["documents"]) for c in index["combos"])
    summary = f"{len(index['charts'])} chart(s), {len(combos)} combination(s), {documents} document(s)"
    if problems:
        print(f"render: {len(problems)} problem(s); {summary}", file=sys.stderr)
        return 1
    print(f"render: {summary}, all rendered and lint-clean", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
