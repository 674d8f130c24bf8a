"""The alerting and recording rules: valid for promtool, unit-tested, and
each alert documented.

Rules are PrometheusRule documents in deploy/observability/manifests/rules;
promtool reads the plain rule-file format, so each document's spec.groups is
written to a file of its own first.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import obs

SEVERITIES = {"critical", "warning"}
# Short enough to be tried by hand and in the end-to-end tests.
MIN_FOR, MAX_FOR = 60, 300


def seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", duration))


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return obs.write_rule_groups(tmp_path_factory.mktemp("rules"))


@pytest.fixture(scope="module")
def unit_test_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unit tests beside the extracted rule files they name."""
    directory = tmp_path_factory.mktemp("unit")
    obs.write_rule_groups(directory)
    for path in obs.UNIT_TESTS_DIR.glob("*.yaml"):
        shutil.copy(path, directory / path.name)
    return directory


def unit_tests() -> dict[str, dict]:
    return {p.name: obs.load_yaml(p) for p in sorted(obs.UNIT_TESTS_DIR.glob("*.yaml"))}


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd)


def test_every_rule_file_passes_promtool_check_rules(promtool, extracted):
    result = run([promtool, "check", "rules", *map(str, extracted.values())])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(extracted)


def test_every_rule_file_is_a_prometheus_rule_in_observability():
    for stem, doc in obs.rule_files().items():
        assert doc["apiVersion"] == "monitoring.coreos.com/v1", stem
        assert doc["kind"] == "PrometheusRule", stem
        assert doc["metadata"]["namespace"] == "observability", stem
        assert doc["metadata"]["name"] == stem, "the object is named after its file"
        assert doc["metadata"].get("labels"), stem


def test_the_unit_tests_pass(promtool, unit_test_dir):
    files = sorted(p.name for p in obs.UNIT_TESTS_DIR.glob("*.yaml"))
    assert files, "no unit tests in deploy/observability/tests"
    result = run([promtool, "test", "rules", *files], cwd=unit_test_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


def test_each_rule_file_has_a_unit_test_file_and_each_test_file_names_one_rule_file():
    stems = set(obs.rule_files())
    named = {}
    for name, doc in unit_tests().items():
        assert doc["rule_files"] == [name.replace(".test.yaml", ".yaml")], name
        named[name.replace(".test.yaml", "")] = name
    assert set(named) == stems


def test_every_alert_has_a_case_that_fires_and_a_case_that_stays_quiet():
    fires, quiet = set(), set()
    for doc in unit_tests().values():
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {r.alert for r in obs.prometheus_rules() if r.alert}
    assert alerts - fires == set(), "alerts with no case where they fire"
    assert alerts - quiet == set(), "alerts with no case where they stay quiet"
    assert (fires | quiet) - alerts == set(), "cases for alerts that do not exist"


def test_every_recording_rule_has_expected_values():
    tested = set()
    for doc in unit_tests().values():
        for case in doc["tests"]:
            for check in case.get("promql_expr_test", []):
                if check.get("exp_samples"):
                    tested |= obs.metric_names(check["expr"])
    assert obs.recorded_names() - tested == set()


def _mutated(unit_test_dir: Path, rule: obs.Rule, expr: str, name: str) -> Path:
    """A copy of the unit-test directory whose rule has another expression."""
    directory = unit_test_dir.parent / f"mutant-{rule.alert}-{name}"
    shutil.copytree(unit_test_dir, directory)
    stem = Path(rule.source).stem
    doc = yaml.safe_load((directory / f"{stem}.yaml").read_text())
    for group in doc["groups"]:
        for r in group["rules"]:
            if r.get("alert") == rule.alert:
                r["expr"] = expr
    (directory / f"{stem}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return directory


@pytest.mark.parametrize("rule", [r for r in obs.prometheus_rules() if r.alert], ids=lambda r: r.alert)
def test_the_unit_tests_catch_an_alert_that_never_fires_or_always_fires(promtool, unit_test_dir, rule):
    test_file = f"{Path(rule.source).stem}.test.yaml"
    for expr, what in (("vector(1) == 0", "never"), ("vector(1)", "always")):
        directory = _mutated(unit_test_dir, rule, expr, what)
        result = run([promtool, "test", "rules", test_file], cwd=directory)
        assert result.returncode != 0, f"the unit tests pass although {rule.alert} {what} fires"
        assert rule.alert in result.stdout + result.stderr


@pytest.mark.parametrize("rule", obs.all_alerts(), ids=lambda r: r.alert)
def test_every_alert_has_severity_summary_description_and_a_runbook_section(rule):
    body = rule.body
    assert body.get("labels", {}).get("severity") in SEVERITIES
    annotations = body.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        assert str(annotations.get(key, "")).strip(), f"{rule.alert}: no {key}"
    assert "check first" in annotations["description"].lower(), "the description says what to check first"
    url = annotations["runbook_url"]
    assert url == obs.RUNBOOK_URL + rule.alert.lower()
    assert rule.alert.lower() in obs.runbook_sections(), f"no section '## {rule.alert}' in {obs.RUNBOOK}"


@pytest.mark.parametrize("rule", obs.all_alerts(), ids=lambda r: r.alert)
def test_every_alert_waits_between_one_and_five_minutes(rule):
    assert MIN_FOR <= seconds(rule.body.get("for", "0s")) <= MAX_FOR


def test_alert_names_are_unique():
    names = [r.alert for r in obs.all_alerts()]
    assert len(names) == len(set(names))


def test_the_runbook_has_a_section_for_every_alert_and_no_other():
    sections = set(obs.runbook_sections())
    alerts = {r.alert.lower() for r in obs.all_alerts()}
    assert sections == alerts


@pytest.mark.parametrize("anchor", sorted(obs.runbook_sections()))
def test_every_runbook_section_says_what_it_means_what_to_check_and_how_to_fix(anchor):
    body = obs.runbook_sections()[anchor]
    for part in ("**Means**", "**Check first**", "**Fix**"):
        assert part in body, f"section {anchor} has no {part}"
    assert "```" in body, f"section {anchor} gives no command"


def test_the_service_rules_read_only_api_routes_of_the_service_namespace():
    for rule in obs.prometheus_rules():
        expr = rule.body["expr"]
        for selector in re.findall(r"(?:http_requests_total|http_request_duration_seconds_bucket)\{([^}]*)\}", expr):
            assert 'namespace="student-api"' in selector, (rule.record or rule.alert, selector)
            if rule.record:
                assert 'route=~"/api/.*"' in selector, (rule.record, selector)


def test_the_loki_alert_reads_the_service_error_lines():
    (rule,) = obs.loki_rules()
    expr = " ".join(rule.body["expr"].split())
    assert '{namespace="student-api"} | json | level="ERROR"' in expr
    assert "rate(" in expr
    # The chart renders extraObjects with its template engine.
    assert "{{" not in yaml.safe_dump(rule.body)


def test_the_observability_doc_lists_every_alert_with_its_severity():
    doc = (obs.REPO / "docs" / "observability.md").read_text(encoding="utf-8")
    for rule in obs.all_alerts():
        row = f"| [`{rule.alert}`](runbooks/alerts.md#{rule.alert.lower()}) | {rule.body['labels']['severity']} |"
        assert row in doc, f"docs/observability.md has no row for {rule.alert}"
