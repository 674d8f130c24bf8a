"""Reading the observability content: rule files, the Loki rule, dashboards,
the runbook, the metric names a PromQL expression reads, the labels a LogQL
expression reads, and Alloy's log pipeline (through alloy_config).

Owns: turning files under deploy/observability and docs/runbooks into plain
Python data for the tests. Must not: start processes or judge what it reads
(the test_*.py files do).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

REPO = Path(__file__).resolve().parents[3]
OBS = REPO / "deploy" / "observability"
RULES_DIR = OBS / "manifests" / "rules"
UNIT_TESTS_DIR = OBS / "tests"
DASHBOARDS_DIR = OBS / "manifests" / "dashboards"
RUNBOOK = REPO / "docs" / "runbooks" / "alerts.md"
RUNBOOK_URL = "https://github.com/student-api/student-api/blob/main/docs/runbooks/alerts.md#"
ALLOY_CONFIG = OBS / "alloy" / "config.alloy"
OPERATIONS_DOC = REPO / "docs" / "operations.md"
ARGOCD_TEMPLATES_DIR = REPO / "deploy" / "argocd" / "platform" / "templates"
# A Helm action ({{ ... }}) of the platform chart's templates.
HELM_ACTION = re.compile(r"{{.*?}}", re.S)
CHARTS = (
    "kube-prometheus-stack",
    "loki",
    "tempo",
    "alloy",
    "prometheus-postgres-exporter",
    "prometheus-blackbox-exporter",
)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def values(chart: str, env: str = "") -> dict:
    """values.yaml of a chart, or values-<env>.yaml when env is given."""
    name = f"values-{env}.yaml" if env else "values.yaml"
    return load_yaml(OBS / chart / name) or {}


def merged_values(chart: str, env: str) -> dict:
    """values.yaml with values-<env>.yaml on top, merged as Helm does (maps
    deep, everything else replaced); values.yaml alone when env is ""."""
    return deep_merge(values(chart), values(chart, env)) if env else values(chart)


def deep_merge(base: Any, top: Any) -> Any:
    if isinstance(base, dict) and isinstance(top, dict):
        out = dict(base)
        for key, value in top.items():
            out[key] = deep_merge(base.get(key), value) if key in base else value
        return out
    return top


def dig(data: Any, path: str) -> Any:
    """data["a"]["b"]... for "a.b..."; None when a key is missing."""
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


# ------------------------------------------------------------------ rules
def rule_files() -> dict[str, dict]:
    """PrometheusRule documents by file stem (manifests/rules/<stem>.yaml)."""
    return {p.stem: load_yaml(p) for p in sorted(RULES_DIR.glob("*.yaml"))}


@dataclass(frozen=True)
class Rule:
    source: str  # "rules/<stem>.yaml" or "loki values"
    group: str
    body: dict

    @property
    def alert(self) -> str | None:
        return self.body.get("alert")

    @property
    def record(self) -> str | None:
        return self.body.get("record")


def prometheus_rules() -> list[Rule]:
    out = []
    for stem, doc in rule_files().items():
        for group in doc["spec"]["groups"]:
            for rule in group["rules"]:
                out.append(Rule(f"rules/{stem}.yaml", group["name"], rule))
    return out


def loki_rule_groups() -> list[dict]:
    """Rule groups of the ConfigMaps labelled loki_rule in the Loki values."""
    groups = []
    for obj in values("loki").get("extraObjects", []):
        if obj.get("kind") == "ConfigMap" and "loki_rule" in obj["metadata"].get("labels", {}):
            for text in obj["data"].values():
                groups += yaml.safe_load(text)["groups"]
    return groups


def loki_rules() -> list[Rule]:
    return [Rule("loki values", g["name"], r) for g in loki_rule_groups() for r in g["rules"]]


def all_alerts() -> list[Rule]:
    return [r for r in prometheus_rules() + loki_rules() if r.alert]


def recorded_names() -> set[str]:
    return {r.record for r in prometheus_rules() if r.record}


def write_rule_groups(directory: Path) -> dict[str, Path]:
    """Writes spec.groups of each PrometheusRule to <directory>/<stem>.yaml,
    the plain rule-file format promtool reads."""
    out = {}
    for stem, doc in rule_files().items():
        path = directory / f"{stem}.yaml"
        path.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}, sort_keys=False))
        out[stem] = path
    return out


# ------------------------------------------------------------- dashboards
@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    datasource: str  # "prometheus", "loki" or "tempo" (uid)
    expr: str  # PromQL, LogQL or TraceQL
    variable_query: bool = False


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def _panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_queries() -> list[Query]:
    out = []
    for name, dash in dashboards().items():
        for panel in _panels(dash.get("panels", [])):
            for target in panel.get("targets", []):
                uid = (target.get("datasource") or panel.get("datasource") or {}).get("uid", "")
                # Prometheus and Loki targets hold an expr, Tempo's a query.
                out.append(Query(name, panel.get("title", ""), uid, target.get("expr", target.get("query", ""))))
        for var in dash.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
                out.append(Query(name, f"variable {var['name']}", var["datasource"]["uid"], query, True))
    return out


# Values that stand for Grafana's variables when a query is checked: ranges
# become a duration, template variables a regex that matches anything.
GRAFANA_RANGES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
}


def substitute_grafana(expr: str) -> str:
    for name, value in GRAFANA_RANGES.items():
        expr = expr.replace(name, value)
    expr = re.sub(r"\$\{\w+(?::\w+)?\}|\$\w+", ".*", expr)
    return expr


_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*[A-Za-z_]\w*\s*\)\s*$", re.S)


def variable_selector(query: str) -> str:
    """The series selector of a label_values(selector, label) variable."""
    match = _LABEL_VALUES.match(query)
    if not match:
        raise ValueError(f"not a label_values() query: {query}")
    return match.group(1)


# ------------------------------------------------------------------ PromQL
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
}
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w.:])([A-Za-z_:][A-Za-z0-9_:]*)")


def metric_names(expr: str) -> set[str]:
    """Names of the series a PromQL expression selects.

    A small lexer, not a parser (the expressions are parsed by promtool
    elsewhere): strings, label matchers, ranges and grouping label lists
    are blanked out; what remains as an identifier that is neither a
    keyword nor followed by "(" is a metric name.
    """
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^{}]*\}", "{}", text)
    text = re.sub(r"\[[^\[\]]*\]", "", text)
    previous = None
    while previous != text:
        previous, text = text, _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name = match.group(1)
        rest = text[match.end():].lstrip()
        if name in _KEYWORDS or rest.startswith("("):
            continue
        names.add(name)
    return names


# ------------------------------------------------------------------- LogQL
_LOGQL_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:\\.|[^"\\])*)"')
_LOGQL_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^()]*)\)")
_LOGQL_PARSER = re.compile(r"\|\s*(json|logfmt|regexp|pattern|unpack)\b")
_LOGQL_LABEL_FILTER = re.compile(r"\|\s*([A-Za-z_]\w*)\s*(?:=~|!~|!=|==|>=|<=|=|>|<)")


def _selector_bodies(expr: str) -> list[str]:
    """The text inside each {...} of an expression; braces inside quoted
    strings (a route template such as "/api/v1/students/{id}") do not count."""
    blanked = _STRING.sub(lambda m: " " * len(m.group()), expr)
    return [expr[m.start() + 1 : m.end() - 1] for m in re.finditer(r"\{[^{}]*\}", blanked)]


def logql_selectors(expr: str) -> list[dict[str, tuple[str, str]]]:
    """Each stream selector of a LogQL expression: label -> (operator, value)."""
    return [
        {m.group(1): (m.group(2), m.group(3)) for m in _LOGQL_MATCHER.finditer(body)}
        for body in _selector_bodies(expr)
    ]


def logql_grouping_labels(expr: str) -> set[str]:
    """Labels named in by (...) and without (...) clauses."""
    return {name.strip() for group in _LOGQL_GROUPING.findall(expr) for name in group.split(",") if name.strip()}


def logql_parses_line(expr: str) -> bool:
    """Whether the expression parses the line into labels (| json and kin)."""
    return bool(_LOGQL_PARSER.search(expr))


def logql_label_filters(expr: str) -> set[str]:
    """Labels a pipeline filters on after a `|` (line filters |= |~ aside)."""
    return {m.group(1) for m in _LOGQL_LABEL_FILTER.finditer(expr)} - {"json", "logfmt", "regexp", "pattern", "unpack"}


# ------------------------------------------------------------------- Alloy
def alloy_pipeline():  # -> alloy_config.LogPipeline
    import alloy_config

    return alloy_config.LogPipeline.from_file(ALLOY_CONFIG)


def documented_log_line() -> dict:
    """The access-log line docs/operations.md shows, as JSON."""
    text = OPERATIONS_DOC.read_text(encoding="utf-8")
    match = re.search(r"```json\n(.*?)\n```", text, re.S)
    if not match:
        raise ValueError("docs/operations.md shows no ```json example log line")
    return json.loads(match.group(1).replace("\n", " "))


def application_namespaces() -> set[str]:
    """Destination namespaces of every Argo CD Application of the platform
    chart (both environments: production-only templates too). The templates
    are read as YAML with their Helm actions removed, as Renovate's argocd
    manager reads them; every destination is written out in its template
    (tests/argocd renders the chart itself)."""
    names = set()
    for path in sorted(ARGOCD_TEMPLATES_DIR.glob("*.yaml")):
        text = HELM_ACTION.sub("", path.read_text(encoding="utf-8"))
        for doc in yaml.safe_load_all(text):
            if doc and doc.get("kind") == "Application":
                names.add(doc["spec"]["destination"]["namespace"])
    return names


# ----------------------------------------------------------------- runbook
def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def runbook_sections() -> dict[str, str]:
    """Second-level sections of docs/runbooks/alerts.md: anchor -> body."""
    sections: dict[str, str] = {}
    current = None
    for line in RUNBOOK.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            current = github_anchor(line[3:])
            sections[current] = ""
        elif current is not None:
            sections[current] += line + "\n"
    return sections
