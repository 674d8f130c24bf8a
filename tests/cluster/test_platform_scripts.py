"""Tests of the scripts a user runs after the cluster exists, the same ones
the kind job of .github/workflows/e2e.yml runs: `kind.sh image`,
deploy/argocd/install/wait.sh, deploy/observability/set-alertmanager-webhook.sh,
deploy/cluster/check-api.sh and deploy/cluster/diagnostics.sh.

They run for real against the stand-ins of test_cluster_scripts.py
(fake_cli.py, fake_platform.py); the only network traffic is check-api.sh's
requests to a small HTTP server on 127.0.0.1 made here.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from test_cluster_scripts import FIXTURES, REPO, Fake, fixture

WAIT_SH = REPO / "deploy" / "argocd" / "install" / "wait.sh"
WEBHOOK_SH = REPO / "deploy" / "observability" / "set-alertmanager-webhook.sh"
DIAGNOSTICS_SH = REPO / "deploy" / "cluster" / "diagnostics.sh"
CHECK_API_SH = REPO / "deploy" / "cluster" / "check-api.sh"
KIND_SH = REPO / "deploy" / "cluster" / "kind.sh"
SERVICE_CHART = REPO / "deploy" / "helm" / "student-api"
COLLECTION = REPO / "postman" / "student-api.postman_collection.json"
# What these scripts use beyond what the cluster scripts do.
MORE_SYSTEM_TOOLS = ("awk", "paste", "wc", "base64", "date", "mkdir", "sort", "cat", "head")
# Where the ExternalSecret reads the URL (deploy/observability/manifests).
KV = "secret/observability/alertmanager"


class PlatformFake(Fake):
    """Fake, whose scripts may also read a file on standard input, and wait
    a minute by default: a test that expects a timeout sets a short one."""

    stdin: Path | None = None

    def run(self, script: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
        env.setdefault("WAIT_TIMEOUT", "60")
        if self.stdin is None:
            return super().run(script, *args, **env)
        with self.stdin.open() as stdin, pytest.MonkeyPatch.context() as patch:
            real_run = subprocess.run
            patch.setattr(subprocess, "run", lambda *a, **kw: real_run(*a, stdin=stdin, **kw))
            return super().run(script, *args, **env)


@pytest.fixture
def fake(tmp_path: Path) -> PlatformFake:
    fake = PlatformFake(tmp_path)
    for tool in MORE_SYSTEM_TOOLS:
        if not (fake.sysbin / tool).exists():
            (fake.sysbin / tool).symlink_to(shutil.which(tool))
    fake.install("npx")
    return fake


def platform_world(**changes: object) -> dict:
    """A running kind cluster as kind.sh up leaves it, plus the platform."""
    world = {
        "docker_running": True,
        "contexts": ["kind-student-api"],
        "kind_clusters": ["student-api"],
        "nodes": fixture("nodes-good.json"),
        "version": fixture("version.json"),
    }
    world.update(changes)
    return world


def applications(name: str) -> list[dict]:
    return fixture(name)["items"]


def log_lines(result) -> list[str]:
    return [line.split("] ", 1)[1] for line in result.stderr.splitlines() if line.startswith("[argocd-wait] ")]


# ---------------------------------------------------------------- wait.sh
def test_wait_reports_each_change_once_and_succeeds_when_every_application_is_synced_and_healthy(fake: Fake) -> None:
    syncing, synced = applications("applications-syncing.json"), applications("applications-synced.json")
    fake.set_world(platform_world(application_polls=[syncing, syncing, synced]))

    result = fake.run(WAIT_SH)

    assert result.returncode == 0, result.stderr
    lines = log_lines(result)
    assert "openbao: Synced/Healthy" in lines
    assert "student-api: OutOfSync/Missing" in lines
    assert "student-api: Synced/Healthy" in lines
    assert (
        "root: OutOfSync/Progressing: sync running: "
        "waiting for healthy state of argoproj.io/Application/kube-prometheus-stack"
    ) in lines
    # Two polls of the same state print it once.
    assert len([line for line in lines if line.startswith("student-api: OutOfSync")]) == 1
    assert lines.count("openbao: Synced/Healthy") == 1
    assert lines[-1].startswith("all 6 Applications are Synced and Healthy")
    assert fake.mutating_calls() == []
    assert {tuple(c[1:]) for c in fake.calls("kubectl")} == {
        ("-n", "argocd", "get", "applications.argoproj.io", "-o", "json")
    }


def test_wait_gives_up_within_its_bound_naming_every_application_not_ready_and_why(fake: Fake) -> None:
    fake.set_world(platform_world(application_polls=[applications("applications-syncing.json")]))

    result = fake.run(WAIT_SH, WAIT_TIMEOUT="1", POLL_INTERVAL="0.2")

    assert result.returncode == 1
    failures = [line for line in result.stderr.splitlines() if " FAIL " in line]
    assert [line.split(" FAIL ")[1].split(":")[0] for line in failures] == [
        "kube-prometheus-stack", "loki", "observability-manifests", "root", "student-api",
    ]
    assert (
        "[argocd-wait] FAIL loki: Unknown/Healthy: ComparisonError: Failed to load target state: failed to generate "
        "manifest for source 1 of 2: rpc error: code = Unknown desc = failed to list refs: dial tcp: lookup "
        "github.com: i/o timeout"
    ) in failures
    assert "deploy/observability/set-alertmanager-webhook.sh" in result.stderr
    assert "5 Application(s) not Synced and Healthy within 1s" in result.stderr


def test_wait_prints_who_it_is_still_waiting_for(fake: Fake) -> None:
    fake.set_world(platform_world(application_polls=[applications("applications-syncing.json")]))

    result = fake.run(WAIT_SH, WAIT_TIMEOUT="1", POLL_INTERVAL="0.2", SUMMARY_INTERVAL="0")

    summaries = [line for line in log_lines(result) if " Synced and Healthy (" in line]
    assert summaries and summaries[0].startswith("1 of 6 Synced and Healthy (0m0")
    assert summaries[0].endswith(
        "; waiting for: kube-prometheus-stack loki observability-manifests root student-api"
    )


def test_wait_stops_at_once_on_a_cluster_without_argo_cd(fake: Fake) -> None:
    fake.set_world(platform_world(argocd=False))

    result = fake.run(WAIT_SH, WAIT_TIMEOUT="600")

    assert result.returncode == 1
    assert "this cluster has no Argo CD (no Application resource): run deploy/argocd/install/bootstrap.sh first" in (
        result.stderr
    )
    assert len(fake.calls("kubectl")) == 1


def test_wait_says_when_no_application_ever_appeared(fake: Fake) -> None:
    fake.set_world(platform_world(application_polls=[[]]))

    result = fake.run(WAIT_SH, WAIT_TIMEOUT="1", POLL_INTERVAL="0.2")

    assert result.returncode == 1
    assert "no Application appeared in namespace argocd within 1s: did bootstrap.sh apply the root?" in result.stderr


def test_wait_keeps_waiting_through_an_api_server_that_does_not_answer(fake: Fake) -> None:
    fake.set_world(platform_world(nodes=None))

    result = fake.run(WAIT_SH, WAIT_TIMEOUT="1", POLL_INTERVAL="0.2")

    assert result.returncode == 1
    assert result.stderr.count("cannot list the Applications: The connection to the server") == 1
    assert len(fake.calls("kubectl")) > 1


# --------------------------------------------------- set-alertmanager-webhook.sh
@pytest.fixture
def webhook_url() -> str:
    """A URL made at run time that points at nothing (the discard port)."""
    return f"http://127.0.0.1:9/{secrets.token_hex(12)}"


def openbao_world(**openbao: object) -> dict:
    """OpenBao running, and the operators' service account whose tokens the
    current user may create."""
    return platform_world(openbao={"pod": True, "operator_account": True, **openbao})


def operator_jwts(fake: Fake) -> list[str]:
    """The service-account tokens kubectl made for the operators' account."""
    return fake.world()["openbao"].get("jwts", [])


def assert_never_shown(fake: Fake, result, *values: str) -> None:
    for value in values:
        assert value not in result.stdout and value not in result.stderr
        assert all(value not in arg for call in fake.calls() for arg in call)


def test_webhook_is_written_from_a_file_exactly_as_an_operator_and_nothing_is_shown(
    fake: Fake, tmp_path: Path, webhook_url: str
) -> None:
    fake.set_world(openbao_world())
    url_file = tmp_path / "webhook-url"
    url_file.write_text(webhook_url + "\n")

    result = fake.run(WEBHOOK_SH, str(url_file))

    assert result.returncode == 0, result.stderr
    assert fake.world()["openbao"]["kv"] == {KV: {"slack-webhook-url": webhook_url}}
    # One short-lived token of openbao/openbao-operator, for OpenBao only.
    assert ["kubectl", "-n", "openbao", "create", "token", "openbao-operator", "--audience", "vault", "--duration", "10m"] in fake.calls("kubectl")
    (jwt,) = operator_jwts(fake)
    exec_call = next(c for c in fake.calls("kubectl") if "exec" in c)
    assert exec_call[-5:] == ["jwt", "operator", "secret", "observability/alertmanager", "slack-webhook-url"]
    assert_never_shown(fake, result, webhook_url, jwt)
    assert "written: secret/observability/alertmanager (slack-webhook-url)" in result.stderr
    assert "once Argo CD creates that" in result.stderr


def test_webhook_is_read_from_standard_input_with_a_dash(fake: Fake, tmp_path: Path, webhook_url: str) -> None:
    fake.set_world(openbao_world())
    url_file = tmp_path / "webhook-url"
    url_file.write_text(webhook_url)

    fake.stdin = url_file
    result = fake.run(WEBHOOK_SH, "-")

    assert result.returncode == 0, result.stderr
    assert fake.world()["openbao"]["kv"][KV]["slack-webhook-url"] == webhook_url


def test_webhook_asks_external_secrets_to_sync_at_once_when_the_externalsecret_exists(
    fake: Fake, tmp_path: Path, webhook_url: str
) -> None:
    fake.set_world({**openbao_world(), "externalsecrets": ["observability/alertmanager-slack"]})
    (tmp_path / "url").write_text(webhook_url)

    result = fake.run(WEBHOOK_SH, str(tmp_path / "url"))

    assert result.returncode == 0, result.stderr
    assert fake.world()["annotations"]["observability/alertmanager-slack"].startswith("force-sync=")


def test_webhook_is_retried_while_openbao_is_sealed_and_each_reason_is_said_once(
    fake: Fake, tmp_path: Path, webhook_url: str
) -> None:
    fake.set_world(openbao_world(failures=3))
    (tmp_path / "url").write_text(webhook_url)

    result = fake.run(WEBHOOK_SH, str(tmp_path / "url"), POLL_INTERVAL="0")

    assert result.returncode == 0, result.stderr
    assert len([c for c in fake.calls("kubectl") if "exec" in c]) == 4
    assert result.stderr.count("* Vault is sealed") == 1
    assert fake.world()["openbao"]["kv"][KV]["slack-webhook-url"] == webhook_url
    assert_never_shown(fake, result, webhook_url, *operator_jwts(fake))


def test_webhook_gives_up_within_its_bound_when_openbao_never_comes(fake: Fake, tmp_path: Path, webhook_url: str) -> None:
    fake.set_world(openbao_world(pod=False))
    (tmp_path / "url").write_text(webhook_url)

    result = fake.run(WEBHOOK_SH, str(tmp_path / "url"), WAIT_TIMEOUT="1", POLL_INTERVAL="0.2")

    assert result.returncode == 1
    assert 'could not write the webhook URL within 1s: Error from server (NotFound): pods "openbao-0" not found' in (
        result.stderr
    )
    assert "kv" not in fake.world()["openbao"]


def test_webhook_uses_vault_token_when_set_and_then_makes_no_service_account_token(
    fake: Fake, tmp_path: Path, webhook_url: str
) -> None:
    token = secrets.token_hex(16)
    fake.set_world(openbao_world(tokens=[token]))
    (tmp_path / "url").write_text(webhook_url)

    result = fake.run(WEBHOOK_SH, str(tmp_path / "url"), VAULT_TOKEN=token)

    assert result.returncode == 0, result.stderr
    assert not [c for c in fake.calls("kubectl") if c[3:5] == ["create", "token"]]
    assert next(c for c in fake.calls("kubectl") if "exec" in c)[-5] == "token"
    assert_never_shown(fake, result, webhook_url, token)


def test_webhook_without_the_right_to_an_operator_token_names_it_and_the_runbook(
    fake: Fake, tmp_path: Path, webhook_url: str
) -> None:
    fake.set_world(openbao_world(forbidden=True))
    (tmp_path / "url").write_text(webhook_url)

    result = fake.run(WEBHOOK_SH, str(tmp_path / "url"), WAIT_TIMEOUT="0")

    assert result.returncode == 1
    assert "cannot get a token of openbao/openbao-operator" in result.stderr
    assert 'cannot create resource "serviceaccounts/token"' in result.stderr
    assert "docs/runbooks/vault.md" in result.stderr
    assert not [c for c in fake.calls("kubectl") if "exec" in c]


@pytest.mark.parametrize(
    "content",
    ["", "hooks are configured later", "http://127.0.0.1:9/a\nhttp://127.0.0.1:9/b", "ftp://127.0.0.1/x"],
    ids=["empty", "not-a-url", "two-lines", "not-http"],
)
def test_webhook_refuses_a_file_that_is_not_one_url_without_showing_it(
    fake: Fake, tmp_path: Path, content: str
) -> None:
    fake.set_world(openbao_world())
    (tmp_path / "url").write_text(content)

    result = fake.run(WEBHOOK_SH, str(tmp_path / "url"))

    assert result.returncode == 1
    assert fake.calls() == []
    for line in filter(None, content.splitlines()):
        assert line not in result.stderr


# ------------------------------------------------------------ diagnostics.sh
def diagnostics_world(**changes: object) -> dict:
    return platform_world(
        kinds=["externalsecrets.external-secrets.io", "clustersecretstores.external-secrets.io"],
        pods={
            "argocd/argocd-server-6c9d7b8f5-x2k4q": {"containers": {"server": 0}, "log": "level=info msg=\"serving\""},
            "student-api/student-api-7d4b9c6f8-9qv2m": {
                "containers": {"migrate": 0, "student-api": 3},
                "log": '{"level":"ERROR","message":"database unavailable"}',
            },
        },
        **changes,
    )


def test_diagnostics_collects_states_events_and_every_pods_logs(fake: Fake, tmp_path: Path) -> None:
    fake.set_world(diagnostics_world())
    out = tmp_path / "diagnostics"

    result = fake.run(DIAGNOSTICS_SH, str(out), KIND_CLUSTER_NAME="student-api")

    assert result.returncode == 0, result.stderr
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert {"cluster.txt", "argocd.txt", "argocd.yaml", "resources.txt", "events.txt", "errors.txt"} <= set(files)
    assert "describe/pods.txt" in files and "describe/externalsecrets.txt" in files
    assert (out / "logs/student-api/student-api-7d4b9c6f8-9qv2m.log").read_text().count("database unavailable") == 1
    assert "logs/argocd/argocd-server-6c9d7b8f5-x2k4q.log" in files
    # The previous run of the restarted container only.
    assert [f for f in files if f.endswith(".previous.log")] == [
        "logs/student-api/student-api-7d4b9c6f8-9qv2m.student-api.previous.log"
    ]
    # The kinds this cluster has not got (yet) are noted, and the rest goes on.
    errors = (out / "errors.txt").read_text()
    assert 'the server doesn\'t have a resource type "gateways"' in errors
    assert "externalsecrets" not in errors
    # The nodes' own logs, as kind exports them.
    assert [f for f in files if f.startswith("kind/")] == sorted(
        f"kind/{node['metadata']['name']}/kubelet.log" for node in fixture("nodes-good.json")["items"]
    )
    assert fake.mutating_calls() == []


def test_diagnostics_never_asks_for_a_secrets_content(fake: Fake, tmp_path: Path) -> None:
    fake.set_world(diagnostics_world())

    fake.run(DIAGNOSTICS_SH, str(tmp_path / "out"))

    secret_calls = [c for c in fake.calls("kubectl") if {"secret", "secrets"} & set(c)]
    assert secret_calls == [["kubectl", "--request-timeout=30s", "get", "secrets", "-A"]]
    assert not [c for c in fake.calls("kubectl") if "describe" in c and any(a.startswith("secret") for a in c)]


def test_diagnostics_never_fails_the_job_even_without_a_cluster(fake: Fake, tmp_path: Path) -> None:
    fake.set_world(platform_world(nodes=None))
    out = tmp_path / "out"

    result = fake.run(DIAGNOSTICS_SH, str(out))

    assert result.returncode == 0, result.stderr
    assert "The connection to the server" in (out / "errors.txt").read_text()
    assert "command(s) failed" in result.stderr


def test_diagnostics_without_kubectl_says_so_and_succeeds(fake: Fake, tmp_path: Path) -> None:
    fake.remove("kubectl")

    result = fake.run(DIAGNOSTICS_SH, str(tmp_path / "out"))

    assert result.returncode == 0
    assert "kubectl not found" in (tmp_path / "out" / "errors.txt").read_text()


def test_diagnostics_needs_a_directory(fake: Fake) -> None:
    result = fake.run(DIAGNOSTICS_SH)

    assert result.returncode == 2
    assert "Usage: deploy/cluster/diagnostics.sh DIR" in result.stderr


# ------------------------------------------------------------ kind.sh image
def chart_image() -> str:
    values = yaml.safe_load((SERVICE_CHART / "values.yaml").read_text())
    chart = yaml.safe_load((SERVICE_CHART / "Chart.yaml").read_text())
    return f"{values['image']['repository']}:{values['image']['tag'] or chart['appVersion']}"


def install_git(fake: Fake, origin: str | None) -> None:
    """A git that knows one remote, and HEAD."""
    answer = f'echo "{origin}"' if origin else "echo \"error: No such remote 'origin'\" >&2; exit 2"
    git = fake.bin / "git"
    git.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        f'  *"remote get-url origin") {answer} ;;\n'
        '  *"rev-parse HEAD") echo 4f1c2b9d0e8a7c6b5a4f3e2d1c0b9a8f7e6d5c4b ;;\n'
        '  *) echo "fake git: unsupported call $*" >&2; exit 64 ;;\n'
        "esac\n"
    )
    git.chmod(0o755)


def test_kind_image_builds_and_loads_the_image_the_chart_pulls(fake: Fake) -> None:
    fake.set_world(platform_world())
    install_git(fake, None)

    result = fake.run(KIND_SH, "image")

    assert result.returncode == 0, result.stderr
    image = chart_image()
    assert image == "ghcr.io/student-api/student-api:0.1.0"
    assert fake.calls("docker")[1] == [
        "docker", "build", "--tag", image, "--build-arg", "VERSION=0.1.0",
        "--build-arg", "REVISION=4f1c2b9d0e8a7c6b5a4f3e2d1c0b9a8f7e6d5c4b", str(REPO),
    ]
    assert fake.calls("kind")[-1] == ["kind", "load", "docker-image", image, "--name", "student-api"]
    assert fake.world()["node_images"] == [image]


@pytest.mark.parametrize(
    ("origin", "repository"),
    [
        ("git@github.com:Some-Fork/Student-API.git", "ghcr.io/some-fork/student-api"),
        ("https://github.com/some-fork/student-api.git", "ghcr.io/some-fork/student-api"),
        ("https://github.com/some-fork/student-api", "ghcr.io/some-fork/student-api"),
        ("https://gitlab.example.org/team/student-api.git", "ghcr.io/student-api/student-api"),
    ],
)
def test_kind_image_defaults_to_the_repository_bootstrap_defaults_to(fake: Fake, origin: str, repository: str) -> None:
    fake.set_world(platform_world())
    install_git(fake, origin)

    result = fake.run(KIND_SH, "image")

    assert result.returncode == 0, result.stderr
    assert fake.world()["node_images"] == [f"{repository}:0.1.0"]


def test_kind_image_takes_the_repository_given(fake: Fake) -> None:
    fake.set_world(platform_world())

    result = fake.run(KIND_SH, "image", "ghcr.io/another/student-api")

    assert result.returncode == 0, result.stderr
    assert fake.world()["node_images"] == ["ghcr.io/another/student-api:0.1.0"]


def test_kind_image_needs_the_cluster_first(fake: Fake) -> None:
    fake.set_world(platform_world(kind_clusters=[]))

    result = fake.run(KIND_SH, "image")

    assert result.returncode == 1
    assert "no kind cluster student-api: run deploy/cluster/kind.sh up first" in result.stderr
    assert fake.calls("docker") == [["docker", "info", "--format", "{{.ServerVersion}}"]]


def test_kind_image_builds_nothing_when_the_chart_pins_a_digest(fake: Fake, tmp_path: Path) -> None:
    """On a copy of the scripts and the chart, whose values pin a release."""
    copy = tmp_path / "repo"
    for part in ("deploy/cluster", "scripts/lib", "deploy/helm/student-api"):
        shutil.copytree(REPO / part, copy / part)
    values = copy / "deploy/helm/student-api/values.yaml"
    digest = "sha256:" + "ab" * 32
    values.write_text(values.read_text().replace('  digest: ""', f'  digest: "{digest}"', 1))
    fake.set_world(platform_world())

    result = fake.run(copy / "deploy/cluster/kind.sh", "image", "ghcr.io/student-api/student-api")

    assert result.returncode == 0, result.stderr
    assert f"pins image.digest {digest}" in result.stderr
    assert [c for c in fake.calls() if c[:2] in (["docker", "build"], ["kind", "load"])] == []


# ------------------------------------------------------------- check-api.sh
class Gateway(BaseHTTPRequestHandler):
    """The service behind the Gateway, as far as check-api.sh looks itself."""

    statuses: dict[str, int] = {}

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        status = self.statuses.get(self.path, 404)
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[tuple[str, dict[str, int]]]:
    statuses = {"/ready": 200, "/metrics": 404}
    handler = type("Handler", (Gateway,), {"statuses": statuses})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", statuses
    finally:
        server.shutdown()
        server.server_close()


def folders_without_metrics() -> list[str]:
    def urls(item: dict) -> Iterator[str]:
        for child in item.get("item", []):
            yield from urls(child)
        if "request" in item:
            yield item["request"]["url"]["raw"]

    collection = json.loads(COLLECTION.read_text())
    return [f["name"] for f in collection["item"] if "{{baseUrl}}/metrics" not in list(urls(f))]


def test_check_api_runs_the_collection_through_the_gateway_without_the_metrics_folder(fake: Fake, gateway) -> None:
    base, _ = gateway
    fake.set_world(platform_world())

    result = fake.run(CHECK_API_SH, base + "/")

    assert result.returncode == 0, result.stderr
    run = fake.calls("npx")[-1]
    assert run[:8] == [
        "npx", "--no-install", "newman", "run", "postman/student-api.postman_collection.json",
        "--env-var", f"baseUrl={base}", "--bail",
    ]
    folders = [run[i + 1] for i, arg in enumerate(run) if arg == "--folder"]
    assert folders == folders_without_metrics()
    assert "Metrics" not in folders and len(folders) == len(json.loads(COLLECTION.read_text())["item"]) - 1
    assert "every folder but: Metrics" in result.stderr


def test_check_api_fails_when_the_gateway_exposes_the_metrics(fake: Fake, gateway) -> None:
    base, statuses = gateway
    statuses["/metrics"] = 200
    fake.set_world(platform_world())

    result = fake.run(CHECK_API_SH, base)

    assert result.returncode == 1
    assert f"{base}/metrics answered 200 through the Gateway, not 404" in result.stderr


def test_check_api_waits_for_the_service_within_its_bound(fake: Fake, gateway) -> None:
    base, statuses = gateway
    statuses["/ready"] = 503
    fake.set_world(platform_world())

    result = fake.run(CHECK_API_SH, base, WAIT_TIMEOUT="1", POLL_INTERVAL="0.2")

    assert result.returncode == 1
    assert f"{base}/ready answered 503, not 200, for 1s" in result.stderr
    assert [c for c in fake.calls("npx") if "run" in c] == []


def test_check_api_fails_with_the_collection(fake: Fake, gateway) -> None:
    base, _ = gateway
    fake.set_world(platform_world(newman={"exit": 1}))

    result = fake.run(CHECK_API_SH, base)

    assert result.returncode == 1
    assert f"the collection failed against {base}" in result.stderr


def test_check_api_says_to_run_npm_ci_when_newman_is_missing(fake: Fake) -> None:
    fake.set_world(platform_world(newman={"installed": False}))

    result = fake.run(CHECK_API_SH)

    assert result.returncode == 1
    assert "newman is not installed: run npm ci" in result.stderr


def test_the_fixtures_of_applications_are_argo_cd_applications() -> None:
    for name in ("applications-syncing.json", "applications-synced.json"):
        doc = json.loads((FIXTURES / name).read_text())
        assert {a["kind"] for a in doc["items"]} == {"Application"}
        assert all({"sync", "health"} <= set(a["status"]) for a in doc["items"])
