"""Tests of deploy/argocd/install/bootstrap.sh without a cluster.

The script runs for real against the stand-ins of tests/cluster/fake_cli.py
(kubectl, helm, git), which keep one pretend cluster and Git host between
calls: `helm template` renders the real platform chart, `kubectl apply`
stores the root it rendered, and the pretend Argo CD reads that root from
the pretend Git host with the repository Secret the cluster holds. PATH
holds nothing else but the few system tools the script uses. Credentials
are made at run time and never written anywhere but the pretend cluster.
"""

from __future__ import annotations

import base64
import re
import secrets
import shutil
import sys
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "cluster"))

import gitops  # noqa: E402
from test_cluster_scripts import Fake, fixture, ready  # noqa: E402  (tests/cluster: the stand-ins' harness)

BOOTSTRAP = gitops.ARGOCD_DIR / "install" / "bootstrap.sh"
CONTEXT = "kind-student-api"
FORK_SSH = "git@github.com:Fork-Owner/Student-API.git"
FORK = "https://github.com/Fork-Owner/Student-API.git"
FORK_IMAGE = "ghcr.io/fork-owner/student-api"
MAIN = "5f1c7a0e2b9d4c3a8e6f1b2d3c4a5e6f7a8b9c0d"
TAG = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"
# Calls that change a cluster; everything else only reads.
MUTATING = {"kubectl": {"apply", "create", "delete", "label", "patch", "replace"}, "helm": {"upgrade", "install"}}


class BootstrapFake(Fake):
    """The stand-ins of tests/cluster plus helm and git, and the system tools
    the bootstrap uses beyond the cluster scripts'."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        for tool in ("helm", "git"):
            self.install(tool)
        for tool in ("base64", "chmod", "env", "head"):
            found = shutil.which(tool)
            assert found, f"{tool} is needed to run the bootstrap"
            (self.sysbin / tool).symlink_to(found)

    def ready_cluster(self, **changes: object) -> None:
        """A local cluster as deploy/cluster leaves it, and a clone of a
        public fork whose main is pushed."""
        world = {
            "contexts": [CONTEXT],
            "current_context": CONTEXT,
            "nodes": fixture("nodes-good.json"),
            "version": fixture("version.json"),
            "storageclasses": fixture("storageclasses.json")["items"],
            "deployments": {"kube-system/metrics-server": ready("kube-system", "metrics-server")},
            "metrics_api": True,
            "git": {
                "origin": FORK_SSH,
                "branch": "main",
                "head": MAIN,
                "remotes": {FORK: {"refs": {"HEAD": MAIN, "refs/heads/main": MAIN, "refs/tags/v1.0.0": TAG}}},
            },
        }
        world.update(changes)
        self.set_world(world)

    def mutating_calls(self) -> list[list[str]]:
        return [c for c in self.calls() if MUTATING.get(c[0], set()) & set(c[1:])]


@pytest.fixture
def fake(tmp_path: Path) -> BootstrapFake:
    return BootstrapFake(tmp_path)


def root_of(fake: BootstrapFake) -> dict:
    return fake.world()["applications"]["root"]


def cluster_calls(fake) -> list[list[str]]:
    """The kubectl calls that reach a cluster (not the kubeconfig's, not
    `version --client`)."""
    return [c for c in fake.calls("kubectl") if c[1:2] != ["config"] and c[1:] != ["version", "--client"]]


def fail_lines(result) -> list[str]:
    return [line.split(" FAIL ", 1)[1] for line in result.stderr.splitlines() if " FAIL " in line]


def next_steps(result) -> list[str]:
    return [line.split(" next: ", 1)[1] for line in result.stderr.splitlines() if " next: " in line]


# ------------------------------------------------------------ first runs
def test_a_first_run_follows_the_clones_origin_and_branch_and_the_image_of_that_fork(fake):
    fake.ready_cluster()

    result = fake.run(BOOTSTRAP)

    assert result.returncode == 0, result.stderr
    ctx = ["kubectl", "--context", CONTEXT]
    calls = fake.mutating_calls()
    assert calls[0] == [
        "helm", "upgrade", "--install", "argocd", "argo-cd", "--kube-context", CONTEXT,
        "--repo", "https://argoproj.github.io/argo-helm", "--version", "10.10.2",
        "--namespace", "argocd", "--create-namespace",
        "--values", str(gitops.ARGOCD_DIR / "values" / "argo-cd.yaml"), "--wait", "--timeout", "10m",
    ]
    # Development: OpenBao's seal key (its own test below), then the root.
    assert calls[1] == [*ctx, "create", "namespace", "openbao"]
    assert calls[2] == [*ctx, "create", "-f", "-"]
    assert calls[3][:4] == [*ctx, "apply"] and len(calls) == 4
    # The root is the chart's, rendered with the fork's settings.
    assert root_of(fake) == gitops.platform_variant(
        "dev", {"repo": {"url": FORK, "revision": "main"}, "image": {"repository": FORK_IMAGE}}
    ).root
    source = root_of(fake)["spec"]["source"]
    assert (source["repoURL"], source["targetRevision"]) == (FORK, "main")
    assert source["helm"]["valuesObject"]["image"] == {"repository": FORK_IMAGE}
    assert "valueFiles" not in source["helm"]
    assert "Argo CD reads the root (sync status OutOfSync)" in result.stderr
    assert f"ok: repository {FORK} at main (commit {MAIN[:12]})" in result.stderr
    assert all(c[1:3] == ["--context", CONTEXT] for c in cluster_calls(fake))
    assert list(fake.world()["secrets"]) == ["openbao/openbao-seal"]


def seal_key_id() -> str:
    """The key id the development static seal reads its key under."""
    text = (gitops.REPO / "deploy" / "vault" / "server" / "seal-static.hcl").read_text(encoding="utf-8")
    ids = re.findall(r'^\s*current_key_id\s*=\s*"([^"]+)"', text, re.M)
    assert len(ids) == 1, ids
    return ids[0]


def test_a_development_run_makes_openbaos_seal_key_once_from_random_bytes_and_never_shows_it(fake, tmp_path):
    fake.ready_cluster()

    first = fake.run(BOOTSTRAP)
    first_calls = fake.calls()
    secret = fake.world()["secrets"]["openbao/openbao-seal"]
    second = fake.run(BOOTSTRAP)
    (tmp_path / "other").mkdir()
    other = BootstrapFake(tmp_path / "other")
    other.ready_cluster()
    other.run(BOOTSTRAP)

    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    key_id = seal_key_id()
    # The Secret the chart mounts, the key under the id the seal names.
    values = yaml.safe_load((gitops.ARGOCD_DIR / "values" / "openbao.yaml").read_text(encoding="utf-8"))
    mounted = {v["name"]: v for v in values["server"]["volumes"]}["seal"]["secret"]["secretName"]
    assert (secret["metadata"]["name"], mounted) == ("openbao-seal", "openbao-seal")
    assert list(secret["data"]) == [key_id]
    key = base64.b64decode(secret["data"][key_id])
    assert len(key) == 32
    assert key != base64.b64decode(other.world()["secrets"]["openbao/openbao-seal"]["data"][key_id])
    # Made once: the second run keeps it.
    assert fake.world()["secrets"]["openbao/openbao-seal"] == secret
    assert "Secret openbao/openbao-seal (OpenBao's seal key) exists: kept" in second.stderr
    encoded = secret["data"][key_id]
    for result in (first, second):
        assert encoded not in result.stdout + result.stderr
    assert all(encoded not in arg for call in first_calls + fake.calls() for arg in call)
    assert not [c for c in fake.mutating_calls() if "create" in c]


def test_a_production_run_makes_no_seal_key(fake):
    fake.ready_cluster()

    result = fake.run(BOOTSTRAP, "prod")

    assert result.returncode == 0, result.stderr
    assert "openbao/openbao-seal" not in fake.world().get("secrets", {})
    assert not [c for c in fake.mutating_calls() if "namespace" in c]


def test_flags_choose_the_repository_revision_image_context_and_production(fake):
    other = "https://git.example.org/team/platform.git"
    fake.ready_cluster(contexts=[CONTEXT, "prod-eu"])
    world = fake.world()
    world["git"]["remotes"][other] = {"refs": {"refs/heads/main": MAIN, "refs/tags/v1.0.0": TAG}}
    fake.set_world(world)

    result = fake.run(
        BOOTSTRAP, "prod", "--repo", other, "--revision", "v1.0.0",
        "--image", "registry.example.org/team/student-api", "--context", "prod-eu",
    )

    assert result.returncode == 0, result.stderr
    source = root_of(fake)["spec"]["source"]
    assert (source["repoURL"], source["targetRevision"]) == (other, "v1.0.0")
    assert source["helm"]["valueFiles"] == ["values-prod.yaml"]
    assert source["helm"]["valuesObject"]["image"] == {"repository": "registry.example.org/team/student-api"}
    assert all(c[1:3] == ["--context", "prod-eu"] for c in cluster_calls(fake))
    assert ["--kube-context", "prod-eu"] == fake.mutating_calls()[0][5:7]
    assert f"ok: repository {other} at v1.0.0 (commit {TAG[:12]})" in result.stderr


@pytest.mark.parametrize(
    ("origin", "url", "image"),
    [
        ("git@github.com:Fork-Owner/Student-API.git", FORK, FORK_IMAGE),
        ("ssh://git@github.com/Fork-Owner/Student-API", FORK, FORK_IMAGE),
        ("https://github.com/Fork-Owner/Student-API", FORK, FORK_IMAGE),
        ("https://github.com/Fork-Owner/Student-API.git/", FORK, FORK_IMAGE),
        # Not GitHub: the URL as it is, the chart's own image.
        ("https://git.example.org/team/platform.git", "https://git.example.org/team/platform.git", None),
    ],
)
def test_the_origin_becomes_the_https_url_argo_cd_reads_and_a_github_fork_gets_its_ghcr_image(
    fake, origin, url, image
):
    fake.ready_cluster()
    world = fake.world()
    world["git"]["origin"] = origin
    world["git"]["remotes"] = {url: {"refs": {"refs/heads/main": MAIN}}}
    fake.set_world(world)

    result = fake.run(BOOTSTRAP, "--check")

    assert result.returncode == 0, result.stderr
    assert ["git", "-c", "credential.helper=", "ls-remote", url] in fake.calls("git")
    shown = image or "of the chart's values"
    assert f"environment dev: {url} at main, image {shown}" in result.stderr
    template = next(c for c in fake.calls("helm") if c[1] == "template")
    assert (f"image.repository={image}" in template) == (image is not None)


def test_check_runs_every_check_and_changes_nothing(fake):
    fake.ready_cluster()

    result = fake.run(BOOTSTRAP, "--check")

    assert result.returncode == 0, result.stderr
    assert fake.mutating_calls() == []
    assert "--check: every check passed, nothing was changed" in result.stderr


def test_help_prints_the_usage_and_touches_nothing(fake):
    result = fake.run(BOOTSTRAP, "--help")

    assert result.returncode == 0
    assert "Usage: deploy/argocd/install/bootstrap.sh [dev|prod] [OPTION...]" in result.stdout
    assert "--repo URL" in result.stdout and "REPO_TOKEN" in result.stdout
    assert fake.calls() == []


# ------------------------------------------------------- preconditions
def _no_context(fake):
    world = fake.world()
    world["current_context"] = None
    fake.set_world(world)


def _cluster_down(fake):
    fake.update(nodes=None)


def _role_missing(fake):
    fake.update(nodes=fixture("nodes-label-missing.json"))


def _old_kubectl(fake):
    fake.update(kubectl_client="v1.34.2")


def _old_helm(fake):
    fake.update(helm_version="v3.7.2+g663a896")


def _no_local_path(fake):
    fake.update(storageclasses=[sc for sc in fixture("storageclasses.json")["items"] if sc["metadata"]["name"] != "local-path"])


def _no_metrics(fake):
    fake.update(metrics_api=False)


def _unreachable(fake):
    world = fake.world()
    world["git"]["remotes"] = {}
    fake.set_world(world)


def _private_without_flag(fake):
    world = fake.world()
    world["git"]["remotes"][FORK]["credentials"] = {"username": "fork-owner", "token": secrets.token_hex(20)}
    fake.set_world(world)


def _branch_not_pushed(fake):
    world = fake.world()
    world["git"]["branch"] = "feature/faster-lookups"
    fake.set_world(world)


@pytest.mark.parametrize(
    ("breakage", "args", "problem", "step"),
    [
        (_no_context, [], "context: kubectl has no current context", "deploy/cluster/kind.sh up"),
        (lambda f: None, ["--context", "elsewhere"], "context: elsewhere is not a context of your kubeconfig", "--context NAME"),
        (_cluster_down, [], f"cluster: the API server of context {CONTEXT} does not answer", "start the cluster"),
        (_role_missing, [], "nodes: label type=database is on no node; expected exactly one", "type=ROLE --overwrite"),
        (_old_kubectl, [], "kubectl: version 1.34; the platform needs 1.35 or later", "install a current kubectl"),
        (_old_helm, [], "helm: version 3.7; this script needs 3.8 or later", "install Helm 4"),
        (_no_local_path, [], "storage: StorageClass local-path is missing", "deploy/cluster/kind.sh up"),
        (_no_metrics, [], "metrics: the metrics API (metrics.k8s.io) does not answer", "install metrics-server"),
        (_unreachable, [], f"repository: {FORK} cannot be read without credentials, as Argo CD would read it", "--private"),
        (_private_without_flag, [], f"repository: {FORK} cannot be read without credentials", "--private with REPO_USERNAME"),
        (_branch_not_pushed, [], f"repository: {FORK} has no branch or tag feature/faster-lookups", "git push origin feature/faster-lookups"),
        (lambda f: None, ["--revision", "v9.9.9"], f"repository: {FORK} has no branch or tag v9.9.9", "pass --revision"),
        (lambda f: None, ["--private"], "repository: --private, but neither REPO_USERNAME and REPO_TOKEN nor the Secret", "export REPO_USERNAME and REPO_TOKEN"),
    ],
)
def test_each_failed_precondition_names_the_next_step_and_nothing_is_changed(fake, breakage, args, problem, step):
    fake.ready_cluster()
    breakage(fake)

    result = fake.run(BOOTSTRAP, *args)

    assert result.returncode == 1
    assert any(line.startswith(problem) for line in fail_lines(result)), result.stderr
    assert any(step in line for line in next_steps(result)), result.stderr
    assert "nothing was changed" in result.stderr
    assert fake.mutating_calls() == []


def test_every_problem_is_reported_at_once(fake):
    fake.ready_cluster(nodes=fixture("nodes-label-missing.json"), kubectl_client="v1.33.0")

    result = fake.run(BOOTSTRAP, "--revision", "nowhere")

    assert result.returncode == 1
    assert [line.split(":", 1)[0] for line in fail_lines(result)] == ["kubectl", "nodes", "nodes", "repository"]
    assert len(next_steps(result)) == 3
    assert fake.mutating_calls() == []


def test_a_production_cluster_may_have_more_nodes_than_roles(fake):
    nodes = fixture("nodes-good.json")
    extra = yaml.safe_load(yaml.safe_dump(nodes["items"][0]))
    extra["metadata"]["name"] = "student-api-m04"
    nodes["items"].append(extra)  # a second dependent_services node
    fake.ready_cluster(nodes=nodes)

    dev = fake.run(BOOTSTRAP, "--check")
    prod = fake.run(BOOTSTRAP, "prod", "--check")

    assert dev.returncode == 1 and "nodes: expected 3 nodes, found 4" in " ".join(fail_lines(dev))
    assert prod.returncode == 0, prod.stderr


def test_helm_3_still_works_with_a_warning(fake):
    fake.ready_cluster(helm_version="v3.19.2+g8766e71")

    result = fake.run(BOOTSTRAP, "--check")

    assert result.returncode == 0, result.stderr
    assert "Helm 3 gets security fixes only, until 2027-02-10" in result.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"origin": None}, "no --repo given and this clone has no remote 'origin'"),
        ({"branch": None}, "this clone is on no branch (detached HEAD): pass --revision"),
        ({"origin": "file:///srv/git/platform.git"}, "is not one Argo CD can read over https"),
    ],
)
def test_defaults_that_cannot_be_had_from_the_clone_are_asked_for(fake, change, message):
    fake.ready_cluster()
    world = fake.world()
    world["git"].update(change)
    fake.set_world(world)

    result = fake.run(BOOTSTRAP)

    assert result.returncode == 1
    assert message in result.stderr
    assert fake.mutating_calls() == []


@pytest.mark.parametrize("bad", ["https://git.example.org/a,b/platform.git", "https://git.example.org/a/plat form.git"])
def test_a_repository_url_helm_would_split_or_yaml_would_misread_is_refused(fake, bad):
    fake.ready_cluster()

    result = fake.run(BOOTSTRAP, "--repo", bad)

    assert result.returncode == 1
    assert "is not one Argo CD can read over https" in result.stderr
    assert fake.calls("helm") == []


def test_credentials_in_the_url_are_refused_and_never_printed(fake):
    token = secrets.token_hex(20)
    fake.ready_cluster()
    world = fake.world()
    world["git"]["origin"] = f"https://fork-owner:{token}@github.com/Fork-Owner/Student-API.git"
    fake.set_world(world)

    result = fake.run(BOOTSTRAP)

    assert result.returncode == 1
    assert "holds credentials" in result.stderr and "--private" in result.stderr
    assert token not in result.stdout + result.stderr
    assert [c[1:] for c in fake.calls()] == [["-C", str(gitops.REPO), "remote", "get-url", "origin"]]


# ------------------------------------------------------ a private fork
def private_fork(fake, username: str, token: str) -> None:
    fake.ready_cluster()
    world = fake.world()
    world["git"]["remotes"][FORK]["credentials"] = {"username": username, "token": token}
    fake.set_world(world)


def test_a_private_fork_gets_its_first_repository_secret_from_the_environment_only(fake):
    username, token = "fork-owner", secrets.token_hex(20)
    private_fork(fake, username, token)

    result = fake.run(BOOTSTRAP, "--private", REPO_USERNAME=username, REPO_TOKEN=token)

    assert result.returncode == 0, result.stderr
    # The Secret the chart's ExternalSecret adopts later.
    (external,) = [d for d in gitops.platform_variant("dev", {"repo": {"private": True}}).others]
    secret = fake.world()["secrets"][f"argocd/{external['spec']['target']['name']}"]
    assert secret["metadata"]["labels"]["argocd.argoproj.io/secret-type"] == "repository"
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {"type": "git", "url": FORK, "username": username, "password": token}
    # Created before the root, which Argo CD then reads with it (after
    # OpenBao's namespace and seal key).
    verbs = [c[3:5] for c in fake.mutating_calls() if c[0] == "kubectl"]
    assert verbs == [["create", "-f"], ["create", "namespace"], ["create", "-f"], ["apply", "-f"]]
    assert root_of(fake)["spec"]["source"]["helm"]["valuesObject"]["repo"]["private"] is True
    assert "Argo CD reads the root" in result.stderr
    # The token went through stdin and the askpass program, never an argument
    # or a log line.
    assert token not in str(fake.calls())
    assert token not in result.stdout + result.stderr


def test_a_private_fork_keeps_a_repository_secret_that_exists(fake):
    username, token = "fork-owner", secrets.token_hex(20)
    private_fork(fake, username, token)
    assert fake.run(BOOTSTRAP, "--private", REPO_USERNAME=username, REPO_TOKEN=token).returncode == 0

    # Run again without the variables: this machine reads the repository
    # with its user's own access.
    again = fake.run(BOOTSTRAP, "--private")

    assert again.returncode == 0, again.stderr
    assert "Secret argocd/platform-repository exists: kept" in again.stderr
    assert [c[3] for c in fake.mutating_calls() if c[0] == "kubectl"] == ["apply"]


def test_a_wrong_token_is_caught_before_anything_changes(fake):
    private_fork(fake, "fork-owner", secrets.token_hex(20))
    wrong = secrets.token_hex(20)

    result = fake.run(BOOTSTRAP, "--private", REPO_USERNAME="fork-owner", REPO_TOKEN=wrong)

    assert result.returncode == 1
    assert fail_lines(result)[0].startswith(f"repository: {FORK} cannot be read with REPO_USERNAME and REPO_TOKEN")
    assert fake.mutating_calls() == []
    assert wrong not in result.stdout + result.stderr


# ----------------------------------------- after the root: Argo CD's view
def test_an_argo_cd_that_does_not_install_stops_the_run_before_the_root(fake):
    fake.ready_cluster(argocd_install_fails=True)

    result = fake.run(BOOTSTRAP)

    assert result.returncode == 1
    assert "UPGRADE FAILED" in result.stderr and "helm could not install Argo CD" in result.stderr
    assert [c[0] for c in fake.mutating_calls()] == ["helm"]


def test_a_repository_the_cluster_cannot_reach_is_reported_within_the_bound(fake):
    fake.ready_cluster(cluster_cannot_reach_git=True)

    result = fake.run(BOOTSTRAP, WAIT_TIMEOUT="1", POLL_INTERVAL="0.2")

    assert result.returncode == 1
    assert "Argo CD cannot read the root from" in result.stderr
    assert "ComparisonError: Failed to load target state" in result.stderr and "i/o timeout" in result.stderr
    assert "logs deploy/argocd-repo-server" in result.stderr
    assert "whether the cluster can (its network, the credentials) shows once Argo CD reads the root" in result.stderr


def test_a_secret_argo_cd_cannot_use_is_reported_with_how_to_replace_it(fake):
    username, token = "fork-owner", secrets.token_hex(20)
    private_fork(fake, username, token)
    assert fake.run(BOOTSTRAP, "--private", REPO_USERNAME=username, REPO_TOKEN=token).returncode == 0
    # The token is revoked at the Git host; this machine still reads the
    # repository with its user's own access.
    world = fake.world()
    world["git"]["remotes"][FORK]["credentials"]["token"] = secrets.token_hex(20)
    fake.set_world(world)

    result = fake.run(BOOTSTRAP, "--private", WAIT_TIMEOUT="1", POLL_INTERVAL="0.2")

    assert result.returncode == 1
    assert "authentication required" in result.stderr
    assert "kubectl -n argocd delete secret platform-repository" in result.stderr


def test_a_production_role_on_no_node_is_named(fake):
    fake.ready_cluster(nodes=fixture("nodes-label-missing.json"))

    result = fake.run(BOOTSTRAP, "prod", "--check")

    assert result.returncode == 1
    assert "nodes: label type=database is on no node; expected at least one" in fail_lines(result)
    assert "nodes: student-api-m03 has no type label" not in fail_lines(result), "other nodes are left alone"
