"""Tests of the harness itself: chart discovery, rendering and lint
(render.py), the custom-resource mapping (crd_schemas.py), and the checkov
gate's reading of skips and reports (checkov_gate.py).

Charts here are tiny throwaway ones written to a temporary directory, so
these tests do not depend on the state of deploy/helm.
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

import checkov_gate
import crd_schemas
import render

HERE = Path(__file__).resolve().parent

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  namespace: {{ .Release.Namespace }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: "registry.example.org/web:{{ .Values.tag }}"
"""


def make_chart(
    root: Path, name: str, overlays: dict[str, str] | None = None, templates: dict[str, str] | None = None
) -> Path:
    chart = root / name
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        f"apiVersion: v2\nname: {name}\nversion: 0.1.0\nicon: https://example.org/i.png\n"
    )
    (chart / "values.yaml").write_text("replicas: 1\ntag: 1.0.0\n")
    for values_name, text in (overlays or {}).items():
        (chart / f"{values_name}.yaml").write_text(text)
    for template, text in (templates or {"deployment.yaml": DEPLOYMENT}).items():
        (chart / "templates" / template).write_text(text)
    return chart


# ------------------------------------------------------------- render.py
def test_discovery_takes_values_alone_then_each_overlay_for_every_chart(tmp_path):
    make_chart(tmp_path, "student-api", {"values-prod": "replicas: 3\n", "values-dev": "replicas: 1\n"})
    make_chart(tmp_path, "postgres")
    (tmp_path / "not-a-chart").mkdir()

    combos = render.discover(tmp_path)

    assert [c.id for c in combos] == [
        "postgres/values", "student-api/values", "student-api/values-dev", "student-api/values-prod",
    ]
    assert {c.chart: c.namespace for c in combos} == {"postgres": "database", "student-api": "student-api"}


def test_discovery_refuses_a_chart_whose_namespace_is_not_known(tmp_path):
    make_chart(tmp_path, "mystery")
    with pytest.raises(render.RenderError, match="no namespace known for chart 'mystery'"):
        render.discover(tmp_path)


def test_an_overlay_is_applied_on_top_of_the_chart_defaults(tmp_path):
    make_chart(tmp_path, "student-api", {"values-prod": "replicas: 3\n"})
    by_id = {c.id: c for c in render.discover(tmp_path)}

    base = render.render(by_id["student-api/values"]).documents[0].obj
    prod = render.render(by_id["student-api/values-prod"]).documents[0].obj

    assert (base["spec"]["replicas"], prod["spec"]["replicas"]) == (1, 3)
    assert prod["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example.org/web:1.0.0"
    assert prod["metadata"] == {"name": "student-api", "namespace": "student-api"}


def test_notes_and_empty_documents_are_not_taken_for_manifests(tmp_path):
    make_chart(tmp_path, "student-api", templates={
        "deployment.yaml": DEPLOYMENT,
        "NOTES.txt": "Installed {{ .Release.Name }}.\n",
        "empty.yaml": "{{- if false }}\nkind: ConfigMap\n{{- end }}\n",
        "two.yaml": "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n# nothing\n---\n"
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
    })
    documents = render.render(render.discover(tmp_path)[0]).documents
    assert [(d.kind, d.name) for d in documents] == [
        ("Deployment", "student-api"), ("ConfigMap", "a"), ("ConfigMap", "b"),
    ]


def test_a_template_error_fails_the_render_naming_the_combination_and_template(tmp_path):
    make_chart(tmp_path, "student-api", templates={"broken.yaml": "value: {{ .Values.missing.deeper }}\n"})
    with pytest.raises(render.RenderError, match=r"student-api/values: helm render failed .*broken\.yaml"):
        render.render(render.discover(tmp_path)[0])


def test_a_values_file_that_is_not_yaml_fails_with_its_path(tmp_path):
    make_chart(tmp_path, "student-api", {"values-dev": "replicas: [1\n"})
    combo = render.discover(tmp_path)[1]
    with pytest.raises(render.RenderError, match="values-dev.yaml"):
        render.render(combo)


def test_a_chart_named_unlike_its_directory_is_refused(tmp_path):
    chart = make_chart(tmp_path, "student-api")
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n")
    with pytest.raises(render.RenderError, match="they must match"):
        render.render(render.discover(tmp_path)[0])


def test_lint_is_strict_and_a_clean_chart_has_no_findings(tmp_path):
    make_chart(tmp_path, "student-api")
    assert render.lint(render.discover(tmp_path)[0]) == []
    shutil.rmtree(tmp_path / "student-api" / "templates")
    findings = render.lint(render.discover(tmp_path)[0])
    # A warning (templates/ missing), which only strict mode makes fatal.
    assert any("[warning] templates/" in f for f in findings), findings


def test_lint_reports_a_template_error_with_the_values_of_the_combination(tmp_path):
    broken = "{{ if .Values.broken }}{{ .Values.missing.deeper }}{{ end }}\n"
    templates = {"deployment.yaml": DEPLOYMENT, "x.yaml": broken}
    make_chart(tmp_path, "student-api", {"values-dev": "broken: true\n"}, templates)
    base, dev = render.discover(tmp_path)
    assert render.lint(base) == []
    assert any("student-api/values-dev: lint [error]" in f for f in render.lint(dev))


def test_every_document_is_written_whole_and_to_a_numbered_file_of_its_own(tmp_path):
    make_chart(tmp_path, "student-api", templates={
        "deployment.yaml": DEPLOYMENT,
        "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Odd_Name\n",
    })
    entry = render.write(render.render(render.discover(tmp_path)[0]), tmp_path / "out")

    files = sorted(p.name for p in (tmp_path / "out" / "student-api" / "values").iterdir())
    assert files == ["001-configmap-odd-name.yaml", "002-deployment-student-api.yaml"]
    whole = list(yaml.safe_load_all((tmp_path / "out" / "student-api" / "values.yaml").read_text()))
    assert [d["kind"] for d in whole] == ["ConfigMap", "Deployment"]
    kinds = [(d["kind"], d["apiVersion"]) for d in entry["documents"]]
    assert kinds == [("ConfigMap", "v1"), ("Deployment", "apps/v1")]


# -------------------------------------------------------- crd_schemas.py
def test_custom_resources_get_the_schema_validate_py_maps_them_to():
    import validate

    index = {"combos": [{"documents": [
        {"file": "a.yaml", "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret"},
        {"file": "b.yaml", "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster"},
        {"file": "c.yaml", "apiVersion": "apps/v1", "kind": "Deployment"},
    ]}]}
    by_schema = crd_schemas.crd_files(index, validate.Validator())
    assert {p.name: files for p, files in by_schema.items()} == {
        "cluster-postgresql-v1.json": ["b.yaml"],
        "externalsecret-external-secrets-v1.json": ["a.yaml"],
    }


# ------------------------------------------------------- checkov_gate.py
def deployment_with(annotations: dict) -> dict:
    return {"kind": "Deployment", "metadata": {"name": "web", "namespace": "student-api", "annotations": annotations}}


def test_an_annotation_skip_with_a_justification_is_listed_and_accepted():
    skips = list(checkov_gate.annotation_skips("student-api/values", deployment_with(
        {"checkov.io/skip1": "CKV_K8S_43=tags are immutable release versions", "team": "x"})))
    assert skips == [checkov_gate.Skip("student-api/values", "Deployment student-api/web", "CKV_K8S_43",
                                       "tags are immutable release versions")]


@pytest.mark.parametrize("value,problem", [
    ("CKV_K8S_43", "no justification"),
    ("CKV_K8S_43=  ", "no justification"),
    ("CKV_K8S_43=a=b", 'contains "="'),
])
def test_an_annotation_skip_without_a_usable_justification_is_refused(value, problem):
    [skip] = checkov_gate.annotation_skips("c/v", deployment_with({"checkov.io/skip2": value}))
    assert problem in skip.problem


def test_dockerfile_skips_are_read_from_comments_only():
    text = textwrap.dedent("""\
        FROM scratch
        # checkov:skip=CKV_DOCKER_2: no shell to probe with
        # checkov:skip=CKV_DOCKER_3
        RUN echo "checkov:skip=CKV_DOCKER_9:not a comment"
    """)
    skips = list(checkov_gate.dockerfile_skips("Dockerfile", text))
    assert [(s.resource, s.check_id, s.justification, bool(s.problem)) for s in skips] == [
        ("Dockerfile:2", "CKV_DOCKER_2", "no shell to probe with", False),
        ("Dockerfile:3", "CKV_DOCKER_3", "", True),
    ]


def test_checkov_reports_are_read_whether_one_object_a_list_or_several():
    one = {"check_type": "kubernetes", "results": {}}
    assert checkov_gate.parse_reports(json.dumps(one)) == [one]
    assert checkov_gate.parse_reports(json.dumps([one, one])) == [one, one]
    assert checkov_gate.parse_reports(json.dumps(one) + "\n" + json.dumps(one)) == [one, one]


def test_labels_of_one_chart_are_grouped():
    labels = ["student-api/values", "student-api/values-prod", "postgres/values", "Dockerfile"]
    assert checkov_gate.group_labels(labels) == "student-api/{values,values-prod} postgres/values Dockerfile"


@pytest.mark.skipif(not checkov_gate.CHECKOV.exists(), reason="checkov is installed by tests/charts/run.sh")
def test_the_gate_fails_on_a_failed_check_and_an_unjustified_skip_even_under_a_hidden_directory(tmp_path, capsys):
    make_chart(tmp_path / "charts", "student-api")
    out = tmp_path / ".hidden" / "charts"
    out.mkdir(parents=True)
    rendered = render.render(render.discover(tmp_path / "charts")[0])
    rendered.documents[0].obj["metadata"]["annotations"] = {"checkov.io/skip1": "CKV_K8S_43"}
    rendered.documents[0].text = yaml.safe_dump(rendered.documents[0].obj)
    entry = render.write(rendered, out)
    (out / "index.json").write_text(json.dumps({"charts": ["student-api"], "combos": [entry]}))

    rc = checkov_gate.main(["--index", str(out / "index.json"), "--dockerfile", str(tmp_path / "none")])

    printed = capsys.readouterr()
    assert rc == 1
    assert re.search(r"CKV_K8S_\d+ failed", printed.out), printed.out
    assert "skip of CKV_K8S_43: no justification" in printed.out
    assert json.loads((out / "checkov.json").read_text())["failed"] > 0


# ----------------------------------------------------------- requirements
def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line} is not an exact pin"
            found[name.lower()] = version
    return found


def test_every_requirement_is_pinned_and_shared_pins_agree_with_tests_manifests():
    ours = pins(HERE / "requirements.txt")
    theirs = pins(HERE.parent / "manifests" / "requirements.txt")
    shared = set(ours) & set(theirs)
    assert {"pytest", "pyyaml"} <= shared
    assert {name: ours[name] for name in shared} == {name: theirs[name] for name in shared}
    assert set(pins(HERE / "requirements-checkov.txt")) == {"checkov"}
