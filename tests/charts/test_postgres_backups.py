"""The postgres chart backs up through the Barman Cloud plugin and runs one
PostgreSQL major everywhere.

cnpg mode: no in-tree barmanObjectStore is left (CloudNativePG removes it in
1.31); the Cluster names the chart's ObjectStore as its WAL archiver, the
ScheduledBackup goes through the same plugin, the store's keys are those the
chart's ExternalSecret syncs, and the operand image is not of the "system"
flavour that carried the in-tree Barman Cloud. Every PostgreSQL image of the
repository (the chart's official image, the CloudNativePG image, compose.yaml)
and the archive's folder name the same major.

What only a cluster proves is not here: that the operator loads the plugin,
that a base backup and the WAL reach the bucket, that a restore works.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import helm_python as helm
import pytest
import yaml

import workloads
from support import COMBO_IDS, rendered

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "deploy" / "helm" / "postgres"
PLUGIN = "barman-cloud.cloudnative-pg.io"
POSTGRES_COMBOS = [c for c in COMBO_IDS if c.startswith("postgres/")]


def _keys(obj: Any) -> Iterator[str]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield key
            yield from _keys(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from _keys(item)


def _of_kind(docs: list[Any], api_version: str, kind: str) -> list[dict]:
    return [d for d in docs if isinstance(d, dict) and (d.get("apiVersion"), d.get("kind")) == (api_version, kind)]


def _major(text: str) -> str:
    found = re.search(r"(?<![\d.])(\d+)\.\d+", text)
    assert found, f"no PostgreSQL version in {text!r}"
    return found.group(1)


@pytest.mark.parametrize("combo", POSTGRES_COMBOS)
def test_no_document_uses_the_in_tree_barman_object_store(combo):
    _, docs = rendered(combo)
    assert "barmanObjectStore" not in set(_keys(docs))
    for backup in _of_kind(docs, "postgresql.cnpg.io/v1", "ScheduledBackup"):
        assert backup["spec"].get("method") == "plugin", backup["spec"]


@pytest.mark.parametrize("combo", POSTGRES_COMBOS)
def test_a_cluster_with_backups_archives_through_the_plugin_to_the_charts_object_store(combo):
    _, docs = rendered(combo)
    cluster = next(workloads.clusters(docs), None)
    stores = _of_kind(docs, "barmancloud.cnpg.io/v1", "ObjectStore")
    if cluster is None or not stores:
        pytest.skip(f"{combo} renders no CloudNativePG Cluster with backups")
    assert len(stores) == 1, [s["metadata"]["name"] for s in stores]
    store = stores[0]
    plugins = cluster["spec"].get("plugins") or []
    assert [p["name"] for p in plugins] == [PLUGIN]
    assert plugins[0].get("isWALArchiver") is True
    parameters = plugins[0].get("parameters") or {}
    assert parameters.get("barmanObjectName") == store["metadata"]["name"]
    # The folder names the major (one archive per major; a major upgrade
    # starts timeline 1 again).
    assert parameters.get("serverName", "").endswith(f"-pg{_major(cluster['spec']['imageName'])}"), parameters
    # serverName belongs to the Cluster's parameters only.
    assert "serverName" not in store["spec"]["configuration"]
    assert re.fullmatch(r"[1-9]\d*[dwm]", store["spec"].get("retentionPolicy", "")), store["spec"]

    schedules = _of_kind(docs, "postgresql.cnpg.io/v1", "ScheduledBackup")
    assert schedules, "a Cluster with backups has a ScheduledBackup"
    for schedule in schedules:
        assert schedule["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
        assert schedule["spec"]["method"] == "plugin"
        assert schedule["spec"]["pluginConfiguration"]["name"] == PLUGIN


@pytest.mark.parametrize("combo", POSTGRES_COMBOS)
def test_the_object_stores_keys_come_from_the_charts_external_secret(combo):
    _, docs = rendered(combo)
    stores = _of_kind(docs, "barmancloud.cnpg.io/v1", "ObjectStore")
    if not stores:
        pytest.skip(f"{combo} renders no ObjectStore")
    synced = {
        e["spec"]["target"]["name"]: {d["secretKey"] for d in e["spec"].get("data") or []}
        for e in _of_kind(docs, "external-secrets.io/v1", "ExternalSecret")
    }
    for ref in stores[0]["spec"]["configuration"]["s3Credentials"].values():
        assert ref["key"] in synced.get(ref["name"], set()), f"{ref} is not synced by an ExternalSecret: {synced}"


@pytest.mark.parametrize("combo", POSTGRES_COMBOS)
def test_cloudnative_pg_runs_a_minimal_or_standard_image(combo):
    _, docs = rendered(combo)
    for cluster in workloads.clusters(docs):
        image = cluster["spec"]["imageName"]
        assert re.search(r"-(minimal|standard)-", image), f"{image}: the system flavour is for the in-tree Barman Cloud"


def test_the_values_schema_refuses_the_system_flavour():
    system = (
        "ghcr.io/cloudnative-pg/postgresql:17.11-202608310816-system-bookworm@sha256:"
        "d0e93a6fb034e97067733ea2febe701dd97a070011c82d5fdabe99ca84b1f3d4"
    )
    with helm.Chart.load(CHART_DIR) as chart:
        chart.validate_schema({})
        with pytest.raises(helm.HelmError):
            chart.validate_schema({"cnpg": {"imageName": system}})


def test_every_postgresql_image_and_archive_name_one_major():
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))
    prod = yaml.safe_load((CHART_DIR / "values-prod.yaml").read_text(encoding="utf-8"))
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))
    compose = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))
    majors = {
        "Chart.yaml appVersion": _major(chart["appVersion"]),
        "values.yaml image.tag": _major(values["image"]["tag"]),
        "values.yaml cnpg.imageName": _major(values["cnpg"]["imageName"]),
        "values-prod.yaml cnpg.imageName": _major(prod["cnpg"]["imageName"]),
    }
    for name in ("postgres", "postgres-password"):
        majors[f"compose.yaml services.{name}.image"] = _major(compose["services"][name]["image"])
    for where, data in (("values.yaml", values), ("values-prod.yaml", prod)):
        server = data["cnpg"]["backup"]["serverName"]
        found = re.search(r"-pg(\d+)$", server)
        majors[f"{where} cnpg.backup.serverName"] = found.group(1) if found else server
    assert len(set(majors.values())) == 1, majors
