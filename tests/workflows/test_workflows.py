"""The project's rules for .github/workflows that actionlint does not know:
pinned actions, least privilege, bounded jobs, the release's tags and the
names the rest of the repository uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"^\s+# v(\d+)\.\d+\.\d+$")
# The first major of each action that runs on Node 24 (`runs.using` in its
# action.yml at that tag): GitHub's runners no longer run Node 20 actions, so
# no older major may come back. A new action needs its entry here.
NODE24_MAJORS = {
    "actions/checkout": 5,
    "actions/cache": 5,
    "docker/setup-buildx-action": 4,
    "docker/login-action": 4,
    "docker/metadata-action": 6,
    "docker/build-push-action": 7,
    "actions/upload-artifact": 6,
    "azure/setup-kubectl": 5,
    "azure/setup-helm": 5,
}


def load(name: str) -> dict:
    # PyYAML reads the key `on` as the boolean True (YAML 1.1).
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    doc["on"] = doc.pop(True)
    return doc


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.y*ml"))


def test_there_are_the_three_workflows() -> None:
    assert [p.name for p in workflow_files()] == ["ci.yml", "e2e.yml", "release.yml"]


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit_with_its_release_in_a_comment(path: Path) -> None:
    uses = [USES.match(line) for line in path.read_text().splitlines()]
    uses = [m for m in uses if m]

    assert uses
    for match in uses:
        assert PINNED.match(match.group(1)), f"{path.name}: {match.group(1)} is not pinned by a full commit SHA"
        assert VERSION_COMMENT.match(match.group(2)), f"{path.name}: {match.group(1)} lacks a '# vX.Y.Z' comment"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_every_action_is_at_a_major_that_runs_on_node_24(path: Path) -> None:
    uses = [m for m in map(USES.match, path.read_text().splitlines()) if m]

    for match in uses:
        action = match.group(1).split("@")[0]
        version = VERSION_COMMENT.match(match.group(2))
        assert action in NODE24_MAJORS, f"{path.name}: {action} has no entry in NODE24_MAJORS"
        assert version and int(version.group(1)) >= NODE24_MAJORS[action], (
            f"{path.name}: {action} {match.group(2).strip()} predates its Node 24 major v{NODE24_MAJORS[action]}"
        )


def test_the_same_action_is_pinned_to_the_same_commit_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for path in workflow_files():
        for line in path.read_text().splitlines():
            if match := USES.match(line):
                action, sha = match.group(1).split("@")
                pins.setdefault(action, set()).add(sha)

    assert {action: len(shas) for action, shas in pins.items()} == dict.fromkeys(pins, 1)


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_every_job_has_a_timeout_and_no_secret_but_the_github_token_is_used(path: Path) -> None:
    doc = load(path.name)
    text = path.read_text()

    assert all(isinstance(job.get("timeout-minutes"), int) for job in doc["jobs"].values())
    assert set(re.findall(r"secrets\.(\w+)", text)) <= {"GITHUB_TOKEN"}
    assert "concurrency" in doc


def test_ci_runs_the_test_suite_on_every_relevant_change_with_read_only_access() -> None:
    ci = load("ci.yml")

    assert ci["permissions"] == {"contents": "read"}
    assert "workflow_dispatch" in ci["on"]
    push_paths = ci["on"]["push"]["paths"]
    assert push_paths == ci["on"]["pull_request"]["paths"]
    for wanted in ["crates/**", "Cargo.toml", "Cargo.lock", "deploy/**", "tests/**", "scripts/**", "Dockerfile",
                   "Makefile", "postman/**", "package.json", "package-lock.json", ".github/workflows/**",
                   "renovate.json5"]:
        assert wanted in push_paths
    steps = ci["jobs"]["test"]["steps"]
    runs = " ".join(step.get("run", "") for step in steps)
    assert "make test" in runs
    assert any("actions/cache@" in step.get("uses", "") for step in steps)
    assert ci["concurrency"]["cancel-in-progress"] is True


def test_ci_uses_the_rust_toolchain_the_image_is_built_with() -> None:
    ci = load("ci.yml")
    builder = re.search(r"^FROM rust:(\d+\.\d+\.\d+)-", (REPO / "Dockerfile").read_text(), re.M)

    assert builder and ci["env"]["RUST_TOOLCHAIN"] == builder.group(1)


def test_the_makefile_target_ci_runs_is_the_test_suite() -> None:
    makefile = (REPO / "Makefile").read_text()

    assert re.search(r"^test:.*\n\tbash scripts/test\.sh$", makefile, re.M)


def test_release_runs_on_version_tags_and_by_hand() -> None:
    release = load("release.yml")

    assert release["on"]["push"] == {"tags": ["v*.*.*"]}
    assert release["on"]["workflow_dispatch"]["inputs"]["version"]["required"] is True
    assert release["permissions"] == {}
    assert release["concurrency"]["cancel-in-progress"] is False


def test_release_pushes_version_tags_only_never_latest() -> None:
    release = load("release.yml")
    image = release["jobs"]["image"]
    meta = next(s for s in image["steps"] if s.get("id") == "meta")["with"]
    build = next(s for s in image["steps"] if s.get("id") == "build")["with"]

    assert image["permissions"] == {"contents": "read", "packages": "write"}
    assert meta["images"] == "${{ env.IMAGE }}"
    assert meta["flavor"].split() == ["latest=false"]
    assert [line.split(",")[:2] for line in meta["tags"].splitlines()] == [
        ["type=semver", "pattern={{version}}"],
        ["type=semver", "pattern={{major}}.{{minor}}"],
    ]
    assert "latest" not in meta["tags"]
    assert build["push"] is True
    assert build["provenance"] == "mode=max"
    assert build["tags"] == "${{ steps.meta.outputs.tags }}"
    assert build["labels"] == "${{ steps.meta.outputs.labels }}"
    assert "VERSION=${{ steps.version.outputs.version }}" in build["build-args"]


def test_release_publishes_this_repositorys_image_which_the_platform_deploys() -> None:
    release = load("release.yml")
    # Each job names the image after the repository it runs in, so a fork
    # publishes its own; the platform's default is that of the upstream
    # repository, and the service's chart defaults to the same.
    for name, job in release["jobs"].items():
        runs = [step.get("run", "") for step in job["steps"]]
        assert 'echo "IMAGE=ghcr.io/${GITHUB_REPOSITORY,,}" >>"$GITHUB_ENV"' in runs, name
    assert "IMAGE" not in release.get("env", {})
    platform = yaml.safe_load((REPO / "deploy/argocd/platform/values.yaml").read_text())
    service = yaml.safe_load((REPO / "deploy/helm/student-api/values.yaml").read_text())
    owner_name = platform["repo"]["url"].removeprefix("https://github.com/").removesuffix(".git")
    assert platform["image"]["repository"] == service["image"]["repository"] == f"ghcr.io/{owner_name.lower()}"


def test_release_labels_repeat_the_dockerfiles_exactly() -> None:
    release = load("release.yml")
    meta = next(s for s in release["jobs"]["image"]["steps"] if s.get("id") == "meta")["with"]
    dockerfile = (REPO / "Dockerfile").read_text()
    labels = dict(line.split("=", 1) for line in meta["labels"].splitlines())
    labels = {k: v.replace("${{ env.DESCRIPTION }}", release["env"]["DESCRIPTION"]) for k, v in labels.items()}

    for key, value in labels.items():
        assert f'{key}="{value}"' in dockerfile, f"{key} differs from the Dockerfile's LABEL"


def test_release_proposes_the_chart_change_with_the_bump_script() -> None:
    release = load("release.yml")
    deploy = release["jobs"]["deploy"]
    runs = "\n".join(step.get("run", "") for step in deploy["steps"])

    assert deploy["needs"] == "image"
    assert deploy["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert 'scripts/bump-image-tag.sh "$VERSION" "$DIGEST"' in runs
    assert deploy["env"]["VERSION"] == "${{ needs.image.outputs.version }}"
    assert deploy["env"]["DIGEST"] == "${{ needs.image.outputs.digest }}"
    assert "gh pr create" in runs and "git diff --quiet" in runs


def requirements(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def test_every_tool_is_pinned_and_shared_pins_agree_with_tests_manifests() -> None:
    ours = requirements(Path(__file__).with_name("requirements.txt"))
    theirs = requirements(REPO / "tests" / "manifests" / "requirements.txt")

    shared = set(ours) & set(theirs)
    assert {"pytest", "pyyaml", "yamllint"} <= shared
    assert {name: ours[name] for name in shared} == {name: theirs[name] for name in shared}
