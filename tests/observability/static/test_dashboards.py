"""Grafana's dashboards: well-formed, on the fixed data source uids, and
every query parses.

promtool 2.42 has no command that only parses an expression, so every
Prometheus query becomes a recording rule of a generated rule file that
`promtool check rules` parses (Grafana's variables replaced by values of
the right kind first).
"""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

import obs

def loki_labels() -> frozenset[str]:
    """Stream labels Alloy gives the service's logs, read from its pipeline
    (deploy/observability/alloy/config.alloy; test_alloy.py checks them)."""
    pipeline = obs.alloy_pipeline()
    (source,) = pipeline.of_kind("loki.source.kubernetes")
    return pipeline.produced(source, "student-api").stream_labels


def test_every_dashboard_has_a_unique_uid_a_title_and_panels():
    uids = []
    for name, dash in obs.dashboards().items():
        assert dash.get("uid") and dash.get("title"), name
        assert dash.get("panels"), name
        assert "id" not in dash or dash["id"] is None, f"{name}: an id would clash on import"
        uids.append(dash["uid"])
    assert len(uids) == len(set(uids))


def test_every_query_uses_the_prometheus_loki_or_tempo_data_source_by_its_fixed_uid():
    queries = obs.dashboard_queries()
    assert queries
    for q in queries:
        assert q.datasource in {"prometheus", "loki", "tempo"}, (q.dashboard, q.panel, q.datasource)


def test_grafana_provisions_those_uids():
    grafana = obs.values("kube-prometheus-stack")["grafana"]
    assert grafana["sidecar"]["datasources"]["uid"] == "prometheus"
    assert [d["uid"] for d in grafana["additionalDataSources"]] == ["loki", "tempo"]


# What the service's spans carry (the contract of its OpenTelemetry
# support): the resource's service.name, and on the request span the
# semantic conventions' http.route (the route template) and
# http.response.status_code. TraceQL may read nothing else of them.
SPAN_ATTRIBUTES = {"resource.service.name", "span.http.route", "span.http.response.status_code"}
TRACEQL_INTRINSICS = {"duration", "status", "name", "kind"}


@pytest.mark.parametrize("query", [q for q in obs.dashboard_queries() if q.datasource == "tempo"],
                         ids=lambda q: f"{q.dashboard}:{q.panel}")
def test_every_traceql_query_selects_the_services_spans_by_attributes_it_sets(query):
    expr = obs.substitute_grafana(query.expr)
    assert expr.startswith("{") and expr.count("{") == expr.count("}"), expr
    assert 'resource.service.name="student-api"' in expr
    read = set(re.findall(r"\b((?:resource|span)\.[\w.]+)", expr))
    assert read <= SPAN_ATTRIBUTES, read - SPAN_ATTRIBUTES
    bare = set(re.findall(r"(?<![\w.])([a-z_]+)\s*(?:=|!=|=~|>|<|>=|<=)\s", expr)) - {"resource", "span"}
    assert bare <= TRACEQL_INTRINSICS, bare


def test_the_service_dashboard_links_latency_to_traces():
    dash = obs.dashboards()["student-api.json"]
    panels = {p["title"]: p for p in dash["panels"]}
    exemplar = [p for p in panels.values() for t in p.get("targets", []) if t.get("exemplar")]
    assert exemplar, "no panel asks Prometheus for exemplars"
    for panel in exemplar:
        for target in panel["targets"]:
            # Exemplars live on the raw series, not on recording rules.
            assert "http_request_duration_seconds_bucket" in target["expr"]
    assert {q.panel for q in obs.dashboard_queries() if q.dashboard == "student-api.json" and q.datasource == "tempo"}


def test_the_dashboards_cover_what_operators_look_for():
    exprs = {name: " ".join(q.expr for q in obs.dashboard_queries() if q.dashboard == name)
             for name in obs.dashboards()}
    expected = {
        "student-api.json": ["namespace_route:http_requests:rate5m", "error_ratio", 'quantile="0.5"',
                             'quantile="0.9"', 'quantile="0.95"', 'quantile="0.99"', "http_requests_in_flight",
                             "db_pool_connections", "db_pool_max_connections"],
        "student-api-slo.json": ["namespace:slo_error_budget_remaining:ratio", "namespace:slo_objective:ratio",
                                 "namespace:slo_availability_errors:ratio_rate30d",
                                 "namespace:slo_latency_slow:ratio_rate1h"],
        "student-api-logs.json": ['level="ERROR"'],
        "postgresql.json": ["pg_stat_activity_count", "pg_stat_database_xact_commit", "pg_stat_database_blks_hit",
                            "pg_database_size_bytes", "pg_stat_replication_pg_wal_lsn_diff"],
        "nodes.json": ["node_cpu", "node_memory_MemAvailable_bytes", "node_filesystem_avail_bytes",
                       "node_network_receive_bytes_total"],
        "kubernetes.json": ["kube_pod_container_status_restarts_total", 'phase="Pending"',
                            "kube_deployment_spec_replicas"],
        "probes.json": ["probe_success", "probe_duration_seconds", "probe_ssl_earliest_cert_expiry"],
    }
    assert set(exprs) == set(expected)
    for name, needles in expected.items():
        for needle in needles:
            assert needle in exprs[name], f"{name} shows nothing of {needle}"


def test_every_prometheus_query_parses(promtool, tmp_path):
    queries = [q for q in obs.dashboard_queries() if q.datasource == "prometheus"]
    rules = []
    for i, q in enumerate(queries):
        expr = obs.variable_selector(q.expr) if q.variable_query else q.expr
        rules.append({"record": f"dashboard:query_{i}", "expr": obs.substitute_grafana(expr)})
    path = tmp_path / "dashboards.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        numbers = {int(n) for n in re.findall(r"dashboard:query_(\d+)", result.stdout + result.stderr)}
        broken = [f"{queries[n].dashboard} / {queries[n].panel}: {queries[n].expr}" for n in sorted(numbers)]
        pytest.fail("\n".join(broken) or result.stdout + result.stderr)
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_grafana_variables_are_substituted_with_values_of_their_kind():
    expr = 'rate(x{route=~"$route", pod=~"${pod}"}[$__rate_interval]) offset $__interval'
    assert obs.substitute_grafana(expr) == 'rate(x{route=~".*", pod=~".*"}[5m]) offset 1m'


@pytest.mark.parametrize("query", [q for q in obs.dashboard_queries() if q.datasource == "loki"],
                         ids=lambda q: f"{q.dashboard}:{q.panel}")
def test_every_loki_query_selects_the_service_streams_by_labels_alloy_sets(query):
    selectors = obs.logql_selectors(query.expr)
    assert selectors, query.expr
    for selector in selectors:
        assert "namespace" in selector and set(selector) <= loki_labels(), selector
        assert selector["namespace"] == ("=", "student-api")
    assert query.expr.count("(") == query.expr.count(")")


def test_the_observability_doc_lists_every_dashboard():
    doc = (obs.REPO / "docs" / "observability.md").read_text(encoding="utf-8")
    for dash in obs.dashboards().values():
        assert f"| {dash['title']} (`{dash['uid']}`) |" in doc, dash["uid"]
