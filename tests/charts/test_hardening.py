"""Every chart × values combination holds to every hardening rule.

One test per rule, parametrized by combination (e.g.
`[student-api/values-prod]`), so a failure names the chart, the values and
every offending object and field. The rules are hardening.py's; the
renders come from support.py.
"""

from __future__ import annotations

import pytest

from hardening import RULES
from support import COMBO_IDS, DISCOVERY_ERROR, SAMPLES, findings_text, rendered, source_docs


def assert_rule_holds(rule: str, combo_id: str) -> None:
    chart, docs = rendered(combo_id)
    findings = RULES[rule](docs, chart)
    if findings:
        pytest.fail(f"{combo_id}: {len(findings)} finding(s):{findings_text(findings)}", pytrace=False)


def test_every_chart_is_found_with_a_known_namespace():
    assert not DISCOVERY_ERROR, DISCOVERY_ERROR


@pytest.mark.parametrize("source", list(SAMPLES))
def test_the_samples_hold_to_every_rule(source):
    chart, docs = source_docs(source)
    findings = [f"{rule}: {f}" for rule, check in RULES.items() for f in check(docs, chart)]
    assert not findings, findings_text(findings)


@pytest.mark.parametrize("combo", COMBO_IDS)
def test_every_combination_renders_a_workload(combo):
    assert_rule_holds("has_workload", combo)


@pytest.mark.parametrize("combo", COMBO_IDS)
def test_every_workload_is_pinned_to_its_node_role(combo):
    assert_rule_holds("node_pinning", combo)


@pytest.mark.parametrize("combo", COMBO_IDS)
def test_every_container_requests_cpu_and_memory_and_has_a_memory_limit(combo):
    assert_rule_holds("resources", combo)


@pytest.mark.parametrize("combo", COMBO_IDS)
def test_every_container_that_serves_a_port_has_readiness_and_liveness_probes(combo):
    assert_rule_holds("probes", combo)


@pytest.mark.parametrize("combo", COMBO_IDS)
def test_every_container_runs_as_non_root_read_only_unprivileged_with_runtime_default_seccomp(combo):
    assert_rule_holds("security_context", combo)


@pytest.mark.parametrize("combo", COMBO_IDS)
def test_no_pod_mounts_a_service_account_token_unless_it_presents_one_to_vault(combo):
    assert_rule_holds("service_account_token", combo)


@pytest.mark.parametrize("combo", COMBO_IDS)
def test_every_image_is_pinned_to_a_version_or_a_digest(combo):
    assert_rule_holds("images", combo)


@pytest.mark.parametrize("combo", COMBO_IDS)
def test_no_secret_carries_literal_data(combo):
    assert_rule_holds("secrets", combo)


@pytest.mark.parametrize("combo", COMBO_IDS)
def test_no_service_is_a_load_balancer_unless_expected(combo):
    assert_rule_holds("load_balancers", combo)


@pytest.mark.parametrize("combo", COMBO_IDS)
def test_every_namespaced_object_is_in_the_charts_namespace(combo):
    assert_rule_holds("namespaces", combo)


@pytest.mark.parametrize("combo", COMBO_IDS)
def test_a_network_policy_selects_the_pods_of_every_workload(combo):
    assert_rule_holds("network_policies", combo)


@pytest.mark.parametrize("combo", COMBO_IDS)
def test_every_route_names_its_listener_and_reaches_only_the_charts_own_service(combo):
    assert_rule_holds("routes", combo)
