"""Every metric a rule or a dashboard reads really exists: the service's names
come from a live scrape of the real binary, the exporters' from
exporter-metrics.yaml, whose live entries are checked against live scrapes
of the Debian packages of those exporters.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import obs

ALLOWLIST = obs.load_yaml(Path(__file__).with_name("exporter-metrics.yaml"))["sources"]
LIVE_FIXTURES = {
    "postgres_exporter": "postgres_exporter",
    "blackbox_exporter": "blackbox_scrapes",
    "node_exporter": "node_exporter",
}


def allowlisted() -> set[str]:
    return {m for source in ALLOWLIST.values() for m in source["metrics"]}


def used_names() -> dict[str, set[str]]:
    """Metric name -> where it is read ("rules/x.yaml Alert", "dash.json / panel")."""
    used: dict[str, set[str]] = {}
    for rule in obs.prometheus_rules():
        for name in obs.metric_names(rule.body["expr"]):
            used.setdefault(name, set()).add(f"{rule.source} {rule.alert or rule.record}")
    for q in obs.dashboard_queries():
        if q.datasource != "prometheus":
            continue
        expr = obs.variable_selector(q.expr) if q.variable_query else q.expr
        for name in obs.metric_names(obs.substitute_grafana(expr)):
            used.setdefault(name, set()).add(f"{q.dashboard} / {q.panel}")
    # Grafana's links from a span to the service's metrics.
    for source in obs.values("kube-prometheus-stack")["grafana"]["additionalDataSources"]:
        for query in source.get("jsonData", {}).get("tracesToMetrics", {}).get("queries", []):
            for name in obs.metric_names(query["query"]):
                used.setdefault(name, set()).add(f"data source {source['uid']} / {query['name']}")
    return used


@pytest.fixture(scope="module")
def blackbox_scrapes(blackbox, status_servers, service) -> dict:
    """Probes of each kind, so that every series blackbox_exporter can
    report (TLS ones included) is seen."""
    blackbox["probe"]("http_2xx", f"{service['base']}/healthcheck")
    blackbox["probe"]("openbao_health", f"{status_servers['http']}/status/503")
    blackbox["probe"]("https_2xx_self_signed", f"{status_servers['https']}/status/200")
    return {"names": blackbox["names"]}


def test_the_service_exposes_the_metrics_the_docs_promise(service):
    expected = {
        "http_requests_total", "http_request_duration_seconds_bucket", "http_request_duration_seconds_sum",
        "http_request_duration_seconds_count", "http_requests_in_flight", "db_pool_connections",
        "db_pool_idle_connections", "db_pool_max_connections", "student_api_build_info",
        "process_resident_memory_bytes", "process_cpu_seconds_total",
    }
    assert expected <= service["names"]
    assert 'route="/api/v1/students/{id}"' in service["metrics_text"], "routes are templates"


@pytest.mark.parametrize("source", sorted(LIVE_FIXTURES))
def test_live_allowlisted_names_are_served_by_the_exporter(source, request):
    assert ALLOWLIST[source]["live"] is True
    scraped = request.getfixturevalue(LIVE_FIXTURES[source])["names"]
    missing = set(ALLOWLIST[source]["metrics"]) - scraped
    assert not missing, f"{ALLOWLIST[source]['package']} does not serve {sorted(missing)}"


def test_hand_listed_sources_say_where_their_names_come_from():
    for name, source in ALLOWLIST.items():
        if not source["live"]:
            assert name not in LIVE_FIXTURES
            assert len(source.get("reference", "")) > 20, name


def test_every_metric_read_by_a_rule_or_a_dashboard_exists(service):
    known = service["names"] | allowlisted() | obs.recorded_names()
    unknown = {name: sorted(where) for name, where in used_names().items() if name not in known}
    assert not unknown, f"metrics nobody exposes: {unknown}"


def test_every_allowlisted_name_is_used():
    unused = allowlisted() - set(used_names())
    assert not unused, f"remove from exporter-metrics.yaml: {sorted(unused)}"


def test_every_recording_rule_is_read_by_an_alert_or_a_dashboard():
    read = set()
    for rule in obs.prometheus_rules():
        if rule.alert:
            read |= obs.metric_names(rule.body["expr"])
    for q in obs.dashboard_queries():
        if q.datasource == "prometheus":
            expr = obs.variable_selector(q.expr) if q.variable_query else q.expr
            read |= obs.metric_names(obs.substitute_grafana(expr))
    assert obs.recorded_names() - read == set()


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (namespace) (rate(http_requests_total{status=~"5.."}[5m]))', {"http_requests_total"}),
        ("sum without (datname, state) (pg_stat_activity_count) / pg_settings_max_connections > 0.8",
         {"pg_stat_activity_count", "pg_settings_max_connections"}),
        ("a > 3 * avg_over_time(b{x=\"y\"}[1h] offset 5m) and on (namespace) c > 1e3", {"a", "b", "c"}),
        ("histogram_quantile(0.99, sum by (le, route) (rate(x_bucket[5m])))", {"x_bucket"}),
        ("(probe_ssl_earliest_cert_expiry - time()) / 86400", {"probe_ssl_earliest_cert_expiry"}),
        ("count(up == 0) or vector(0)", {"up"}),
        ("x unless on (instance) y == 503", {"x", "y"}),
        ("ns:http_requests:rate5m{route=\"/a{b}\"}", {"ns:http_requests:rate5m"}),
    ],
)
def test_metric_names_are_read_from_promql(expr, names):
    assert obs.metric_names(expr) == names
