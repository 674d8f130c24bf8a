"""Tests of deploy/cluster/{minikube,kind}.sh without a cluster.

The scripts run for real, with stand-ins for kubectl, minikube, kind and
docker first on PATH (fake_cli.py): they answer from hand-written recordings
of the real tools (fixtures/) and keep the pretend cluster's state between
calls, so `up` can be run twice and the second run's calls inspected. PATH
holds nothing else but the few system tools the scripts use, so a real
kubectl on the machine can never be reached.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "deploy" / "cluster"
MINIKUBE_SH = CLUSTER / "minikube.sh"
KIND_SH = CLUSTER / "kind.sh"
FAKE = Path(__file__).with_name("fake_cli.py")
FIXTURES = Path(__file__).with_name("fixtures")
TOOLS = ("kubectl", "minikube", "kind", "docker")
SYSTEM_TOOLS = ("bash", "dirname", "sed", "grep", "sleep", "cat", "id", "mktemp", "rm", "tr")
ROLES = {"student-api": "dependent_services", "student-api-m02": "application", "student-api-m03": "database"}


def _pin(script: Path, pattern: str) -> str:
    """A version a script pins, read from the script, so that a change of the
    pin (by hand or by Renovate) needs no change here."""
    match = re.search(pattern, script.read_text(), re.MULTILINE)
    assert match, f"{script.name}: no match for {pattern}"
    return match.group(1)


# The Kubernetes both scripts create by default, kind's node image of it,
# and the Gateway API release the platform installs.
KUBERNETES = _pin(MINIKUBE_SH, r'^KUBERNETES_VERSION="\$\{KUBERNETES_VERSION:-([^}]+)\}"$')
KIND_NODE_IMAGE = _pin(KIND_SH, r'^KIND_NODE_IMAGE="\$\{KIND_NODE_IMAGE:-([^}]+)\}"$')
GATEWAY_API = _pin(CLUSTER / "lib.sh", r'^GATEWAY_API_VERSION="([^"]+)"$')
# A standard-channel release newer than the platform's: its next minor.
_MAJOR, _MINOR, _ = GATEWAY_API.removeprefix("v").split(".")
NEWER_GATEWAY_API = f"v{_MAJOR}.{int(_MINOR) + 1}.0"
GATEWAY_CRD = "gateways.gateway.networking.k8s.io"
# Calls that change a cluster; everything else only reads.
MUTATING = {
    "minikube": {"start", "delete", "enable", "stop"},
    "kind": {"create", "delete"},
    "kubectl": {"label", "taint", "apply", "create", "patch", "delete", "annotate", "replace"},
}


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


class Fake:
    """A scratch PATH with the stand-ins, the pretend cluster and its call log."""

    def __init__(self, tmp: Path) -> None:
        self.bin = tmp / "bin"
        self.sysbin = tmp / "sysbin"
        self.bin.mkdir()
        self.sysbin.mkdir()
        for tool in TOOLS:
            self.install(tool)
        for tool in SYSTEM_TOOLS:
            found = shutil.which(tool)
            assert found, f"{tool} is needed to run the cluster scripts"
            (self.sysbin / tool).symlink_to(found)
        (self.sysbin / "python3").symlink_to(sys.executable)
        self.world_path = tmp / "world.json"
        self.calls_path = tmp / "calls.jsonl"
        self.set_world({})

    def install(self, tool: str) -> None:
        wrapper = self.bin / tool
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" {tool} "$@"\n')
        wrapper.chmod(0o755)

    def remove(self, tool: str) -> None:
        (self.bin / tool).unlink()

    def set_world(self, world: dict) -> None:
        self.world_path.write_text(json.dumps(world))

    def world(self) -> dict:
        return json.loads(self.world_path.read_text())

    def healthy_minikube(self, nodes: str = "nodes-good.json") -> None:
        """A running student-api profile as recorded: everything in place."""
        addons = {name: a["Status"] for name, a in fixture("minikube-addons-fresh.json").items()}
        addons.update({name: "enabled" for name in ("metrics-server", "storage-provisioner-rancher")})
        self.set_world(
            {
                "docker_running": True,
                "contexts": ["student-api"],
                "minikube": {
                    "home_exists": True,
                    "profiles": {"student-api": {"status": "Running", "nodes": 3}},
                    "addons": addons,
                },
                "nodes": fixture(nodes),
                "version": fixture("version.json"),
                "storageclasses": fixture("storageclasses.json")["items"],
                "deployments": {
                    "kube-system/metrics-server": ready("kube-system", "metrics-server"),
                    "local-path-storage/local-path-provisioner": ready("local-path-storage", "local-path-provisioner"),
                },
                "metrics_api": True,
            }
        )

    def update(self, **changes: object) -> None:
        world = self.world()
        world.update(changes)
        self.set_world(world)

    def run(self, script: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
        self.calls_path.write_text("")
        environment = {
            "PATH": f"{self.bin}:{self.sysbin}",
            "HOME": str(self.bin.parent),
            "FAKE_WORLD": str(self.world_path),
            "FAKE_CALLS": str(self.calls_path),
            "FAKE_FIXTURES": str(FIXTURES),
            "WAIT_TIMEOUT": "2",
            "POLL_INTERVAL": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            **env,
        }
        return subprocess.run(
            [shutil.which("bash") or "bash", str(script), *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def calls(self, tool: str | None = None) -> list[list[str]]:
        lines = [json.loads(line) for line in self.calls_path.read_text().splitlines()]
        return [[c["tool"], *c["args"]] for c in lines if tool is None or c["tool"] == tool]

    def mutating_calls(self) -> list[list[str]]:
        return [c for c in self.calls() if MUTATING.get(c[0], set()) & set(c[1:])]


def ready(namespace: str, name: str) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1},
    }


def labels_of(world: dict) -> dict[str, str | None]:
    return {n["metadata"]["name"]: n["metadata"]["labels"].get("type") for n in world["nodes"]["items"]}


def gateway_crd(channel: str = "standard", bundle: str = GATEWAY_API) -> dict:
    """The recorded Gateway CRD, as another Gateway API release would leave it."""
    crd = fixture("crd-gateways-standard.json")
    crd["metadata"]["annotations"].update(
        {"gateway.networking.k8s.io/channel": channel, "gateway.networking.k8s.io/bundle-version": bundle}
    )
    return crd


def default_of(script: Path, variable: str) -> str:
    """The default a script gives VARIABLE (VARIABLE="${VARIABLE:-default}")."""
    match = re.search(rf'^{variable}="\$\{{{variable}:-([^}}]+)\}}"$', script.read_text(), re.MULTILINE)
    assert match, f"{script.name} sets no default for {variable}"
    return match.group(1)


def fail_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if " FAIL " in line]


@pytest.fixture
def fake(tmp_path: Path) -> Fake:
    return Fake(tmp_path)


# ------------------------------------------------------------------ verify
def test_verify_passes_on_a_healthy_cluster_and_changes_nothing(fake: Fake) -> None:
    fake.healthy_minikube()

    result = fake.run(MINIKUBE_SH, "verify")

    assert result.returncode == 0, result.stderr
    assert "minikube cluster student-api is ready for the platform" in result.stdout
    for name, role in ROLES.items():
        assert f"node {name}: type={role}, Ready=True" in result.stdout
    assert "default StorageClass: standard" in result.stdout
    assert "StorageClass local-path: rancher.io/local-path" in result.stdout
    assert "metrics API: 3 nodes reporting" in result.stdout
    assert f"Kubernetes {KUBERNETES}" in result.stdout
    assert f"Gateway API CRDs: not installed yet (Argo CD installs {GATEWAY_API}, standard channel)" in result.stdout
    assert "ingress" not in result.stdout.lower()
    assert fake.mutating_calls() == []


def test_verify_is_not_confused_by_warnings_kubectl_prints_on_success(fake: Fake) -> None:
    fake.healthy_minikube()
    fake.update(kubectl_warning="Warning: v1 ComponentStatus is deprecated in v1.19+")

    result = fake.run(MINIKUBE_SH, "verify")

    assert result.returncode == 0, result.stderr


def test_verify_names_the_role_that_no_node_carries(fake: Fake) -> None:
    fake.healthy_minikube("nodes-label-missing.json")

    result = fake.run(MINIKUBE_SH, "verify")

    assert result.returncode == 1
    assert fail_lines(result) == [
        "[minikube] FAIL nodes: student-api-m03 has no type label",
        "[minikube] FAIL nodes: label type=database is on no node; expected exactly one",
    ]
    assert "1 problem(s)" not in result.stderr and "2 problem(s)" in result.stderr


def test_verify_names_a_role_given_to_two_nodes_and_both_nodes(fake: Fake) -> None:
    fake.healthy_minikube("nodes-label-duplicated.json")

    result = fake.run(MINIKUBE_SH, "verify")

    assert result.returncode == 1
    assert (
        "[minikube] FAIL nodes: label type=application is on 2 nodes (student-api-m02, student-api-m03); "
        "expected exactly one"
    ) in fail_lines(result)
    assert "[minikube] FAIL nodes: label type=database is on no node; expected exactly one" in fail_lines(result)


def test_verify_names_the_node_that_is_not_ready_and_its_taints(fake: Fake) -> None:
    fake.healthy_minikube("nodes-not-ready.json")

    result = fake.run(MINIKUBE_SH, "verify")

    assert result.returncode == 1
    assert fail_lines(result) == [
        "[minikube] FAIL nodes: student-api-m03 is not Ready (Ready=Unknown: NodeStatusUnknown)",
        "[minikube] FAIL nodes: student-api-m03 has the taint node.kubernetes.io/unreachable:NoSchedule, "
        "which the platform's pods do not tolerate",
        "[minikube] FAIL nodes: student-api-m03 has the taint node.kubernetes.io/unreachable:NoExecute, "
        "which the platform's pods do not tolerate",
    ]


def test_verify_reports_every_missing_piece_at_once(fake: Fake) -> None:
    fake.healthy_minikube()
    world = fake.world()
    world["storageclasses"] = [
        sc for sc in fixture("storageclasses.json")["items"] if sc["metadata"]["name"] == "standard"
    ]
    world["storageclasses"][0]["metadata"]["annotations"].pop("storageclass.kubernetes.io/is-default-class")
    world["crds"] = {GATEWAY_CRD: gateway_crd(channel="experimental")}
    world["metrics_api"] = False
    fake.set_world(world)

    result = fake.run(MINIKUBE_SH, "verify")

    assert result.returncode == 1
    failures = fail_lines(result)
    assert len(failures) == 4, result.stderr
    assert failures[0].startswith(
        "[minikube] FAIL storage: no default StorageClass (annotation storageclass.kubernetes.io/is-default-class=true)"
    )
    assert failures[1] == "[minikube] FAIL storage: StorageClass local-path is missing"
    assert failures[2].startswith(
        f"[minikube] FAIL gateway-api: the cluster has the Gateway API CRDs of the experimental channel ({GATEWAY_API})"
    )
    assert failures[3].startswith("[minikube] FAIL metrics: the metrics API (metrics.k8s.io) does not answer")
    assert "4 problem(s)" in result.stderr


@pytest.mark.parametrize(
    ("channel", "bundle", "problem"),
    [
        ("standard", GATEWAY_API, None),
        # Older standard CRDs: the platform's sync upgrades them.
        ("standard", "v1.5.1", None),
        ("standard", NEWER_GATEWAY_API, f"the cluster has the Gateway API CRDs {NEWER_GATEWAY_API}; the platform "
                                        f"installs {GATEWAY_API} and would downgrade them"),
        ("experimental", GATEWAY_API, f"the cluster has the Gateway API CRDs of the experimental channel ({GATEWAY_API})"),
    ],
)
def test_verify_takes_gateway_api_crds_the_platform_can_replace_and_names_the_others(
    fake: Fake, channel: str, bundle: str, problem: str | None
) -> None:
    fake.healthy_minikube()
    fake.update(crds={GATEWAY_CRD: gateway_crd(channel, bundle)})

    result = fake.run(MINIKUBE_SH, "verify")

    if problem is None:
        assert result.returncode == 0, result.stderr
        assert f"Gateway API CRDs: {bundle}, standard channel" in result.stdout
    else:
        assert result.returncode == 1
        assert [line.split(" FAIL ", 1)[1] for line in fail_lines(result)][0].startswith(f"gateway-api: {problem}")
    assert [c for c in fake.calls("kubectl") if "crd" in c] == [
        ["kubectl", "--context", "student-api", "get", "crd", GATEWAY_CRD, "--ignore-not-found", "-o", "json"]
    ]


@pytest.mark.parametrize(("minor", "git_version"), [("34", "v1.34.11"), ("29", "v1.29.14")])
def test_verify_refuses_a_server_older_than_the_oldest_supported_kubernetes(
    fake: Fake, minor: str, git_version: str
) -> None:
    fake.healthy_minikube()
    version = fixture("version.json")
    version["serverVersion"].update(minor=minor, gitVersion=git_version)
    fake.update(version=version)

    result = fake.run(MINIKUBE_SH, "verify")

    assert result.returncode == 1
    assert fail_lines(result) == [
        f"[minikube] FAIL kubernetes: the server runs {git_version}; the platform needs 1.35 or newer"
    ]


def test_verify_accepts_the_floor_release(fake: Fake) -> None:
    fake.healthy_minikube()
    version = fixture("version.json")
    version["serverVersion"].update(minor="35", gitVersion="v1.35.8")
    fake.update(version=version)

    result = fake.run(MINIKUBE_SH, "verify")

    assert result.returncode == 0, result.stderr
    assert "Kubernetes v1.35.8" in result.stdout


def test_verify_says_so_when_the_cluster_does_not_answer(fake: Fake) -> None:
    fake.healthy_minikube()
    fake.update(nodes=None)

    result = fake.run(MINIKUBE_SH, "verify")

    assert result.returncode == 1
    assert "[minikube] FAIL nodes: kubectl cannot list nodes of context student-api: The connection to the server" in (
        result.stderr
    )


# ---------------------------------------------------------------- minikube up
def test_up_creates_a_three_node_docker_profile_labels_it_in_order_and_enables_the_addons(fake: Fake) -> None:
    fake.set_world({"docker_running": True})

    result = fake.run(MINIKUBE_SH, "up")

    assert result.returncode == 0, result.stderr
    assert fake.mutating_calls() == [
        [
            "minikube", "start", "-p", "student-api", "--driver=docker", "--nodes=3",
            "--cpus=2", "--memory=4g", "--disk-size=20g", f"--kubernetes-version={KUBERNETES}",
        ],
        ["kubectl", "--context", "student-api", "label", "node", "student-api", "type=dependent_services", "--overwrite"],
        ["kubectl", "--context", "student-api", "label", "node", "student-api-m02", "type=application", "--overwrite"],
        ["kubectl", "--context", "student-api", "label", "node", "student-api-m03", "type=database", "--overwrite"],
        ["minikube", "-p", "student-api", "addons", "enable", "storage-provisioner-rancher"],
        ["minikube", "-p", "student-api", "addons", "enable", "metrics-server"],
    ]
    assert labels_of(fake.world()) == ROLES
    assert "minikube cluster student-api is ready for the platform" in result.stdout
    assert f"Kubernetes {KUBERNETES}" in result.stdout
    assert fake.world()["minikube"]["addons"]["ingress"] == "disabled"


def test_a_second_up_creates_and_enables_nothing_and_only_relabels_with_overwrite(fake: Fake) -> None:
    fake.set_world({"docker_running": True})
    assert fake.run(MINIKUBE_SH, "up").returncode == 0
    before = fake.world()

    result = fake.run(MINIKUBE_SH, "up")

    assert result.returncode == 0, result.stderr
    mutating = fake.mutating_calls()
    assert [c[3] for c in mutating] == ["label", "label", "label"]
    assert all(c[-1] == "--overwrite" for c in mutating)
    assert fake.world() == before
    assert "profile student-api is running with 3 nodes: reused" in result.stderr
    assert "addons already enabled" in result.stderr


def test_up_puts_back_a_role_label_changed_by_hand(fake: Fake) -> None:
    fake.healthy_minikube("nodes-label-duplicated.json")

    result = fake.run(MINIKUBE_SH, "up")

    assert result.returncode == 0, result.stderr
    assert labels_of(fake.world()) == ROLES


def test_up_starts_a_stopped_profile_instead_of_creating_one(fake: Fake) -> None:
    fake.healthy_minikube()
    world = fake.world()
    world["minikube"]["profiles"]["student-api"]["status"] = "Stopped"
    fake.set_world(world)

    result = fake.run(MINIKUBE_SH, "up")

    assert result.returncode == 0, result.stderr
    assert fake.mutating_calls()[0] == ["minikube", "start", "-p", "student-api"]
    assert not any("enable" in c for c in fake.mutating_calls())


def test_up_refuses_a_profile_with_another_node_count_and_says_what_to_do(fake: Fake) -> None:
    fake.healthy_minikube()
    world = fake.world()
    world["minikube"]["profiles"]["student-api"]["nodes"] = 1
    fake.set_world(world)

    result = fake.run(MINIKUBE_SH, "up")

    assert result.returncode == 1
    assert "profile student-api has 1 node(s), the platform needs 3" in result.stderr
    assert "down" in result.stderr and "MINIKUBE_PROFILE" in result.stderr
    assert fake.mutating_calls() == []


def test_up_passes_resource_and_version_overrides_to_minikube_start(fake: Fake) -> None:
    fake.set_world({"docker_running": True})

    result = fake.run(
        MINIKUBE_SH, "up",
        MINIKUBE_CPUS="4", MINIKUBE_MEMORY="6g", MINIKUBE_DISK_SIZE="30g", KUBERNETES_VERSION="v1.35.8",
    )

    assert result.returncode == 0, result.stderr
    assert fake.calls("minikube")[1] == [
        "minikube", "start", "-p", "student-api", "--driver=docker", "--nodes=3",
        "--cpus=4", "--memory=6g", "--disk-size=30g", "--kubernetes-version=v1.35.8",
    ]
    assert "Kubernetes v1.35.8" in result.stdout


def test_up_refuses_an_override_older_than_the_oldest_supported_kubernetes(fake: Fake) -> None:
    fake.set_world({"docker_running": True})

    result = fake.run(MINIKUBE_SH, "up", KUBERNETES_VERSION="v1.34.11")

    assert result.returncode == 1
    assert "[minikube] FAIL kubernetes: the server runs v1.34.11; the platform needs 1.35 or newer" in result.stderr


def test_node_roles_can_be_given_in_another_order(fake: Fake) -> None:
    fake.set_world({"docker_running": True})
    roles = "student-api=dependent_services student-api-m02=database student-api-m03=application"

    result = fake.run(MINIKUBE_SH, "up", NODE_ROLES=roles)

    assert result.returncode == 0, result.stderr
    assert labels_of(fake.world()) == {
        "student-api": "dependent_services", "student-api-m02": "database", "student-api-m03": "application",
    }


@pytest.mark.parametrize(
    ("roles", "message"),
    [
        ("a=dependent_services b=application", "NODE_ROLES: no node gets role database"),
        ("a=dependent_services b=application c=application", "NODE_ROLES: role application is given twice"),
        ("a=dependent_services b=application c=db", "NODE_ROLES: 'db' is not a platform role"),
        ("a=dependent_services b=application database", "NODE_ROLES: 'database' is not node=role"),
    ],
)
def test_invalid_node_roles_are_refused_before_anything_is_created(fake: Fake, roles: str, message: str) -> None:
    fake.set_world({"docker_running": True})

    result = fake.run(MINIKUBE_SH, "up", NODE_ROLES=roles)

    assert result.returncode == 1
    assert message in result.stderr
    assert fake.mutating_calls() == []


def test_verify_refuses_invalid_node_roles_too(fake: Fake) -> None:
    fake.healthy_minikube()

    result = fake.run(MINIKUBE_SH, "verify", NODE_ROLES="a=dependent_services b=application")

    assert result.returncode == 1
    assert "NODE_ROLES: no node gets role database" in result.stderr
    assert fake.calls() == []


def test_missing_prerequisites_are_named_with_where_to_get_them(fake: Fake) -> None:
    fake.remove("minikube")
    fake.remove("docker")

    result = fake.run(MINIKUBE_SH, "up")

    assert result.returncode == 1
    assert "missing prerequisite minikube: https://minikube.sigs.k8s.io/docs/start/" in result.stderr
    assert "missing prerequisite docker: https://docs.docker.com/engine/install/" in result.stderr
    assert fake.calls() == []


def test_a_docker_daemon_that_does_not_answer_is_named(fake: Fake) -> None:
    fake.set_world({"docker_running": False})

    result = fake.run(MINIKUBE_SH, "up")

    assert result.returncode == 1
    assert "the Docker daemon does not answer (docker info failed)" in result.stderr
    assert fake.calls("minikube") == []


def test_up_gives_up_within_its_bound_when_the_metrics_api_never_answers(fake: Fake) -> None:
    fake.healthy_minikube()
    fake.update(metrics_api=False)

    result = fake.run(MINIKUBE_SH, "up", WAIT_TIMEOUT="1", POLL_INTERVAL="0.2")

    assert result.returncode == 1
    assert "the metrics API did not report nodes within 1s" in result.stderr


def test_every_kubectl_call_names_the_cluster_context(fake: Fake) -> None:
    fake.set_world({"docker_running": True})
    fake.run(MINIKUBE_SH, "up")
    calls = fake.calls("kubectl")
    fake.set_world({"docker_running": True})
    fake.run(KIND_SH, "up")
    kind_calls = fake.calls("kubectl")

    assert calls and all(c[1:3] == ["--context", "student-api"] for c in calls)
    assert kind_calls and all(c[1:3] == ["--context", "kind-student-api"] for c in kind_calls)


def test_down_deletes_the_profile(fake: Fake) -> None:
    fake.healthy_minikube()

    result = fake.run(MINIKUBE_SH, "down")

    assert result.returncode == 0, result.stderr
    assert fake.calls() == [["minikube", "delete", "-p", "student-api"]]


def test_unknown_command_prints_the_usage(fake: Fake) -> None:
    result = fake.run(MINIKUBE_SH, "launch")

    assert result.returncode == 1
    assert "Usage: deploy/cluster/minikube.sh [up|verify|down|help]" in result.stderr
    assert "unknown command: launch" in result.stderr


# -------------------------------------------------------------------- kind
def test_kind_up_creates_the_cluster_once_and_then_only_reapplies(fake: Fake) -> None:
    fake.set_world({"docker_running": True})

    first = fake.run(KIND_SH, "up")
    first_calls = fake.mutating_calls()
    second = fake.run(KIND_SH, "up")

    assert first.returncode == 0, first.stderr
    assert first_calls[0] == [
        "kind", "create", "cluster", "--name", "student-api", "--config", str(CLUSTER / "kind.yaml"),
        "--image", KIND_NODE_IMAGE, "--wait", "2s",
    ]
    ctx = ["kubectl", "--context", "kind-student-api"]
    assert first_calls[1:] == [
        [*ctx, "taint", "node", "student-api-control-plane", "node-role.kubernetes.io/control-plane:NoSchedule-"],
        [*ctx, "label", "node", "student-api-control-plane", "type=dependent_services", "--overwrite"],
        [*ctx, "label", "node", "student-api-worker", "type=application", "--overwrite"],
        [*ctx, "label", "node", "student-api-worker2", "type=database", "--overwrite"],
        [*ctx, "apply", "-k", str(CLUSTER / "kind")],
    ]
    assert second.returncode == 0, second.stderr
    assert not [c for c in fake.mutating_calls() if c[0] == "kind"]
    assert "cluster student-api exists: reused" in second.stderr
    assert "kind cluster kind-student-api is ready for the platform" in second.stdout
    assert f"Kubernetes {KUBERNETES}" in second.stdout
    assert {n["metadata"]["name"]: n["spec"].get("taints", []) for n in fake.world()["nodes"]["items"]} == {
        "student-api-control-plane": [], "student-api-worker": [], "student-api-worker2": [],
    }


def test_kind_up_creates_the_node_image_given_instead(fake: Fake) -> None:
    fake.set_world({"docker_running": True})
    image = "kindest/node:v1.35.8@sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0"

    result = fake.run(KIND_SH, "up", KIND_NODE_IMAGE=image)

    assert result.returncode == 0, result.stderr
    assert fake.mutating_calls()[0][7:9] == ["--image", image]
    assert "Kubernetes v1.35.8" in result.stdout


def test_kind_up_refuses_a_node_image_older_than_the_oldest_supported_kubernetes(fake: Fake) -> None:
    fake.set_world({"docker_running": True})
    image = "kindest/node:v1.34.11@sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d"

    result = fake.run(KIND_SH, "up", KIND_NODE_IMAGE=image)

    assert result.returncode == 1
    assert "[kind] FAIL kubernetes: the server runs v1.34.11; the platform needs 1.35 or newer" in result.stderr


def test_kind_config_gives_each_role_one_node_and_publishes_the_gateway_on_loopback_only() -> None:
    config = yaml.safe_load((CLUSTER / "kind.yaml").read_text())
    traefik = yaml.safe_load((REPO / "deploy/argocd/values/traefik.yaml").read_text())

    nodes = config["nodes"]
    roles = [n["labels"]["type"] for n in nodes]
    assert sorted(roles) == sorted(ROLES.values())
    assert [n["role"] for n in nodes] == ["control-plane", "worker", "worker"]
    control_plane = nodes[0]
    assert control_plane["labels"] == {"type": "dependent_services"}
    mappings = control_plane["extraPortMappings"]
    # 127.0.0.1:80 and :443 onto the NodePorts the Gateway's Service fixes.
    assert traefik["service"]["spec"]["type"] == "NodePort"
    nodeports = {name: traefik["ports"][name]["nodePort"] for name in ("web", "websecure")}
    assert {(m["containerPort"], m["hostPort"]) for m in mappings} == {
        (nodeports["web"], 80), (nodeports["websecure"], 443),
    }
    assert all(m["listenAddress"] == "127.0.0.1" and m["protocol"] == "TCP" for m in mappings)
    assert all("extraPortMappings" not in n for n in nodes[1:])


def test_kind_addons_pin_their_releases_and_patch_metrics_server() -> None:
    kustomization = yaml.safe_load((CLUSTER / "kind" / "kustomization.yaml").read_text())

    remote = [r for r in kustomization["resources"] if r.startswith("https://")]
    assert remote == [r for r in remote if "/metrics-server/releases/download/v" in r] and len(remote) == 1
    assert all("/main/" not in r and "latest" not in r for r in remote)
    assert "storageclass-local-path.yaml" in kustomization["resources"]
    assert "--kubelet-insecure-tls" in kustomization["patches"][0]["patch"]
    storageclass = yaml.safe_load((CLUSTER / "kind" / "storageclass-local-path.yaml").read_text())
    assert storageclass["metadata"]["name"] == "local-path"
    assert storageclass["provisioner"] == "rancher.io/local-path"
    assert storageclass["volumeBindingMode"] == "WaitForFirstConsumer"


def test_the_scripts_check_the_same_names_the_charts_use() -> None:
    student_api = yaml.safe_load((REPO / "deploy/helm/student-api/values.yaml").read_text())
    postgres = yaml.safe_load((REPO / "deploy/helm/postgres/values.yaml").read_text())
    crds = yaml.safe_load((REPO / "deploy/argocd/platform/templates/gateway-api-crds.yaml").read_text())
    lib = (CLUSTER / "lib.sh").read_text()

    assert student_api["nodeSelector"] == {"type": "application"}
    assert postgres["placement"]["databaseNodeTypes"] == ["database"]
    assert "PLATFORM_ROLES=(dependent_services application database)" in lib
    assert f'GATEWAY_API_VERSION="{crds["spec"]["source"]["targetRevision"]}"' in lib
    assert "ingress" not in lib.lower()


def test_both_scripts_create_the_same_supported_kubernetes_by_default() -> None:
    floor = re.search(r'^MIN_KUBERNETES="(\d+)\.(\d+)"$', (CLUSTER / "lib.sh").read_text(), re.MULTILINE)
    minikube = default_of(MINIKUBE_SH, "KUBERNETES_VERSION")
    kind = default_of(KIND_SH, "KIND_NODE_IMAGE")

    assert floor and (int(floor[1]), int(floor[2])) == (1, 35)
    assert minikube == KUBERNETES
    assert kind == KIND_NODE_IMAGE
    # A node image pinned by the digest of the kind release that built it.
    assert re.fullmatch(r"kindest/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", kind)
    assert kind.split(":")[1].split("@")[0] == minikube
    minor = int(minikube.split(".")[1])
    assert minor >= int(floor[2])


# ----------------------------------------------------------------- check.py
def test_check_py_refuses_input_that_is_not_the_expected_document() -> None:
    check = [sys.executable, str(CLUSTER / "check.py")]

    not_json = subprocess.run([*check, "nodes", "a"], input="nope", capture_output=True, text=True, check=False)
    wrong_kind = subprocess.run(
        [*check, "deployment", "ns/x"], input=json.dumps({"kind": "Pod"}), capture_output=True, text=True, check=False
    )

    assert not_json.returncode == 2 and "the input is not JSON" in not_json.stderr
    assert wrong_kind.returncode == 2 and "expected a Deployment" in wrong_kind.stderr


def test_check_py_reads_the_profile_list_minikube_prints_before_any_profile_exists() -> None:
    check = [sys.executable, str(CLUSTER / "check.py"), "minikube-profile", "student-api"]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}

    no_home = subprocess.run(
        check, input='{"error":{"Op":"open","Path":"/x/.minikube/profiles","Err":2}}',
        capture_output=True, text=True, check=True, env=env,
    )
    recorded = subprocess.run(
        check, input=(FIXTURES / "minikube-profile-list.json").read_text(),
        capture_output=True, text=True, check=True, env=env,
    )

    assert no_home.stdout == "absent\n"
    assert recorded.stdout == "running 3\n"
