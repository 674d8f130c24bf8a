"""Alloy's pipelines (deploy/observability/alloy/config.alloy) against what
reads their output. Logs: the Loki rule, the log dashboard, the LogQL of the
docs and runbook, the service's JSON lines, Loki's Service and the
namespaces the platform deploys to. Traces: the ports the chart exposes and
its NetworkPolicy admits, the endpoint and egress the student-api chart
gives the service, and Tempo's Service.

No Alloy binary can run here; alloy_config.py reads the file (the subset of
Alloy's syntax it documents) and follows its wiring. The negative tests at
the end break copies of the config and expect the finding, so a check that
stopped catching anything fails too.
"""

from __future__ import annotations

import copy
import datetime
import json
import re
from urllib.parse import urlsplit

import pytest

import alloy_config
import obs

SERVICE_NAMESPACE = "student-api"
# Stream labels that stay bounded: what runs (namespace, pod, container,
# app, node) and, for the service, its four levels and route templates.
BOUNDED_LABELS = {"namespace", "pod", "container", "app", "node_name", "level", "route"}
# Per request: never a stream label.
PER_REQUEST = {"request_id", "status", "latency_ms", "message", "method"}


def pipeline_of(text: str | None = None) -> alloy_config.LogPipeline:
    if text is None:
        return obs.alloy_pipeline()
    return alloy_config.LogPipeline(alloy_config.parse(text))


def the_source(pipeline: alloy_config.LogPipeline) -> alloy_config.Block:
    (source,) = pipeline.of_kind("loki.source.kubernetes")
    return source


def config_text() -> str:
    return obs.ALLOY_CONFIG.read_text(encoding="utf-8")


# ------------------------------------------------------------ the queries
def documented_logql() -> list[tuple[str, str]]:
    """(where, expr) of the LogQL in docs/observability.md (```logql blocks)
    and in the runbook section of the log alert (lines selecting a namespace)."""
    out = []
    doc = (obs.REPO / "docs" / "observability.md").read_text(encoding="utf-8")
    for block in re.findall(r"```logql\n(.*?)```", doc, re.S):
        out += [("docs/observability.md", line) for line in block.splitlines() if line and not line.startswith("#")]
    runbook = obs.runbook_sections()["studentapierrorlogspike"]
    for block in re.findall(r"```\w*\n(.*?)```", runbook, re.S):
        out += [("docs/runbooks/alerts.md", line) for line in block.splitlines() if "{namespace=" in line]
    return out


def loki_queries() -> list[tuple[str, str]]:
    """(where, expr) of every LogQL expression something relies on."""
    queries = [(f"Loki rule {r.alert}", r.body["expr"]) for r in obs.loki_rules()]
    queries += [
        (f"{q.dashboard} / {q.panel}", q.expr) for q in obs.dashboard_queries() if q.datasource == "loki"
    ]
    # Grafana's link from a span to its log lines (the Tempo data source).
    for source in obs.values("kube-prometheus-stack")["grafana"]["additionalDataSources"]:
        link = source.get("jsonData", {}).get("tracesToLogsV2", {})
        if link.get("customQuery"):
            queries.append((f"data source {source['uid']}: traces to logs", link["query"]))
    return queries + documented_logql()


def label_findings(pipeline: alloy_config.LogPipeline, queries: list[tuple[str, str]], line_fields: set[str]) -> list[str]:
    """Every label a query selects, groups or filters by is one the pipeline
    gives the namespace it selects: a stream label in a stream selector;
    a stream label or structured metadata in by() and filters, or a field of
    the service's line when the query parses it with `| json`."""
    findings = []
    source = the_source(pipeline)
    for where, expr in queries:
        selectors = obs.logql_selectors(expr)
        if not selectors:
            findings.append(f"{where}: no stream selector in {expr!r}")
            continue
        for selector in selectors:
            namespace = selector.get("namespace")
            if not namespace or namespace[0] != "=":
                findings.append(f"{where}: selects no single namespace: {expr!r}")
                continue
            produced = pipeline.produced(source, namespace[1])
            if namespace[1] not in pipeline.discovered_namespaces(source):
                findings.append(f"{where}: the pipeline ships nothing of namespace {namespace[1]}")
            for label in set(selector) - produced.stream_labels:
                findings.append(f"{where}: selects on {label}, which is no stream label the pipeline sets")
            readable = produced.stream_labels | produced.structured_metadata
            if obs.logql_parses_line(expr):
                readable |= line_fields
            for label in (obs.logql_grouping_labels(expr) | obs.logql_label_filters(expr)) - readable:
                findings.append(f"{where}: reads {label}, which neither the pipeline nor the line provides")
    return findings


def test_every_loki_query_reads_labels_the_pipeline_produces():
    queries = loki_queries()
    # The rule, the dashboard's four panels and the documented queries.
    assert len([w for w, _ in queries if w.startswith("Loki rule")]) == 1
    assert len([w for w, _ in queries if w.startswith("student-api-logs.json")]) == 4
    assert len(queries) > 5
    fields = set(obs.documented_log_line())
    assert not label_findings(pipeline_of(), queries, fields), label_findings(pipeline_of(), queries, fields)


# --------------------------------------------------------------- wiring
def test_the_file_is_read_whole_and_holds_one_log_pipeline_and_one_trace_pipeline():
    pipeline = pipeline_of()
    assert set(b.name for b in pipeline.root.blocks) == {
        "discovery.kubernetes", "discovery.relabel", "loki.source.kubernetes", "loki.process", "loki.write",
        "otelcol.receiver.otlp", "otelcol.processor.memory_limiter", "otelcol.processor.batch",
        "otelcol.exporter.otlp",
    }
    source = the_source(pipeline)
    assert [b.name for b in pipeline.targets_chain(source)] == ["discovery.relabel", "discovery.kubernetes"]
    assert [b.name for b in pipeline.forward_chain(source)] == ["loki.process", "loki.write"]
    receiver = the_receiver(pipeline)
    assert [b.name for b in pipeline.trace_chain(receiver)] == TRACE_CHAIN
    # Nothing defined and left unused.
    used = {source.id} | {b.id for b in pipeline.targets_chain(source) + pipeline.forward_chain(source)}
    used |= {receiver.id} | {b.id for b in pipeline.trace_chain(receiver)}
    assert used == set(pipeline.components)


def test_alloy_pushes_to_the_loki_service_of_the_loki_values():
    loki = obs.values("loki")
    push = f"http://{loki['fullnameOverride']}.observability.svc:3100/loki/api/v1/push"
    (writer,) = pipeline_of().of_kind("loki.write")
    assert [e.attributes["url"] for e in writer.children("endpoint")] == [push]
    # Single tenant (auth_enabled false): no tenant header, no tenant stage.
    assert loki["loki"]["auth_enabled"] is False
    assert not any(b.name in ("stage.tenant", "headers") for b in writer.walk())
    assert "tenant_id" not in writer.children("endpoint")[0].attributes


def test_alloy_ships_every_namespace_the_platform_deploys_to_and_no_other():
    pipeline = pipeline_of()
    namespaces = pipeline.discovered_namespaces(the_source(pipeline))
    assert namespaces == obs.application_namespaces()
    assert {"student-api", "database", "openbao", "argocd", "external-secrets", "observability"} <= namespaces
    assert "kube-system" not in namespaces


def test_each_alloy_tails_only_the_pods_of_its_own_node():
    (discovery,) = pipeline_of().of_kind("discovery.kubernetes")
    assert discovery.attributes["role"] == "pod"
    (selector,) = discovery.children("selectors")
    assert selector.attributes["role"] == "pod"
    # The chart sets K8S_NODE_NAME from spec.nodeName (templates/containers/_agent.yaml).
    assert selector.attributes["field"] == alloy_config.Concat(
        ("spec.nodeName=", alloy_config.Call("sys.env", ("K8S_NODE_NAME",)))
    )


# ----------------------------------------------------- labels and fields
def test_the_service_lines_get_bounded_stream_labels_and_per_request_metadata():
    pipeline = pipeline_of()
    produced = pipeline.produced(the_source(pipeline), SERVICE_NAMESPACE)
    assert produced.stream_labels == BOUNDED_LABELS
    assert produced.structured_metadata == {"request_id", "status"}
    assert not produced.stream_labels & PER_REQUEST
    assert produced.json_fields == {"level", "route", "status", "request_id", "timestamp"}
    assert produced.timestamp == ("timestamp", "RFC3339Nano")


def test_other_namespaces_pass_through_with_the_pod_labels_only():
    pipeline = pipeline_of()
    for namespace in obs.application_namespaces() - {SERVICE_NAMESPACE}:
        produced = pipeline.produced(the_source(pipeline), namespace)
        assert produced.stream_labels == BOUNDED_LABELS - {"level", "route"}, namespace
        assert not produced.structured_metadata and not produced.json_fields, namespace


def test_the_fields_alloy_reads_are_the_ones_the_service_documents():
    line = obs.documented_log_line()
    pipeline = pipeline_of()
    produced = pipeline.produced(the_source(pipeline), SERVICE_NAMESPACE)
    assert produced.json_fields <= set(line)
    assert line["level"] in {"ERROR", "WARN", "INFO", "DEBUG"}
    # RFC3339Nano as the stage parses it: Go's layout, UTC "Z" here.
    assert datetime.datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).tzinfo is not None


def test_the_real_service_writes_every_field_alloy_reads(service, workdir):
    """The binary's own JSON lines (conftest runs it with LOG_FORMAT=json):
    the access-log lines hold every field the pipeline reads, with the
    documented names, and the levels the rule and dashboard filter on."""
    lines = []
    for raw in (workdir / "student-api.log").read_text(encoding="utf-8").splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            pytest.fail(f"the service wrote a line that is not JSON: {raw[:120]!r}")
    access = [line for line in lines if "route" in line]
    assert access, "no access-log line written"
    pipeline = pipeline_of()
    wanted = pipeline.produced(the_source(pipeline), SERVICE_NAMESPACE).json_fields
    for line in access:
        assert wanted <= set(line), sorted(wanted - set(line))
        assert set(line) == set(obs.documented_log_line()), "docs/operations.md shows other fields"
    assert {line["level"] for line in lines} <= {"ERROR", "WARN", "INFO", "DEBUG"}
    # Route templates, never raw paths (bounded label values).
    assert {line["route"] for line in access} >= {"/api/v1/students/{id}"}
    assert not any(re.search(r"/\d+(/|$)", line["route"]) for line in access)


# ----------------------------------------------------------------- traces
# Receiver first, then what protects the pod's memory, then batching, then
# the one exporter (OpenTelemetry's recommended order).
TRACE_CHAIN = ["otelcol.processor.memory_limiter", "otelcol.processor.batch", "otelcol.exporter.otlp"]
# The labels the alloy chart gives its pods (alloy.selectorLabels in its
# templates/_helpers.tpl; release alloy), and the Service it names after the
# release: what the student-api chart must select and send to.
ALLOY_POD_LABELS = {"app.kubernetes.io/name": "alloy", "app.kubernetes.io/instance": "alloy"}
ALLOY_SERVICE = "alloy.observability.svc"
# The student-api chart's pods (student-api.selectorLabels, release student-api).
SERVICE_POD_LABELS = {"app.kubernetes.io/name": "student-api", "app.kubernetes.io/instance": "student-api"}
STUDENT_API_CHART = obs.REPO / "deploy" / "helm" / "student-api"


def the_receiver(pipeline: alloy_config.LogPipeline) -> alloy_config.Block:
    (receiver,) = pipeline.of_kind("otelcol.receiver.otlp")
    return receiver


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def service_chart_values() -> list[tuple[str, dict]]:
    """The student-api chart's values, alone and with each values-<env>.yaml."""
    base = obs.load_yaml(STUDENT_API_CHART / "values.yaml")
    out = [("values.yaml", base)]
    for path in sorted(STUDENT_API_CHART.glob("values-*.yaml")):
        out.append((path.name, obs.deep_merge(base, obs.load_yaml(path))))
    return out


def selects(selector: dict, labels: dict) -> bool:
    return selector.items() <= labels.items()


def trace_findings(pipeline: alloy_config.LogPipeline, alloy: dict, tempo: dict, service: list[tuple[str, dict]]) -> list[str]:
    """Every hop of a span: the service's chart sends to Alloy's Service at
    the port of the OTLP/HTTP receiver, its NetworkPolicy lets the span out
    to Alloy's pods, Alloy's chart exposes every port the receiver listens
    on and its NetworkPolicy admits the service's pods there, the spans pass
    the memory limiter and the batcher, and the exporter sends them to
    Tempo's OTLP/gRPC receiver."""
    findings = []
    receiver = the_receiver(pipeline)
    chain = pipeline.trace_chain(receiver)
    if [b.name for b in chain] != TRACE_CHAIN:
        findings.append(f"traces pass through {[b.name for b in chain]}, expected {TRACE_CHAIN}")
    listening = {
        transport: port_of(receiver.children(transport)[0].attributes.get("endpoint", ":0"))
        for transport in ("grpc", "http")
        if receiver.children(transport)
    }
    if "http" not in listening:
        findings.append("the OTLP receiver has no http block: the service exports http/protobuf")
    exposed = {p["name"]: (p["port"], p["targetPort"]) for p in alloy["alloy"].get("extraPorts", [])}
    for transport, port in listening.items():
        if exposed.get(f"otlp-{transport}") != (port, port):
            findings.append(f"the OTLP {transport} receiver listens on {port}; the chart exposes {exposed.get(f'otlp-{transport}')}")
    policy = alloy.get("networkPolicy", {})
    admitted: set[int] = set()
    if policy.get("enabled") and "Ingress" in policy.get("policyTypes", []):
        for rule in policy.get("ingress") or []:
            from_service = any(
                selects((peer.get("namespaceSelector") or {}).get("matchLabels", {}),
                        {"kubernetes.io/metadata.name": "student-api"})
                and selects((peer.get("podSelector") or {}).get("matchLabels", {}), SERVICE_POD_LABELS)
                for peer in rule.get("from", [])
            )
            if from_service:
                admitted |= {p["port"] for p in rule.get("ports", [])}
        if admitted != set(listening.values()):
            findings.append(f"Alloy's NetworkPolicy admits the service to {sorted(admitted)}, the receiver listens on "
                            f"{sorted(listening.values())}")
    else:
        findings.append("Alloy's chart renders no ingress NetworkPolicy: anything in the cluster could send spans")
    for name, values in service:
        tracing = values["tracing"]
        if not tracing["enabled"]:
            continue
        url = urlsplit(tracing["endpoint"])
        if (url.scheme, url.hostname, url.port) != ("http", ALLOY_SERVICE, listening.get("http")):
            findings.append(f"student-api {name}: tracing.endpoint {tracing['endpoint']} is not Alloy's OTLP/HTTP receiver")
        peer = values["networkPolicy"]["otlpCollector"]
        if peer["namespace"] != "observability" or not selects(peer["podLabels"], ALLOY_POD_LABELS):
            findings.append(f"student-api {name}: networkPolicy.otlpCollector does not select Alloy's pods")
        if peer["port"] != listening.get("http"):
            findings.append(f"student-api {name}: networkPolicy.otlpCollector.port {peer['port']} is not the receiver's")
    exporter = chain[-1] if chain else None
    if exporter is not None and exporter.name == "otelcol.exporter.otlp":
        (client,) = exporter.children("client")
        grpc = tempo["tempo"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
        want = f"{tempo['fullnameOverride']}.observability.svc:{port_of(grpc)}"
        if client.attributes.get("endpoint") != want:
            findings.append(f"the exporter sends to {client.attributes.get('endpoint')}, Tempo receives at {want}")
        tls = client.children("tls")
        if not tls or tls[0].attributes.get("insecure") is not True:
            findings.append("Tempo serves plain OTLP/gRPC in the cluster: the exporter needs tls { insecure = true }")
    return findings


def real_trace_findings(pipeline: alloy_config.LogPipeline | None = None, alloy: dict | None = None,
                        service: list[tuple[str, dict]] | None = None) -> list[str]:
    return trace_findings(
        pipeline or pipeline_of(),
        alloy if alloy is not None else obs.values("alloy"),
        obs.values("tempo"),
        service if service is not None else service_chart_values(),
    )


def test_every_hop_of_a_span_from_the_service_to_tempo_is_wired():
    assert real_trace_findings() == []
    # Tracing is on in both environments, off in the chart's defaults.
    enabled = {name: values["tracing"]["enabled"] for name, values in service_chart_values()}
    assert enabled == {"values.yaml": False, "values-dev.yaml": True, "values-prod.yaml": True}


def test_the_receiver_sends_traces_only_and_the_limiter_keeps_room_for_the_logs():
    pipeline = pipeline_of()
    (limiter,) = pipeline.of_kind("otelcol.processor.memory_limiter")
    assert 0 < limiter.attributes["spike_limit_percentage"] < limiter.attributes["limit_percentage"] <= 50
    (output,) = the_receiver(pipeline).children("output")
    assert set(output.attributes) == {"traces"}


@pytest.mark.parametrize(
    "old,new,finding",
    [
        ('endpoint = "tempo.observability.svc:4317"', 'endpoint = "tempo.observability.svc:4318"', "Tempo receives at"),
        ('endpoint = "0.0.0.0:4318"', 'endpoint = "0.0.0.0:4319"', "the chart exposes"),
        ("    tls {\n      insecure = true\n    }\n", "", "tls { insecure = true }"),
        ("traces = [otelcol.processor.memory_limiter.default.input]", "traces = [otelcol.processor.batch.default.input]",
         "traces pass through"),
    ],
)
def test_a_trace_pipeline_that_loses_a_hop_is_caught(old, new, finding):
    findings = real_trace_findings(pipeline=broken(old, new))
    assert any(finding in f for f in findings), findings


@pytest.mark.parametrize(
    "where,change,finding",
    [
        ("alloy", lambda v: v["alloy"]["extraPorts"].pop(), "the chart exposes None"),
        ("alloy", lambda v: v["networkPolicy"].update(enabled=False), "no ingress NetworkPolicy"),
        ("alloy", lambda v: v["networkPolicy"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"].update(
            {"kubernetes.io/metadata.name": "default"}), "admits the service to []"),
        ("service", lambda v: v["tracing"].update(endpoint="http://alloy.observability.svc:4317"), "not Alloy's OTLP/HTTP"),
        ("service", lambda v: v["networkPolicy"]["otlpCollector"].update(podLabels={"app": "otel"}), "does not select"),
        ("service", lambda v: v["networkPolicy"]["otlpCollector"].update(port=4317), "is not the receiver's"),
    ],
)
def test_values_that_break_the_path_of_a_span_are_caught(where, change, finding):
    alloy = copy.deepcopy(obs.values("alloy"))
    service = copy.deepcopy(service_chart_values())
    if where == "alloy":
        change(alloy)
    else:
        change(service[-1][1])
    findings = real_trace_findings(alloy=alloy, service=service)
    assert any(finding in f for f in findings), findings


def test_the_reader_follows_trace_outputs_and_refuses_what_it_cannot_follow():
    pipeline = pipeline_of(
        'a.receiver "r" {\n output {\n traces = [b.proc.p.input]\n }\n}\n'
        'b.proc "p" {\n output {\n traces = [c.exp.e.input]\n }\n}\nc.exp "e" {}\n'
    )
    assert [b.id for b in pipeline.trace_chain(pipeline.components["a.receiver.r"])] == ["b.proc.p", "c.exp.e"]
    for output in ("traces = [b.x.y.input]", "traces = []", "metrics = [c.exp.e.input]"):
        bad = pipeline_of(f'a.receiver "r" {{\n output {{\n {output}\n }}\n}}\nc.exp "e" {{}}\n')
        with pytest.raises(ValueError):
            bad.trace_chain(bad.components["a.receiver.r"])


# ------------------------------------------------------------ the reader
def test_the_reader_reads_the_syntax_it_documents():
    root = alloy_config.parse(
        '''
        // comment
        a.b "x" {
          s = "q\\"uote" + `raw\\n`   /* block
          comment */
          n = [1, 2.5, true, null,]
          o = { k = "v", "quoted-key" = sys.env("HOME"), }
          r = c.d.e.f
          inner { x = 1 }
        }
        '''
    )
    (block,) = root.blocks
    assert (block.name, block.label, block.id) == ("a.b", "x", "a.b.x")
    assert block.attributes["s"] == alloy_config.Concat(('q"uote', "raw\\n"))
    assert block.attributes["n"] == [1, 2.5, True, None]
    assert block.attributes["o"] == {"k": "v", "quoted-key": alloy_config.Call("sys.env", ("HOME",))}
    assert block.attributes["r"] == alloy_config.Ref("c.d.e.f")
    assert block.children("inner")[0].attributes == {"x": 1}


@pytest.mark.parametrize(
    "text",
    [
        'a { x = 1 - 2 }',  # an operator outside the subset
        'a { x = y[0] }',  # indexing
        'a { x = 1\n x = 2 }',  # an attribute set twice
        'a { x = "unterminated }',
        'a { b.c = 1 }',
        'x = 1',
        'a "l" { ',
    ],
)
def test_the_reader_refuses_what_it_does_not_know(text):
    with pytest.raises(alloy_config.ParseError):
        alloy_config.parse(text)


# ------------------------------------------------- the checks catch breakage
def broken(old: str, new: str) -> alloy_config.LogPipeline:
    text = config_text()
    assert text.count(old) == 1, f"config.alloy no longer holds {old!r}"
    return pipeline_of(text.replace(old, new))


@pytest.mark.parametrize(
    "old,new,finding",
    [
        # The dashboard groups by route without parsing the line.
        ("        route = \"\",\n      }\n    }\n\n    // Per request", "      }\n    }\n\n    // Per request", "reads route"),
        # The rule and the dashboard select on namespace.
        ('target_label  = "namespace"', 'target_label  = "k8s_namespace"', "selects on namespace"),
        # The dashboard selects on level.
        ("    stage.labels {\n      values = {\n        level = \"\",", "    stage.labels {\n      values = {", "selects on level"),
        # The service's namespace no longer shipped.
        ('      "student-api",\n', "", "ships nothing of namespace student-api"),
        # The match no longer applies to the service's lines.
        ('selector = "{namespace=\\"student-api\\"}"', 'selector = "{namespace=\\"api\\"}"', "reads route"),
    ],
)
def test_a_pipeline_that_stops_producing_a_label_a_query_uses_is_caught(old, new, finding):
    findings = label_findings(broken(old, new), loki_queries(), set(obs.documented_log_line()))
    assert any(finding in f for f in findings), findings


def test_a_per_request_field_made_a_stream_label_is_caught():
    pipeline = broken("        level = \"\",\n        route = \"\",\n      }", "        level = \"\",\n        route = \"\",\n        request_id = \"\",\n      }")
    # request_id moves to structured metadata after the labels stage, so
    # Alloy drops it from the labels again: still bounded.
    assert "request_id" not in pipeline.produced(the_source(pipeline), SERVICE_NAMESPACE).stream_labels
    pipeline = broken("    stage.structured_metadata {\n      values = {\n        request_id = \"\",",
                      "    stage.static_labels {\n      values = {\n        request_id = \"\",")
    labels = pipeline.produced(the_source(pipeline), SERVICE_NAMESPACE).stream_labels
    assert labels & PER_REQUEST, "a static label named request_id must show up as a stream label"
    assert labels != BOUNDED_LABELS


def test_a_query_on_a_field_nothing_provides_is_caught():
    queries = [("test", '{namespace="student-api"} | json | user_agent="x"'),
               ("test", 'sum by (status) (count_over_time({namespace="student-api"} [5m]))'),
               ("test", '{namespace="kube-system"}'),
               ("test", '{app="student-api"}')]
    findings = label_findings(pipeline_of(), queries, set(obs.documented_log_line()))
    assert any("reads user_agent" in f for f in findings)
    # status is structured metadata: readable without | json.
    assert not any("reads status" in f for f in findings)
    assert any("nothing of namespace kube-system" in f for f in findings)
    assert any("selects no single namespace" in f for f in findings)


def test_a_writer_pointed_elsewhere_is_caught():
    pipeline = broken("http://loki.observability.svc:3100", "http://loki-gateway.observability.svc:80")
    (writer,) = pipeline.of_kind("loki.write")
    assert writer.children("endpoint")[0].attributes["url"] != (
        f"http://{obs.values('loki')['fullnameOverride']}.observability.svc:3100/loki/api/v1/push"
    )


def test_a_dangling_reference_is_caught():
    pipeline = broken("forward_to = [loki.write.loki.receiver]", "forward_to = [loki.write.other.receiver]")
    with pytest.raises(ValueError, match="names no component"):
        pipeline.forward_chain(the_source(pipeline))
