"""The oldest Kubernetes release the platform supports is one release in
every place that states it: the charts' kubeVersion, the cluster scripts'
check (deploy/cluster/lib.sh MIN_KUBERNETES) and the first release the
validator checks every manifest against (validate.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "manifests"))

import validate  # noqa: E402

FLOOR = ".".join(validate.SUPPORTED_KUBERNETES_VERSIONS[0].split(".")[:2])


def test_the_validator_checks_the_floor_and_a_newer_release():
    releases = [tuple(map(int, v.split("."))) for v in validate.SUPPORTED_KUBERNETES_VERSIONS]
    assert releases == sorted(releases) and len(releases) >= 2


@pytest.mark.parametrize("chart_yaml", sorted((REPO / "deploy" / "helm").glob("*/Chart.yaml")), ids=lambda p: p.parent.name)
def test_every_chart_requires_the_floor(chart_yaml):
    chart = yaml.safe_load(chart_yaml.read_text(encoding="utf-8"))
    assert chart.get("kubeVersion") == f">={FLOOR}.0-0", f"{chart_yaml.relative_to(REPO)}: kubeVersion"


def test_the_cluster_scripts_refuse_a_cluster_below_the_floor():
    lib = (REPO / "deploy" / "cluster" / "lib.sh").read_text(encoding="utf-8")
    assert re.findall(r'^MIN_KUBERNETES="([^"]+)"$', lib, re.MULTILINE) == [FLOOR]
