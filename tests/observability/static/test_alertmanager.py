"""Alertmanager's configuration (kube-prometheus-stack values): valid for
amtool, routed by severity, inhibiting the right alerts, and reading the
Slack webhook from the Secret the ExternalSecret makes, never from Git.
"""

from __future__ import annotations

import copy
import re
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml

import obs

SECRETS_DIR = "/etc/alertmanager/secrets"
ALERTMANAGER_SECRET = "alertmanager-slack"
EXTERNAL_SECRET = obs.OBS / "manifests" / "externalsecret-alertmanager-slack.yaml"
ESO_POLICY = obs.REPO / "deploy" / "vault" / "policies" / "external-secrets.hcl"


def config() -> dict:
    return obs.values("kube-prometheus-stack")["alertmanager"]["config"]


def slack_configs(cfg: dict) -> list[dict]:
    return [s for r in cfg["receivers"] for s in r.get("slack_configs", [])]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The configuration as Alertmanager gets it, with the mounted Secret's
    file replaced by one holding a placeholder URL made now."""
    directory = tmp_path_factory.mktemp("alertmanager")
    webhook = directory / "webhook-url"
    webhook.write_text(f"https://hooks.slack.invalid/services/{secrets.token_hex(12)}\n")
    cfg = copy.deepcopy(config())
    for slack in slack_configs(cfg):
        slack["api_url_file"] = str(webhook)
    cfg["templates"] = []
    path = directory / "alertmanager.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def amtool_run(amtool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([amtool, *args], capture_output=True, text=True)


def test_amtool_accepts_the_configuration(amtool, rendered):
    result = amtool_run(amtool, "check-config", str(rendered))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert f"{len(config()['inhibit_rules'])} inhibit rules" in result.stdout
    assert f"{len(config()['receivers'])} receivers" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "alertname=PostgresDown"], "slack-critical"),
        (["severity=critical", "alertname=StudentApiDown", "namespace=student-api"], "slack-critical"),
        (["severity=warning", "alertname=NodeHighCPU"], "slack-warning"),
        (["severity=warning", "alertname=StudentApiErrorLogSpike", "namespace=student-api"], "slack-warning"),
        # The SLO pages and tickets (rules/student-api-slo.yaml).
        (["severity=critical", "alertname=StudentApiAvailabilityFastBurn", "namespace=student-api",
          "slo=availability"], "slack-critical"),
        (["severity=warning", "alertname=StudentApiLatencySlowBurn", "namespace=student-api", "slo=latency"],
         "slack-warning"),
        (["alertname=SomethingWithoutSeverity"], "slack-warning"),
    ],
)
def test_alerts_are_routed_by_severity(amtool, rendered, labels, receiver):
    result = amtool_run(amtool, "config", "routes", "test", f"--config.file={rendered}",
                        f"--verify.receivers={receiver}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_the_route_tree_sends_critical_and_warning_to_their_channels(amtool, rendered):
    result = amtool_run(amtool, "config", "routes", "show", f"--config.file={rendered}")
    assert result.returncode == 0, result.stderr
    assert 'severity="critical"' in result.stdout and 'severity="warning"' in result.stdout
    channels = {r["name"]: [s["channel"] for s in r["slack_configs"]] for r in config()["receivers"]}
    assert channels == {"slack-critical": ["#alerts-critical"], "slack-warning": ["#alerts"]}
    assert config()["route"]["group_by"] == ["alertname", "namespace"]


def test_every_alert_has_a_severity_the_routes_know():
    routed = {re.search(r'severity="(\w+)"', m).group(1)
              for route in config()["route"]["routes"] for m in route["matchers"]}
    assert {r.body["labels"]["severity"] for r in obs.all_alerts()} <= routed


def _alertnames(matchers: list[str]) -> set[str]:
    """Alert names a list of alertname matchers (= or =~ of alternatives) selects."""
    names = set()
    for matcher in matchers:
        match = re.fullmatch(r'alertname(=~|=)"([^"]*)"', matcher.replace(" ", ""))
        assert match, f"inhibition matchers select by alertname only: {matcher}"
        names |= set(match.group(2).split("|")) if match.group(1) == "=~" else {match.group(2)}
    return names


def inhibitions() -> list[tuple[set[str], set[str]]]:
    return [(_alertnames(r["source_matchers"]), _alertnames(r["target_matchers"])) for r in config()["inhibit_rules"]]


def test_inhibitions_name_only_alerts_that_exist():
    alerts = {r.alert for r in obs.all_alerts()}
    for sources, targets in inhibitions():
        assert sources <= alerts and targets <= alerts, (sources, targets)
        assert not sources & targets


def test_a_database_outage_silences_the_service_errors_latency_and_readiness():
    silenced = set().union(*(targets for sources, targets in inhibitions() if "PostgresDown" in sources))
    assert {
        "StudentApiAvailabilityFastBurn",
        "StudentApiAvailabilitySlowBurn",
        "StudentApiLatencyFastBurn",
        "StudentApiLatencySlowBurn",
        "StudentApiLatencyP99High",
        "StudentApiNotReady",
    } <= silenced
    # Inhibition needs no common label here: the database alert has none
    # of the service's.
    for rule in config()["inhibit_rules"]:
        assert not rule.get("equal")


def slo_alerts() -> dict[str, dict[str, str]]:
    """SLO -> {severity: alert} of the generated SLO rules."""
    out: dict[str, dict[str, str]] = {}
    for rule in obs.prometheus_rules():
        if rule.alert and rule.source == "rules/student-api-slo.yaml":
            out.setdefault(rule.body["labels"]["slo"], {})[rule.body["labels"]["severity"]] = rule.alert
    return out


def test_every_slo_page_holds_back_the_ticket_of_the_same_slo_and_nothing_else():
    alerts = slo_alerts()
    assert set(alerts) == {"availability", "latency"}
    for slo, by_severity in alerts.items():
        page, ticket = by_severity["critical"], by_severity["warning"]
        held = set().union(*(targets for sources, targets in inhibitions() if page in sources))
        assert held == {ticket}, slo


def test_the_database_and_the_service_being_down_hold_back_every_slo_alert():
    every = {a for by_severity in slo_alerts().values() for a in by_severity.values()}
    for source in ("PostgresDown", "StudentApiDown"):
        held = set().union(*(targets for sources, targets in inhibitions() if source in sources))
        assert every <= held, source


def test_the_webhook_url_is_read_from_the_mounted_secret_only():
    spec = obs.values("kube-prometheus-stack")["alertmanager"]["alertmanagerSpec"]
    assert ALERTMANAGER_SECRET in spec["secrets"]
    external = obs.load_yaml(EXTERNAL_SECRET)
    keys = {d["secretKey"] for d in external["spec"]["data"]}
    assert external["spec"]["target"]["name"] == ALERTMANAGER_SECRET
    for slack in slack_configs(config()):
        assert "api_url" not in slack
        directory, key = slack["api_url_file"].rsplit("/", 1)
        assert directory == f"{SECRETS_DIR}/{ALERTMANAGER_SECRET}" and key in keys
    assert "api_url:" not in yaml.safe_dump(config())
    assert "slack_api_url" not in config().get("global", {})


def test_the_external_secret_reads_the_alertmanager_kv_secret_through_the_openbao_store():
    external = obs.load_yaml(EXTERNAL_SECRET)
    assert external["metadata"]["namespace"] == "observability"
    assert external["spec"]["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": "openbao"}
    assert [d["remoteRef"]["key"] for d in external["spec"]["data"]] == ["observability/alertmanager"]


def test_the_external_secrets_policy_allows_every_kv_path_synced_here():
    """OpenBao refuses External Secrets any path its policy does not list."""
    policy = ESO_POLICY.read_text()
    for path in sorted(obs.OBS.joinpath("manifests").glob("externalsecret-*.yaml")):
        for data in obs.load_yaml(path)["spec"]["data"]:
            kv = f'path "secret/data/{data["remoteRef"]["key"]}"'
            assert kv in policy, f"{ESO_POLICY.relative_to(obs.REPO)} must allow {kv} (for {path.name})"
