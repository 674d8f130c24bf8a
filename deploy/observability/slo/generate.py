#!/usr/bin/env python3
"""The SLO rules and dashboard of the service, generated from its declaration.

Reads deploy/observability/slo/student-api.yaml and writes
  - deploy/observability/manifests/rules/student-api-slo.yaml: a
    PrometheusRule with, per SLO, its objective, the rate of bad and of all
    requests over 5 minutes, the share of bad requests over every window an
    alert reads and over the period, the error budget left, and two alerts in
    the Workbook's multi-window, multi-burn-rate form (a page and a ticket);
  - deploy/observability/manifests/dashboards/student-api-slo.json: the SLO
    dashboard, one row per SLO.

Usage: generate.py [--check]
  --check   write nothing; exit 1, naming the files, when a committed file
            differs from what the declaration gives (tests/observability/static
            runs this check).

Owns: reading and checking the declaration, and every name, window, threshold
and query of the generated files. Must not: read anything but the
declaration, or run Prometheus (tests/observability/static and the promtool
unit tests of deploy/observability/tests/ judge what comes out).

Why a generator of our own and not Sloth or Pyrra: neither runs here (Go
binaries, and only PyPI, npm, Debian and crates.io are reachable), so the
rules they would give Prometheus could not be the rules promtool tests; and
writing the rules by hand repeats each objective in a dozen thresholds. This
file is small, its output is committed and reviewed like hand-written rules,
and the tests prove that output.

Recorded series (labels namespace and slo):
  namespace:slo_objective:ratio                    the objective, e.g. 0.999
  namespace:slo_<name>_<bad>:rate5m                bad requests per second
  namespace:slo_<name>_requests:rate5m             all requests per second
  namespace:slo_<name>_<bad>:ratio_rate<window>    share of bad requests, per window
  namespace:slo_<name>_<bad>:ratio_rate<period>    the same over the period
  namespace:slo_error_budget_remaining:ratio       1 - period share / (1 - objective)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
OBS = HERE.parent
REPO = OBS.parent.parent
DECLARATION = HERE / "student-api.yaml"
RULES = OBS / "manifests" / "rules" / "student-api-slo.yaml"
DASHBOARD = OBS / "manifests" / "dashboards" / "student-api-slo.json"
RULE_NAME = "student-api-slo"
DASHBOARD_UID = "student-api-slo"
SEVERITIES = ("critical", "warning")
# Prometheus durations of one unit, as the windows are written.
_DURATION = re.compile(r"^([1-9][0-9]*)(m|h|d)$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class DeclarationError(ValueError):
    """The declaration is not one this generator accepts; says where."""


def seconds(window: str) -> int:
    match = _DURATION.match(window)
    if not match:
        raise DeclarationError(f"{window!r} is not a duration of one unit (5m, 1h, 3d)")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def number(value: float | int | Decimal) -> str:
    """A number as the rules write it: 0.999, 14.4, 6 (never 6.0 or 1E+1)."""
    text = format(Decimal(str(value)).normalize(), "f")
    return text


@dataclass(frozen=True)
class Condition:
    burn_rate: Decimal
    long: str
    short: str


@dataclass(frozen=True)
class AlertKind:
    key: str  # "page" or "ticket"
    suffix: str
    severity: str
    for_: str
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Slo:
    name: str
    objective: Decimal
    description: str
    bad: str
    bad_query: str
    total_query: str
    threshold: Decimal | None
    annotations: dict[str, dict[str, str]]

    @property
    def budget(self) -> Decimal:
        return Decimal(1) - self.objective

    @property
    def title(self) -> str:
        return self.name.capitalize()

    def alert(self, prefix: str, kind: AlertKind) -> str:
        return f"{prefix}{self.title}{kind.suffix}"

    def bad_record(self, suffix: str) -> str:
        return f"namespace:slo_{self.name}_{self.bad}:{suffix}"

    def total_record(self) -> str:
        return f"namespace:slo_{self.name}_requests:rate5m"

    def query(self, which: str, window: str) -> str:
        text = self.bad_query if which == "bad" else self.total_query
        text = text.replace("{{window}}", window)
        if self.threshold is not None:
            text = text.replace("{{threshold}}", number(self.threshold))
        return text.strip()


@dataclass(frozen=True)
class Declaration:
    service: str
    alert_prefix: str
    period: str
    runbook: str
    kinds: tuple[AlertKind, ...]
    slos: tuple[Slo, ...]

    @property
    def windows(self) -> list[str]:
        """Every window an alert reads, shortest first."""
        found = {w for k in self.kinds for c in k.conditions for w in (c.long, c.short)}
        return sorted(found, key=seconds)


def _require(data: dict, key: str, where: str) -> Any:
    if not isinstance(data, dict) or key not in data:
        raise DeclarationError(f"{where}: {key} is missing")
    return data[key]


def _fraction(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DeclarationError(f"{where}: {value!r} is not a number")
    result = Decimal(str(value))
    if not Decimal(0) < result < Decimal(1):
        raise DeclarationError(f"{where}: {value} is not between 0 and 1")
    return result


def parse(data: dict) -> Declaration:
    kinds = []
    for key in ("page", "ticket"):
        kind = _require(_require(data, "alerts", "declaration"), key, "alerts")
        where = f"alerts.{key}"
        severity = _require(kind, "severity", where)
        if severity not in SEVERITIES:
            raise DeclarationError(f"{where}.severity: {severity!r} is not one of {', '.join(SEVERITIES)}")
        seconds(_require(kind, "for", where))
        conditions = []
        for i, c in enumerate(_require(kind, "conditions", where)):
            at = f"{where}.conditions[{i}]"
            rate = _require(c, "burn_rate", at)
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0:
                raise DeclarationError(f"{at}.burn_rate: {rate!r} is not a positive number")
            long, short = _require(c, "long", at), _require(c, "short", at)
            if not seconds(short) < seconds(long):
                raise DeclarationError(f"{at}: the short window {short} is not shorter than the long one {long}")
            conditions.append(Condition(Decimal(str(rate)), long, short))
        if not conditions:
            raise DeclarationError(f"{where}.conditions: none")
        kinds.append(AlertKind(key, _require(kind, "suffix", where), severity, kind["for"], tuple(conditions)))

    slos = []
    for i, s in enumerate(_require(data, "slos", "declaration")):
        where = f"slos[{i}]"
        name, bad = _require(s, "name", where), _require(s, "bad", where)
        for value in (name, bad):
            if not _NAME.match(str(value)):
                raise DeclarationError(f"{where}: {value!r} is not a lowercase name (a-z, 0-9, _)")
        queries = _require(s, "queries", where)
        bad_query, total_query = _require(queries, "bad", where), _require(queries, "total", where)
        for which, text in (("bad", bad_query), ("total", total_query)):
            if "{{window}}" not in text:
                raise DeclarationError(f"{where}.queries.{which}: no {{{{window}}}} to put the window in")
        threshold = None
        if "threshold" in s:
            threshold = Decimal(str(s["threshold"]))
            if "{{threshold}}" not in bad_query:
                raise DeclarationError(f"{where}: a threshold that queries.bad does not use")
        elif "{{threshold}}" in bad_query + total_query:
            raise DeclarationError(f"{where}: queries use {{{{threshold}}}} but no threshold is given")
        annotations = _require(s, "annotations", where)
        for kind in kinds:
            for key in ("summary", "description"):
                if not str(_require(_require(annotations, kind.key, f"{where}.annotations"), key, where)).strip():
                    raise DeclarationError(f"{where}.annotations.{kind.key}.{key} is empty")
        slos.append(
            Slo(
                name=name,
                objective=_fraction(_require(s, "objective", where), f"{where}.objective"),
                description=_require(s, "description", where),
                bad=bad,
                bad_query=bad_query,
                total_query=total_query,
                threshold=threshold,
                annotations=annotations,
            )
        )
    if len({s.name for s in slos}) != len(slos):
        raise DeclarationError("slos: two SLOs share a name")
    if not slos:
        raise DeclarationError("slos: none declared")
    period = _require(data, "period", "declaration")
    seconds(period)
    return Declaration(
        service=_require(data, "service", "declaration"),
        alert_prefix=_require(data, "alert_prefix", "declaration"),
        period=period,
        runbook=_require(data, "runbook", "declaration"),
        kinds=tuple(kinds),
        slos=tuple(slos),
    )


def load(path: Path = DECLARATION) -> Declaration:
    return parse(yaml.safe_load(path.read_text(encoding="utf-8")))


# ------------------------------------------------------------------ rules
def alert_expr(slo: Slo, kind: AlertKind) -> str:
    """The Workbook's form: (long > rate * budget and short > rate * budget) or ..."""
    budget = number(slo.budget)
    parts = []
    for c in kind.conditions:
        threshold = f"({number(c.burn_rate)} * {budget})"
        parts.append(
            "(\n"
            f"    {slo.bad_record('ratio_rate' + c.long)} > {threshold}\n"
            "  and\n"
            f"    {slo.bad_record('ratio_rate' + c.short)} > {threshold}\n"
            ")"
        )
    return "\nor\n".join(parts) + "\n"


def ratio_expr(slo: Slo, window: str) -> str:
    return f"(\n{_indent(slo.query('bad', window), 2)}\n)\n/\n(\n{_indent(slo.query('total', window), 2)}\n)\n"


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line if line else line for line in text.splitlines())


def rule_groups(decl: Declaration) -> list[dict]:
    groups = []
    for slo in decl.slos:
        labels = {"slo": slo.name}
        rules: list[dict] = [
            {
                "record": "namespace:slo_objective:ratio",
                "expr": f"vector({number(slo.objective)})",
                "labels": {"namespace": decl.service, **labels},
            },
            {"record": slo.bad_record("rate5m"), "expr": slo.query("bad", "5m") + "\n", "labels": labels},
            {"record": slo.total_record(), "expr": slo.query("total", "5m") + "\n", "labels": labels},
        ]
        for window in decl.windows:
            rules.append({"record": slo.bad_record(f"ratio_rate{window}"), "expr": ratio_expr(slo, window), "labels": labels})
        # The period from the 5-minute rates: a sum over time weighs every
        # 5 minutes by its traffic, as a rate over the whole period would,
        # and reads one series per SLO instead of every raw series.
        rules.append(
            {
                "record": slo.bad_record(f"ratio_rate{decl.period}"),
                "expr": (
                    f"sum_over_time({slo.bad_record('rate5m')}[{decl.period}])\n"
                    "/\n"
                    f"sum_over_time({slo.total_record()}[{decl.period}])\n"
                ),
                "labels": labels,
            }
        )
        rules.append(
            {
                "record": "namespace:slo_error_budget_remaining:ratio",
                "expr": f"1 - {slo.bad_record('ratio_rate' + decl.period)} / {number(slo.budget)}\n",
                "labels": labels,
            }
        )
        for kind in decl.kinds:
            name = slo.alert(decl.alert_prefix, kind)
            rules.append(
                {
                    "alert": name,
                    "expr": alert_expr(slo, kind),
                    "for": kind.for_,
                    "labels": {"severity": kind.severity, **labels},
                    "annotations": {
                        "summary": slo.annotations[kind.key]["summary"],
                        "description": slo.annotations[kind.key]["description"],
                        "runbook_url": decl.runbook + name.lower(),
                    },
                }
            )
        groups.append({"name": f"{RULE_NAME}.{slo.name}", "rules": rules})
    return groups


class _Dumper(yaml.SafeDumper):
    """Block scalars for multi-line strings; sequences indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:  # noqa: FBT001
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    """Expressions as literal blocks, long sentences folded, the rest plain."""
    style = None
    if "\n" in value:
        style = "|"
    elif len(value) > 80 and " " in value:
        style = ">"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def rules_text(decl: Declaration) -> str:
    header = (
        "# GENERATED from deploy/observability/slo/student-api.yaml by\n"
        "# deploy/observability/slo/generate.py: edit the declaration and run the\n"
        "# generator, never this file (tests/observability/static compares them).\n"
        "# Unit tests: deploy/observability/tests/student-api-slo.test.yaml.\n"
        "#\n"
        "# Per SLO: its objective; bad and all API requests per second over 5\n"
        "# minutes; the share of bad requests over each window the alerts read and\n"
        f"# over the period ({decl.period}); the error budget left (1 at the start,\n"
        "# 0 spent, below 0 overspent); a page and a ticket that fire while both\n"
        "# windows of one of their conditions burn the budget faster than the\n"
        "# condition's rate (the Google SRE Workbook, \"Alerting on SLOs\").\n"
    )
    document = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": RULE_NAME,
            "namespace": "observability",
            "labels": {"app.kubernetes.io/name": "student-api-slo-rules", "app.kubernetes.io/component": "monitoring"},
        },
        "spec": {"groups": rule_groups(decl)},
    }
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100, allow_unicode=True)
    return header + body


# -------------------------------------------------------------- dashboard
_PROMETHEUS = {"type": "prometheus", "uid": "prometheus"}


def _target(ref: str, expr: str, legend: str = "") -> dict:
    target = {"refId": ref, "datasource": _PROMETHEUS, "expr": expr}
    if legend:
        target["legendFormat"] = legend
    return target


def _stat(title: str, expr: str, unit: str, steps: list[dict], decimals: int | None = None) -> dict:
    defaults: dict[str, Any] = {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}, "mappings": []}
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "stat",
        "title": title,
        "datasource": _PROMETHEUS,
        "targets": [_target("A", expr)],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "auto",
        },
    }


def _timeseries(title: str, targets: list[dict], unit: str, thresholds: list[dict] | None = None) -> dict:
    custom: dict[str, Any] = {"drawStyle": "line", "fillOpacity": 10, "stacking": {"mode": "none"}}
    defaults: dict[str, Any] = {"unit": unit, "custom": custom}
    if thresholds:
        custom["thresholdsStyle"] = {"mode": "dashed"}
        defaults["thresholds"] = {"mode": "absolute", "steps": thresholds}
    return {
        "type": "timeseries",
        "title": title,
        "datasource": _PROMETHEUS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def slo_panels(decl: Declaration, slo: Slo, y: int) -> list[dict]:
    """One row: the SLI and the budget left now, the budget over time, the burn
    rate of every window against the alerts' rates, the traffic."""
    selector = f'{{namespace="{decl.service}", slo="{slo.name}"}}'
    objective = f"namespace:slo_objective:ratio{selector}"
    period_ratio = slo.bad_record(f"ratio_rate{decl.period}") + selector
    budget_left = f"namespace:slo_error_budget_remaining:ratio{selector}"
    # Burn rate: the share of bad requests over the share the objective allows.
    burn = [
        _target(chr(ord("A") + i), f"{slo.bad_record('ratio_rate' + w)}{selector} / on (namespace, slo) (1 - {objective})", w)
        for i, w in enumerate(decl.windows)
    ]
    rates = sorted({c.burn_rate for k in decl.kinds for c in k.conditions})
    burn_steps = [{"color": "green", "value": None}] + [
        {"color": "orange" if r < max(rates) else "red", "value": float(r)} for r in rates
    ]
    objective_value = float(slo.objective)
    panels = [
        {
            "type": "row",
            "title": f"{slo.title}: {slo.description}",
            "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
            "panels": [],
        },
        (_stat(f"SLI over {decl.period}", f"1 - {period_ratio}", "percentunit",
               [{"color": "red", "value": None}, {"color": "green", "value": objective_value}], 3), (0, 1, 4, 5)),
        (_stat("Objective", objective, "percentunit", [{"color": "blue", "value": None}], 3), (4, 1, 4, 5)),
        (_stat("Error budget left", budget_left, "percentunit",
               [{"color": "red", "value": None}, {"color": "orange", "value": 0}, {"color": "green", "value": 0.25}], 1),
         (8, 1, 4, 5)),
        (_timeseries("Error budget left", [_target("A", budget_left, "budget left")], "percentunit",
                     [{"color": "red", "value": None}, {"color": "green", "value": 0}]), (12, 1, 12, 5)),
        (_timeseries("Burn rate by window (1 spends the budget in exactly the period)", burn, "x", burn_steps),
         (0, 6, 12, 8)),
        (_timeseries(
            f"{slo.bad.capitalize()} and all API requests/s",
            [
                _target("A", f"{slo.bad_record('rate5m')}{selector}", slo.bad),
                _target("B", f"{slo.total_record()}{selector}", "all"),
            ],
            "reqps",
        ), (12, 6, 12, 8)),
    ]
    out = []
    for item in panels:
        if isinstance(item, tuple):
            panel, (x, dy, w, h) = item
            panel["gridPos"] = {"h": h, "w": w, "x": x, "y": y + dy}
            out.append(panel)
        else:
            out.append(item)
    return out


def dashboard(decl: Declaration) -> dict:
    panels, y = [], 0
    for slo in decl.slos:
        panels += slo_panels(decl, slo, y)
        y += 14
    for i, panel in enumerate(panels, 1):
        panel["id"] = i
    return {
        "uid": DASHBOARD_UID,
        "title": f"{decl.service} / SLOs",
        "description": (
            f"The service-level objectives of {decl.service} over {decl.period}: the SLI, the error budget left and "
            "how fast each window burns it. GENERATED by deploy/observability/slo/generate.py from "
            "deploy/observability/slo/student-api.yaml; the series are the recording rules of "
            "manifests/rules/student-api-slo.yaml."
        ),
        "tags": [decl.service, "slo"],
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-7d", "to": "now"},
        "refresh": "1m",
        "timezone": "utc",
        "annotations": {"list": []},
        "links": [
            {"title": f"{decl.service} / service", "type": "link", "url": f"/d/{decl.service}", "targetBlank": False},
        ],
        "templating": {"list": []},
        "panels": panels,
    }


def dashboard_text(decl: Declaration) -> str:
    return json.dumps(dashboard(decl), indent=2) + "\n"


def outputs(decl: Declaration) -> dict[Path, str]:
    return {RULES: rules_text(decl), DASHBOARD: dashboard_text(decl)}


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    try:
        decl = load()
    except DeclarationError as error:
        print(f"{_shown(DECLARATION)}: {error}", file=sys.stderr)
        return 1
    stale = []
    for path, text in outputs(decl).items():
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        if args.check:
            stale.append(_shown(path))
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {_shown(path)}")
    if stale:
        print(f"out of date with {_shown(DECLARATION)}: {', '.join(stale)}; "
              "run deploy/observability/slo/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
