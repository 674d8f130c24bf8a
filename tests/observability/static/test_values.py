"""The charts' values files: placement on the platform's nodes, the secrets
they read, what Promtail ships and how, retention, and the names other
files rely on.

The charts themselves cannot be fetched here, so these checks read the
values as the charts' documented keys.
"""

from __future__ import annotations

import re

import pytest

import obs

DEPENDENT = {"type": "dependent_services"}

# Every pod of every chart, by the key that pins it, per chart.
PINNED = {
    "kube-prometheus-stack": [
        "prometheus.prometheusSpec.nodeSelector",
        "alertmanager.alertmanagerSpec.nodeSelector",
        "grafana.nodeSelector",
        "kube-state-metrics.nodeSelector",
        "prometheusOperator.nodeSelector",
        "prometheusOperator.admissionWebhooks.patch.nodeSelector",
        "prometheusOperator.admissionWebhooks.deployment.nodeSelector",
        "crds.upgradeJob.nodeSelector",
    ],
    "loki": ["singleBinary.nodeSelector"],
    "prometheus-postgres-exporter": ["nodeSelector"],
    "prometheus-blackbox-exporter": ["nodeSelector"],
}


def all_values(chart: str) -> list[tuple[str, dict]]:
    out = [("values.yaml", obs.values(chart))]
    if (obs.OBS / chart / "values-prod.yaml").exists():
        out.append(("values-prod.yaml", obs.merged_values(chart, "prod")))
    return out


def test_every_chart_has_its_values_file_where_argo_cd_reads_it():
    for chart in obs.CHARTS:
        assert (obs.OBS / chart / "values.yaml").is_file(), chart
    assert (obs.OBS / "manifests" / "kustomization.yaml").is_file()


@pytest.mark.parametrize("chart", sorted(PINNED))
def test_every_pod_runs_on_dependent_services_nodes(chart):
    for name, vals in all_values(chart):
        for key in PINNED[chart]:
            assert obs.dig(vals, key) == DEPENDENT, f"{chart}/{name}: {key}"


def test_loki_runs_nothing_but_the_pinned_single_binary():
    for name, vals in all_values("loki"):
        assert vals["deploymentMode"] == "SingleBinary", name
        for component in ("read", "write", "backend"):
            assert vals[component]["replicas"] == 0, (name, component)
        for component in ("gateway", "chunksCache", "resultsCache", "lokiCanary", "test"):
            assert vals[component]["enabled"] is False, (name, component)


def test_the_daemonsets_are_the_documented_exceptions():
    kps = obs.values("kube-prometheus-stack")
    # node-exporter reports every node, so it may not be pinned.
    assert "nodeSelector" not in kps.get("prometheus-node-exporter", {})
    # Promtail reads the log files of the nodes the service runs on.
    assert obs.values("promtail")["nodeSelector"] == {"type": "application"}
    service = obs.load_yaml(obs.REPO / "deploy" / "helm" / "student-api" / "values.yaml")
    assert service["nodeSelector"] == obs.values("promtail")["nodeSelector"]


def test_prometheus_selects_monitors_rules_and_probes_whatever_their_labels():
    spec = obs.values("kube-prometheus-stack")["prometheus"]["prometheusSpec"]
    for kind in ("serviceMonitor", "podMonitor", "probe", "rule", "scrapeConfig"):
        assert spec[f"{kind}SelectorNilUsesHelmValues"] is False, kind
        assert not spec.get(f"{kind}Selector"), kind


def test_prometheus_keeps_bounded_history_on_a_volume():
    for name, vals in all_values("kube-prometheus-stack"):
        spec = vals["prometheus"]["prometheusSpec"]
        assert re.fullmatch(r"\d+d", spec["retention"]), name
        assert spec["retentionSize"].endswith("GB"), name
        size = spec["storageSpec"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"]
        assert int(spec["retentionSize"][:-2]) < int(size.rstrip("Gi")), f"{name}: retentionSize must fit the volume"


def test_grafana_reads_its_admin_from_the_synced_secret():
    grafana = obs.values("kube-prometheus-stack")["grafana"]
    external = obs.load_yaml(obs.REPO / "deploy" / "external-secrets" / "externalsecret-grafana-admin.yaml")
    keys = {d["secretKey"] for d in external["spec"]["data"]}
    assert grafana["admin"]["existingSecret"] == external["spec"]["target"]["name"] == "grafana-admin"
    assert {grafana["admin"]["userKey"], grafana["admin"]["passwordKey"]} == keys
    assert "adminPassword" not in grafana


def test_grafana_loads_dashboards_labelled_grafana_dashboard():
    sidecar = obs.values("kube-prometheus-stack")["grafana"]["sidecar"]["dashboards"]
    assert (sidecar["enabled"], sidecar["label"], sidecar["labelValue"]) == (True, "grafana_dashboard", "1")
    kustomization = obs.load_yaml(obs.OBS / "manifests" / "kustomization.yaml")
    assert kustomization["generatorOptions"]["labels"]["grafana_dashboard"] == "1"
    assert sidecar["searchNamespace"] == kustomization["namespace"]


def test_grafana_and_promtail_reach_loki_by_its_service_name():
    loki = obs.values("loki")
    base = f"http://{loki['fullnameOverride']}.observability.svc:{3100}"
    (datasource,) = obs.values("kube-prometheus-stack")["grafana"]["additionalDataSources"]
    assert datasource["url"] == base
    assert [c["url"] for c in obs.values("promtail")["config"]["clients"]] == [f"{base}/loki/api/v1/push"]


def test_loki_keeps_logs_seven_days_and_the_compactor_deletes_older_ones():
    loki = obs.values("loki")["loki"]
    assert loki["limits_config"]["retention_period"] == "168h"
    assert loki["compactor"]["retention_enabled"] is True
    assert loki["compactor"]["delete_request_store"] == "filesystem"
    assert obs.merged_values("loki", "prod")["loki"]["compactor"]["retention_enabled"] is True


def test_the_loki_ruler_loads_the_rules_of_the_single_tenant_and_alerts_alertmanager():
    vals = obs.values("loki")
    ruler = vals["loki"]["rulerConfig"]
    kps = obs.values("kube-prometheus-stack")["fullnameOverride"]
    assert ruler["alertmanager_url"] == f"http://{kps}-alertmanager.observability.svc:9093"
    assert vals["loki"]["auth_enabled"] is False  # so the tenant is "fake"
    assert vals["sidecar"]["rules"]["folder"] == ruler["storage"]["local"]["directory"] + "/fake"
    labels = {vals["sidecar"]["rules"]["label"]: vals["sidecar"]["rules"]["labelValue"]}
    (configmap,) = vals["extraObjects"]
    assert labels.items() <= configmap["metadata"]["labels"].items()


def promtail_stages() -> list[dict]:
    return obs.values("promtail")["config"]["snippets"]["pipelineStages"]


def test_promtail_parses_the_json_lines_and_labels_only_level_and_route():
    stages = {next(iter(s)): s[next(iter(s))] for s in promtail_stages()}
    assert set(stages) == {"cri", "json", "labels", "timestamp"}
    assert set(stages["labels"]) == {"level", "route"}
    assert set(stages["json"]["expressions"]) == {"level", "route", "timestamp"}
    assert stages["timestamp"]["source"] == "timestamp"
    # request_id, and anything a user sent, stays in the line.
    scrape = obs.values("promtail")["config"]["snippets"]["scrapeConfigs"]
    assert "request_id" not in scrape and "labeldrop" not in scrape


def test_promtail_discovers_only_the_pods_of_the_service_namespace():
    scrape = obs.values("promtail")["config"]["snippets"]["scrapeConfigs"]
    # The snippet is a template; what matters is in its static parts.
    assert scrape.count("job_name:") == 1
    assert re.search(r"namespaces:\s+names:\s+- student-api\s", scrape)
    assert re.search(r"__meta_kubernetes_namespace\s+regex: student-api\s+action: keep", scrape)
    assert not obs.values("promtail")["config"]["snippets"].get("extraScrapeConfigs")


def test_the_postgres_exporter_logs_in_with_the_synced_secret():
    external = obs.load_yaml(obs.REPO / "deploy" / "external-secrets" / "externalsecret-postgres-exporter.yaml")
    keys = {d["secretKey"] for d in external["spec"]["data"]}
    for name, vals in all_values("prometheus-postgres-exporter"):
        source = vals["config"]["datasource"]
        assert source["userSecret"]["name"] == source["passwordSecret"]["name"] == external["spec"]["target"]["name"]
        assert {source["userSecret"]["key"], source["passwordSecret"]["key"]} == keys == {
            "DATA_SOURCE_USER", "DATA_SOURCE_PASS"}
        assert not source.get("password") and not vals["config"].get("datasourceSecret"), name
        assert (source["host"], source["port"]) == ("postgres.database.svc", "5432")
        assert vals["serviceMonitor"]["enabled"] is True
    assert obs.values("prometheus-postgres-exporter")["config"]["datasource"]["sslmode"] == "disable"
    assert obs.merged_values("prometheus-postgres-exporter", "prod")["config"]["datasource"]["sslmode"] == "require"


def test_the_database_network_policy_admits_the_exporter_by_its_chart_name():
    postgres = obs.load_yaml(obs.REPO / "deploy" / "helm" / "postgres" / "values.yaml")
    peers = {c["name"]: c for c in postgres["networkPolicy"]["clients"]}
    assert peers["postgres-exporter"]["namespace"] == "observability"
    assert peers["postgres-exporter"]["podLabels"] == {"app.kubernetes.io/name": "prometheus-postgres-exporter"}
    assert "nameOverride" not in obs.values("prometheus-postgres-exporter")


def test_the_node_exporter_and_kube_state_metrics_are_on_and_the_chart_rules_off():
    kps = obs.values("kube-prometheus-stack")
    assert kps["defaultRules"]["create"] is False
    assert kps["grafana"]["defaultDashboardsEnabled"] is False
    assert kps.get("nodeExporter", {}).get("enabled", True) is True
    assert kps.get("kubeStateMetrics", {}).get("enabled", True) is True


SECRETISH = re.compile(
    r"hooks\.slack\.com|xox[abp]-|-----BEGIN [A-Z ]*PRIVATE KEY|"
    r"(password|passwd|secret|token)\s*:\s*['\"]?[A-Za-z0-9+/=_-]{8,}",
    re.IGNORECASE,
)


def test_no_secret_is_committed_in_the_observability_files():
    files = [p for p in obs.OBS.rglob("*") if p.is_file()]
    files += [obs.REPO / "docs" / "observability.md", obs.RUNBOOK]
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = SECRETISH.search(line)
            # Keys that name a Secret or a key in one are fine.
            if match and not re.search(r"(existingSecret|passwordKey|passwordSecret|secretKey)", line):
                pytest.fail(f"{path.relative_to(obs.REPO)}:{number}: looks like a secret")
