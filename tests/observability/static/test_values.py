"""The charts' values files: placement on the platform's nodes, the secrets
they read, how Alloy runs and where its pipeline comes from, retention, and
the names other files rely on. What Alloy's pipeline ships is test_alloy.py's.

The charts themselves cannot be fetched here, so these checks read the
values as the charts' documented keys.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import obs


def yaml_load_all(text: str) -> list:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def kubectl() -> str:
    """The kubectl of tests/manifests/requirements.txt (run.sh installs it)."""
    venv = Path(os.environ.get("VENV_DIR") or obs.REPO / ".venv") / "bin" / "kubectl"
    found = str(venv) if venv.is_file() else shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl not found: run tests/observability/static/run.sh, which installs it")
    return found

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
    "loki": ["singleBinary.nodeSelector", "defaults.nodeSelector"],
    "tempo": ["nodeSelector"],
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


def test_loki_runs_nothing_but_the_pinned_monolithic_pod():
    for name, vals in all_values("loki"):
        # "SingleBinary" is the name the chart deprecated at 12.0.
        assert vals["deploymentMode"] == "Monolithic", name
        assert vals["singleBinary"]["replicas"] == 1, name
        assert vals["loki"]["storage"]["type"] == "filesystem", name
        for component in ("read", "write", "backend"):
            assert vals[component]["replicas"] == 0, (name, component)
        for component in ("gateway", "chunksCache", "resultsCache", "lokiCanary", "test"):
            assert vals[component]["enabled"] is False, (name, component)
        assert not vals.get("minio", {}).get("enabled"), name


def test_tempo_runs_one_unprivileged_pod_with_its_traces_on_a_volume_for_a_bounded_time():
    for name, vals in all_values("tempo"):
        tempo = vals["tempo"]
        assert vals["fullnameOverride"] == "tempo", "Alloy and Grafana reach tempo.observability.svc"
        assert tempo["reportingEnabled"] is False, name
        assert re.fullmatch(r"\d+h", tempo["retention"]), name
        assert vals["persistence"]["enabled"] is True and vals["persistence"]["size"].endswith("Gi"), name
        requests = tempo["resources"]["requests"]
        assert requests.get("cpu") and requests.get("memory") and tempo["resources"]["limits"]["memory"], name
        context = tempo["securityContext"]
        assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"] == {"drop": ["ALL"]}, name
        assert vals["securityContext"]["runAsNonRoot"] is True and vals["securityContext"]["runAsUser"] != 0
        assert vals["serviceAccount"]["automountServiceAccountToken"] is False, "Tempo never calls the API"
        assert vals["tempoQuery"]["enabled"] is False, "Grafana is the UI"
        assert vals["serviceMonitor"]["enabled"] is True
    dev, prod = obs.values("tempo")["tempo"]["retention"], obs.merged_values("tempo", "prod")["tempo"]["retention"]
    assert int(dev[:-1]) < int(prod[:-1])


def test_tempo_receives_otlp_only():
    vals = obs.values("tempo")
    receivers = vals["tempo"]["receivers"]
    # The chart's Service template reads the Jaeger endpoints: declared, empty.
    assert all(p["endpoint"] == "" for p in receivers["jaeger"]["protocols"].values())
    assert receivers["otlp"]["protocols"] == {
        "grpc": {"endpoint": "0.0.0.0:4317"},
        "http": {"endpoint": "0.0.0.0:4318"},
    }
    # The configuration template lists the OTLP receiver alone.
    config = " ".join(vals["config"].split())
    assert "receivers: otlp: {{- toYaml .Values.tempo.receivers.otlp | nindent 8 }}" in config
    assert ".Values.tempo.receivers |" not in config and "jaeger" not in config


def test_every_loki_container_has_resource_requests():
    for name, vals in all_values("loki"):
        # The Loki container, and the rules sidecar beside it in the same pod.
        for key in ("singleBinary.resources", "sidecar.resources"):
            requests = obs.dig(vals, key + ".requests") or {}
            assert requests.get("cpu") and requests.get("memory"), f"{name}: {key}"
            assert obs.dig(vals, key + ".limits.memory"), f"{name}: {key}"


def test_the_loki_rules_sidecar_reads_configmaps_of_its_namespace_only():
    vals = obs.values("loki")
    assert vals["sidecar"]["rules"]["resource"] == "configmap"
    assert not vals["sidecar"]["rules"].get("searchNamespace")
    assert vals["rbac"]["namespaced"] is True


def test_the_daemonsets_are_the_documented_exceptions():
    kps = obs.values("kube-prometheus-stack")
    # node-exporter reports every node, so it may not be pinned.
    assert "nodeSelector" not in kps.get("prometheus-node-exporter", {})
    # Alloy ships the pods of its own node: a DaemonSet on every node,
    # the control plane included.
    controller = obs.values("alloy")["controller"]
    assert controller["type"] == "daemonset"
    assert not controller.get("nodeSelector") and not controller.get("affinity")
    assert {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"} in (
        controller["tolerations"]
    )


def test_alloy_reads_its_pipeline_from_the_configmap_kustomize_renders():
    alloy = obs.values("alloy")["alloy"]
    assert alloy["configMap"]["create"] is False
    kustomization = obs.load_yaml(obs.OBS / "alloy" / "kustomization.yaml")
    assert kustomization["generatorOptions"]["disableNameSuffixHash"] is True, "the chart needs a stable name"
    (generator,) = kustomization["configMapGenerator"]
    assert generator["name"] == alloy["configMap"]["name"]
    assert generator["files"] == [alloy["configMap"]["key"]] == [obs.ALLOY_CONFIG.name]
    rendered = subprocess.run(
        [kubectl(), "kustomize", str(obs.OBS / "alloy")], capture_output=True, text=True, check=True
    ).stdout
    (configmap,) = list(yaml_load_all(rendered))
    assert configmap["metadata"] == {
        **configmap["metadata"],
        "name": alloy["configMap"]["name"],
        "namespace": "observability",
    }
    assert configmap["data"] == {alloy["configMap"]["key"]: obs.ALLOY_CONFIG.read_text(encoding="utf-8")}


def test_alloy_runs_unprivileged_with_requests_and_nothing_else_of_its_chart():
    vals = obs.values("alloy")
    alloy = vals["alloy"]
    context = alloy["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] != 0
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    # No host path: the logs come through the API (config.alloy).
    assert not alloy["mounts"].get("varlog") and not alloy["mounts"].get("dockercontainers")
    assert not any("hostPath" in v for v in vals["controller"]["volumes"]["extra"])
    # The writable path Alloy keeps its positions in is a mounted volume.
    mounts = {m["mountPath"]: m["name"] for m in alloy["mounts"]["extra"]}
    assert mounts.get(alloy["storagePath"]) in {v["name"] for v in vals["controller"]["volumes"]["extra"]}
    assert alloy["enableReporting"] is False
    for key in ("alloy.resources", "configReloader.resources"):
        requests = obs.dig(vals, key + ".requests") or {}
        assert requests.get("cpu") and requests.get("memory"), key
        assert obs.dig(vals, key + ".limits.memory"), key
    assert vals.get("configReloader", {}).get("enabled", True) is True, "changes to config.alloy must reload"
    assert vals["crds"]["create"] is False
    assert not vals.get("ingress", {}).get("enabled")
    assert not obs.dig(vals, "controller.autoscaling.enabled")
    assert vals["serviceMonitor"]["enabled"] is True
    # RBAC: pods and their logs, nothing else (no Secrets, no ConfigMaps).
    rules = vals["rbac"]["rules"] + vals["rbac"]["clusterRules"]
    assert {r for rule in rules for r in rule["resources"]} == {"pods", "pods/log"}
    assert {v for rule in rules for v in rule["verbs"]} == {"get", "list", "watch"}


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


def test_grafana_and_alloy_reach_loki_by_its_service_name():
    loki = obs.values("loki")
    base = f"http://{loki['fullnameOverride']}.observability.svc:{3100}"
    assert datasource("loki")["url"] == base
    (writer,) = obs.alloy_pipeline().of_kind("loki.write")
    assert [e.attributes["url"] for e in writer.children("endpoint")] == [f"{base}/loki/api/v1/push"]


def datasource(uid: str) -> dict:
    (found,) = [d for d in obs.values("kube-prometheus-stack")["grafana"]["additionalDataSources"] if d["uid"] == uid]
    return found


# A trace id as the service writes it (W3C: 32 lowercase hex digits), in a
# line shaped like its JSON lines (compact, as serde_json writes them).
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_grafana_reaches_tempo_by_its_service_name():
    tempo = obs.values("tempo")
    port = tempo["tempo"].get("server", {}).get("http_listen_port", 3200)
    assert datasource("tempo")["url"] == f"http://{tempo['fullnameOverride']}.observability.svc:{port}"
    assert datasource("tempo")["type"] == "tempo"


def test_a_metric_exemplar_opens_its_trace():
    kps = obs.values("kube-prometheus-stack")
    assert "exemplar-storage" in kps["prometheus"]["prometheusSpec"]["enableFeatures"]
    destination = kps["grafana"]["sidecar"]["datasources"]["exemplarTraceIdDestinations"]
    assert destination == {"datasourceUid": "tempo", "traceIdLabelName": "trace_id"}


def test_a_log_line_opens_its_trace(service, workdir):
    (field,) = datasource("loki")["jsonData"]["derivedFields"]
    assert field["datasourceUid"] == "tempo" and field["url"] == "$${__value.raw}"
    pattern = re.compile(field["matcherRegex"])
    # The live service's access lines (conftest runs it with tracing on)
    # carry the trace id, and the link finds exactly that one.
    lines = [json.loads(l) for l in (workdir / "student-api.log").read_text(encoding="utf-8").splitlines()]
    access = [line for line in lines if "route" in line]
    assert access and all("trace_id" in line for line in access), "access lines without a trace id"
    for own in access:
        found = [m.group(1) for m in pattern.finditer(json.dumps(own, separators=(",", ":")))]
        assert found == [own["trace_id"]]
    # Another id in the same place is found as well; no trace id, no link.
    line = json.dumps({**access[0], "trace_id": TRACE_ID}, separators=(",", ":"))
    assert [m.group(1) for m in pattern.finditer(line)] == [TRACE_ID]
    untraced = {k: v for k, v in access[0].items() if k not in ("trace_id", "span_id")}
    assert not pattern.search(json.dumps(untraced, separators=(",", ":"))), "no trace id, no link"


def test_a_span_opens_the_log_lines_and_metrics_of_its_request():
    tempo = datasource("tempo")["jsonData"]
    logs = tempo["tracesToLogsV2"]
    assert logs["datasourceUid"] == "loki" and logs["customQuery"] is True
    # The line filter finds the trace id in the line; the stream selector is
    # one Alloy produces (test_alloy.py checks it with the other LogQL).
    assert logs["query"] == '{namespace="student-api"} |= "$${__trace.traceId}"'
    assert tempo["tracesToMetrics"]["datasourceUid"] == "prometheus"
    assert tempo["lokiSearch"]["datasourceUid"] == "loki"


def test_grafanas_own_variables_are_escaped_from_the_provisioning_files_expansion():
    """Grafana expands $VAR and ${VAR} in provisioning files from its
    environment; ${__value.raw} unescaped would become an empty string."""
    text = yaml.safe_dump(obs.values("kube-prometheus-stack")["grafana"]["additionalDataSources"])
    assert re.findall(r"(?<!\$)\$\{", text) == []
    assert "$${__value.raw}" in text and "$${__trace.traceId}" in text


def test_loki_keeps_logs_seven_days_and_the_compactor_deletes_older_ones():
    loki = obs.values("loki")["loki"]
    assert loki["limits_config"]["retention_period"] == "168h"
    assert loki["compactor"]["retention_enabled"] is True
    assert loki["compactor"]["delete_request_store"] == "filesystem"
    prod = obs.merged_values("loki", "prod")["loki"]
    assert prod["limits_config"]["retention_period"] == "336h"
    assert prod["compactor"]["retention_enabled"] is True


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
