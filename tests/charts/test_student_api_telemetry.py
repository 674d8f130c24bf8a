"""The student-api chart's tracing and fault-injection switches.

tracing: on, the service gets the OpenTelemetry SDK's standard variables
(OTLP endpoint and protocol, service name, sampler, resource attributes from
the pod) and its NetworkPolicy lets the spans out to the OTLP receiver's
pods at the endpoint's port; off, none of that. faultInjection: on, the
service gets FAULT_INJECTION=on (its admin endpoint on the metrics port);
the production values refuse it, in the schema and in the chart itself.

Where the spans go from there (Alloy, Tempo) is tests/observability/static's.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from support import rendered

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "deploy" / "helm" / "student-api"
OTEL = {
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
}


def _of_kind(docs: list[Any], kind: str) -> list[dict]:
    return [d for d in docs if isinstance(d, dict) and d.get("kind") == kind]


def config(combo: str) -> dict[str, str]:
    _, docs = rendered(combo)
    (configmap,) = _of_kind(docs, "ConfigMap")
    return configmap["data"]


def service_container(combo: str) -> dict:
    _, docs = rendered(combo)
    (deployment,) = _of_kind(docs, "Deployment")
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "student-api"]
    return container


def egress_to(combo: str, namespace: str) -> list[dict]:
    _, docs = rendered(combo)
    rules = []
    for policy in _of_kind(docs, "NetworkPolicy"):
        for rule in policy["spec"].get("egress") or []:
            if any((p.get("namespaceSelector") or {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                   == namespace for p in rule.get("to", [])):
                rules.append(rule)
    return rules


def values(*overlays: str) -> dict:
    merged: dict = {}
    for name in ("values.yaml", *overlays):
        merged = _merge(merged, yaml.safe_load((CHART_DIR / name).read_text(encoding="utf-8")) or {})
    return merged


def _merge(base: dict, top: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def render_with(vals: dict, chart_dir: Path = CHART_DIR) -> dict[str, str]:
    with helm.Chart.load(chart_dir) as chart:
        return chart.render(vals, name="student-api", namespace="student-api", is_install=True)


# ------------------------------------------------------------------ tracing
def test_tracing_is_off_by_default_and_then_sets_nothing():
    assert not OTEL & set(config("student-api/values"))
    assert "env" not in service_container("student-api/values")
    assert egress_to("student-api/values", "observability") == []


@pytest.mark.parametrize(("combo", "ratio"), [("student-api/values-dev", "1"), ("student-api/values-prod", "0.1")])
def test_tracing_on_sets_the_sdks_standard_variables(combo, ratio):
    data = config(combo)
    assert {k: data[k] for k in OTEL} == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://alloy.observability.svc:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "student-api",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": ratio,
    }
    env = {e["name"]: e for e in service_container(combo)["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    attributes = dict(pair.split("=", 1) for pair in env["OTEL_RESOURCE_ATTRIBUTES"]["value"].split(","))
    assert attributes["k8s.namespace.name"] == "student-api"
    # Kubernetes expands $(VAR) of variables defined before it.
    assert (attributes["k8s.pod.name"], attributes["k8s.node.name"]) == ("$(POD_NAME)", "$(NODE_NAME)")
    assert list(env).index("OTEL_RESOURCE_ATTRIBUTES") > max(list(env).index("POD_NAME"), list(env).index("NODE_NAME"))
    assert attributes["service.version"]


@pytest.mark.parametrize("combo", ["student-api/values-dev", "student-api/values-prod"])
def test_tracing_on_lets_the_spans_out_to_the_otlp_receivers_pods_only(combo):
    (rule,) = egress_to(combo, "observability")
    assert rule["to"] == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "alloy"}},
    }]
    assert rule["ports"] == [{"port": 4318, "protocol": "TCP"}]
    assert config(combo)["OTEL_EXPORTER_OTLP_ENDPOINT"].endswith(":4318")


def test_the_chart_refuses_an_endpoint_its_network_policy_would_drop():
    vals = values("values-dev.yaml")
    vals["tracing"]["endpoint"] = "http://alloy.observability.svc:4317"
    with pytest.raises(helm.HelmError, match="networkPolicy.otlpCollector.port"):
        render_with(vals)


@pytest.mark.parametrize(
    ("key", "value"),
    [("sampler", "probabilistic"), ("samplerArg", "1.5"), ("samplerArg", "half"), ("protocol", "http/json"),
     ("endpoint", "alloy:4318")],
)
def test_the_schema_refuses_tracing_settings_the_sdk_would_not_take(key, value):
    vals = values("values-dev.yaml")
    vals["tracing"][key] = value
    with helm.Chart.load(CHART_DIR) as chart, pytest.raises(helm.HelmError):
        chart.validate_schema(vals)


# ----------------------------------------------------------- fault injection
def test_fault_injection_is_off_by_default_on_in_development_and_absent_in_production():
    assert "FAULT_INJECTION" not in config("student-api/values")
    assert config("student-api/values-dev")["FAULT_INJECTION"] == "on"
    assert "FAULT_INJECTION" not in config("student-api/values-prod")


def test_the_production_values_refuse_fault_injection_in_the_schema():
    vals = values("values-prod.yaml")
    assert vals["faultInjection"] == {"enabled": False, "allowed": False}
    with helm.Chart.load(CHART_DIR) as chart:
        chart.validate_schema(vals)
        vals["faultInjection"]["enabled"] = True
        with pytest.raises(helm.HelmError, match="faultInjection"):
            chart.validate_schema(vals)
    with pytest.raises(helm.HelmError):
        render_with(vals)


def test_the_chart_itself_refuses_it_too_where_the_schema_is_skipped(tmp_path):
    """`helm --skip-schema-validation` must not be a way around it."""
    copy_dir = tmp_path / "student-api"
    shutil.copytree(CHART_DIR, copy_dir)
    (copy_dir / "values.schema.json").unlink()
    vals = values("values-prod.yaml")
    vals["faultInjection"]["enabled"] = True
    with pytest.raises(helm.HelmError, match="fault injection is refused"):
        render_with(vals, copy_dir)
    vals["faultInjection"]["allowed"] = True
    assert 'FAULT_INJECTION: "on"' in render_with(vals, copy_dir)["student-api/templates/configmap.yaml"]
