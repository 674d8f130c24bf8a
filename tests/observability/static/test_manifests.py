"""deploy/observability/manifests as Argo CD applies it: rendered by
kustomize, every document valid against the strict schemas of
tests/manifests/validate.py, the rules and dashboards all included.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import obs

sys.path.insert(0, str(obs.REPO / "tests" / "manifests"))
import validate  # noqa: E402 - the repository's validator, imported by path

MANIFESTS = obs.OBS / "manifests"


def kubectl() -> str:
    venv = Path(sys.executable).parent / "kubectl"
    path = str(venv) if venv.exists() else shutil.which("kubectl")
    if not path:
        pytest.fail("kubectl not found: run.sh installs it into .venv (tests/manifests/requirements.txt)")
    return path


@pytest.fixture(scope="module")
def rendered() -> str:
    result = subprocess.run([kubectl(), "kustomize", str(MANIFESTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def documents(rendered: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(rendered) if d]


def test_every_rendered_document_is_valid_against_the_strict_schemas(rendered):
    checked, problems = validate.Validator().check_text(rendered, "kustomize deploy/observability/manifests")
    assert problems == [], "\n".join(map(str, problems))
    assert all("no schema" not in c for c in checked)


def test_the_manifests_hold_the_rules_the_dashboards_and_the_slack_external_secret(documents):
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in documents)
    rules = [("PrometheusRule", stem) for stem in obs.rule_files()]
    dashboards = [("ConfigMap", f"grafana-dashboard-{p.stem}") for p in obs.DASHBOARDS_DIR.glob("*.json")]
    assert kinds == sorted(rules + dashboards + [("ExternalSecret", "alertmanager-slack")])


def test_every_object_is_in_observability_and_part_of_student_api(documents):
    for doc in documents:
        assert doc["metadata"]["namespace"] == "observability", doc["metadata"]["name"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "student-api"


def test_the_rendered_rules_are_the_rule_files(documents):
    rendered = {d["metadata"]["name"]: d["spec"] for d in documents if d["kind"] == "PrometheusRule"}
    assert rendered == {stem: doc["spec"] for stem, doc in obs.rule_files().items()}


def test_each_dashboard_is_a_configmap_grafana_loads_unchanged(documents):
    configmaps = {d["metadata"]["name"]: d for d in documents if d["kind"] == "ConfigMap"}
    for path in obs.DASHBOARDS_DIR.glob("*.json"):
        cm = configmaps[f"grafana-dashboard-{path.stem}"]
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(cm["data"][path.name]) == json.loads(path.read_text())
        # Stable names: no hash suffix for Argo CD to prune and recreate.
        assert cm["metadata"]["name"] == f"grafana-dashboard-{path.stem}"
