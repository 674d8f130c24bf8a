#!/usr/bin/env python3
"""Configurations of the live observability test (run.sh), made from the
project's own files: the PrometheusRule groups, the Alertmanager
configuration and the blackbox exporter's targets and modules.

It only writes files into the run's work directory; it starts nothing and
reads no secret. What it changes for the run, and why, is in README.md and
printed by `configure`.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import sys
import urllib.parse
from pathlib import Path

import yaml

# ----------------------------------------------------------------- helpers


def fail(message: str) -> None:
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def say(message: str) -> None:
    print(message, flush=True)


_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION_RE = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


def parse_duration(text: object) -> float:
    """Seconds of a Prometheus duration such as 1m30s."""
    text = str(text).strip()
    parts = _DURATION_RE.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * _DURATION_UNITS[u] for n, u in parts)


def write_json(path: Path, data: object) -> None:
    """JSON is YAML: Prometheus, Alertmanager and the exporters load it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def load_documents(path: Path) -> list:
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if isinstance(doc, dict)]


# Alertmanager matchers: name op value, with =, !=, =~, !~ and optional
# quotes (the syntax of *_matchers), plus the older *_match and *_match_re.
_MATCHER_RE = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|[^\s"]*)\s*$')


def parse_matcher(text: str) -> tuple[str, str, str]:
    found = _MATCHER_RE.match(text)
    if not found:
        raise ValueError(f"cannot read matcher {text!r}")
    name, op, value = found.groups()
    if value.startswith('"'):
        value = json.loads(value)
    return name, op, value


def matchers_of(rule: dict, side: str) -> list[tuple[str, str, str]]:
    out = [parse_matcher(m) for m in rule.get(f"{side}_matchers") or []]
    out += [(k, "=", v) for k, v in (rule.get(f"{side}_match") or {}).items()]
    out += [(k, "=~", v) for k, v in (rule.get(f"{side}_match_re") or {}).items()]
    return out


def matches(labels: dict, matchers: list[tuple[str, str, str]]) -> bool:
    for name, op, value in matchers:
        have = labels.get(name, "")
        if (op == "=" and have != value) or (op == "!=" and have == value):
            return False
        if (op == "=~" and not re.fullmatch(value, have)) or (op == "!~" and re.fullmatch(value, have)):
            return False
    return True


def inhibits(rules: list[dict], source: dict, target: dict, check_equal: bool = True) -> bool:
    """Whether an alert with labels `source` inhibits one with `target`
    (Alertmanager's semantics; an alert never inhibits itself through a
    rule whose source matchers it also matches)."""
    for rule in rules:
        if not matches(source, matchers_of(rule, "source")) or not matches(target, matchers_of(rule, "target")):
            continue
        if matches(target, matchers_of(rule, "source")):
            continue
        if not check_equal or all(source.get(k, "") == target.get(k, "") for k in rule.get("equal") or []):
            return True
    return False


# ------------------------------------------------------------------- rules
#
# The only change to the project's rules (expressions and labels are loaded
# as written): every `for` and `keep_firing_for` is divided by TIME_SCALE,
# rounded up to whole seconds, so an alert's pending time fits in a short
# run while the order in which alerts fire (which the inhibitions rely on:
# PostgresDown before the service's symptoms) is kept; and a group's own
# `interval` is dropped, so every group runs at the run's evaluation
# interval.


def scaled(duration: object, scale: float) -> str:
    seconds = parse_duration(duration)
    return f"{math.ceil(seconds / scale)}s" if seconds else "0s"


def extract_rules(sources: list[Path], scale: float) -> tuple[dict, dict]:
    groups, changes, recording, alerts = [], [], [], []
    for source in sources:
        for doc in load_documents(source):
            if doc.get("kind") != "PrometheusRule":
                continue
            for group in (doc.get("spec") or {}).get("groups") or []:
                group = copy.deepcopy(group)
                if "interval" in group:
                    changes.append(f"group {group['name']}: interval {group.pop('interval')} dropped")
                for rule in group.get("rules") or []:
                    for key in ("for", "keep_firing_for"):
                        if key in rule:
                            new = scaled(rule[key], scale)
                            changes.append(f"{rule['alert']}: {key} {rule[key]} -> {new}")
                            rule[key] = new
                    if "record" in rule:
                        recording.append({"record": rule["record"], "group": group["name"]})
                    if "alert" in rule:
                        alerts.append(
                            {
                                "alert": rule["alert"],
                                "expr": str(rule["expr"]),
                                "for": rule.get("for", "0s"),
                                "labels": rule.get("labels") or {},
                            }
                        )
                groups.append(group)
    if not groups:
        fail(f"no PrometheusRule groups in {', '.join(map(str, sources))}")
    return {"groups": groups}, {"recording": recording, "alerts": alerts, "changes": changes}


def pick_alert(alerts: list[dict], override: str | None, pattern: str, what: str) -> dict:
    if override:
        found = [a for a in alerts if a["alert"] == override]
        if not found:
            fail(f"{what} alert {override!r} is not among the rules' alerts")
        return found[0]
    found = [a for a in alerts if re.search(pattern, a["expr"])]
    if not found:
        fail(f"no {what} alert in the rules (expression matching {pattern!r}); name it explicitly")
    return found[0]


# ------------------------------------------------------------ alertmanager

ROUTE_TIMERS = {"group_wait": "1s", "group_interval": "2s", "repeat_interval": "1m"}
# Integrations that reach outside the machine; each receiver that has any
# gets one webhook to the local receiver instead.
INTEGRATIONS = (
    "slack_configs", "pagerduty_configs", "email_configs", "opsgenie_configs", "webhook_configs",
    "victorops_configs", "pushover_configs", "wechat_configs", "telegram_configs", "sns_configs",
    "discord_configs", "webex_configs", "msteams_configs",
)


def _is_am_config(value: object) -> bool:
    return isinstance(value, dict) and "route" in value and "receivers" in value


def _am_config_in(doc: dict) -> tuple[dict, str] | None:
    """The configuration held by one document: a kube-prometheus-stack
    values file (alertmanager.config), a bare alertmanager.yaml, or a
    Secret / ExternalSecret template whose data holds alertmanager.yaml."""
    if _is_am_config(doc):
        return doc, "the whole file"
    alertmanager = doc.get("alertmanager")
    if isinstance(alertmanager, dict) and _is_am_config(alertmanager.get("config")):
        return alertmanager["config"], "alertmanager.config"
    target = (doc.get("spec") or {}).get("target") or {}
    for holder in (doc.get("stringData"), (target.get("template") or {}).get("data")):
        for key, value in (holder or {}).items():
            if key.startswith("alertmanager") and isinstance(value, str):
                try:
                    config = yaml.safe_load(value)
                except yaml.YAMLError:
                    continue
                if _is_am_config(config):
                    return config, f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}, key {key}"
    return None


def find_am_config(paths: list[Path]) -> tuple[dict, str] | None:
    for path in paths:
        try:
            docs = load_documents(path)
        except yaml.YAMLError:
            continue
        for doc in docs:
            found = _am_config_in(doc)
            if found:
                return found[0], f"{path} ({found[1]})"
    return None


def local_am_config(config: dict, webhook: str) -> tuple[dict, list[str]]:
    """Routes, matchers, grouping and inhibition kept as they are; only the
    receivers' integrations, the global settings only they use, the
    notification templates and the route timers change."""
    config = copy.deepcopy(config)
    changes = []
    old_global = config.get("global") or {}
    config["global"] = {k: v for k, v in old_global.items() if k == "resolve_timeout"}
    dropped = sorted(set(old_global) - set(config["global"]))
    if dropped:
        changes.append(f"global settings of the replaced integrations dropped: {', '.join(dropped)}")
    if config.pop("templates", None):
        changes.append("notification templates dropped (a webhook sends JSON)")
    for receiver in config.get("receivers") or []:
        kinds = [k for k in INTEGRATIONS if receiver.get(k)]
        for kind in kinds:
            del receiver[kind]
        if kinds:
            url = f"{webhook}/{urllib.parse.quote(receiver['name'], safe='')}"
            receiver["webhook_configs"] = [{"url": url, "send_resolved": True}]
            changes.append(f"receiver {receiver['name']}: {', '.join(kinds)} -> webhook {url}")

    def walk(route: dict, root: bool) -> None:
        for key, value in ROUTE_TIMERS.items():
            if root or key in route:
                route[key] = value
        for key in ("mute_time_intervals", "active_time_intervals"):
            if route.pop(key, None):
                changes.append(f"route to {route.get('receiver', '(parent)')}: {key} dropped")
        for child in route.get("routes") or []:
            walk(child, False)

    walk(config["route"], True)
    for key in ("time_intervals", "mute_time_intervals"):
        config.pop(key, None)
    changes.append("every route that sets them, and the root: " + ", ".join(f"{k} {v}" for k, v in ROUTE_TIMERS.items()))
    return config, changes


# -------------------------------------------------------- blackbox probes

DEFAULT_MODULE = {"prober": "http", "timeout": "1s", "http": {"preferred_ip_protocol": "ip4"}}


def service_probes(values: Path | None, alerts: list[dict], base: str) -> tuple[list[dict], dict, str]:
    """The blackbox targets of the service (/healthcheck and /ready) with the
    name (label `target`) and module the project gives them, pointed at the
    local service; and the module definitions they use."""
    probes: list[dict] = []
    modules: dict = {}
    where = ""
    if values and values.is_file():
        doc = (load_documents(values) or [{}])[0]
        monitor = doc.get("serviceMonitor") or {}
        default_module = (monitor.get("defaults") or {}).get("module", "http_2xx")
        modules = (doc.get("config") or {}).get("modules") or {}
        for target in monitor.get("targets") or []:
            url = urllib.parse.urlsplit(str(target.get("url", "")))
            if url.hostname and url.hostname.startswith("student-api") and url.path in ("/healthcheck", "/health", "/ready"):
                probes.append({"name": target["name"], "path": url.path, "module": target.get("module", default_module),
                               "url": f"{base}{url.path}"})
        where = str(values)
    if not probes:
        # Without the exporter's values: the names the rules select on.
        for alert in alerts:
            for name in re.findall(r'probe_success\{[^}]*target="(student-api-[^"]+)"', alert["expr"]):
                path = "/ready" if "ready" in name else "/healthcheck"
                if not any(p["name"] == name for p in probes):
                    probes.append({"name": name, "path": path, "module": "http_2xx", "url": f"{base}{path}"})
        where = "the rules' probe_success selectors"
    if not any(p["path"] == "/ready" for p in probes):
        fail("no blackbox target of the service's /ready found")
    used = {}
    for probe in probes:
        module = copy.deepcopy(modules.get(probe["module"], DEFAULT_MODULE))
        # A probe must end within the run's scrape timeout.
        if parse_duration(module.get("timeout", "5s")) > 1:
            module["timeout"] = "1s"
        used[probe["module"]] = module
    return probes, {"modules": used}, where


# -------------------------------------------------------------- prometheus
#
# Static scrape jobs with the target labels the Prometheus Operator gives
# the same targets in the cluster (README.md, "Labels"): job and service
# (the Service's name), namespace, endpoint (the port's name), pod and
# container; for probes, instance (the URL) and target (the probe's name).


def scrape_jobs(args: argparse.Namespace, probes: list[dict]) -> list[dict]:
    def monitor(namespace: str, name: str, service: str, endpoint: str, container: str, address: str,
                extra: dict | None = None) -> dict:
        labels = {"job": service, "namespace": namespace, "service": service, "endpoint": endpoint,
                  "pod": f"{service}-e2e", "container": container}
        labels.update(extra or {})
        return {"job_name": f"serviceMonitor/{namespace}/{name}/0",
                "static_configs": [{"targets": [address], "labels": labels}]}

    jobs = [
        monitor("student-api", "student-api", "student-api-metrics", "metrics", "student-api", args.metrics_addr),
        monitor("observability", "prometheus-postgres-exporter", "prometheus-postgres-exporter", "http",
                "prometheus-postgres-exporter", args.pg_exporter_addr),
        # kube-prometheus-stack's node-exporter: job from its jobLabel,
        # instance rewritten to the node's name.
        monitor("observability", "kube-prometheus-stack-prometheus-node-exporter",
                "kube-prometheus-stack-prometheus-node-exporter", "http-metrics", "node-exporter",
                args.node_exporter_addr, {"job": "node-exporter", "instance": "e2e-node"}),
    ]
    for probe in probes:
        job = monitor("observability", f"prometheus-blackbox-exporter-{probe['name']}", "prometheus-blackbox-exporter",
                      "http", "blackbox-exporter", args.blackbox_addr, {"target": probe["name"]})
        # The chart's ServiceMonitor: /probe?module=...&target=URL, with
        # instance set to the URL.
        job.update({"metrics_path": "/probe", "params": {"module": [probe["module"]], "target": [probe["url"]]}})
        job["static_configs"][0]["labels"]["instance"] = probe["url"]
        jobs.append(job)
    return jobs


# -------------------------------------------------------------------- main


def cmd_configure(args: argparse.Namespace) -> None:
    work = Path(args.work)
    repo = Path(args.repo)
    sources = sorted(Path(p) for p in args.rules)

    rules, summary = extract_rules(sources, args.time_scale)
    db_down = pick_alert(summary["alerts"], args.db_down_alert, r"\bpg_up\b[^=]*==\s*0\b", "database-down (pg_up == 0)")
    readiness = pick_alert(summary["alerts"], args.readiness_alert,
                           r'probe_success\{[^}]*(ready|/ready)[^}]*\}\s*==\s*0', "readiness (probe of /ready)")
    # The drill's page and ticket: the availability SLO's alerts, on its
    # 5-minute window (the page) and its 3-day one (the ticket).
    fast_burn = pick_alert(summary["alerts"], args.fast_burn_alert, r"slo_availability_errors:ratio_rate5m\b",
                           "availability fast-burn page")
    slow_burn = pick_alert(summary["alerts"], args.slow_burn_alert, r"slo_availability_errors:ratio_rate3d\b",
                           "availability slow-burn ticket")
    write_json(work / "rules.json", rules)
    say(f"rules: {len(rules['groups'])} groups, {len(summary['recording'])} recording rules, "
        f"{len(summary['alerts'])} alerts from {', '.join(str(s) for s in sources)}")
    say(f"  database-down alert: {db_down['alert']} (for {db_down['for']}); "
        f"readiness alert: {readiness['alert']} (for {readiness['for']})")
    say(f"  drill: page {fast_burn['alert']} (for {fast_burn['for']}), "
        f"ticket {slow_burn['alert']} (for {slow_burn['for']})")
    say(f"  changed for this run: every for / keep_firing_for divided by {args.time_scale:g}, rounded up:")
    for change in summary["changes"]:
        say(f"    {change}")

    if args.alertmanager:
        found = find_am_config([Path(args.alertmanager)])
        if not found:
            fail(f"no Alertmanager configuration in {args.alertmanager}")
    else:
        search = [repo / "deploy/observability/kube-prometheus-stack/values.yaml"]
        search += sorted((repo / "deploy/observability").rglob("*.yaml"))
        found = find_am_config([p for p in search if p.is_file()])
        if not found:
            fail("no Alertmanager configuration under deploy/observability (set OBS_E2E_ALERTMANAGER)")
    am_source, am_where = found
    am_config, am_changes = local_am_config(am_source, args.webhook)
    write_json(work / "alertmanager.json", am_config)
    say(f"alertmanager: configuration from {am_where}")
    for change in am_changes:
        say(f"  changed for this run: {change}")
    inhibit_rules = am_config.get("inhibit_rules") or []

    probes, blackbox, probes_from = service_probes(Path(args.blackbox_values), summary["alerts"], args.service_base)
    write_json(work / "blackbox.json", blackbox)
    say(f"blackbox: targets and modules from {probes_from}: "
        + ", ".join(f"{p['name']} ({p['module']}) {p['url']}" for p in probes)
        + "; module timeouts capped at 1s")

    prometheus = {
        "global": {
            "scrape_interval": args.interval,
            "scrape_timeout": args.scrape_timeout,
            "evaluation_interval": args.interval,
            # The Prometheus Operator's external labels, sent with alerts.
            "external_labels": {
                "prometheus": "observability/kube-prometheus-stack-prometheus",
                "prometheus_replica": "prometheus-kube-prometheus-stack-prometheus-0",
            },
        },
        "rule_files": [str(work / "rules.json")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [args.alertmanager_addr]}]}]},
        "scrape_configs": scrape_jobs(args, probes),
    }
    write_json(work / "prometheus.json", prometheus)

    # What the outage should show: which alerts the inhibit rules silence
    # while the database-down alert fires (by the rules' static labels; the
    # `equal` labels are checked on the live alerts).
    db_labels = {"alertname": db_down["alert"], **db_down["labels"]}
    error_alerts = [a for a in summary["alerts"] if re.search(r"error|5\.\.", a["expr"]) and a is not db_down]
    expected = [a for a in [readiness, *error_alerts]
                if inhibits(inhibit_rules, db_labels, {"alertname": a["alert"], **a["labels"]}, check_equal=False)]
    plan = {
        "db_down": db_down,
        "readiness": readiness,
        "fast_burn": fast_burn,
        "slow_burn": slow_burn,
        "readiness_inhibited": any(a is readiness for a in expected),
        "expect_inhibited": [a["alert"] for a in expected],
        "inhibit_rules": inhibit_rules,
        "recording": sorted({r["record"] for r in summary["recording"]}),
        "for_seconds": {a["alert"]: parse_duration(a["for"]) for a in summary["alerts"]},
    }
    write_json(work / "plan.json", plan)
    if expected:
        say(f"inhibition: while {db_down['alert']} fires, these must not reach a receiver: "
            + ", ".join(plan["expect_inhibited"]))
    else:
        say(f"inhibition: no readiness or error alert is inhibited by {db_down['alert']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--time-scale", type=float, default=12)
    parser.add_argument("--interval", default="2s")
    parser.add_argument("--scrape-timeout", default="2s")
    parser.add_argument("--db-down-alert")
    parser.add_argument("--readiness-alert")
    parser.add_argument("--fast-burn-alert")
    parser.add_argument("--slow-burn-alert")
    parser.add_argument("--alertmanager", help="file holding the Alertmanager configuration")
    parser.add_argument("--blackbox-values", required=True)
    parser.add_argument("--webhook", required=True)
    parser.add_argument("--service-base", required=True)
    parser.add_argument("--metrics-addr", required=True)
    parser.add_argument("--pg-exporter-addr", required=True)
    parser.add_argument("--node-exporter-addr", required=True)
    parser.add_argument("--blackbox-addr", required=True)
    parser.add_argument("--alertmanager-addr", required=True)
    parser.add_argument("rules", nargs="+")
    cmd_configure(parser.parse_args())


if __name__ == "__main__":
    main()
