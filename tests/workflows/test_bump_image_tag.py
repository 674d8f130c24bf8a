"""Tests of scripts/bump-image-tag.sh, each on a fresh copy of the real
student-api chart (CHART_DIR), never on the chart in the work tree."""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "bump-image-tag.sh"
CHART = REPO / "deploy" / "helm" / "student-api"
DIGEST = "sha256:" + "0123456789abcdef" * 4
OTHER_DIGEST = "sha256:" + "fedcba9876543210" * 4


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    copy = tmp_path / "student-api"
    shutil.copytree(CHART, copy)
    return copy


def bump(chart: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env={**os.environ, "CHART_DIR": str(chart)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def changed_lines(before: Path, after: Path) -> list[str]:
    diff = difflib.unified_diff(before.read_text().splitlines(), after.read_text().splitlines(), lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def snapshot(chart: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(chart.iterdir()) if p.is_file()}


def test_a_release_changes_exactly_the_tag_digest_app_version_and_chart_version(chart: Path) -> None:
    result = bump(chart, "0.2.0", DIGEST)

    assert result.returncode == 0, result.stderr
    assert changed_lines(CHART / "values.yaml", chart / "values.yaml") == [
        '-  tag: ""',
        '+  tag: "0.2.0"',
        '-  digest: ""',
        f'+  digest: "{DIGEST}"',
    ]
    assert changed_lines(CHART / "Chart.yaml", chart / "Chart.yaml") == [
        "-version: 0.1.0",
        "+version: 0.1.1",
        '-appVersion: "0.1.0"',
        '+appVersion: "0.2.0"',
    ]
    assert sorted(p.name for p in chart.iterdir()) == sorted(p.name for p in CHART.iterdir())


def test_the_bumped_values_still_satisfy_the_charts_schema(chart: Path) -> None:
    assert bump(chart, "1.4.0-rc.2", DIGEST).returncode == 0

    values = yaml.safe_load((chart / "values.yaml").read_text())
    schema = json.loads((chart / "values.schema.json").read_text())

    jsonschema.validate(values, schema)
    assert values["image"] == {**yaml.safe_load((CHART / "values.yaml").read_text())["image"],
                               "tag": "1.4.0-rc.2", "digest": DIGEST}
    assert yaml.safe_load((chart / "Chart.yaml").read_text())["appVersion"] == "1.4.0-rc.2"


def test_a_second_run_with_the_same_release_writes_nothing(chart: Path) -> None:
    assert bump(chart, "0.2.0", DIGEST).returncode == 0
    before = snapshot(chart)

    result = bump(chart, "0.2.0", DIGEST)

    assert result.returncode == 0, result.stderr
    assert "unchanged: the chart already deploys 0.2.0@" in result.stderr
    assert snapshot(chart) == before


def test_a_leading_v_is_dropped(chart: Path) -> None:
    assert bump(chart, "v0.3.1").returncode == 0

    assert yaml.safe_load((chart / "values.yaml").read_text())["image"]["tag"] == "0.3.1"


def test_a_release_without_a_digest_unpins_the_previous_one(chart: Path) -> None:
    assert bump(chart, "0.2.0", DIGEST).returncode == 0

    assert bump(chart, "0.2.1").returncode == 0

    image = yaml.safe_load((chart / "values.yaml").read_text())["image"]
    assert (image["tag"], image["digest"]) == ("0.2.1", "")
    assert yaml.safe_load((chart / "Chart.yaml").read_text())["version"] == "0.1.2"


def test_a_new_digest_for_the_same_version_is_a_change(chart: Path) -> None:
    assert bump(chart, "0.2.0", DIGEST).returncode == 0

    assert bump(chart, "0.2.0", OTHER_DIGEST).returncode == 0

    assert yaml.safe_load((chart / "values.yaml").read_text())["image"]["digest"] == OTHER_DIGEST


@pytest.mark.parametrize(
    "version",
    ["1.2", "1.2.3.4", "01.2.3", "1.02.3", "1.2.3+build.5", "1.2.3-", "1.2.3-01", "1.2.3-rc..1", "latest", "v", ""],
)
def test_anything_but_a_release_version_is_refused_and_nothing_written(chart: Path, version: str) -> None:
    before = snapshot(chart)

    result = bump(chart, version)

    assert result.returncode == 1
    assert f"not a release version: '{version}'" in result.stderr
    assert snapshot(chart) == before


@pytest.mark.parametrize("digest", ["sha256:abc", "sha512:" + "0" * 64, DIGEST.upper().replace("SHA", "sha"), "latest"])
def test_anything_but_a_sha256_digest_is_refused(chart: Path, digest: str) -> None:
    before = snapshot(chart)

    result = bump(chart, "0.2.0", digest)

    assert result.returncode == 1
    assert f"not an image digest: '{digest}'" in result.stderr
    assert snapshot(chart) == before


def test_only_the_image_blocks_tag_is_edited_not_a_tag_key_elsewhere(chart: Path) -> None:
    values = chart / "values.yaml"
    values.write_text(
        "sidecar:\n  tag: \"9.9.9\"\n  digest: \"\"\n\n"
        + values.read_text()
        + "\nextra:\n  image:\n    tag: \"7.7.7\"\n"
    )

    assert bump(chart, "0.2.0").returncode == 0

    doc = yaml.safe_load(values.read_text())
    assert doc["image"]["tag"] == "0.2.0"
    assert doc["sidecar"]["tag"] == "9.9.9"
    assert doc["extra"]["image"]["tag"] == "7.7.7"


def test_a_chart_whose_line_is_missing_or_doubled_is_left_untouched(chart: Path) -> None:
    values = chart / "values.yaml"
    values.write_text(values.read_text().replace('  digest: ""\n', ""))
    before = snapshot(chart)

    missing = bump(chart, "0.2.0")

    assert missing.returncode == 1
    assert "values.yaml: expected exactly one image.digest line" in missing.stderr
    assert snapshot(chart) == before
    assert sorted(p.name for p in chart.iterdir()) == sorted(p.name for p in CHART.iterdir())

    values.write_text(values.read_text().replace('  tag: ""\n', '  tag: ""\n  tag: ""\n  digest: ""\n'))
    doubled = bump(chart, "0.2.0")

    assert doubled.returncode == 1
    assert "expected exactly one image.tag line" in doubled.stderr


def test_the_file_modes_are_kept(chart: Path) -> None:
    (chart / "values.yaml").chmod(0o640)

    assert bump(chart, "0.2.0").returncode == 0

    assert (chart / "values.yaml").stat().st_mode & 0o777 == 0o640


def test_usage_is_printed_for_a_wrong_number_of_arguments(chart: Path) -> None:
    result = bump(chart)

    assert result.returncode == 1
    assert "Usage: scripts/bump-image-tag.sh VERSION [DIGEST]" in result.stderr
