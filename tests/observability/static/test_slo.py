"""The service-level objectives: declared once (deploy/observability/slo/
student-api.yaml), and the committed rules and dashboard exactly what
deploy/observability/slo/generate.py makes of the declaration.

What the rules compute is proven by promtool (test_rules.py runs
deploy/observability/tests/student-api-slo.test.yaml); here: that the files
Prometheus and Grafana load come from the declaration, that the declaration
holds the Workbook's windows and burn rates, that the latency threshold is a
bucket the live service really has, and that the generator refuses
declarations it cannot turn into correct rules.
"""

from __future__ import annotations

import copy
import re
import sys
from decimal import Decimal

import pytest
import yaml

import obs

sys.path.insert(0, str(obs.OBS / "slo"))
import generate  # noqa: E402 - the generator, imported by path

# The issue's and the Workbook's windows and rates for a 30-day period.
WORKBOOK = {
    "page": {(Decimal("14.4"), "1h", "5m"), (Decimal("6"), "6h", "30m")},
    "ticket": {(Decimal("3"), "1d", "2h"), (Decimal("1"), "3d", "6h")},
}
WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]


def declaration_data() -> dict:
    return yaml.safe_load(generate.DECLARATION.read_text(encoding="utf-8"))


def test_the_committed_rules_and_dashboard_are_what_the_declaration_gives():
    decl = generate.load()
    for path, text in generate.outputs(decl).items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(obs.REPO)} differs from what {generate.DECLARATION.relative_to(obs.REPO)} gives: "
            "run deploy/observability/slo/generate.py"
        )
    assert generate.main(["--check"]) == 0


def test_the_check_names_a_file_left_behind_by_the_declaration(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "student-api-slo.yaml"
    stale.write_text(generate.RULES.read_text(encoding="utf-8").replace("vector(0.999)", "vector(0.99)"))
    monkeypatch.setattr(generate, "RULES", stale)
    monkeypatch.setattr(generate, "DASHBOARD", tmp_path / "student-api-slo.json")
    generate.DASHBOARD.write_text(generate.dashboard_text(generate.load()))
    assert generate.main(["--check"]) == 1
    assert "student-api-slo.yaml" in capsys.readouterr().err


def test_the_rules_and_dashboard_are_deployed():
    kustomization = obs.load_yaml(obs.OBS / "manifests" / "kustomization.yaml")
    assert "rules/student-api-slo.yaml" in kustomization["resources"]
    files = {f for g in kustomization["configMapGenerator"] for f in g["files"]}
    assert "dashboards/student-api-slo.json" in files
    assert generate.RULES.parent == obs.RULES_DIR and generate.DASHBOARD.parent == obs.DASHBOARDS_DIR


def test_the_declaration_holds_the_workbooks_windows_and_burn_rates():
    decl = generate.load()
    kinds = {k.key: k for k in decl.kinds}
    assert decl.period == "30d"
    for key, conditions in WORKBOOK.items():
        assert {(c.burn_rate, c.long, c.short) for c in kinds[key].conditions} == conditions, key
    assert (kinds["page"].severity, kinds["ticket"].severity) == ("critical", "warning")
    assert decl.windows == WINDOWS


def test_two_slos_availability_and_latency_each_with_a_page_and_a_ticket():
    decl = generate.load()
    assert [(s.name, s.objective) for s in decl.slos] == [
        ("availability", Decimal("0.999")),
        ("latency", Decimal("0.99")),
    ]
    alerts = {r.alert: r for r in obs.prometheus_rules() if r.alert and r.source == "rules/student-api-slo.yaml"}
    assert set(alerts) == {
        "StudentApiAvailabilityFastBurn",
        "StudentApiAvailabilitySlowBurn",
        "StudentApiLatencyFastBurn",
        "StudentApiLatencySlowBurn",
    }


def test_every_window_has_a_recorded_share_for_every_slo():
    recorded = obs.recorded_names()
    for slo in generate.load().slos:
        for window in [*WINDOWS, "30d"]:
            assert slo.bad_record(f"ratio_rate{window}") in recorded


def test_the_alert_thresholds_are_the_burn_rates_times_the_budget():
    """The Workbook's form, read back from the generated expressions."""
    decl = generate.load()
    for slo in decl.slos:
        for kind in decl.kinds:
            (rule,) = [r for r in obs.prometheus_rules() if r.alert == slo.alert(decl.alert_prefix, kind)]
            found = set(re.findall(r"ratio_rate(\w+) > \(([\d.]+) \* ([\d.]+)\)", rule.body["expr"]))
            budget = generate.number(1 - slo.objective)
            want = set()
            for c in kind.conditions:
                want |= {(c.long, generate.number(c.burn_rate), budget), (c.short, generate.number(c.burn_rate), budget)}
            assert found == want, rule.alert


def test_the_sli_queries_read_only_api_routes_of_the_service():
    for rule in obs.prometheus_rules():
        if rule.source != "rules/student-api-slo.yaml" or "http_" not in rule.body["expr"]:
            continue
        selectors = re.findall(r"http_\w+\{([^}]*)\}", rule.body["expr"])
        assert selectors, rule.record
        for selector in selectors:
            assert 'namespace="student-api"' in selector and 'route=~"/api/.*"' in selector, (rule.record, selector)


def test_the_latency_threshold_is_a_bucket_bound_the_service_exposes(service):
    (latency,) = [s for s in generate.load().slos if s.threshold is not None]
    bounds = set(re.findall(r'http_request_duration_seconds_bucket\{[^}]*le="([^"]+)"', service["metrics_text"]))
    assert bounds, "the service exposes no latency bucket"
    threshold = generate.number(latency.threshold)
    assert threshold in bounds, f"le={threshold} is not one of the service's buckets {sorted(bounds, key=float)}"
    assert f'le="{threshold}"' in latency.query("bad", "5m")


def test_the_dashboard_shows_every_slos_sli_budget_and_burn_rate_per_window():
    dash = generate.dashboard(generate.load())
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p.get("targets", []))
    for slo in generate.load().slos:
        assert f"namespace:slo_error_budget_remaining:ratio{{namespace=\"student-api\", slo=\"{slo.name}\"}}" in exprs
        assert f"1 - {slo.bad_record('ratio_rate30d')}" in exprs
        for window in WINDOWS:
            assert f"{slo.bad_record('ratio_rate' + window)}{{" in exprs, (slo.name, window)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["slos"][0].update(objective=1.5), "not between 0 and 1"),
        (lambda d: d["slos"][0].update(objective=1), "not between 0 and 1"),
        (lambda d: d["alerts"]["page"]["conditions"][0].update(short="1h"), "not shorter"),
        (lambda d: d["alerts"]["page"]["conditions"][0].update(long="1w"), "not a duration"),
        (lambda d: d["alerts"]["ticket"].update(severity="page"), "not one of"),
        (lambda d: d["slos"][0]["queries"].update(total="sum(rate(x[5m]))"), "{{window}}"),
        (lambda d: d["slos"][1].pop("threshold"), "no threshold"),
        (lambda d: d["slos"][0].update(threshold=0.5), "does not use"),
        (lambda d: d["slos"][1].update(name="availability"), "share a name"),
        (lambda d: d["slos"][0]["annotations"]["page"].update(summary=" "), "empty"),
        (lambda d: d["slos"][0].update(bad="5xx"), "lowercase name"),
    ],
)
def test_the_generator_refuses_a_declaration_it_cannot_turn_into_correct_rules(change, message):
    data = copy.deepcopy(declaration_data())
    change(data)
    with pytest.raises(generate.DeclarationError, match=re.escape(message)):
        generate.parse(data)


def test_a_changed_objective_moves_every_threshold_and_the_budget():
    data = copy.deepcopy(declaration_data())
    data["slos"][0]["objective"] = 0.995
    text = generate.rules_text(generate.parse(data))
    assert "(14.4 * 0.005)" in text and "(1 * 0.005)" in text
    assert "namespace:slo_availability_errors:ratio_rate30d / 0.005" in text
    assert "(14.4 * 0.001)" not in text
