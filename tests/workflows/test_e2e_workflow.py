"""The kind job of .github/workflows/e2e.yml, which cannot run here: it must
be built only from the scripts a user runs (tests/cluster runs those against
stand-ins), follow the commit under test, stay within its bounds and keep
diagnostics when it fails."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from test_workflows import REPO, load

KIND_SH = REPO / "deploy" / "cluster" / "kind.sh"
# The user-facing steps, in the order docs/deploy.md gives them.
USER_STEPS = [
    "deploy/cluster/kind.sh up",
    "deploy/cluster/kind.sh image",
    "deploy/argocd/install/bootstrap.sh dev",
    "deploy/observability/set-alertmanager-webhook.sh",
    "deploy/argocd/install/wait.sh",
    "npm ci",
    "deploy/cluster/check-api.sh",
    "deploy/cluster/diagnostics.sh",
]


@pytest.fixture(scope="module")
def e2e() -> dict:
    return load("e2e.yml")


@pytest.fixture(scope="module")
def job(e2e: dict) -> dict:
    assert list(e2e["jobs"]) == ["kind"]
    return e2e["jobs"]["kind"]


def runs(job: dict) -> list[str]:
    return [" ".join(step["run"].split()) for step in job["steps"] if "run" in step]


def step(job: dict, name: str) -> dict:
    return next(s for s in job["steps"] if s.get("name") == name)


def test_e2e_runs_on_the_changes_ci_runs_on_with_read_only_access(e2e: dict) -> None:
    ci = load("ci.yml")

    assert e2e["on"]["push"]["branches"] == ["main"]
    assert e2e["on"]["push"]["paths"] == e2e["on"]["pull_request"]["paths"] == ci["on"]["push"]["paths"]
    assert "workflow_dispatch" in e2e["on"]
    assert e2e["permissions"] == {"contents": "read"}
    assert e2e["concurrency"]["cancel-in-progress"] is True


def test_the_kind_job_runs_the_user_facing_scripts_in_their_order(job: dict) -> None:
    text = "\n".join(runs(job))

    positions = [text.find(command) for command in USER_STEPS]
    assert -1 not in positions, dict(zip(USER_STEPS, positions))
    assert positions == sorted(positions)
    for command in USER_STEPS:
        script = REPO / command.split()[0]
        if command.startswith("deploy/"):
            assert script.is_file() and os.access(script, os.X_OK), f"{script} is missing or not executable"


def test_the_kind_job_takes_no_second_path(job: dict) -> None:
    """Whatever changes the cluster happens inside the scripts users run."""
    for run in runs(job):
        for command in ("kubectl ", "helm ", "kind create", "kind load", "docker build", "newman", "bao "):
            assert command not in run, f"{command.strip()} in a step of its own: {run}"


def test_argo_cd_follows_the_commit_under_test_in_this_repository(job: dict) -> None:
    checkout = job["steps"][0]
    bootstrap = step(job, "Argo CD, following this commit")

    assert job["env"]["REVISION"] == "${{ github.event.pull_request.head.sha || github.sha }}"
    assert job["env"]["REPOSITORY_URL"] == "https://github.com/${{ github.repository }}.git"
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"] == {"ref": "${{ env.REVISION }}", "persist-credentials": False}
    assert " ".join(bootstrap["run"].split()) == (
        'deploy/argocd/install/bootstrap.sh dev --repo "$REPOSITORY_URL" --revision "$REVISION" --image "$IMAGE"'
    )
    # The image bootstrap.sh points the chart at is the one loaded into the nodes.
    image_step = step(job, "Image of this commit, in the nodes")
    assert image_step["run"] == 'deploy/cluster/kind.sh image "$IMAGE"'
    assert image_step["env"]["IMAGE"] == bootstrap["env"]["IMAGE"] == "${{ steps.names.outputs.image }}"


def test_the_names_step_gives_kubectl_of_the_node_image_and_a_lowercase_image(job: dict, tmp_path: Path) -> None:
    output = tmp_path / "output"
    output.write_text("")
    names = next(s for s in job["steps"] if s.get("id") == "names")

    subprocess.run(
        ["bash", "-e", "-c", names["run"]],
        cwd=REPO,
        env={"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(output), "GITHUB_REPOSITORY": "Some-Fork/Student-API"},
        check=True,
    )

    default = re.search(r'^KIND_NODE_IMAGE="\$\{KIND_NODE_IMAGE:-kindest/node:(v[\d.]+)@', KIND_SH.read_text(), re.M)
    assert default
    assert output.read_text().splitlines() == [f"kubernetes={default[1]}", "image=ghcr.io/some-fork/student-api"]
    kubectl = next(s for s in job["steps"] if s.get("uses", "").startswith("azure/setup-kubectl@"))
    assert kubectl["with"] == {"version": "${{ steps.names.outputs.kubernetes }}"}


def test_kind_is_a_release_that_runs_the_node_image_checked_against_its_checksum(e2e: dict, job: dict) -> None:
    floor = re.search(r"kind (v\d+\.\d+\.\d+) or later runs it", KIND_SH.read_text())
    install = step(job, "kind ${{ env.KIND_VERSION }}")

    def release(tag: str) -> tuple[int, ...]:
        return tuple(int(part) for part in tag.lstrip("v").split("."))

    assert floor and re.fullmatch(r"v\d+\.\d+\.\d+", e2e["env"]["KIND_VERSION"])
    assert release(e2e["env"]["KIND_VERSION"]) >= release(floor[1])
    assert "sha256sum -c kind-linux-amd64.sha256sum" in install["run"]
    assert re.fullmatch(r"v4\.\d+\.\d+", e2e["env"]["HELM_VERSION"])


def test_the_job_is_bounded_and_the_wait_ends_well_before_it(job: dict) -> None:
    wait = step(job, "Every Application Synced and Healthy")

    assert int(wait["env"]["WAIT_TIMEOUT"]) // 60 + 30 <= job["timeout-minutes"] <= 90


def test_the_webhook_url_is_made_at_run_time_and_points_at_nothing(job: dict) -> None:
    webhook = step(job, "Alertmanager webhook into OpenBao")
    text = (REPO / ".github" / "workflows" / "e2e.yml").read_text()

    assert "$(openssl rand -hex 16)" in webhook["run"] and "http://127.0.0.1:9/" in webhook["run"]
    assert "umask 077" in webhook["run"]
    assert "hooks.slack.com" not in text


def test_diagnostics_are_collected_and_kept_only_when_a_step_failed(job: dict) -> None:
    diagnostics, keep = job["steps"][-2:]

    assert diagnostics["if"] == keep["if"] == "failure()"
    assert diagnostics["run"] == 'deploy/cluster/diagnostics.sh "$RUNNER_TEMP/diagnostics"'
    assert keep["uses"].startswith("actions/upload-artifact@")
    assert keep["with"]["path"] == "${{ runner.temp }}/diagnostics"
    assert keep["with"]["retention-days"] <= 30


def test_the_deployment_guide_lists_what_the_job_runs() -> None:
    guide = (REPO / "docs" / "deploy.md").read_text()
    section = guide.split("## The platform on kind in CI", 1)[1].split("\n## ", 1)[0]

    for command in USER_STEPS:
        assert command.split()[0] in section, f"docs/deploy.md does not say the kind job runs {command}"
    assert "e2e-diagnostics-" in section
